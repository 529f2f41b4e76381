from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.audit.keys import Signer
from runbook.cli.audit_cmd import audit

from .helpers import read_lines, run_file, write_lines, write_run


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def signers_file(tmp_path: Path, key: Signer) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(f"ops@example.com {key.public_line}\n")
    return path


def test_keygen(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "k" / "audit_ed25519"
    res = runner.invoke(audit, ["keygen", "--out", str(out), "--comment", "ops@ci"])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    pub = Path(f"{out}.pub").read_text().split()
    assert f"ops@ci {pub[0]} {pub[1]}" in res.output and "key id:      ed25519:SHA256:" in res.output
    res = runner.invoke(audit, ["keygen", "--out", str(out)])
    assert res.exit_code == 1 and "refusing to overwrite" in res.output and "Traceback" not in res.output


def test_keygen_default_path(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(audit, ["keygen"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "xdg" / "runbook" / "audit_ed25519").is_file()


def test_verify_ok_and_failures(runner: CliRunner, tmp_path: Path, key: Signer, signers_file: Path) -> None:
    d = tmp_path / "audit"
    write_run(d, "one", key)
    write_run(d, "two", key)
    res = runner.invoke(audit, ["verify", str(d), "--allowed-signers", str(signers_file)])
    assert res.exit_code == 0, res.output
    assert "OK: 2 run(s)" in res.output and "signed by ops@example.com" in res.output

    res = runner.invoke(audit, ["verify", str(run_file(d, "two")), "--allowed-signers", str(signers_file)])
    assert res.exit_code == 0, res.output

    res = runner.invoke(audit, ["verify", str(d)], env={"RUNBOOK_ALLOWED_SIGNERS": str(signers_file)})
    assert res.exit_code == 0, res.output

    path = run_file(d, "one")
    lines = read_lines(path)
    del lines[2]
    write_lines(path, lines)
    res = runner.invoke(audit, ["verify", str(d), "--allowed-signers", str(signers_file), "--json"])
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert doc["ok"] is False and doc["problems"] == ["run one: record 3 missing (seq jumps 2 -> 4)"]


def test_verify_default_dir_and_unsigned(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "audit", "u", None)
    res = runner.invoke(audit, ["verify"])
    assert res.exit_code == 1 and "unsigned" in res.output
    res = runner.invoke(audit, ["verify", "--allow-unsigned"])
    assert res.exit_code == 0 and "note: unsigned" in res.output


def test_verify_errors_are_clean(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(audit, ["verify", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "no such audit file or directory" in res.output
    res = runner.invoke(audit, ["verify", str(tmp_path), "--allowed-signers", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "cannot read allowed signers file" in res.output
    garbage = tmp_path / "g.jsonl"
    garbage.write_bytes(b"\x00\x01garbage")
    res = runner.invoke(audit, ["verify", str(garbage)])
    assert res.exit_code == 1 and "write interrupted" in res.output and "Traceback" not in res.output


def test_show(runner: CliRunner, tmp_path: Path, key: Signer) -> None:
    d = tmp_path / "audit"
    write_run(d, "deploy-42", key, steps=2)
    res = runner.invoke(audit, ["show", "deploy-4", "--dir", str(d)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for text in ("run deploy-42", "alice@laptop", "step.end", "step 1", "changed", "1.250s", "final signed"):
        assert text in res.output
    res = runner.invoke(audit, ["show", "zzz", "--dir", str(d)])
    assert res.exit_code == 1 and "no run matching" in res.output


def test_export_and_verify_bundle(runner: CliRunner, tmp_path: Path, key: Signer, signers_file: Path) -> None:
    d = tmp_path / "audit"
    write_run(d, "r1", key)
    out = tmp_path / "r1.tar.gz"
    res = runner.invoke(audit, ["export", "r1", "--dir", str(d), "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(audit, ["verify", str(out)])
    assert res.exit_code == 0, res.output
    assert "trusting the key(s) shipped inside the bundle" in res.output
    res = runner.invoke(audit, ["verify", str(out), "--allowed-signers", str(signers_file)])
    assert res.exit_code == 0 and "trusting" not in res.output
    res = runner.invoke(audit, ["export", "r1", "--dir", str(d), "--out", str(out)])
    assert res.exit_code == 1 and "refusing to overwrite" in res.output
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])  # a damaged download
    res = runner.invoke(audit, ["verify", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output


CANARY = "CANARY-cli-5c4b3a"


def test_canary_never_in_any_artifact(
    runner: CliRunner, tmp_path: Path, key: Signer, signers_file: Path
) -> None:
    from runbook.audit.writer import AuditWriter
    from runbook.execute.events import Event

    d = tmp_path / "audit"
    writer = AuditWriter(d, signing_key=key)  # no redactor: name- and pattern-based masking only
    writer(
        Event(
            "run.start", "c", data={"extra_vars": {"vault_password": CANARY, "url": f"https://u:{CANARY}@h"}}
        )
    )
    writer(
        Event(
            "step.start", "c", host="h", step="s", data={"command": f"PGPASSWORD={CANARY} psql -c 'select 1'"}
        )
    )
    writer(Event("step.end", "c", host="h", step="s", outcome="ok", data={"msg": f"api_key: {CANARY}"}))
    writer.close("success")
    outputs = [
        runner.invoke(audit, ["show", "c", "--dir", str(d)], env={"COLUMNS": "300"}).output,
        runner.invoke(audit, ["verify", str(d), "--allowed-signers", str(signers_file), "--json"]).output,
        runner.invoke(audit, ["export", "c", "--dir", str(d), "--out", str(tmp_path / "b.json")]).output,
        runner.invoke(audit, ["export", "c", "--dir", str(d), "--out", str(tmp_path / "b.tar.gz")]).output,
    ]
    import gzip

    blobs = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    blobs.append(gzip.decompress((tmp_path / "b.tar.gz").read_bytes()))
    assert all(CANARY not in o for o in outputs) and "PGPASSWORD=***" in outputs[0]
    assert all(CANARY.encode() not in b for b in blobs)
