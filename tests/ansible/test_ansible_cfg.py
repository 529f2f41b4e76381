"""ansible.cfg read from where Ansible looks, with Ansible's values (compared with ansible-core's own
ConfigManager), its connection defaults applied below the inventory, host_key_checking=False refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.execute.transports.base import HostSpec
from runbook.model.ansible_config import load_config
from runbook.model.ansible_setup import load_inventory
from tests.core.conftest import Project

CFG = """\
[defaults]
inventory = hosts, other/hosts.yml
remote_user = deploy
private_key_file = keys/id_ed25519   ; a comment
forks = 25
vault_password_file = "secrets/vault.pw"
vault_identity_list = dev@secrets/dev.pw, prod@prompt
host_key_checking = True
ask_vault_pass = no

[privilege_escalation]
become = yes
become_method = su
become_user = admin
"""

ANSIBLE_NAMES = {
    "inventory": "DEFAULT_HOST_LIST",
    "remote_user": "DEFAULT_REMOTE_USER",
    "private_key_file": "DEFAULT_PRIVATE_KEY_FILE",
    "forks": "DEFAULT_FORKS",
    "become": "DEFAULT_BECOME",
    "become_method": "DEFAULT_BECOME_METHOD",
    "become_user": "DEFAULT_BECOME_USER",
    "vault_password_file": "DEFAULT_VAULT_PASSWORD_FILE",
    "vault_identity_list": "DEFAULT_VAULT_IDENTITY_LIST",
    "host_key_checking": "HOST_KEY_CHECKING",
    "ask_vault_pass": "DEFAULT_ASK_VAULT_PASS",
}


def ansible_settings(cwd: Path) -> dict:
    """What ansible-core itself reads (its ConfigManager), in a fresh process."""
    code = (
        "import json; from ansible import constants as C\n"
        f"names = {ANSIBLE_NAMES!r}\n"
        "print(json.dumps({'path': C.CONFIG_FILE, **{k: getattr(C, v) for k, v in names.items()}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def ours() -> dict:
    cfg = load_config()
    defaults = {"inventory": ["/etc/ansible/hosts"], "forks": 5, "become": False, "become_method": "sudo",
                "become_user": "root", "vault_identity_list": [], "host_key_checking": True,
                "ask_vault_pass": False}  # fmt: skip
    return {"path": cfg.path, **{k: cfg.values.get(k, defaults.get(k)) for k in ANSIBLE_NAMES}}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in [*(f"ANSIBLE_{k.upper()}" for k in ANSIBLE_NAMES), "ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "ANSIBLE_ASK_VAULT_PASS",
                "RUNBOOK_INVENTORY", "RUNBOOK_VAULT_PASSWORD_FILE"]:  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.slow
def test_settings_equal_ansible_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ansible.cfg").write_text(CFG)
    assert ours() == ansible_settings(tmp_path)
    monkeypatch.setenv("ANSIBLE_REMOTE_USER", "ops")  # the environment wins over the file
    monkeypatch.setenv("ANSIBLE_INVENTORY", "inv1,../inv2")  # relative to the cwd, not the file
    assert ours() == ansible_settings(tmp_path)
    monkeypatch.delenv("ANSIBLE_REMOTE_USER")
    monkeypatch.delenv("ANSIBLE_INVENTORY")
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    (elsewhere / "ansible.cfg").write_text("[defaults]\nremote_user = from-env-cfg\ninventory = ./hosts\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(elsewhere))  # a directory: its ansible.cfg
    assert ours() == ansible_settings(tmp_path)
    assert ours()["inventory"] == [str(elsewhere / "hosts")]
    monkeypatch.delenv("ANSIBLE_CONFIG")
    (tmp_path / "ansible.cfg").unlink()
    (tmp_path / "home" / ".ansible.cfg").write_text("[defaults]\nforks = 7\n")
    assert ours() == ansible_settings(tmp_path) and ours()["forks"] == 7


def test_world_writable_cwd_is_not_a_config_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = tmp_path / "public"
    public.mkdir()
    (public / "ansible.cfg").write_text("[defaults]\nremote_user = attacker\n")
    public.chmod(0o777)
    monkeypatch.chdir(public)
    cfg = load_config()
    assert cfg.path is None and "remote_user" not in cfg.values
    assert any("world writable" in w for w in cfg.warnings)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(public / "ansible.cfg"))  # named explicitly: read, no warning
    cfg = load_config()
    assert cfg.values["remote_user"] == "attacker" and not cfg.warnings


def test_connection_defaults_sit_below_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text(CFG)
    (tmp_path / "hosts").write_text("[web]\nw1\nw2 ansible_user=root ansible_become=false\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "hosts.yml").write_text("all:\n  hosts:\n    d1:\n")
    inv = load_inventory([])  # sources from ansible.cfg
    assert sorted(inv.hosts) == ["d1", "w1", "w2"]
    w1 = HostSpec.from_vars("w1", inv.host_vars("w1"))
    assert (w1.user, w1.private_key_file, w1.become, w1.become_user) == (
        "deploy", str(tmp_path / "keys" / "id_ed25519"), True, "admin")  # fmt: skip
    assert inv.host_vars("w1")["ansible_become_method"] == "su"
    w2 = HostSpec.from_vars("w2", inv.host_vars("w2"))
    assert (w2.user, w2.become) == ("root", False)
    assert inv.default_forks == 25
    listed = json.dumps(inv.to_ansible_list())
    assert "deploy" not in listed and "admin" not in listed  # ansible-inventory does not list them


def test_host_key_checking_false_is_refused(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "touch ran.txt"\n')
    (project.root / "ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    res = project.exec("r")
    assert res.exit_code == 3
    assert "host_key_checking = False" in res.stderr and "never connects without checking" in res.stderr
    assert "--trust-new-hosts" in res.stderr and "known_hosts" in res.stderr
    assert not (project.root / "ran.txt").exists()
    assert project.plan("r").exit_code == 3
    (project.root / "ansible.cfg").unlink()
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "false")
    res = project.exec("r")
    assert res.exit_code == 3 and "env: ANSIBLE_HOST_KEY_CHECKING" in res.stderr
    res = project.cli("validate", "r", "-i", str(project.root / "inv"))  # reads only: a warning
    assert res.exit_code == 0 and "warning: host_key_checking = False" in res.stderr


def test_bad_setting_is_a_validation_error(project: Project) -> None:
    project.runbook("r", 'hosts: localhost\nsteps:\n  - shell: "true"\n')
    (project.root / "ansible.cfg").write_text("[defaults]\nforks = many\n")
    res = project.exec("r")
    assert res.exit_code == 2 and "'many' is not an integer" in res.stderr and "ansible.cfg" in res.stderr


def test_os_environ_untouched() -> None:
    """Reading the settings sets nothing in the environment (Ansible-run children see what we saw)."""
    before = dict(os.environ)
    load_config()
    assert dict(os.environ) == before
