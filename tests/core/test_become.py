"""become_user / become_method / become_flags: read and checked with the runbook (file:line for a
method no transport implements), resolved with Ansible's precedence (step keyword > runbook level >
inventory ``ansible_become_*``), shown as the real sudo/su line in the plan, and honoured by the
local transport (commands run as that user, files written by and belonging to it).

The SSH side, with a real sudo and su and passwords, is tests/ssh/test_become_user.py."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.actions.commands import Command
from runbook.model.become import Become, resolve
from tests.robustness.test_malformed_runbooks import run

AS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("sudo") is None, reason="switching users locally needs root and sudo"
)
NOBODY = "nobody"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for var, value in (("RUNBOOK_AUDIT", "0"), ("COLUMNS", "300"), ("NO_COLOR", "1")):
        monkeypatch.setenv(var, value)
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    yield tmp_path


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may write to (pytest's tmp_path is root's alone)."""
    d = Path(f"/tmp/runbook-become-test-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o777)
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def playbook(root: Path, text: str, name: str = "rb") -> Path:
    path = root / "playbooks" / f"{name}.yml"
    path.write_text(text)
    return path


def out(result) -> str:
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def steps_of(result) -> list[dict]:
    return json.loads(result.stdout)["hosts"]["localhost"]["steps"]


# ------------------------------------------------------------------- read and checked
BAD_METHODS = [
    ("step-pbrun", "steps:\n  - shell: id\n    become: true\n    become_method: pbrun\n", "5:5", "'pbrun'"),
    ("step-doas", "steps:\n  - shell: id\n    become: true\n    become_method: doas\n", "5:5", "'doas'"),
    ("typo", "steps:\n  - shell: id\n    become_method: sduo\n", "4:5", "did you mean 'sudo'?"),
    ("runbook-level", "become_method: runas\nsteps:\n  - shell: id\n", "2:1", "'runas'"),
    ("not-a-string", "steps:\n  - shell: id\n    become_method: [sudo]\n", "4:5", "become_method must be"),
    ("fallback-step", "steps:\n  - shell: id\n    fallback:\n      - shell: id\n        become_method: ksu\n",
     "6:9", "'ksu'"),
    ("flags-unbalanced", "steps:\n  - shell: id\n    become_flags: \"-H '\"\n", "4:5", "become_flags"),
    ("user-not-a-string", "steps:\n  - shell: id\n    become_user: {a: 1}\n", "4:5", "become_user must be"),
    ("user-like-an-option", "steps:\n  - shell: id\n    become_user: --session-command=x\n", "4:5",
     "is not a user name"),
    ("user-with-space", "steps:\n  - shell: id\n    become_user: a b\n", "4:5", "is not a user name"),
    ("runbook-user", "become_user: ../x\nsteps:\n  - shell: id\n", "2:1", "is not a user name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "where", "says"), [c[1:] for c in BAD_METHODS], ids=[c[0] for c in BAD_METHODS]
)
@pytest.mark.parametrize("command", ["validate", "plan", "exec", "show"])
def test_an_unsupported_become_setting_is_refused_where_it_is_written(root, body, where, says, command):
    path = playbook(root, "hosts: localhost\n" + body)
    args = (
        [command, "rb"]
        + ([] if command == "show" else ["-i", "inv"])
        + (["--yes"] if command == "exec" else [])
    )
    result = run(*args)
    assert result.exit_code == 2, out(result)
    assert f"{path}:{where}:" in out(result) and says in out(result), out(result)
    assert "internal error" not in out(result)


@pytest.mark.parametrize("command", ["validate", "exec"])
def test_a_templated_user_is_checked_once_rendered(root, command):
    path = playbook(
        root, "hosts: localhost\nsteps:\n  - shell: id\n    become: true\n    become_user: '{{ u }}'\n"
    )
    result = run(command, "rb", "-i", "inv", "-e", "u=-cid", *(["--yes"] if command == "exec" else []))
    assert result.exit_code in (1, 2), out(result)
    assert f"{path}:5:5:" in out(result) and "is not a user name" in out(result), out(result)


def test_a_templated_method_is_checked_once_rendered_for_each_host(root):
    path = playbook(
        root, "hosts: localhost\nsteps:\n  - shell: id\n    become: true\n    become_method: '{{ m }}'\n"
    )
    result = run("validate", "rb", "-i", "inv", "-e", "m=pbrun")
    assert result.exit_code == 2 and f"{path}:5:5:" in out(result) and "'pbrun'" in out(result), out(result)
    assert run("validate", "rb", "-i", "inv", "-e", "m=su").exit_code == 0


@pytest.mark.parametrize(
    "var", ["ansible_become_method=pbrun", "ansible_become_method=Sudo", 'ansible_become_flags="-H \'"']
)
@pytest.mark.parametrize("command", ["validate", "plan", "exec"])
def test_an_unsupported_become_setting_in_the_inventory_is_refused(root, var, command):
    (root / "inv").write_text(f"localhost ansible_connection=local {var}\n")
    path = playbook(root, "hosts: localhost\nsteps:\n  - name: needs it\n    shell: id\n    become: true\n")
    result = run(command, "rb", "-i", "inv", *(["--yes"] if command == "exec" else []))
    assert result.exit_code == (1 if command == "exec" else 2), out(result)
    assert f"{path}:4:5:" in out(result) and var.split("=")[0][8:] in out(result), out(result)
    assert "internal error" not in out(result)
    # a step that does not become does not care
    playbook(root, "hosts: localhost\nsteps:\n  - shell: id\n")
    result = run(command, "rb", "-i", "inv", *(["--yes"] if command == "exec" else []))
    assert result.exit_code == 0, out(result)


def test_the_schema_knows_the_keywords(root):
    result = run("schema")
    assert result.exit_code == 0
    for word in ("become_method", "become_flags"):
        assert word in result.output


# ------------------------------------------------------------------- precedence and display
@pytest.mark.parametrize(
    ("keywords", "variables", "want"),
    [
        ({}, {}, Become("root", "sudo", "")),
        ({}, {"ansible_become_user": "app", "ansible_become_method": "su"}, Become("app", "su", "")),
        ({}, {"ansible_sudo_user": "old"}, Become("old", "sudo", "")),
        ({"become_user": "step"}, {"ansible_become_user": "inv"}, Become("step", "sudo", "")),
        ({"become_method": "su"}, {"ansible_become_method": "sudo"}, Become("root", "su", "")),
        ({"become_flags": "-H"}, {"ansible_become_flags": "-E"}, Become("root", "sudo", "-H")),
        ({"become_user": ""}, {"ansible_become_user": "inv"}, Become("inv", "sudo", "")),
    ],
)
def test_step_keywords_win_over_the_hosts_variables(keywords, variables, want):
    assert resolve(keywords, variables) == want


def test_the_password_comes_from_the_variables_else_the_host_and_is_never_shown():
    assert resolve({}, {"ansible_become_pass": "pw-1"}, "host-pw").password == "pw-1"
    assert resolve({}, {}, "host-pw").password == "host-pw"
    cmd = Command.shell("id", become=True).as_user(Become("app", "su", "", "Sekr1t"))
    for text in (repr(cmd), str(cmd), cmd.display(), repr(cmd.privilege)):
        assert "Sekr1t" not in text


@pytest.mark.parametrize(
    ("become", "command", "shown"),
    [
        (Become("nobody"), Command.shell("id -un"), "sudo -u nobody id -un"),
        (Become("app", "sudo", "-H -E"), Command.exec(["ls", "a b"]), "sudo -u app -H -E ls 'a b'"),
        (Become("nobody", "su"), Command.shell("id -un"), "su nobody -c 'id -un'"),
        (Become("app", "su", "-l"), Command.exec(["echo", "x"], env={"A": "1"}), "su -l app -c 'A=1 echo x'"),
        (Become("we ird"), Command.shell("id"), "sudo -u 'we ird' id"),
    ],
)
def test_the_plan_shows_the_real_become_line(become, command, shown):
    asked = Command(**{**command.__dict__, "become": True})
    assert asked.as_user(become).display() == shown
    assert command.as_user(become).display() == command.display()  # no privilege asked: unchanged


# ------------------------------------------------------------------- local transport, end to end
@AS_ROOT
def test_plan_and_exec_run_as_the_become_user_locally(root, shared_dir):
    (root / "templates").mkdir()
    (root / "templates" / "t.j2").write_text("x={{ 1 + 1 }}\n")
    playbook(
        root,
        f"""hosts: localhost
steps:
  - name: sudo
    shell: id -un
    become: true
    become_user: {NOBODY}
  - name: su
    shell: id -un
    become: true
    become_user: {NOBODY}
    become_method: su
  - name: not asked
    shell: id -un
    become_user: {NOBODY}
  - name: owned
    copy: {{dest: "{shared_dir}/sub/f.txt", content: "hi\\n", mode: "0640"}}
    become: true
    become_user: {NOBODY}
  - name: template too
    template: {{src: t.j2, dest: "{shared_dir}/t.txt"}}
    become: true
    become_user: {NOBODY}
""",
    )
    plan = run("plan", "rb", "-i", "inv", "--output", "json")
    assert plan.exit_code == 0, out(plan)
    shown = [c["summary"] for s in steps_of(plan) for c in s.get("planned", [])]
    assert f"sudo -u {NOBODY} id -un" in shown and f"su {NOBODY} -c 'id -un'" in shown, shown
    result = run("exec", "rb", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 0, out(result)
    assert [s["stdout"] for s in steps_of(result)[:3]] == [f"{NOBODY}\n", f"{NOBODY}\n", "root\n"]
    nobody = pwd.getpwnam(NOBODY).pw_uid
    for f, mode in ((shared_dir / "sub" / "f.txt", 0o640), (shared_dir / "t.txt", None)):
        st = f.stat()
        assert st.st_uid == nobody, f
        assert mode is None or st.st_mode & 0o777 == mode
    assert (shared_dir / "sub").stat().st_uid == nobody  # created by the become user too
    assert (shared_dir / "t.txt").read_text() == "x=2\n"


@AS_ROOT
def test_the_become_user_permissions_apply_not_roots(root, shared_dir):
    secret = shared_dir / "root-only"
    secret.write_text("x")
    secret.chmod(0o600)
    playbook(
        root,
        f"""hosts: localhost
steps:
  - copy: {{dest: "{secret}", content: "overwritten\\n"}}
    become: true
    become_user: {NOBODY}
""",
    )
    result = run("exec", "rb", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 1, out(result)
    assert "internal error" not in out(result)
    assert secret.read_text() == "x"


@AS_ROOT
@pytest.mark.parametrize(
    ("inventory", "runbook_level", "step", "want"),
    [
        ("ansible_become_user=nobody", "", "", "nobody"),
        ("ansible_become_user=daemon", "become_user: nobody\n", "", "nobody"),
        ("ansible_become_user=daemon", "become_user: daemon\n", "    become_user: nobody\n", "nobody"),
        ("ansible_become=true ansible_become_user=nobody", "", "", "nobody"),
        ("ansible_become_method=su ansible_become_user=nobody", "", "", "nobody"),
        ("", "become_user: '{{ who }}'\n", "", "nobody"),
    ],
    ids=[
        "inventory",
        "runbook-over-inventory",
        "step-over-runbook",
        "inventory-become",
        "inventory-su",
        "template",
    ],
)
def test_precedence_step_over_runbook_over_inventory(root, inventory, runbook_level, step, want):
    (root / "inv").write_text(f"localhost ansible_connection=local {inventory} who=nobody\n")
    become = "" if "ansible_become=true" in inventory else "    become: true\n"
    playbook(root, f"hosts: localhost\n{runbook_level}steps:\n  - shell: id -un\n{become}{step}")
    result = run("exec", "rb", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 0, out(result)
    assert steps_of(result)[0]["stdout"] == f"{want}\n"


@AS_ROOT
def test_become_false_on_the_step_runs_as_the_login_user(root):
    (root / "inv").write_text("localhost ansible_connection=local ansible_become_user=nobody\n")
    playbook(
        root,
        "hosts: localhost\nbecome: true\nsteps:\n  - shell: id -un\n  - shell: id -un\n    become: false\n",
    )
    result = run("exec", "rb", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 0, out(result)
    assert [s["stdout"] for s in steps_of(result)] == ["nobody\n", "root\n"]


@AS_ROOT
def test_become_false_on_the_step_wins_over_the_inventory(root):
    (root / "inv").write_text(
        "localhost ansible_connection=local ansible_become=true ansible_become_user=nobody flag=false\n"
    )
    playbook(
        root,
        "hosts: localhost\nsteps:\n  - shell: id -un\n  - shell: id -un\n    become: false\n"
        "  - shell: id -un\n    become: '{{ flag }}'\n  - shell: id -un\n    become: \"{{ flag == 'false' }}\"\n",
    )
    result = run("exec", "rb", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 0, out(result)
    assert [s["stdout"] for s in steps_of(result)] == ["nobody\n", "root\n", "root\n", "nobody\n"]


@AS_ROOT
def test_stdin_and_environment_reach_the_become_user(tmp_path):
    from runbook.execute.transports.base import HostSpec
    from runbook.execute.transports.local import LocalTransport

    t = LocalTransport(HostSpec(name="localhost", address="localhost", connection="local"))
    for method in ("sudo", "su"):
        cmd = Command.shell("id -un; cat; echo $X", become=True, stdin=b"in\n", env={"X": "x y"})
        r = t.run(cmd.as_user(Become(NOBODY, method)))
        assert (r.rc, r.stdout) == (0, f"{NOBODY}\nin\nx y\n"), (method, r.stderr)
