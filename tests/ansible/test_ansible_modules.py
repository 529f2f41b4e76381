"""Any installed Ansible module as a step, on real ansible-core + ansible-runner: one ansible-playbook
process per batch, check mode + diff in a plan, Ansible's result in `register`, its error message on
failure, and no secret in clear in ansible-runner's private data directory."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runbook.cli.main import cli
from runbook.execute.clients import ansible as ansible_client
from runbook.execute.clients import ansible_io

pytestmark = pytest.mark.slow

SECRET = "hunter2-Sekr3t-value"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "inv").write_text(
        "".join(f"{h} ansible_connection=local ansible_python_interpreter=python3\n" for h in ("a", "b", "c"))
    )
    return tmp_path


def write(project: Path, body: str) -> Path:
    rb = project / "rb.yml"
    rb.write_text(textwrap.dedent(body))
    return rb


def invoke(*args: str) -> tuple[int, dict[str, Any], int]:
    """Run the CLI in this process: exit code, JSON document, ansible-playbook processes started."""
    before = ansible_client.INVOCATIONS["count"]
    res = CliRunner().invoke(cli, [*args, "--output", "json"])
    try:
        doc = json.loads(res.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON (exit {res.exit_code}): {res.output}")
    return res.exit_code, doc, ansible_client.INVOCATIONS["count"] - before


def step(doc: dict[str, Any], host: str, i: int = 0) -> dict[str, Any]:
    return doc["hosts"][host]["steps"][i]


LINEINFILE = """\
    name: mods
    hosts: all
    vars: {{d: "{d}"}}
    {extra}
    steps:
      - name: set a line
        ansible.builtin.lineinfile:
          path: "{{{{ d }}}}/{{{{ inventory_hostname }}}}.conf"
          line: "host={{{{ inventory_hostname }}}}"
          create: true
        register: li
        undo: none
      - name: what ansible returned
        assert:
          that: ["{{{{ li.msg == 'line added' }}}}", "{{{{ li.changed }}}}", "{{{{ li.diff is defined }}}}"]
    """


def test_check_mode_in_plan_then_for_real_in_one_process_per_batch(project: Path) -> None:
    write(project, LINEINFILE.format(d=project, extra=""))
    code, doc, procs = invoke("plan", "rb.yml", "-i", "inv")
    assert code == 0, doc
    assert procs == 1  # three hosts, one ansible-playbook
    assert not any((project / f"{h}.conf").exists() for h in "abc")  # check mode changed nothing
    s = step(doc, "b")
    assert s["outcome"] == "changed" and s["msg"].startswith("would change")
    (planned,) = s["planned"]
    assert planned["kind"] == "change"
    assert "+host=b" in planned["diff"]

    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert code == 0, doc
    assert procs == 1
    for h in "abc":
        assert (project / f"{h}.conf").read_text() == f"host={h}\n"
        assert step(doc, h)["outcome"] == "changed"
        assert step(doc, h, 1)["outcome"] == "ok"  # the assert on the registered result

    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert procs == 1
    assert step(doc, "a")["outcome"] == "ok"  # idempotent: Ansible says unchanged
    assert step(doc, "a", 1)["outcome"] == "failed"  # li.msg is '' now


def test_serial_batches_get_one_process_each(project: Path) -> None:
    write(project, LINEINFILE.format(d=project, extra="serial: 1"))
    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert code == 0, doc
    assert procs == 3


def test_a_host_that_skips_the_step_is_not_waited_for(project: Path) -> None:
    write(
        project,
        f"""\
        name: skip
        hosts: all
        steps:
          - name: set a line
            ansible.builtin.lineinfile: {{path: "{project}/{{{{ inventory_hostname }}}}.conf", line: x, create: true}}
            when: inventory_hostname != 'b'
            undo: none
        """,
    )
    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert code == 0, doc
    assert procs == 1
    assert step(doc, "b")["outcome"] == "skipped"
    assert not (project / "b.conf").exists() and (project / "c.conf").exists()


def test_failure_carries_ansibles_message_and_rolls_back(project: Path) -> None:
    write(
        project,
        f"""\
        name: fails
        hosts: all
        steps:
          - name: edit a file that is not there
            ansible.builtin.lineinfile: {{path: "{project}/missing/x.conf", line: x}}
            register: out
          - name: never
            shell: "true"
        """,
    )
    code, doc, _procs = invoke("exec", "rb.yml", "-i", "inv", "--yes", "-l", "a")
    assert code == 1
    s = step(doc, "a")
    assert s["outcome"] == "failed"
    assert "does not exist" in s["msg"]  # Ansible's own words: "Destination ... does not exist !"
    assert len(doc["hosts"]["a"]["steps"]) == 1


def test_failed_command_reports_rc_and_stderr(project: Path) -> None:
    write(
        project,
        """\
        name: fails
        hosts: all
        steps:
          - name: the real Ansible command module
            ansible.legacy.command: {argv: [sh, -c, "echo oops >&2; exit 3"]}
            undo: none
        """,
    )
    code, doc, _ = invoke("exec", "rb.yml", "-i", "inv", "--yes", "-l", "a")
    assert code == 1
    s = step(doc, "a")
    assert s["rc"] == 3
    assert "oops" in s["stderr"] and "oops" in s["msg"]


def test_secrets_never_in_clear_in_the_private_data_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "env-token-" + SECRET)
    write(
        project,
        f"""\
        name: secret
        hosts: all
        secrets: [db_password]
        vars: {{db_password: "{SECRET}"}}
        steps:
          - name: write the secret
            ansible.builtin.lineinfile: {{path: "{project}/{{{{ inventory_hostname }}}}.env", line: "PW={{{{ db_password }}}}", create: true}}
            register: w
            undo: none
        """,
    )
    seen: list[str] = []
    real = ansible_io.run

    def spying(pdd: Path, **kw: Any) -> Any:
        on_event = kw["on_event"]

        def look(ev: dict[str, Any]) -> None:
            if ev.get("event") == "runner_on_start":  # the process runs: everything is on disk
                seen.extend(_files(pdd))
            on_event(ev)

        kw["on_event"] = look
        try:
            return real(pdd, **kw)
        finally:
            seen.extend(_files(pdd))

    monkeypatch.setattr(ansible_io, "run", spying)
    code, doc, _procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert code == 0, doc
    assert (project / "a.env").read_text() == f"PW={SECRET}\n"  # it reached the module
    assert seen, "the private data dir was not inspected"
    text = "\n".join(seen)
    assert "$ANSIBLE_VAULT" in text  # the secret went vault-encrypted
    assert SECRET not in text
    assert "artifacts" in text and '"command"' in text  # artifacts/<id>/command was looked at
    assert SECRET not in json.dumps(doc)
    left = [p for p in ansible_io.root().glob(f"{os.getpid()}-*") if not p.name.endswith("-cp")]
    assert not left  # removed afterwards (the -cp dir of SSH masters goes at exit)


def _files(pdd: Path) -> list[str]:
    out = []
    for p in pdd.rglob("*"):
        if p.is_file():
            out.append(f"== {p.relative_to(pdd)}\n{p.read_text(errors='replace')}")
    return out


def test_a_value_from_data_is_never_templated_by_ansible(project: Path) -> None:
    """Arguments reach Ansible as runbook rendered them, tagged !unsafe: Ansible's own unsandboxed
    templating never runs a value that came from data (here a command's output)."""
    canary = project / "PWNED"
    payload = "{{ lookup('pipe', 'touch " + str(canary) + "') }}"
    (project / "value.txt").write_text(payload)
    write(
        project,
        f"""\
        name: unsafe
        hosts: all
        steps:
          - name: read
            shell: cat {project}/value.txt
            register: got
            changes: false
          - name: write it with Ansible
            ansible.builtin.lineinfile: {{path: "{project}/out.txt", line: "{{{{ got.stdout }}}}", create: true}}
            undo: none
        """,
    )
    code, doc, _ = invoke("exec", "rb.yml", "-i", "inv", "--yes", "-l", "a")
    assert code == 0, doc
    assert (project / "out.txt").read_text() == payload + "\n"
    assert not canary.exists()


def test_loop_items_and_retries_are_one_process_each_for_all_hosts(project: Path) -> None:
    write(
        project,
        f"""\
        name: loop
        hosts: all
        steps:
          - name: lines
            ansible.builtin.lineinfile: {{path: "{project}/{{{{ inventory_hostname }}}}.loop", line: "{{{{ item }}}}", create: true}}
            loop: [one, two]
            undo: none
          - name: until it is in place
            ansible.builtin.lineinfile: {{path: "{project}/{{{{ inventory_hostname }}}}.loop", line: three}}
            register: r
            until: "{{{{ r.changed == false }}}}"
            retries: 2
            delay: 0
            undo: none
        """,
    )
    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert code == 0, doc
    assert procs == 4  # 2 loop items + 2 attempts, whatever the number of hosts
    for h in "abc":
        assert (project / f"{h}.loop").read_text() == "one\ntwo\nthree\n"
        assert step(doc, h, 1)["attempts"] == 2


def test_forks_bound_the_batch_a_waiting_host_never_blocks_a_worker(project: Path) -> None:
    """forks 2, three hosts: the two running hosts do not wait for the third (it has no worker
    until one of them finishes), so two processes, and no deadlock."""
    write(project, LINEINFILE.format(d=project, extra=""))
    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes", "--forks", "2")
    assert code == 0, doc
    assert procs == 2
    assert all((project / f"{h}.conf").exists() for h in "abc")


def test_a_step_timeout_is_each_hosts_own(project: Path) -> None:
    """b's sleep outlasts the step's timeout, a's and c's do not: only b fails. The bound leaves room
    for ansible's own start on a loaded machine (it counts against each host's timeout)."""
    write(
        project,
        """\
        name: slow
        hosts: all
        steps:
          - name: slow on b only
            ansible.legacy.command: "sleep {{ 60 if inventory_hostname == 'b' else 0 }}"
            timeout: 20
            undo: none
        """,
    )
    code, doc, procs = invoke("exec", "rb.yml", "-i", "inv", "--yes")
    assert procs == 1
    assert code == 1
    assert step(doc, "a")["outcome"] == "changed" and step(doc, "c")["outcome"] == "changed"
    assert step(doc, "b")["outcome"] == "failed" and "timed out" in step(doc, "b")["msg"]


def test_apt_in_check_mode_says_what_it_would_install(project: Path) -> None:
    """ansible.builtin.apt in a plan (check mode: nothing is installed, not even as root), with the
    k=v free form Ansible users write; an installed package is ok."""
    import shutil

    if not shutil.which("apt-get") or not Path("/usr/bin/python3").exists():
        pytest.skip("apt cannot run here")
    probe = __import__("subprocess").run(["/usr/bin/python3", "-c", "import apt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("python3-apt not installed")
    if __import__("subprocess").run(["dpkg", "-s", "sl"], capture_output=True).returncode == 0:
        pytest.skip("the probe package is installed here: nothing would change")
    (project / "inv").write_text("a ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    write(
        project,
        """\
        name: apt
        hosts: all
        steps:
          - name: a package that is not installed
            ansible.builtin.apt: {name: sl, state: present}
          - name: one that is
            apt: name=coreutils state=present
        """,
    )
    code, doc, procs = invoke("plan", "rb.yml", "-i", "inv")
    assert code == 0, doc
    assert procs == 2
    s = step(doc, "a")
    assert s["outcome"] == "changed" and "sl" in s["planned"][0]["diff"]
    assert step(doc, "a", 1)["outcome"] == "ok" and not step(doc, "a", 1)["planned"]
    assert __import__("subprocess").run(["dpkg", "-s", "sl"], capture_output=True).returncode != 0
