"""Issue 13: plan tells the truth. A registered field of a step the plan did not run is known at run
time (the plan goes on), waits are not waited and retries not tried (and the plan says so), a loop
of probes stops at the plan's budget (and says what it skipped); loop items are named per item in
the console and the audit."""

from __future__ import annotations

import json

import pytest

from tests.core.conftest import Project


def test_a_registered_field_of_a_step_the_plan_did_not_run_is_known_at_run_time(project: Project) -> None:
    out = project.root / "out.txt"
    project.runbook("reg", f"""
        hosts: localhost
        steps:
          - copy: {{content: "hello\\n", dest: "{out}"}}
            register: written
          - name: echo
            shell: "echo {{{{ written.dest }}}}"
            register: echoed
          - name: first line
            debug: {{msg: "{{{{ echoed.stdout_lines[0] }}}}"}}
          - name: by rc
            shell: "echo rc was zero"
            when: echoed.rc == 0
          - name: loop over lines
            debug: {{msg: "{{{{ item }}}}"}}
            loop: "{{{{ echoed.stdout_lines }}}}"
          - name: as a number
            debug: {{msg: "{{{{ echoed.stdout | int + 1 }}}} {{{{ (echoed.stdout | from_json).key }}}}"}}
        rollback: none
        """)  # fmt: skip
    res = project.plan("reg")
    assert res.exit_code == 0, res.output
    assert f"would run echo {out}" in res.output  # what the plan knows (the path) is shown
    assert "would run echo rc was zero" in res.output  # a condition on the output: planned
    assert "loop items known at run time" in res.output
    assert "known at run time" in res.output
    assert not out.exists()
    real, doc = project.exec_json("reg")  # the run decides: its output is not JSON
    assert real.exit_code == 1
    assert project.steps(doc)["as a number"]["outcome"] == "failed"
    assert project.steps(doc)["loop over lines"]["outcome"] == "ok"


def test_a_plan_does_not_wait_or_retry_and_says_so(project: Project) -> None:
    project.runbook("waits", """
        hosts: localhost
        preflight:
          - name: long wait
            wait: {seconds: 1800}
          - name: poll
            http.get: {url: "http://127.0.0.1:9/none", expect: {status: 200}}
            retries: 180
            delay: 10
            ignore_errors: true
        steps:
          - debug: {msg: hi}
        """)  # fmt: skip
    res = project.plan("waits")
    assert res.exit_code == 0, res.output
    assert "dry-run: did not wait 1800s" in res.output
    assert "dry-run: tried once (the run retries up to 180 more times, 10s apart)" in res.output


def test_a_loop_of_probes_stops_at_the_plan_budget(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_PLAN_BUDGET", "0")
    project.runbook("monitor", """
        hosts: localhost
        preflight:
          - name: "sample {{ item }}"
            shell: "echo sampling"
            loop: "{{ range(1, 361) | list }}"
        steps:
          - debug: {msg: hi}
        """)  # fmt: skip
    res, doc = project.exec_json("monitor", "--check")
    assert res.exit_code == 0, res.output
    step = project.steps(doc)["sample 1 … sample 360 (360 items)"]
    assert "dry-run: ran 1 of 360 items" in step["msg"] and "the other 359 run during the real run" in step["msg"]


def test_loop_items_are_named_per_item_in_console_and_audit(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    project.runbook("items", """
        hosts: localhost
        steps:
          - name: "ping {{ item }}"
            debug: {msg: "{{ item }}"}
            loop: [alpha, beta]
          - name: plain
            debug: {msg: "{{ item }}"}
            loop: [gamma]
        """)  # fmt: skip
    res = project.exec("items", "--audit-dir", str(project.root / "audit"))
    assert res.exit_code == 0, res.output
    assert "{{ item }}" not in res.output
    assert "| item ping alpha" in res.output and "| item ping beta" in res.output
    assert "| ping alpha, ping beta" in res.output
    assert "| item plain (item=gamma)" in res.output
    records = [json.loads(line) for f in (project.root / "audit").glob("*.jsonl") for line in f.read_text().splitlines()]
    names = [r["step"] for r in records if r.get("event") == "step.item"]
    assert names == ["ping alpha", "ping beta", "plain (item=gamma)"]
    assert not any("{{" in str(r.get("step")) for r in records)


def test_a_long_probe_is_stopped_at_the_plan_budget(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_PLAN_BUDGET", "1")
    project.runbook("slow", """
        hosts: localhost
        preflight:
          - name: a 30-minute watch
            shell: "sleep 1800"
        steps:
          - debug: {msg: hi}
        """)  # fmt: skip
    res, doc = project.exec_json("slow", "--check")
    assert res.exit_code == 0, res.output
    step = project.steps(doc)["a 30-minute watch"]
    assert step["outcome"] == "skipped"
    assert "dry-run: stopped after 1s" in step["msg"] and "the real run lets it finish" in step["msg"]
    assert project.steps(doc)["debug"]["outcome"] == "ok"  # the plan went on
