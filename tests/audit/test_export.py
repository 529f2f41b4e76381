from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from runbook.audit.export import export_runs, is_bundle, load_bundle, resolve_run
from runbook.audit.keys import AllowedSigners, Signer
from runbook.audit.verify import verify_runs
from runbook.errors import AuditError

from .helpers import write_run


def _verify(bundle_path: Path, trust: AllowedSigners | None = None) -> list[str]:
    bundle = load_bundle(bundle_path)
    report = verify_runs(bundle.runs, trust or bundle.signers, complete=False)
    return report.all_problems()


@pytest.mark.parametrize("suffix", [".tar.gz", ".json"])
def test_bundle_verifies_offline(tmp_path: Path, key: Signer, trust: AllowedSigners, suffix: str) -> None:
    write_run(tmp_path / "audit", "first", key)
    run = write_run(tmp_path / "audit", "second", key)
    out = export_runs([run], tmp_path / f"bundle{suffix}", trust)
    assert is_bundle(out)
    bundle = load_bundle(out)
    assert [n for n, _ in bundle.runs] == [run.name] and bundle.runs[0][1] == run.read_bytes()
    assert bundle.signers is not None and key.key_id in bundle.signers
    assert bundle.manifest["runs"][0]["run_id"] == "second"
    assert _verify(out) == [] and _verify(out, trust) == []


def test_bundle_without_trust_uses_the_runs_own_key(tmp_path: Path, key: Signer) -> None:
    run = write_run(tmp_path / "audit", "r", key)
    bundle = load_bundle(export_runs([run], tmp_path / "b.tar.gz"))
    assert bundle.signers is not None and list(bundle.signers.keys) == [key.key_id]
    assert bundle.signers.get(key.key_id).principals == ("from-run-record",)


def test_tampered_bundle_fails(tmp_path: Path, key: Signer, trust: AllowedSigners) -> None:
    run = write_run(tmp_path / "audit", "r", key)
    out = export_runs([run], tmp_path / "b.tar.gz", trust)
    members: dict[str, bytes] = {}
    with tarfile.open(out) as tar:
        for m in tar:
            fh = tar.extractfile(m)
            assert fh is not None
            members[m.name] = fh.read()
    name = next(n for n in members if n.endswith(".jsonl"))
    members[name] = members[name].replace(b'"rc":0', b'"rc":1', 1)
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _verify(tampered) == ["run r: record 4 altered (hash mismatch)"]


def test_tampered_json_bundle_with_swapped_key(
    tmp_path: Path, key: Signer, other_key: Signer, trust: AllowedSigners
) -> None:
    run = write_run(tmp_path / "audit", "r", key)
    out = export_runs([run], tmp_path / "b.json", trust)
    doc = json.loads(out.read_text())
    doc["allowed_signers"] = [other_key.public_line]
    out.write_text(json.dumps(doc))
    assert any("untrusted key" in m for m in _verify(out))


def test_not_a_bundle(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(AuditError, match="not a runbook audit bundle"):
        load_bundle(bad)
    bad.write_text("{")
    with pytest.raises(AuditError, match="not a readable audit bundle"):
        load_bundle(bad)


def test_resolve_run(tmp_path: Path, key: Signer) -> None:
    d = tmp_path / "audit"
    a = write_run(d, "deploy-20240101-a", key)
    b = write_run(d, "deploy-20240101-b", key)
    assert resolve_run(d, "deploy-20240101-a") == a
    assert resolve_run(d, str(b)) == b
    with pytest.raises(AuditError, match="matches 2 runs"):
        resolve_run(d, "deploy")
    with pytest.raises(AuditError, match="no run matching"):
        resolve_run(d, "nothing")
    with pytest.raises(AuditError, match="audit directory not found"):
        resolve_run(tmp_path / "nope", "x")
