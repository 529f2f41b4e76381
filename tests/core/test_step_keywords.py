"""Step keywords the engine handles for every module: when, register, loop, retries/until, timeout,
tags, no_log, changed_when/failed_when, ignore_errors, set_fact, delegate_to, become."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.core.conftest import HttpServer, Project


def run(project: Project, text: str, *args: str, code: int = 0) -> dict:
    project.runbook("k", text)
    res, doc = project.exec_json("k", *args)
    assert res.exit_code == code, res.output
    return project.steps(doc)


def test_when_conditions(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        vars: {enabled: true, level: 3}
        steps:
          - name: runs
            debug: {msg: ran}
            when: enabled
          - name: skips
            debug: {msg: ran}
            when: not enabled
          - name: all of a list
            debug: {msg: ran}
            when: [enabled, level > 2, "{{ level == 3 }}"]
          - name: one false in a list
            debug: {msg: ran}
            when: [enabled, level > 5]
          - name: probe
            shell: echo ready
            register: probe
            changed_when: false
          - name: on a registered result
            debug: {msg: ran}
            when: probe.stdout == 'ready' and probe is succeeded
          - name: skipped but registered
            shell: echo never
            when: false
            register: never
          - name: after a skipped step
            debug: {msg: "{{ never is skipped }} {{ never is changed }}"}
        """,
    )
    assert steps["runs"]["outcome"] == "ok"
    assert steps["skips"]["outcome"] == "skipped"
    assert steps["all of a list"]["outcome"] == "ok"
    assert steps["one false in a list"]["outcome"] == "skipped"
    assert steps["on a registered result"]["outcome"] == "ok"
    assert steps["after a skipped step"]["msg"] == "True False"


def test_register_holds_ansible_like_fields(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        steps:
          - name: cmd
            shell: "echo out; echo err >&2; exit 3"
            register: r
            ignore_errors: true
          - name: fields
            debug: {msg: "{{ r.rc }}|{{ r.stdout }}|{{ r.stderr }}|{{ r.stdout_lines }}|{{ r.failed }}|{{ r.changed }}"}
        """,
    )
    assert steps["fields"]["msg"] == "3|out|err|['out']|True|True"


def test_loop_with_loop_control(project: Project, tmp_path: Path) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        vars:
          users: [{name: ann, uid: 1}, {name: bob, uid: 2}]
        steps:
          - name: write one file per user
            copy: {content: "{{ user.uid }}", dest: "{{ dir }}/{{ user.name }}"}
            loop: "{{ users }}"
            loop_control: {loop_var: user, label: "{{ user.name }}"}
            register: written
          - name: loop results
            debug: {msg: "{{ written.results | map(attribute='user') | map(attribute='name') | join(',') }} {{ written.changed }}"}
          - name: loop with a when per item
            debug: {msg: "{{ item }}"}
            loop: [1, 2, 3]
            when: item != 2
            register: odd
          - name: skipped items
            debug: {msg: "{{ odd.results | map(attribute='skipped') | list }}"}
        """,
        "-e",
        f"dir={tmp_path}",
    )
    assert (tmp_path / "ann").read_text() == "1" and (tmp_path / "bob").read_text() == "2"
    assert steps["write one file per user"]["outcome"] == "changed"
    assert steps["loop results"]["msg"] == "ann,bob True"
    assert steps["skipped items"]["msg"] == "[False, True, False]"


