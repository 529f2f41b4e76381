"""Files that would hang or exhaust a naive reader: FIFOs, /dev/zero, huge sparse files, directories,
and symlinks to them, as the allowed-signers file, as a run file in the audit directory, as the path
given to verify/show/export. Every case ends quickly (bounded test timeout) with a clear refusal."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from runbook.audit.chain import chain_tail, last_valid
from runbook.audit.safeio import MAX_LINE

from .conftest import Pristine, exec_run
from .helpers import cli, failed, records, runs, verify

Maker = Callable[[Path], None]


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _dev_zero(p: Path) -> None:
    p.symlink_to("/dev/zero")


def _sparse(p: Path, size: int = 100 << 20) -> None:
    with open(p, "wb") as fh:
        fh.truncate(size)


def _directory(p: Path) -> None:
    p.mkdir()


def _socket(p: Path) -> None:
    cwd = os.getcwd()
    os.chdir(p.parent)  # a relative name: socket paths are limited to 108 bytes
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(p.name)  # the socket file stays after close; opening it fails with ENXIO
    finally:
        os.chdir(cwd)


def _via_symlink(p: Path, make: Maker) -> None:
    target = p.with_name(p.name + ".target")
    make(target)
    p.symlink_to(target)


def _symlink_to_fifo(p: Path) -> None:
    target = p.with_name(p.name + ".real-fifo")
    os.mkfifo(target)
    p.symlink_to(target)


HOSTILE: dict[str, tuple[Maker, str]] = {
    "fifo": (_fifo, "is a FIFO (named pipe), not a regular file: refused"),
    "dev-zero-symlink": (_dev_zero, "is a character device, not a regular file: refused"),
    "sparse-100MB": (_sparse, "is 100 MiB, larger than the 1 MiB limit: refused"),
    "directory": (_directory, "is a directory, not a regular file: refused"),
    "symlink-to-fifo": (_symlink_to_fifo, "is a FIFO (named pipe), not a regular file: refused"),
    "socket": (_socket, "is a socket, not a regular file: refused"),
    "symlink-to-sparse": (
        lambda p: _via_symlink(p, _sparse),
        "is 100 MiB, larger than the 1 MiB limit: refused",
    ),
    "symlink-to-directory": (
        lambda p: _via_symlink(p, _directory),
        "is a directory, not a regular file: refused",
    ),
}
CASES = [pytest.param(m, e, id=i) for i, (m, e) in HOSTILE.items()]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", CASES)
def test_hostile_allowed_signers_via_environment(
    trail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Maker, expected: str
) -> None:
    signers = tmp_path / "allowed_signers"
    make(signers)
    monkeypatch.setenv("RUNBOOK_ALLOWED_SIGNERS", str(signers))
    out = verify(trail, None)
    assert out.exit_code == 2, out.output
    assert f"allowed signers file {expected}" in out.output and "\nOK:" not in out.output


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", [c for c in CASES if "directory" not in c.id])
def test_hostile_allowed_signers_option(trail: Path, tmp_path: Path, make: Maker, expected: str) -> None:
    signers = tmp_path / "allowed_signers"
    make(signers)
    out = verify(trail, signers)
    assert out.exit_code == 2 and f"allowed signers file {expected}" in out.output, out.output


@pytest.mark.timeout(20)
def test_allowed_signers_directory_option_is_a_usage_error(trail: Path, tmp_path: Path) -> None:
    (tmp_path / "signers.d").mkdir()
    out = verify(trail, tmp_path / "signers.d")
    assert out.exit_code == 2 and "is a directory" in out.output, out.output


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", [c for c in CASES if "directory" not in c.id])
def test_hostile_default_allowed_signers(trail: Path, tmp_path: Path, make: Maker, expected: str) -> None:
    """~/.config/runbook/allowed_signers itself is a FIFO or a device: refused, not skipped or read."""
    signers = tmp_path / "xdg" / "runbook" / "allowed_signers"  # XDG_CONFIG_HOME is tmp_path/xdg
    signers.parent.mkdir(parents=True)
    make(signers)
    out = verify(trail, None)
    assert out.exit_code == 2 and f"allowed signers file {expected}" in out.output, out.output


@pytest.mark.timeout(20)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_device_given_directly_as_allowed_signers(trail: Path, device: str) -> None:
    out = verify(trail, Path(device))
    assert out.exit_code == 2 and "is a character device, not a regular file: refused" in out.output, (
        out.output
    )


@pytest.mark.timeout(20)
def test_allowed_signers_just_over_the_limit(trail: Path, pristine: Pristine, tmp_path: Path) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_bytes(pristine.signers.read_bytes() + b"#" * (1 << 20))
    out = verify(trail, signers)
    assert out.exit_code == 2 and "larger than the 1 MiB limit" in out.output, out.output


def _newest_name(trail: Path) -> str:
    """A name that sorts after every run file of the trail, the way the writer names them."""
    last = runs(trail)[-1].name
    return "29991231T235959.999999Z_" + last.split("_", 1)[1]


RUN_FILE_CASES = [
    pytest.param(_fifo, "is a FIFO (named pipe), not a regular file: refused (not read)", id="fifo"),
    pytest.param(_dev_zero, "is a character device, not a regular file: refused (not read)", id="dev-zero"),
    pytest.param(_directory, "is a directory, not a regular file: refused (not read)", id="directory"),
    pytest.param(_symlink_to_fifo, "is a FIFO (named pipe), not a regular file", id="symlink-to-fifo"),
    pytest.param(_socket, "is a socket, not a regular file: refused", id="socket"),
    pytest.param(
        lambda p: _sparse(p, (1 << 30) + 1),
        "is 1073741825 bytes, larger than the 1 GiB limit",
        id="sparse-1GiB",
    ),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", RUN_FILE_CASES)
def test_hostile_entry_named_like_a_run_is_reported_not_skipped(
    trail: Path, pristine: Pristine, make: Maker, expected: str
) -> None:
    name = _newest_name(trail)
    make(trail / name)
    out = failed(trail, pristine.signers)
    assert f"run file {name} {expected}" in out


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", RUN_FILE_CASES)
def test_writer_tail_skips_hostile_newest_entry(trail: Path, make: Maker, expected: str) -> None:
    """The next run chains to the newest *readable* run; opening a FIFO never blocks the writer."""
    genuine = runs(trail)[-1]
    make(trail / _newest_name(trail))
    assert last_valid(trail / _newest_name(trail)) is None
    tail = chain_tail(trail)
    assert tail is not None and tail.hash == records(genuine)[-1]["hash"]


@pytest.mark.timeout(20)
def test_huge_line_without_newline(trail: Path, pristine: Pristine) -> None:
    """A run file of one 40 MB line (no newline) is reported line by line, never held whole."""
    name = _newest_name(trail)
    _sparse(trail / name, MAX_LINE + (8 << 20))
    out = failed(trail, pristine.signers)
    assert f"run file {name}: line 1 is longer than 32 MiB: not an audit record (skipped unread)" in out


@pytest.mark.timeout(20)
def test_huge_line_between_genuine_records(trail: Path, pristine: Pristine) -> None:
    newest = runs(trail)[-1]
    data = newest.read_bytes().split(b"\n")
    run_id = records(newest)[0]["run_id"]
    data.insert(3, b'{"x":"' + b"A" * (MAX_LINE + 10) + b'"}')
    newest.write_bytes(b"\n".join(data))
    out = failed(trail, pristine.signers)
    assert f"run {run_id}: line 4 is longer than 32 MiB" in out
    assert "record 4" not in out.split("longer than")[0]  # the records around it are still checked
    assert f"{len(records(runs(trail)[0]))} records" in out  # the other runs verified


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", [c for c in CASES if "directory" not in c.id])
def test_hostile_path_given_to_verify_show_export(
    trail: Path, tmp_path: Path, pristine: Pristine, make: Maker, expected: str
) -> None:
    target = tmp_path / "run.jsonl"
    make(target)
    if "MiB" in expected:  # a 100 MB run file is legal; make it too large to be one
        target.unlink()
        _sparse(target, (1 << 30) + 1)
        expected = "larger than the 1 GiB limit: refused"
    out = verify(target, pristine.signers)
    assert out.exit_code == 2 and expected in out.output, out.output
    res = cli("show", str(target), "--dir", str(trail))
    assert res.exit_code == 2 and expected in res.output, res.output
    res = cli("export", str(target), "--dir", str(trail), "--out", str(tmp_path / "b.tar.gz"))
    assert res.exit_code == 2 and expected in res.output, res.output
    assert not (tmp_path / "b.tar.gz").exists()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", [c for c in RUN_FILE_CASES if c.id != "sparse-1GiB"])
def test_show_and_export_latest_when_the_newest_entry_is_hostile(
    trail: Path, tmp_path: Path, make: Maker, expected: str
) -> None:
    make(trail / _newest_name(trail))
    expected = expected.replace(" (not read)", "")
    res = cli("show", "latest", "--dir", str(trail))
    assert res.exit_code == 2 and expected in res.output, res.output
    res = cli("export", "latest", "--dir", str(trail), "--out", str(tmp_path / "b.tar.gz"))
    assert res.exit_code == 2 and expected in res.output, res.output


@pytest.mark.timeout(20)
def test_show_counts_a_huge_line_as_corrupt(trail: Path) -> None:
    newest = runs(trail)[-1]
    data = newest.read_bytes().split(b"\n")
    data.insert(2, b"Z" * (MAX_LINE + 10))
    newest.write_bytes(b"\n".join(data))
    res = cli("show", "latest", "--dir", str(trail))
    assert res.exit_code == 1 and "1 corrupt line(s) in this run file (line 3)" in res.output, res.output


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, expected", [c for c in CASES if c.id in ("fifo", "dev-zero-symlink")])
def test_hostile_bundle(tmp_path: Path, pristine: Pristine, make: Maker, expected: str) -> None:
    bundle = tmp_path / "bundle.json"
    make(bundle)
    out = verify(bundle, pristine.signers)
    assert out.exit_code == 2 and expected in out.output, out.output


@pytest.mark.timeout(20)
def test_hostile_signing_key_for_exec(tmp_path: Path) -> None:
    """The writer side reads its key the same way: a FIFO key fails the run start, never blocks it."""
    from runbook.audit.keys import load_signing_key
    from runbook.errors import AuditError

    key = tmp_path / "audit_ed25519"
    os.mkfifo(key)
    with pytest.raises(AuditError, match="audit signing key is a FIFO"):
        load_signing_key(key)


def test_a_copy_of_the_trail_is_untouched_by_the_refusals(trail: Path, pristine: Pristine) -> None:
    """Control: the genuine trail still verifies once the hostile entry is gone."""
    name = _newest_name(trail)
    _fifo(trail / name)
    failed(trail, pristine.signers)
    (trail / name).unlink()
    assert verify(trail, pristine.signers).exit_code == 0
    shutil.rmtree(trail)


@pytest.mark.timeout(60)
def test_exec_into_a_directory_holding_a_fifo_run(trail: Path, pristine: Pristine) -> None:
    """`runbook exec` itself never blocks on a FIFO planted in its audit directory."""
    genuine = records(runs(trail)[-1])[-1]["hash"]
    fifo = trail / _newest_name(trail)
    _fifo(fifo)
    exec_run(pristine.project, trail, pristine.key)
    new = records(runs(trail)[-1])
    assert new[0]["prev"] == genuine  # chained to the newest readable run
    out = failed(trail, pristine.signers)
    assert f"run file {fifo.name} is a FIFO (named pipe), not a regular file: refused (not read)" in out
