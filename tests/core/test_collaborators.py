"""Rollback, Attempts and the SSH file operations are objects given their collaborators: each one
imports alone, without the object that holds it (no import circle), and is built from exactly what
it needs."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from runbook.execute.attempts import Attempts
from runbook.execute.rollback import Rollback
from runbook.execute.transports.ssh_files import SSHFiles


@pytest.mark.parametrize(
    ("module", "holder"),
    [
        ("runbook.execute.rollback", "runbook.execute.engine"),
        ("runbook.execute.attempts", "runbook.execute.steprunner"),
        ("runbook.execute.transports.ssh_files", "runbook.execute.transports.ssh"),
    ],
)
def test_a_collaborator_imports_without_its_holder(module: str, holder: str) -> None:
    code = f"import sys, {module}; print({holder!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_constructors_name_their_collaborators() -> None:
    assert list(inspect.signature(Rollback).parameters) == [
        "runner", "templar", "redactor", "runbook", "options", "run",
    ]  # fmt: skip
    assert {"templar", "redactor", "emit", "cancel", "persist", "delegate", "active", "lock"} <= set(
        inspect.signature(Attempts).parameters
    )
    assert list(inspect.signature(SSHFiles).parameters) == [
        "host", "sftp", "guard", "run_raw", "become_user_for", "remote_uid", "names",
    ]  # fmt: skip


def test_ssh_files_uses_only_what_it_is_given() -> None:
    """As another user, a read is a command through the given runner (no transport needed)."""
    from types import SimpleNamespace

    ran = []

    def run_raw(command):
        ran.append(command)
        return SimpleNamespace(rc=0, stdout=b"hello", stderr=b"")

    files = SSHFiles(
        "web1", sftp=lambda: None, guard=None, run_raw=run_raw,
        become_user_for=lambda b: "postgres" if b else None, remote_uid=lambda: 1000,
    )  # fmt: skip
    assert files.read_file("/etc/motd", become=True) == b"hello"
    assert len(ran) == 1 and "/etc/motd" in ran[0].display()


# ------------------------------------------------------------------ the inventory at every boundary


def test_the_inventory_is_typed_at_every_boundary() -> None:
    from runbook.cli import common
    from runbook.execute import engine, magic
    from runbook.model.inventory import load_inventory
    from runbook.model.inventory_view import InventoryView
    from runbook.render import secrets

    assert isinstance(load_inventory(["web1,web2,"]), InventoryView)
    for fn in (
        engine.Engine.__init__, magic.host_magic, magic.Groups.__init__, magic.HostVars.__init__,
        common.select_hosts, common.host_problems,
    ):  # fmt: skip
        assert inspect.signature(fn).parameters["inventory"].annotation == "InventoryView", fn
    assert inspect.signature(secrets.register_origins).parameters["inventory"].annotation == (
        "InventoryView | None"
    )


def test_any_inventory_view_serves_the_magic_variables() -> None:
    """A hand-made inventory (no file, no parser) is enough for `groups` and `hostvars`."""
    from runbook.execute.magic import Groups, HostVars
    from runbook.model.inventory_data import Group, Host
    from runbook.model.inventory_view import InventoryView

    class Fixed:
        hosts = {"web1": Host("web1", {"port": 8080})}
        groups = {"all": Group("all", ["web1"]), "web": Group("web", ["web1"])}
        sources: list[str] = []
        vault_data: list[object] = []

        def host_vars(self, host: str) -> dict:
            return dict(self.hosts[host].vars)

        def group_names(self, host: str) -> list[str]:
            return ["web"]

        def select(self, pattern: str) -> list[str]:
            return list(self.groups[pattern].hosts) if pattern in self.groups else []

    inv = Fixed()
    assert isinstance(inv, InventoryView)
    assert dict(Groups(inv)) == {"all": ["web1"], "web": ["web1"]}
    hv = HostVars(inv, lambda h: False, inv.host_vars)
    assert hv["web1"] == {"port": 8080} and list(hv) == ["web1"]
