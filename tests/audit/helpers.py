"""Synthetic runs and an attacker's toolkit for the audit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook.audit.canonical import dumps
from runbook.audit.chain import list_runs, seal_line
from runbook.audit.keys import Signer
from runbook.audit.records import seal_payload
from runbook.audit.writer import AuditWriter
from runbook.execute.events import Event


def run_events(run_id: str, steps: int = 3, hosts: tuple[str, ...] = ("web1",)) -> list[Event]:
    ev = [
        Event(
            "run.start",
            run_id,
            data={
                "runbook": "deploy",
                "runbook_file": "playbooks/deploy.yml",
                "runbook_sha256": "ab" * 32,
                "git_commit": "0123abcd",
                "plan_sha256": "cd" * 32,
                "inventory": ["inventory.ini"],
                "limit": "web*",
                "extra_vars": {"version": "1.2.3"},
                "operator": {"user": "alice", "host": "laptop"},
                "dry_run": False,
                "hosts": list(hosts),
            },
        )
    ]
    for host in hosts:
        ev.append(Event("host.start", run_id, host=host))
        for i in range(steps):
            name = f"step {i}"
            ev.append(
                Event("step.start", run_id, host=host, step=name, phase="steps", data={"module": "shell"})
            )
            ev.append(
                Event(
                    "step.end",
                    run_id,
                    host=host,
                    step=name,
                    phase="steps",
                    outcome="changed",
                    rc=0,
                    duration=0.25 + i,
                    data={
                        "msg": "done",
                        "command": f"echo {i}",
                        "stdout": f"{i}\n",
                        "stderr": "",
                        "attempts": 1,
                    },
                )
            )
        ev.append(Event("host.end", run_id, host=host, outcome="ok", data={"stats": {"changed": steps}}))
    ev.append(Event("run.end", run_id, outcome="success", data={"exit_code": 0}))
    return ev


def write_run(directory: Path, run_id: str, signer: Signer | None, steps: int = 3, **writer_kw: Any) -> Path:
    writer = AuditWriter(directory, signing_key=signer, **writer_kw)
    try:
        for event in run_events(run_id, steps):
            writer(event)
    finally:
        writer.close()
    assert writer.path is not None
    return writer.path


def run_file(directory: Path, run_id: str) -> Path:
    return next(p for p in list_runs(directory) if p.stem.endswith("_" + run_id))


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_lines(path)]


def rechain(recs: list[dict[str, Any]], signer: Signer | None) -> list[bytes]:
    """Recompute every hash and re-sign every seal, as an attacker holding ``signer`` would."""
    out: list[bytes] = []
    prev = recs[0]["prev"]
    for i, rec in enumerate(recs, 1):
        body = {k: v for k, v in rec.items() if k != "hash"}
        body["seq"] = i
        body["prev"] = prev
        for k in ("key_id", "public_key", "sig"):
            body.pop(k, None)
        if signer is not None and (i == 1 or body["event"] == "seal"):
            body["key_id"] = signer.key_id
            if i == 1:
                body["public_key"] = signer.public_line
        if body["event"] == "seal":
            body["head"] = prev
            if signer is not None:
                body["sig"] = signer.sign(seal_payload(body["run_id"], i, prev, bool(body.get("final"))))
        digest, line = seal_line(body)
        out.append(line)
        prev = digest
    return out


def canonical_line(rec: dict[str, Any]) -> bytes:
    return (dumps(rec) + "\n").encode()
