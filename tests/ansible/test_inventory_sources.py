"""Inventory as Ansible (and AWX) hands it over: executable inventory scripts (--list / --host JSON),
ANSIBLE_INVENTORY with several paths, ansible.cfg's inventory. Compared with ansible-inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runbook.errors import InventoryError
from runbook.model.inventory import load_inventory
from tests.core.conftest import Project

LIST = {
    "web": {"hosts": ["w1", "w2"], "vars": {"http_port": 8080}, "children": ["edge"]},
    "edge": ["e1"],  # a bare list of hosts (the old form)
    "db": {"hosts": ["d1"]},
    "_meta": {"hostvars": {"w1": {"ansible_host": "127.0.0.1", "role": "primary"}, "d1": {"ansible_port": 2222}}},
}


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def list_script(path: Path, data: dict, host_vars: dict | None = None, log: Path | None = None) -> Path:
    return script(
        path,
        f"""
        import json, sys
        {f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + chr(10))" if log else ""}
        if sys.argv[1] == "--list":
            print(json.dumps({data!r}))
        else:
            print(json.dumps({(host_vars or {})!r}.get(sys.argv[2], {{}})))
        """,
    )


def ansible_list(*sources: str, env: dict | None = None) -> dict:
    args = [a for s in sources for a in ("-i", s)]
    out = subprocess.run(
        ["ansible-inventory", "--list", *args], check=True, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})},
    )  # fmt: skip
    return json.loads(out.stdout)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("ANSIBLE_INVENTORY", "RUNBOOK_INVENTORY", "ANSIBLE_CONFIG", "RUNBOOK_INVENTORY_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_script_with_meta_hostvars(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    inv = load_inventory(str(list_script(tmp_path / "inv.py", LIST, log=log)))
    assert inv.select("web") == ["w1", "w2", "e1"]
    assert inv.host_vars("w1") == {"http_port": 8080, "ansible_host": "127.0.0.1", "role": "primary"}
    assert inv.host_vars("d1") == {"ansible_port": 2222}
    assert log.read_text().split("\n")[:-1] == ["--list"]  # _meta.hostvars: no --host calls


def test_script_without_meta_is_asked_per_host(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    data = {"web": {"hosts": ["w1", "w2"]}}
    inv = load_inventory(str(list_script(tmp_path / "inv.py", data, {"w1": {"x": 1}}, log=log)))
    assert inv.host_vars("w1") == {"x": 1} and inv.host_vars("w2") == {}
    assert sorted(log.read_text().split("\n")[:-1]) == ["--host w1", "--host w2", "--list"]


@pytest.mark.slow
def test_script_list_equals_ansible_inventory(tmp_path: Path) -> None:
    path = str(list_script(tmp_path / "inv.py", LIST))
    assert load_inventory(path).to_ansible_list() == ansible_list(path)
    nometa = str(list_script(tmp_path / "nometa.py", {"g": {"hosts": ["a", "b"], "vars": {"v": 1}}}, {"a": {"k": "x"}}))
    assert load_inventory(nometa).to_ansible_list() == ansible_list(nometa)


def test_script_failures_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_json = script(tmp_path / "bad.py", "print('{not json')\n")
    with pytest.raises(InventoryError, match="could not be parsed as JSON") as info:
        load_inventory(str(bad_json))
    assert info.value.location.file.endswith("bad.py")
    failing = script(tmp_path / "fail.py", "import sys\nsys.stderr.write('AWS credentials expired\\n')\nsys.exit(3)\n")
    with pytest.raises(InventoryError, match="returned non-zero exit code 3") as info:
        load_inventory(str(failing))
    assert "AWS credentials expired" in info.value.hint
    wrong = script(tmp_path / "wrong.py", "import json\nprint(json.dumps({'g': {'hosts': 'h1'}}))\n")
    with pytest.raises(InventoryError, match=r"'g\.hosts' which is 'str' instead of 'list'"):
        load_inventory(str(wrong))
    monkeypatch.setenv("RUNBOOK_INVENTORY_TIMEOUT", "1")
    hangs = script(tmp_path / "hang.py", "import time\ntime.sleep(60)\n")
    with pytest.raises(InventoryError, match="did not finish within 1s"):
        load_inventory(str(hangs))


def test_executable_static_file_without_shebang_is_parsed_as_ini(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("[web]\nw1\n")
    path.chmod(0o755)
    assert load_inventory(str(path)).select("web") == ["w1"]


def test_script_inventory_runs_a_step(project: Project, tmp_path: Path) -> None:
    """As AWX hands a job its inventory: the script is the -i source of a real run."""
    inv = list_script(tmp_path / "awx_inventory.py", {"app": {"hosts": ["localhost"]},
                      "_meta": {"hostvars": {"localhost": {"ansible_connection": "local", "greeting": "hi"}}}})  # fmt: skip
    project.runbook("r", 'hosts: app\nsteps:\n  - shell: "printf %s {{ greeting }} > out.txt"\n')
    res = project.cli("exec", "r", "-i", str(inv))
    assert res.exit_code == 0, res.stderr
    assert (project.root / "out.txt").read_text() == "hi"


def _two_files(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "hosts").write_text("[web]\nw1 x=1\n[all:vars]\nv=a\n")
    (b / "hosts.yml").write_text("all:\n  children:\n    db:\n      hosts:\n        d1: {y: 2}\n")
    (b / "group_vars").mkdir()
    (b / "group_vars" / "web.yml").write_text("from_b: true\n")
    return a / "hosts", b / "hosts.yml"


def test_ansible_inventory_env_with_several_paths(project: Project, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    a, b = _two_files(tmp_path)
    monkeypatch.setenv("ANSIBLE_INVENTORY", f"{a}, {b}")
    res = project.cli("inventory")
    assert res.exit_code == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["web"]["hosts"] == ["w1"] and got["db"]["hosts"] == ["d1"]
    assert got["_meta"]["hostvars"]["w1"] == {"x": 1, "v": "a", "from_b": True}


@pytest.mark.slow
def test_ansible_inventory_env_equals_ansible(project: Project, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    a, b = _two_files(tmp_path)
    monkeypatch.setenv("ANSIBLE_INVENTORY", f"{a},{b}")
    ours = json.loads(project.cli("inventory").stdout)
    assert ours == ansible_list()
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\ninventory = {a.relative_to(tmp_path)}, {b}\n")
    monkeypatch.delenv("ANSIBLE_INVENTORY")
    ours = json.loads(project.cli("inventory").stdout)
    assert ours == ansible_list()


def test_ansible_inventory_host_list_keeps_working(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_INVENTORY", "h1,h2,")
    got = json.loads(project.cli("inventory").stdout)
    assert got["ungrouped"]["hosts"] == ["h1", "h2"]


@pytest.mark.slow
def test_directory_with_a_script_and_a_static_file_equals_ansible(tmp_path: Path) -> None:
    d = tmp_path / "inventory"
    d.mkdir()
    (d / "static.ini").write_text("[web]\nw1\n[web:vars]\nfrom_ini=1\n")
    list_script(d / "cloud.py", {"web": {"hosts": ["w9"]}, "db": ["d1"], "_meta": {"hostvars": {"w9": {"z": 1}}}})
    (d / "group_vars").mkdir()
    (d / "group_vars" / "db.yml").write_text("db_port: 5432\n")
    assert load_inventory(str(d)).to_ansible_list() == ansible_list(str(d))
