"""Bad allowed-signers files, and `audit show` / `audit export` / bundles on corrupt input."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Pristine
from .helpers import cli, failed, lines, put, records, runs, verify

Mutation = Callable[[list[bytes]], list[bytes]]


def _pub(pristine: Pristine, which: str = "key") -> str:
    return Path(f"{getattr(pristine, which)}.pub").read_text().strip()


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "holds no ssh-ed25519 key: no signed run can verify"),
        ("# only a comment\n\n", "holds no ssh-ed25519 key"),
        ("ops ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== ops\n", "holds no ssh-ed25519 key"),
        ("ops ssh-ed25519\n", "allowed_signers:1: ssh-ed25519 key without key data"),
        ("ops ssh-ed25519 !!!notbase64!!!\n", "allowed_signers:1: unreadable ssh-ed25519 public key"),
        ("ops ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa").decode() + "\n", "unreadable ssh-ed25519"),
        ("OTHER", "untrusted key"),  # a valid file trusting somebody else
    ],
)  # fmt: skip
def test_bad_allowed_signers(
    trail: Path, pristine: Pristine, tmp_path: Path, content: str, expected: str
) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text("mallory " + _pub(pristine, "other_key") + "\n" if content == "OTHER" else content)
    out = verify(trail, signers)
    assert out.exit_code == 1 and expected in out.output, out.output
    assert "\nOK:" not in out.output


def test_allowed_signers_not_utf8(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_bytes(b"\xff\xfe ssh-ed25519 AAAA\n")
    out = verify(trail, signers)
    assert out.exit_code == 1 and "cannot read allowed signers file" in out.output


def test_allowed_signers_with_comments_options_and_other_types(
    trail: Path, pristine: Pristine, tmp_path: Path
) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        "# auditors' trust file\n\n"
        "bob ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== bob@old\n"
        f'ops@example.com,ops2 namespaces="file" {_pub(pristine)}\n'
        "   # indented comment\n"
    )
    out = verify(trail, signers)
    assert out.exit_code == 0, out.output
    assert "signed by ops@example.com,ops2" in out.output


def _show(d: Path, ref: str = "latest") -> tuple[int, str]:
    res = cli("show", ref, "--dir", str(d))
    return res.exit_code, res.output


CORRUPT = [
    ("empty", lambda ls: [], "no readable audit records in this run file (it is empty)"),
    ("garbage", lambda ls: [b"\x00\xffgarbage\n"], "no readable audit records in this run file (1 corrupt line(s))"),
    ("a corrupt line", lambda ls: [*ls[:3], b"{not json\n", *ls[4:]], "1 corrupt line(s) in this run file (line 4)"),
    ("half a last line", lambda ls: [*ls[:-1], ls[-1][:30]], "1 corrupt line(s) in this run file (line 9)"),
    ("a JSON array", lambda ls: [*ls[:3], b"[1]\n", *ls[4:]], "corrupt line(s) in this run file (line 4)"),
]  # fmt: skip


@pytest.mark.parametrize("mutate, expected", [pytest.param(m, e, id=i) for i, m, e in CORRUPT])
def test_show_and_export_refuse_corrupt_runs(
    trail: Path, tmp_path: Path, mutate: Mutation, expected: str
) -> None:
    path = runs(trail)[-1]
    put(path, mutate(lines(path)))
    code, out = _show(trail)
    assert code == 1 and expected in out and "runbook audit verify" in out, out
    res = cli("export", "latest", "--dir", str(trail), "--out", str(tmp_path / "b.tar.gz"))
    assert res.exit_code == 1 and "run file" in res.output and "runbook audit verify" in res.output, (
        res.output
    )
    assert not (tmp_path / "b.tar.gz").exists()


HOSTILE = {
    "step": "\x1b[2J\x1b]0;pwned\x07[bold red]fake[/] \u202etxt",
    "event": "[link=http://x]click[/link]",
    "phase": "[/]",
    "host": "h\rOK",
    "outcome": "[/]ok",
    "rc": [1, {"a": None}],
    "duration": 10**300,
    "ts": "2026-01-01T00:00:00",  # naive: cannot be subtracted from the first record's aware time
    "prev_run": "not an object",
    "data": ["not", "an", "object"],
}


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_show_survives_hostile_values(trail: Path, key: str) -> None:
    path = runs(trail)[-1]
    recs = records(path)
    n = 0 if key == "prev_run" else 4
    recs[n][key] = HOSTILE[key]
    put(path, [(json.dumps(r, ensure_ascii=False) + "\n").encode() for r in recs])
    code, out = _show(trail)
    assert code == 0, out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    if key == "step":
        assert "\\x1b[2J" in out and "[bold red]fake[/]" in out  # shown literally, not interpreted


def _bundle(trail: Path, tmp_path: Path, name: str = "b.tar.gz") -> Path:
    out = tmp_path / name
    assert cli("export", "latest", "--dir", str(trail), "--out", str(out)).exit_code == 0
    return out


def _retar(src: Path, dest: Path, change: Callable[[dict[str, bytes]], object]) -> None:
    members: dict[str, bytes] = {}
    with tarfile.open(src) as tar:
        for m in tar:
            fh = tar.extractfile(m)
            members[m.name] = fh.read() if fh else b""
    change(members)
    with tarfile.open(dest, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _run_member(members: dict[str, bytes]) -> str:
    return next(n for n in members if n.endswith(".jsonl"))


def test_bundle_with_its_run_removed(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    _retar(_bundle(trail, tmp_path), bad, lambda m: m.pop(_run_member(m)))
    out = failed(bad, pristine.signers)
    assert "is listed in the bundle's manifest but missing from it" in out


def test_bundle_with_a_run_changed_and_manifest_kept(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        name = _run_member(m)
        m[name] = m[name].replace(b'"rc":0', b'"rc":1', 1)

    bad = tmp_path / "bad.tar.gz"
    _retar(_bundle(trail, tmp_path), bad, change)
    out = failed(bad, pristine.signers)
    assert "differs from the manifest's SHA-256" in out and "altered (hash mismatch)" in out


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_damaged_bundle_bytes(trail: Path, pristine: Pristine, tmp_path: Path, cut: float) -> None:
    bundle = _bundle(trail, tmp_path)
    data = bytearray(bundle.read_bytes())
    data[int(len(data) * cut)] ^= 0xFF
    bundle.write_bytes(bytes(data))
    out = verify(bundle, pristine.signers)
    assert out.exit_code == 1, out.output


def test_json_bundle_with_a_lone_surrogate(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    bundle = _bundle(trail, tmp_path, "b.json")
    doc = json.loads(bundle.read_text())
    doc["runs"][0]["content"] = doc["runs"][0]["content"].replace("é", "\udce9", 1)
    bundle.write_text(json.dumps(doc))  # ensure_ascii: the surrogate is written as an escape
    out = failed(bundle, pristine.signers)
    assert "not a valid JSON record (corrupted)" in out


@pytest.mark.parametrize(
    "doc", ["[]", "{}", '{"format": "runbook-audit-bundle/1", "runs": [1, {"name": 2}]}', "nul"]
)
def test_json_bundle_of_garbage(tmp_path: Path, pristine: Pristine, doc: str) -> None:
    bundle = tmp_path / "x.json"
    bundle.write_text(doc)
    out = verify(bundle, pristine.signers)
    assert out.exit_code == 1, out.output