def test_a_loop_over_a_mapping_says_to_use_dict2items(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        vars: {m: {a: 1}}
        steps:
          - name: bad loop
            debug: {msg: "{{ item }}"}
            loop: "{{ m }}"
        """,
        code=1,
    )
    assert "dict2items" in steps["bad loop"]["msg"]


def test_retries_until_a_real_server_is_healthy(project: Project, http_server: HttpServer) -> None:
    http_server.state.healthy_after = 2  # two 503s, then 200
    project.runbook(
        "k",
        f"""
        hosts: localhost
        steps:
          - name: Health
            http.get:
              url: "{http_server.url}/health"
              expect: {{status: 200, json: {{status: healthy}}}}
            register: health
            retries: 5
            delay: 0.05
            backoff: 2
          - name: version
            debug: {{msg: "{{{{ health.json.version }}}} {{{{ health.status }}}}"}}
        """,
    )
    res = project.exec("k")
    assert res.exit_code == 0, res.output
    assert http_server.state.hits["/health"] == 3
    assert "Health (attempts: 3)" in res.stdout
    assert "attempt 1/6 failed" in res.stdout and "retrying in 0.05s" in res.stdout
    assert "attempt 2/6 failed" in res.stdout and "retrying in 0.1s" in res.stdout  # backoff 2


def test_retries_exhausted_fail_the_step(project: Project, http_server: HttpServer) -> None:
    http_server.state.healthy_after = 100
    steps = run(
        project,
        f"""
        hosts: localhost
        steps:
          - name: Health
            http.get: {{url: "{http_server.url}/health", expect: {{status: 200}}}}
            retries: 2
            delay: 0.01
        """,
        code=1,
    )
    assert steps["Health"]["attempts"] == 3
    assert http_server.state.hits["/health"] == 3
    assert "503" in steps["Health"]["msg"]


def test_until_retries_while_the_condition_is_false(project: Project, http_server: HttpServer) -> None:
    steps = run(
        project,
        f"""
        hosts: localhost
        steps:
          - name: Wait for the fourth hit
            http.get: {{url: "{http_server.url}/health"}}
            register: page
            until: page.json.hits >= 4
            retries: 10
            delay: 0.01
          - name: Never
            http.get: {{url: "{http_server.url}/health"}}
            until: result.json.status == 'sick'
            retries: 1
            delay: 0.01
            ignore_errors: true
        """,
    )
    assert steps["Wait for the fourth hit"]["attempts"] == 4
    assert steps["Never"]["attempts"] == 2
    assert "until condition not met after 2 attempt(s)" in steps["Never"]["msg"]


def test_timeout_kills_a_long_command(project: Project, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    project.runbook(
        "k",
        f"""
        hosts: localhost
        steps:
          - name: Too slow
            shell: "echo $$ > {pidfile}; sleep 30 & wait"
            timeout: 0.5
        """,
    )
    started = time.monotonic()
    res, doc = project.exec_json("k")
    assert time.monotonic() - started < 20  # not the 30 s of the command
    assert res.exit_code == 1
    step = project.steps(doc)["Too slow"]
    assert step["outcome"] == "failed"
    assert step["rc"] == 124
    assert "timed out after 0.5s" in step["msg"]
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.05)


def test_runbook_level_timeout_is_the_default(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        timeout: 0.3
        steps:
          - name: slow
            shell: sleep 20
        """,
        code=1,
    )
    assert "timed out after 0.3s" in steps["slow"]["msg"]


TAGGED = """
hosts: localhost
steps:
  - name: config
    debug: {msg: c}
    tags: [config]
  - name: deploy
    debug: {msg: d}
    tags: deploy
  - name: untagged
    debug: {msg: u}
  - name: always-tagged
    debug: {msg: a}
    tags: [always]
  - name: never-tagged
    debug: {msg: n}
    tags: [never, debug]
"""


@pytest.mark.parametrize(
    ("args", "ran"),
    [
        ((), {"config", "deploy", "untagged", "always-tagged"}),
        (("--tags", "config"), {"config", "always-tagged"}),
        (("--tags", "config,deploy"), {"config", "deploy", "always-tagged"}),
        (("--skip-tags", "deploy"), {"config", "untagged", "always-tagged"}),
        (("--tags", "debug"), {"never-tagged", "always-tagged"}),
    ],
)
def test_tags_and_skip_tags(project: Project, args: tuple[str, ...], ran: set[str]) -> None:
    steps = run(project, TAGGED, *args)
    assert {n for n, s in steps.items() if s["outcome"] == "ok"} == ran


def test_no_log_hides_command_and_output_everywhere(project: Project) -> None:
    project.runbook(
        "k",
        """
        hosts: localhost
        steps:
          - name: Secret step
            shell: "echo topsecret-output-123; echo topsecret-err >&2; echo topsecret-cmd >/dev/null; exit 1"
            no_log: true
            register: hidden
            ignore_errors: true
          - name: Reuses the hidden output
            debug: {msg: "got {{ hidden.stdout }}"}
          - name: Fails loudly
            shell: "echo topsecret-cmd; exit 2"
            no_log: true
        """,
    )
    for output in ("text", "json", "junit"):
        res = project.exec("k", "--output", output, "-v")
        assert res.exit_code == 1
        assert "topsecret" not in res.output, output
        assert "output hidden: no_log" in res.stdout or output == "junit"
    res, doc = project.exec_json("k")
    assert project.steps(doc)["Reuses the hidden output"]["msg"] == "got ***"


def test_changed_when_and_failed_when(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        steps:
          - name: reported unchanged
            shell: echo same
            changed_when: false
          - name: changed by output
            shell: echo CHANGED
            register: r
            changed_when: "'CHANGED' in r.stdout"
          - name: rc 1 is fine
            shell: "echo no matches; exit 1"
            failed_when: result.rc > 1
            changed_when: false
          - name: fails on output
            shell: echo ERROR found
            failed_when: ["'ERROR' in result.stdout"]
            ignore_errors: true
        """,
    )
    assert steps["reported unchanged"]["outcome"] == "ok"
    assert steps["changed by output"]["outcome"] == "changed"
    assert steps["rc 1 is fine"]["outcome"] == "ok"
    assert steps["fails on output"]["outcome"] == "ok"  # failed but ignored
    assert "(ignored)" in steps["fails on output"]["msg"]


def test_ignore_errors_carries_on(project: Project) -> None:
    project.runbook(
        "k",
        """
        hosts: localhost
        steps:
          - name: broken
            shell: exit 5
            ignore_errors: true
            register: b
          - name: after
            debug: {msg: "{{ b.rc }} {{ b is failed }}"}
        """,
    )
    res, doc = project.exec_json("k")
    assert res.exit_code == 0
    assert project.steps(doc)["after"]["msg"] == "5 True"
    assert doc["hosts"]["localhost"]["failed"] is False


def test_set_fact_for_later_steps(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        vars: {base: 10}
        steps:
          - set_fact: {total: "{{ base * 2 }}", label: "v{{ base }}"}
          - name: use
            debug: {msg: "{{ total + 1 }} {{ label }} {{ total | type_debug }}"}
        """,
    )
    assert steps["use"]["msg"] == "21 v10 int"


