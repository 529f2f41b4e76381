"""What a run knows and tells about itself: rendered step names, ansible_play_hosts/ansible_play_batch,
the run.start event (plan digest, inventory, limit) as the audit records it, and requests shown by
their display form (webhook secrets in URL paths never show)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runbook.plan import planner
from tests.core.conftest import Project


def test_step_names_are_rendered_and_fall_back_to_the_raw_name(project: Project) -> None:
    project.runbook(
        "names",
        """
        hosts: localhost
        vars: {version: "2.1.0"}
        steps:
          - name: "Deploy {{ version }} on {{ inventory_hostname }}"
            debug: {msg: x}
          - name: "Cannot render {{ not_defined_anywhere }}"
            debug: {msg: y}
          - name: "Per item {{ item }}"
            debug: {msg: "{{ item }}"}
            loop: [a]
        """,
    )
    res, doc = project.exec_json("names")
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in doc["hosts"]["localhost"]["steps"]] == [
        "Deploy 2.1.0 on localhost",
        "Cannot render {{ not_defined_anywhere }}",
        "Per item a",  # a loop's name: its items' names (issue 13)
    ]


def test_play_hosts_and_batch(project: Project, tmp_path: Path) -> None:
    project.inventory("".join(f"h{i} ansible_connection=local\n" for i in range(1, 5)))
    project.runbook(
        "play",
        """
        hosts: all
        serial: 2
        max_fail_percentage: 50
        steps:
          - name: h2 fails
            fail: {msg: down}
            when: inventory_hostname == 'h2'
          - name: Write what is in play
            copy:
              dest: "{{ t }}/{{ inventory_hostname }}"
              content: "{{ ansible_play_batch | join(',') }}|{{ ansible_play_hosts | join(',') }}|{{ ansible_play_hosts_all | join(',') }}"
        """,
    )
    res = project.exec("play", "-e", f"t={tmp_path}")
    assert res.exit_code == 1, res.output  # h2 failed
    assert (tmp_path / "h3").read_text() == "h3,h4|h1,h3,h4|h1,h2,h3,h4"
    assert (tmp_path / "h4").read_text() == "h3,h4|h1,h3,h4|h1,h2,h3,h4"
    assert (tmp_path / "h1").read_text().endswith("|h1,h2,h3,h4")
    assert not (tmp_path / "h2").exists()


def test_validate_knows_the_play_variables(project: Project) -> None:
    project.runbook(
        "play",
        'hosts: localhost\nsteps:\n  - debug: {msg: "{{ ansible_play_batch | length }} {{ ansible_play_hosts }}"}\n',
    )
    res = project.cli("validate", "play", "-i", "inv")
    assert res.exit_code == 0, res.output


def test_run_start_records_plan_digest_inventory_and_limit(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNBOOK_AUDIT")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    project.inventory("a ansible_connection=local\nb ansible_connection=local\nc ansible_connection=local\n")
    path = project.runbook("rb", "hosts: all\nserial: 1\nsteps:\n  - debug: {msg: hi}\n")
    res = project.exec("rb", "--output", "json", "-l", "a:b", "-t", "x,always", "-e", "color=blue")
    assert res.exit_code == 0, res.output
    audit = Path(json.loads(res.stdout)["audit"])
    start = next(json.loads(line) for line in audit.read_text().splitlines() if '"run.start"' in line)
    data = start["data"]
    assert data["inventory"] == [str(project.root / "inv")]
    assert data["limit"] == "a:b"
    expected = planner.plan_digest(
        hashlib.sha256(path.read_bytes()).hexdigest(), ["a", "b"], [["a"], ["b"]],
        tags={"x", "always"}, extra_vars={"color": "blue"},
    )  # fmt: skip
    assert data["plan_sha256"] == expected


def test_plan_digest_covers_the_plan_but_no_values() -> None:
    base = planner.plan_digest("r" * 64, ["a", "b"], [["a", "b"]], tags=["t"], extra_vars={"v": "1"})
    assert base == planner.plan_digest("r" * 64, ["a", "b"], [["a", "b"]], tags=["t"], extra_vars={"v": "2"})
    assert base != planner.plan_digest(
        "r" * 64, ["a", "b"], [["a"], ["b"]], tags=["t"], extra_vars={"v": "1"}
    )
    assert base != planner.plan_digest("r" * 64, ["a", "b"], [["a", "b"]], tags=["u"], extra_vars={"v": "1"})
    assert base != planner.plan_digest("r" * 64, ["a", "b"], [["a", "b"]], tags=["t"], extra_vars={"w": "1"})
    assert base != planner.plan_digest("s" * 64, ["a", "b"], [["a", "b"]], tags=["t"], extra_vars={"v": "1"})


def test_a_requests_display_form_hides_its_url_in_the_plan(project: Project) -> None:
    project.runbook(
        "notify",
        """
        hosts: localhost
        steps:
          - name: Tell the team
            notify.webhook: {url: "http://127.0.0.1:9/services/T0/B0/hook-path-secret", text: hi}
        """,
    )
    res = project.plan("notify", "-v")
    assert res.exit_code == 0, res.output
    assert "POST http://127.0.0.1:9/…" in res.stdout
    res = project.plan("notify", "--output", "json")
    assert "hook-path-secret" not in res.stdout
    [planned] = project.steps(json.loads(res.stdout))["Tell the team"]["planned"]
    assert planned == {"kind": "request", "summary": "POST http://127.0.0.1:9/…", "diff": ""}


def test_http_display_forms() -> None:
    from runbook.actions import Http

    assert Http("GET", "http://h/x").shown() == "GET http://h/x"
    assert Http("POST", "http://h/secret", display="http://h/…").shown() == "POST http://h/…"
    assert Http("POST", "http://h/secret", display="POST http://h/…").shown() == "POST http://h/…"
