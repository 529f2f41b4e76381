"""Several hosts (local aliases): parallel within a batch, serial batches in order,
max_fail_percentage stopping later batches, and -l/--limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.conftest import Project

HOSTS = "".join(f"h{i} ansible_connection=local\n" for i in range(1, 6))


@pytest.fixture
def five(project: Project, tmp_path: Path) -> Path:
    project.inventory("[web]\n" + HOSTS)
    log = tmp_path / "log"
    log.touch()
    return log


BARRIER = """
  - name: work
    shell: |
      echo "start {{ inventory_hostname }}" >> {{ log }}
      touch {{ log }}.{{ inventory_hostname }}
      for peer in {{ peers | join(' ') }}; do
        for i in $(seq 200); do [ -e {{ log }}.$peer ] && break; sleep 0.02; done
        [ -e {{ log }}.$peer ] || { echo "never saw $peer running" >&2; exit 9; }
      done
      echo "end {{ inventory_hostname }}" >> {{ log }}
"""


def test_hosts_of_a_batch_run_in_parallel(project: Project, five: Path) -> None:
    # every host waits until all the others have started: this only finishes if they run at once
    project.runbook(
        "par",
        "hosts: web\nvars:\n  peers: \"{{ groups['web'] }}\"\nsteps:" + BARRIER,
    )
    res, doc = project.exec_json("par", "-e", f"log={five}")
    assert res.exit_code == 0, res.output
    assert sorted(doc["hosts"]) == ["h1", "h2", "h3", "h4", "h5"]
    assert all(h["stats"]["changed"] == 1 for h in doc["hosts"].values())


def test_serial_batches_run_in_order(project: Project, five: Path) -> None:
    project.runbook(
        "ser",
        """
        hosts: web
        serial: [1, "50%"]
        steps:
          - name: work
            shell: "echo start {{ inventory_hostname }} >> {{ log }}; sleep 0.05; echo end {{ inventory_hostname }} >> {{ log }}"
        """,
    )
    res = project.exec("ser", "-e", f"log={five}", "-v")
    assert res.exit_code == 0, res.output
    assert "batch: h1\n" in res.stdout
    assert "batch: h2, h3\n" in res.stdout
    assert "batch: h4, h5\n" in res.stdout
    lines = five.read_text().split("\n")
    order = [int(h[1]) for h in (line.split()[1] for line in lines if line.startswith("end"))]
    # a later batch never ends before an earlier batch: h1 | h2 h3 | h4 h5
    batch_of = {1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
    assert [batch_of[h] for h in order] == sorted(batch_of[h] for h in order)
    for later in ("h2", "h3"):
        assert lines.index(f"start {later}") > lines.index("end h1")


def test_max_fail_percentage_aborts_later_batches(project: Project, five: Path) -> None:
    project.runbook(
        "mfp",
        """
        hosts: web
        serial: 2
        steps:
          - name: work
            shell: "echo {{ inventory_hostname }} >> {{ log }}; test {{ inventory_hostname }} != h1"
        """,
    )
    res, doc = project.exec_json("mfp", "-e", f"log={five}")
    assert res.exit_code == 1
    assert sorted(five.read_text().split()) == ["h1", "h2"]  # batches [h3 h4] and [h5] never ran
    assert "max_fail_percentage 0%" in doc["message"]
    assert doc["hosts"]["h3"]["steps"] == []


def test_failures_within_max_fail_percentage_let_the_run_go_on(project: Project, five: Path) -> None:
    project.runbook(
        "mfp",
        """
        hosts: web
        serial: 2
        max_fail_percentage: 50
        steps:
          - name: work
            shell: "echo {{ inventory_hostname }} >> {{ log }}; test {{ inventory_hostname }} != h1"
        """,
    )
    res, doc = project.exec_json("mfp", "-e", f"log={five}")
    assert res.exit_code == 1  # h1 still failed
    assert sorted(five.read_text().split()) == ["h1", "h2", "h3", "h4", "h5"]
    assert [h for h, v in doc["hosts"].items() if v["failed"]] == ["h1"]


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        ("h2", ["h2"]),
        ("h1:h3", ["h1", "h3"]),
        ("web:!h4", ["h1", "h2", "h3", "h5"]),
        ("web[3:4]", ["h4", "h5"]),
    ],
)
def test_limit(project: Project, five: Path, limit: str, hosts: list[str]) -> None:
    project.runbook(
        "lim",
        "hosts: web\nsteps:\n  - shell: 'echo {{ inventory_hostname }} >> {{ log }}'\n",
    )
    res, doc = project.exec_json("lim", "-l", limit, "-e", f"log={five}")
    assert res.exit_code == 0, res.output
    assert sorted(doc["hosts"]) == hosts
    assert sorted(five.read_text().split()) == hosts


def test_limit_matching_nothing_is_a_usage_error(project: Project, five: Path) -> None:
    project.runbook("lim", "hosts: web\nsteps:\n  - debug: {msg: x}\n")
    res = project.exec("lim", "-l", "nosuchhost")
    assert res.exit_code == 2
    assert "no hosts match 'web' with --limit nosuchhost" in res.stderr


def test_run_once_runs_on_one_host_per_batch_and_shares_the_result(project: Project, five: Path) -> None:
    project.runbook(
        "once",
        """
        hosts: web
        serial: [2, 3]
        steps:
          - name: once
            shell: "echo {{ inventory_hostname }} >> {{ log }}; echo {{ inventory_hostname }}"
            run_once: true
            register: who
          - name: everyone
            debug: {msg: "{{ who.stdout }}"}
        """,
    )
    res, doc = project.exec_json("once", "-e", f"log={five}")
    assert res.exit_code == 0, res.output
    ran = five.read_text().split()
    assert len(ran) == 2  # once in [h1 h2], once in [h3 h4 h5]
    assert ran[0] in ("h1", "h2") and ran[1] in ("h3", "h4", "h5")
    for host, first in (("h1", ran[0]), ("h2", ran[0]), ("h4", ran[1])):
        assert project.steps(doc, host)["everyone"]["msg"] == first