def test_delegate_to_localhost(project: Project, tmp_path: Path) -> None:
    project.inventory("h1 ansible_connection=local\nh2 ansible_connection=local\n")
    project.runbook(
        "k",
        """
        hosts: all
        steps:
          - name: on the control machine
            shell: "echo {{ inventory_hostname }} >> {{ out }}"
            delegate_to: localhost
        """,
    )
    res, doc = project.exec_json("k", "-e", f"out={tmp_path / 'delegated.txt'}")
    assert res.exit_code == 0, res.output
    assert project.steps(doc, "h2")["on the control machine"]["outcome"] == "changed"
    assert sorted(doc["hosts"]) == ["h1", "h2"]  # localhost was only delegated to: not in the recap
    assert sorted((tmp_path / "delegated.txt").read_text().split()) == ["h1", "h2"]


def test_become_is_not_required(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        steps:
          - name: plain
            command: id -u
            changed_when: false
          - name: explicit no become
            command: id -u
            become: false
            changed_when: false
        """,
    )
    assert steps["plain"]["stdout"].strip() == str(os.getuid())
    assert steps["explicit no become"]["outcome"] == "ok"


@pytest.mark.skipif(os.geteuid() != 0, reason="become as root needs no sudo only when running as root")
def test_become_as_root_needs_no_sudo(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        steps:
          - name: root
            command: id -u
            become: true
            changed_when: false
        """,
    )
    assert steps["root"]["stdout"].strip() == "0"


def test_step_vars_and_numbers_from_templates(project: Project) -> None:
    steps = run(
        project,
        """
        hosts: localhost
        vars: {tries: "2"}
        steps:
          - name: scoped
            debug: {msg: "{{ greeting }} {{ who }}"}
            vars: {greeting: hello, who: "{{ inventory_hostname }}"}
          - name: retried
            shell: exit 1
            retries: "{{ tries }}"
            delay: 0
            ignore_errors: true
        """,
    )
    assert steps["scoped"]["msg"] == "hello localhost"
    assert steps["retried"]["attempts"] == 3


@pytest.mark.parametrize(
    "keywords",
    [
        "failed_when: result.nope.deeper",
        "changed_when: undefined_thing",
        "until: undefined_thing\n    retries: 1\n    delay: 0",
        "retries: '{{ undefined_count }}'",
        "timeout: \"{{ 'not-a-number' }}\"",
    ],
)
def test_a_keyword_that_cannot_be_evaluated_fails_the_step_cleanly(project: Project, keywords: str) -> None:
    project.runbook("k", f"hosts: localhost\nsteps:\n  - name: odd\n    shell: echo hi\n    {keywords}\n")
    res, doc = project.exec_json("k")
    assert res.exit_code == 1, res.output
    step = project.steps(doc)["odd"]
    assert step["outcome"] == "failed"
    assert "undefined" in step["msg"] or "must be a number" in step["msg"]
    assert project.plan("k").exit_code == 2 or "until" in keywords or "when" in keywords


def test_a_literal_keyword_of_the_wrong_type_is_refused_before_anything_runs(project: Project) -> None:
    project.runbook(
        "k", "hosts: localhost\nsteps:\n  - name: odd\n    shell: echo hi\n    timeout: not-a-number\n"
    )
    res, doc = project.exec_json("k")
    assert res.exit_code == 2 and "k.yml:5:" in doc["message"] and "timeout" in doc["message"], doc


def test_a_timeout_kills_only_its_own_command_on_a_shared_delegate(project: Project, tmp_path: Path) -> None:
    project.inventory(
        "h1 ansible_connection=local cmd='sleep 20' limit=0.3\n"
        f"h2 ansible_connection=local cmd='sleep 1; touch {tmp_path}/h2-done' limit=30\n"
    )
    project.runbook(
        "k",
        """
        hosts: all
        steps:
          - name: delegated
            shell: "{{ cmd }}"
            delegate_to: localhost
            timeout: "{{ limit }}"
        """,
    )
    res, doc = project.exec_json("k")
    assert res.exit_code == 1
    assert "timed out after 0.3s" in project.steps(doc, "h1")["delegated"]["msg"]
    assert project.steps(doc, "h2")["delegated"]["outcome"] == "changed"
    assert (tmp_path / "h2-done").exists()
