"""run_once as in Ansible: the step runs on the batch's first host (the first one still in the play),
its outcome is every host's (skipped stays skipped, failed is failed everywhere) and its registered
result is shared with all hosts of the batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.conftest import Project

HOSTS = "".join(f"h{i} ansible_connection=local\n" for i in range(1, 6))


@pytest.fixture
def log(project: Project, tmp_path: Path) -> Path:
    project.inventory("[web]\n" + HOSTS)
    path = tmp_path / "log"
    path.touch()
    return path


# h1 (and h3) are held back before the run_once step, so that others reach it first
SLOW_FIRST = """
  - name: hold back the first hosts
    shell: "sleep {{ 0.4 if inventory_hostname in ['h1', 'h3'] else 0 }}"
    changed_when: false
"""


def test_the_first_host_of_each_batch_runs_it_even_when_it_gets_there_last(
    project: Project, log: Path
) -> None:
    project.runbook(
        "once",
        "hosts: web\nserial: [2, 3]\nsteps:"
        + SLOW_FIRST
        + """
  - name: once
    shell: "echo {{ inventory_hostname }} >> {{ log }}; echo {{ inventory_hostname }}"
    run_once: true
    register: who
  - name: everyone
    debug: {msg: "{{ who.stdout }}"}
""",
    )
    res, doc = project.exec_json("once", "-e", f"log={log}")
    assert res.exit_code == 0, res.output
    assert log.read_text().split() == ["h1", "h3"]
    for host, first in (("h1", "h1"), ("h2", "h1"), ("h3", "h3"), ("h4", "h3"), ("h5", "h3")):
        assert project.steps(doc, host)["everyone"]["msg"] == first
    assert project.steps(doc, "h2")["once"]["outcome"] == "ok"
    assert project.steps(doc, "h2")["once"]["msg"] == "run_once: ran on h1"
    assert doc["hosts"]["h1"]["stats"]["changed"] == 1 and doc["hosts"]["h2"]["stats"]["changed"] == 0


def test_skipped_by_when_is_skipped_on_every_host(project: Project, log: Path) -> None:
    project.runbook(
        "once",
        """
        hosts: web
        steps:
          - name: once
            shell: "echo ran >> {{ log }}"
            run_once: true
            when: inventory_hostname == 'h3'
            register: r
          - name: everyone
            debug: {msg: "skipped={{ r is skipped }}"}
        """,
    )
    res, doc = project.exec_json("once", "-e", f"log={log}")
    assert res.exit_code == 0, res.output
    assert log.read_text() == ""  # `when` is evaluated on h1 only, as Ansible does
    for host in ("h1", "h2", "h3", "h4", "h5"):
        assert project.steps(doc, host)["once"]["outcome"] == "skipped", host
        assert project.steps(doc, host)["everyone"]["msg"] == "skipped=True", host
        stats = doc["hosts"][host]["stats"]
        assert stats["skipped"] == 1 and stats["ok"] == 1, (host, stats)  # only `everyone` is ok


def test_a_first_host_that_failed_earlier_hands_it_to_the_next(project: Project, log: Path) -> None:
    project.runbook(
        "once",
        """
        hosts: web
        max_fail_percentage: 50
        steps:
          - name: gate
            shell: "test {{ inventory_hostname }} != h1"
            changed_when: false
          - name: once
            shell: "echo {{ inventory_hostname }} >> {{ log }}"
            run_once: true
        """,
    )
    res, doc = project.exec_json("once", "-e", f"log={log}")
    assert res.exit_code == 1, res.output
    assert log.read_text().split() == ["h2"]
    assert "once" not in project.steps(doc, "h1")
    assert project.steps(doc, "h4")["once"]["msg"] == "run_once: ran on h2"


def test_a_failed_run_once_fails_every_host_of_the_batch(project: Project, log: Path) -> None:
    project.runbook(
        "once",
        """
        hosts: web
        steps:
          - name: once
            shell: "echo {{ inventory_hostname }} >> {{ log }}; exit 3"
            run_once: true
          - name: after
            shell: "echo after >> {{ log }}"
        """,
    )
    res, doc = project.exec_json("once", "-e", f"log={log}")
    assert res.exit_code == 1
    assert log.read_text().split() == ["h1"]
    for host in ("h2", "h5"):
        once = project.steps(doc, host)["once"]
        assert once["outcome"] == "failed" and once["msg"].startswith("run_once: failed on h1"), once
        assert doc["hosts"][host]["stats"]["failed"] == 1


def test_run_once_in_always_runs_on_the_first_host(project: Project, log: Path) -> None:
    project.runbook(
        "once",
        "hosts: web\nsteps:\n  - debug: {msg: x}\nalways:"
        + SLOW_FIRST
        + """
  - name: notify
    shell: "echo {{ inventory_hostname }} {{ run.status }} >> {{ log }}"
    run_once: true
""",
    )
    res = project.exec("once", "-e", f"log={log}")
    assert res.exit_code == 0, res.output
    assert log.read_text() == "h1 success\n"
