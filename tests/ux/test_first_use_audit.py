"""Trust on first use: `audit keygen`, a run, `audit verify` works on the machine that made the key;
an auditor elsewhere still needs their own allowed_signers file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.core.conftest import Project

SMOKE = """
name: tiny
hosts: localhost
steps:
  - name: say hello
    shell: "echo hello"
"""


def test_keygen_then_a_run_verifies_without_any_manual_edit(audited: Project, tmp_path: Path) -> None:
    res = audited.cli("audit", "keygen")
    assert res.exit_code == 0, res.output
    signers = tmp_path / "xdg" / "runbook" / "allowed_signers"
    assert f"trusted:     added to {signers}" in res.output
    pub = (tmp_path / "xdg" / "runbook" / "audit_ed25519.pub").read_text().split()
    assert signers.read_text().split() == [pub[2], pub[0], pub[1]]
    audited.runbook("tiny", SMOKE)
    assert audited.exec("tiny").exit_code == 0
    res = audited.cli("audit", "verify")
    assert res.exit_code == 0, res.output
    assert "signed by" in res.output and "no allowed signers" not in res.output


def test_an_auditor_elsewhere_still_needs_their_allowed_signers(
    audited: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert audited.cli("audit", "keygen").exit_code == 0
    audited.runbook("tiny", SMOKE)
    assert audited.exec("tiny").exit_code == 0
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "auditor"))  # another machine's config
    res = audited.cli("audit", "verify", "--no-local-head")
    assert res.exit_code == 1 and "no allowed signers were given" in res.output
    given = audited.cli("audit", "verify", "--no-local-head", "--allowed-signers", str(tmp_path / "xdg" / "runbook" / "allowed_signers"))
    assert given.exit_code == 0, given.output


def test_keygen_appends_to_an_existing_allowed_signers_file(audited: Project, tmp_path: Path) -> None:
    signers = tmp_path / "xdg" / "runbook" / "allowed_signers"
    signers.parent.mkdir(parents=True)
    signers.write_text("# the team\nbob@ops ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBn6zg8dh6/0i2gH5ARv3e2LXG14VsT/mmSrNmwxTW/C")  # no newline
    res = audited.cli("audit", "keygen", "--comment", "alice@laptop")
    assert res.exit_code == 0, res.output
    lines = signers.read_text().splitlines()
    assert lines[:2] == ["# the team", "bob@ops ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBn6zg8dh6/0i2gH5ARv3e2LXG14VsT/mmSrNmwxTW/C"]
    assert lines[2].startswith("alice@laptop ssh-ed25519 ") and len(lines) == 3


def test_no_trust_leaves_the_allowed_signers_alone(audited: Project, tmp_path: Path) -> None:
    res = audited.cli("audit", "keygen", "--no-trust")
    assert res.exit_code == 0 and "trusted:" not in res.output
    assert not (tmp_path / "xdg" / "runbook" / "allowed_signers").exists()


def test_an_allowed_signers_file_that_is_not_a_file_refuses_before_a_key_is_made(
    audited: Project, tmp_path: Path
) -> None:
    signers = tmp_path / "xdg" / "runbook" / "allowed_signers"
    signers.parent.mkdir(parents=True)
    os.mkfifo(signers)
    res = audited.cli("audit", "keygen")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not (tmp_path / "xdg" / "runbook" / "audit_ed25519").exists()


def test_keygen_honours_an_allowed_signers_path_from_the_environment(
    audited: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "team" / "signers"
    monkeypatch.setenv("RUNBOOK_ALLOWED_SIGNERS", str(target))
    assert audited.cli("audit", "keygen").exit_code == 0
    assert "ssh-ed25519" in target.read_text()
    audited.runbook("tiny", SMOKE)
    assert audited.exec("tiny").exit_code == 0
    assert audited.cli("audit", "verify").exit_code == 0


def test_a_symlinked_allowed_signers_file_is_appended_to_where_it_is(audited: Project, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "allowed_signers"
    real.parent.mkdir()
    real.write_text("# mine\n")
    link = tmp_path / "xdg" / "runbook" / "allowed_signers"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    res = audited.cli("audit", "keygen")
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and "ssh-ed25519" in real.read_text()


def test_keygen_twice_to_the_same_file_adds_the_key_once(audited: Project, tmp_path: Path) -> None:
    signers = tmp_path / "xdg" / "runbook" / "allowed_signers"
    assert audited.cli("audit", "keygen", "--out", str(tmp_path / "k1")).exit_code == 0
    assert audited.cli("audit", "keygen", "--out", str(tmp_path / "k2")).exit_code == 0
    assert len(signers.read_text().splitlines()) == 2  # two keys, each once
    from runbook.audit.keys import load_signing_key, trust_locally

    assert trust_locally(load_signing_key(tmp_path / "k1"), "again", signers) is False
    assert len(signers.read_text().splitlines()) == 2
