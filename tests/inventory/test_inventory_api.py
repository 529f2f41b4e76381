"""The public API other layers code against: Host, Group, Inventory queries, vault and unsafe values."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.errors import InventoryError
from runbook.model.inventory import Group, Host, Inventory, Unsafe, VaultValue, load_inventory

CASES_DIR = Path(__file__).resolve().parent / "cases"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(case: str, in_dir, *args: str) -> Inventory:
    in_dir(CASES_DIR / case)
    return load_inventory(list(args) or (CASES_DIR / case / "ARG").read_text().split())


def test_structure(in_dir):
    inv = _load("ini-nested", in_dir)
    assert list(inv.groups)[:2] == ["all", "ungrouped"]
    assert isinstance(inv.hosts["p1"], Host) and isinstance(inv.groups["paris"], Group)
    assert list(inv.hosts) == ["p1", "shared", "g1", "u1"]
    paris = inv.groups["paris"]
    assert paris.hosts == ["p1", "shared"] and paris.parents == ["france"] and paris.children == []
    assert paris.depth == 4 and paris.priority == 1 and paris.vars == {"lvl": "paris-group"}
    assert inv.groups["world"].children == ["europe", "americas"]
    assert inv.groups["all"].children == ["ungrouped", "world"]
    assert inv.hosts["shared"].vars == {"lvl": "paris-inline"}


def test_host_vars_precedence_and_group_names(in_dir):
    inv = _load("precedence-levels", in_dir)
    hv = inv.host_vars("h1")
    assert hv["v_all"] == "inline-host"  # inline host var beats group_vars/all
    assert hv["v_child"] == "gv-child"  # group_vars dir beats the same-named .yml and any :vars
    assert hv["v_host"] == "host_vars-dir"
    assert hv["v_parent"] == "gv-parent"  # group_vars/parent.yml, not parent.yaml
    assert hv["file_order"] == "c-json" and hv["nested"] == "from-subdir"
    assert hv["dict_var"] == {"c": 3}  # hash_behaviour=replace: no deep merge
    assert "inventory_hostname" not in hv and "group_names" not in hv
    assert inv.group_names("h1") == ["child", "parent"]
    assert inv.group_names("h2") == ["child", "parent", "sibling"]
    assert inv.host_vars("h2")["v_parent"] == "gv-sibling"  # sibling sorts after parent (same depth)
    assert inv.group_vars("sibling")["ansible_group_priority"] == 50  # from a file: a plain var
    assert inv.groups["sibling"].priority == 1


def test_group_priority(in_dir):
    inv = _load("ini-priority", in_dir)
    assert inv.groups["a"].priority == 10 and "ansible_group_priority" not in inv.groups["a"].vars
    assert inv.host_vars("h1")["who"] == "a"  # depth 2 group 'a' beats depth 1 'b','c' and 'zz'
    assert inv.host_vars("h2")["who"] == "a"


def test_ungrouped_and_group_names(in_dir):
    inv = _load("ungrouped-semantics", in_dir)
    assert inv.groups["ungrouped"].hosts == ["top1", "top3", "explicit", "inall"]
    assert inv.group_names("top1") == ["ungrouped"]
    assert inv.group_names("top2") == ["g"]


def test_implicit_localhost(in_dir):
    inv = _load("ini-priority", in_dir)
    assert inv.select("localhost") == ["localhost"]
    assert "localhost" not in inv.hosts and "localhost" not in inv.select("all")
    assert inv.host_vars("localhost")["ansible_connection"] == "local"
    with pytest.raises(KeyError):
        inv.host_vars("no-such-host")


def test_unsafe_values(in_dir):
    inv = _load("yaml-types", in_dir)
    hv = inv.host_vars("t1")
    assert isinstance(hv["raw"], Unsafe) and hv["raw"] == "{{ lookup('pipe', 'id') }}"
    assert hv["unsafe_int"] == 123 and not isinstance(hv["strs"][0], Unsafe)


def test_vault_without_password_stays_opaque(tmp_path, in_dir, monkeypatch):
    monkeypatch.delenv("RUNBOOK_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    shutil.copytree(CASES_DIR / "vault-values", tmp_path / "case")
    shutil.rmtree(tmp_path / "case" / "host_vars")  # a whole vault file cannot be read without password
    in_dir(tmp_path / "case")
    inv = load_inventory("hosts")
    hv = inv.host_vars("s2")
    assert isinstance(hv["db_password"], VaultValue) and "sup3r" not in repr(hv["db_password"])
    assert inv.host_vars("s2", decrypt=True)["db_password"] is hv["db_password"]
    listed = inv.to_ansible_list()["_meta"]["hostvars"]["s2"]
    assert listed["db_password"] == {"__ansible_vault": hv["db_password"].ciphertext}


def test_vault_with_password(in_dir, monkeypatch):
    case = CASES_DIR / "vault-values"
    monkeypatch.setenv("RUNBOOK_VAULT_PASSWORD_FILE", str(case / "vault-password.txt"))
    in_dir(case)
    inv = load_inventory("hosts")
    hv = inv.host_vars("s1", decrypt=True)
    assert hv["db_password"] == "sup3r" and hv["nested"] == {"token": "tok"}
    assert hv["whole_file_secret"] == "inside" and hv["plain_in_vault"] == 42
    assert isinstance(inv.host_vars("s1")["db_password"], VaultValue)


def test_whole_vault_file_without_password_is_an_error(tmp_path, in_dir, monkeypatch):
    monkeypatch.delenv("RUNBOOK_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    in_dir(CASES_DIR / "vault-values")
    with pytest.raises(InventoryError, match="no vault password") as info:
        load_inventory("hosts")
    assert info.value.location.file == "host_vars/s1.yml"
    assert "RUNBOOK_VAULT_PASSWORD_FILE" in info.value.hint


def test_import_does_not_load_ansible():
    code = (
        "import sys, json\n"
        "from runbook.model.inventory import load_inventory\n"
        f"inv = load_inventory({str(CASES_DIR / 'yaml-variants' / 'inventory.yml')!r})\n"
        "json.dumps(inv.to_ansible_list())\n"
        "assert not [m for m in sys.modules if m == 'ansible' or m.startswith('ansible.')], 'ansible imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sources_and_warnings(in_dir):
    inv = _load("same-name", in_dir)
    assert inv.sources == [str(CASES_DIR / "same-name" / "hosts")]
    assert "Found both group and host with same name: assethost" in inv.warnings
    # inline vars of a host that shares its name with a group land on the group (as in Ansible)
    assert inv.groups["assethost"].vars["note"] == "inline-goes-to-group"
    assert "note" not in inv.hosts["assethost"].vars


def test_host_list_source():
    inv = load_inventory("a.example.com,b:2222,")
    assert list(inv.hosts) == ["a.example.com", "b"]
    assert inv.host_vars("b") == {"ansible_port": 2222}
    assert inv.groups["ungrouped"].hosts == ["a.example.com", "b"]


def test_to_ansible_list_is_json_ready(in_dir):
    inv = _load("yaml-types", in_dir)
    out = inv.to_ansible_list()
    assert json.loads(json.dumps(out)) == out
    assert out["_meta"]["hostvars"]["t1"]["d"] == "2002-12-14"
    assert out["_meta"]["profile"] == "inventory_legacy"
