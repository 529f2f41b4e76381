"""Step kinds as data: arguments + what the host answers -> the outcome and the actions the kind
performs (as pyinfra's operation test cases). Each tests/kinds/cases/<module>.yaml holds cases:

    kind: check.disk
    cases:
      - name: enough space
        args: {path: /srv, min_free_gb: 1}
        vars: {}                      # the variables templates in args see
        dry_run: false
        host:                         # a runbook.testing.FakeHost
          files: {/srv/x: "text"}
          dirs: [/srv]
          commands: [{match: "df -Pk", stdout: "..."}]   # regex -> reply, first match answers
          clients: {redis.ping: {ok: true}}              # operation name -> reply
          http: {"GET http://...": {status: 200, body: {...}}}
        expect:                       # or error: "..." when the arguments are refused
          ok: true
          changed: false
          msg: "exact"  |  msg_contains: ["part", ...]
          commands: ["LC_ALL=C df -Pk -- /srv"]          # every command run, in order
          planned: [{kind: command, summary: "..."}]      # what a dry-run would do
          written: {/path: "content"}                     # files written
          registered: {free_mb: 1}                        # a subset of what register: holds
          snapshots: [{...}]
          clients: [[redis.ping, {url: ...}]]             # client calls (operation, params)
          requests: ["GET http://..."]
          notes: ["warning: ..."]                          # lines for the operator
          slept: [1.0, 1.0]                               # pauses asked for (never slept)

A command no reply was scripted for fails the case (unless ``expect.unanswered`` lists it). The
real-service tests (tests/steps, tests/deploy) stay: these pin each kind's logic and commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook import testing
from runbook.errors import RunbookError

CASES = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    out = []
    for path in sorted(CASES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for case in doc["cases"]:
            out.append(pytest.param(doc["kind"], case, id=f"{doc['kind']}: {case['name']}"))
    return out


def _host(spec: dict[str, Any] | None) -> testing.FakeHost:
    spec = dict(spec or {})
    replies = [testing.Reply(**r) for r in spec.pop("commands", [])]
    return testing.FakeHost(commands=replies, **spec)


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    return expected == actual


@pytest.mark.parametrize("kind, case", _load())
def test_case(kind: str, case: dict[str, Any], tmp_path: Path) -> None:
    host = _host(case.get("host"))
    for rel, text in (case.get("project_files") or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    want = case["expect"]
    if "error" in want:  # the engine refuses the arguments before the kind runs
        with pytest.raises(RunbookError) as err:
            testing.run(kind, case.get("args"), host, variables=case.get("vars"), project_dir=tmp_path)
        assert want["error"] in err.value.message
        assert host.commands_run == []
        return
    done = testing.run(
        kind, case.get("args"), host, variables=case.get("vars"), dry_run=case.get("dry_run", False),
        read_only=case.get("read_only", False), project_dir=tmp_path,
    )  # fmt: skip
    assert done.ok is want.get("ok", True), done.outcome
    if "changed" in want:
        assert done.changed is want["changed"], done.outcome
    if "skipped" in want:
        assert done.outcome.skipped is want["skipped"], done.outcome
    if "msg" in want:
        assert done.msg == want["msg"]
    for part in want.get("msg_contains", []):
        assert part in done.msg, done.msg
    if "commands" in want:
        assert done.commands == want["commands"]
    assert host.unanswered == want.get("unanswered", []), "commands the case has no reply for"
    if "planned" in want:
        assert [{"kind": p.kind, "summary": p.summary} for p in done.planned] == want["planned"]
    if "written" in want:
        assert {p: c.decode() for p, c in host.written.items()} == want["written"]
    if "registered" in want:
        assert _subset(want["registered"], done.registered), done.registered
    if "snapshots" in want:
        assert done.snapshots == want["snapshots"]
    if "clients" in want:
        assert [[op, params] for op, params in host.client_calls] == want["clients"]
    if "notes" in want:
        assert done.notes == want["notes"]
    if "slept" in want:
        assert done.slept == want["slept"]
    if "requests" in want:
        assert [f"{r.method} {r.url}" for r in host.requests] == want["requests"]


def test_every_case_file_names_a_known_kind_and_has_cases() -> None:
    from runbook.kinds import base as kinds

    files = sorted(CASES.glob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        doc = yaml.safe_load(path.read_text())
        assert path.stem == doc["kind"] and kinds.get(doc["kind"]) is not None, path
        assert doc["cases"] and all("expect" in c and c.get("name") for c in doc["cases"]), path
