"""Runbook `defaults:` (lowest precedence), Jinja globals, and loop_control index_var/pause."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.cli.main import cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts").write_text("[app]\nlocalhost ansible_connection=local\n")
    (tmp_path / "inv" / "group_vars").mkdir()
    (tmp_path / "inv" / "group_vars" / "app.yml").write_text("color: from-inventory\n")
    return tmp_path


def run(project: Path, body: str, *args: str) -> dict:
    (project / "playbooks" / "rb.yml").write_text(textwrap.dedent(body))
    res = CliRunner().invoke(cli, ["exec", "rb", "-i", "inv", "--output", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def messages(doc: dict) -> list[str]:
    return [s["msg"] for s in doc["hosts"]["localhost"]["steps"]]


def test_defaults_are_outranked_by_the_inventory_and_extra_vars(project: Path) -> None:
    body = """\
        hosts: app
        defaults: {color: from-defaults, size: from-defaults, shape: from-defaults}
        steps:
          - debug: {msg: "{{ color }} {{ size }} {{ shape }}"}
        """
    doc = run(project, body, "-e", "shape=from-extra-vars")
    assert messages(doc) == ["from-inventory from-defaults from-extra-vars"]


def test_jinja_globals_are_available(project: Path) -> None:
    body = """\
        hosts: app
        steps:
          - debug: {msg: "{{ range(3) | list }} {{ dict(a=1) }}"}
        """
    assert messages(run(project, body)) == ["[0, 1, 2] {'a': 1}"]


def test_loop_control_index_var_and_pause(project: Path) -> None:
    body = """\
        hosts: app
        steps:
          - debug: {msg: "{{ i }}={{ item }}"}
            loop: [a, b, c]
            loop_control: {index_var: i, pause: 0.01}
            register: out
          - debug: {msg: "{{ out.results | map(attribute='msg') | join(',') }}"}
        """
    assert messages(run(project, body))[-1] == "0=a,1=b,2=c"


def test_group_vars_beside_the_runbook_win_over_the_inventorys_as_in_ansible_playbook(project: Path) -> None:
    (project / "playbooks" / "group_vars").mkdir()
    (project / "playbooks" / "group_vars" / "app.yml").write_text("color: from-playbook-dir\n")
    doc = run(project, "hosts: all\nsteps:\n  - name: show\n    debug: {msg: '{{ color }}'}\n")
    steps = doc["hosts"]["localhost"]["steps"]
    assert steps[0]["msg"] == "from-playbook-dir", steps


def test_loop_control_pause_may_be_a_template_rendered_for_the_loop(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    waits: list[float] = []
    real_wait = threading.Event.wait

    def recording_wait(self: threading.Event, timeout: float | None = None) -> bool:
        if timeout == 0.25:
            waits.append(timeout)
            return False  # paused (and not cancelled)
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", recording_wait)
    body = """\
        hosts: app
        vars: {gap_ms: 250}
        steps:
          - debug: {msg: "{{ item }}"}
            loop: [a, b, c]
            loop_control: {pause: "{{ gap_ms / 1000 }}"}
        """
    assert messages(run(project, body)) == ["a; b; c"]  # the loop step joins its items
    assert waits == [0.25, 0.25]  # between the items, not before the first


def test_a_templated_pause_that_is_no_number_fails_the_step_clearly(project: Path) -> None:
    (project / "playbooks" / "rb.yml").write_text(
        "hosts: app\nsteps:\n  - debug: {msg: '{{ item }}'}\n    loop: [a, b]\n"
        "    loop_control: {pause: \"{{ 'soon' }}\"}\n"
    )
    res = CliRunner().invoke(cli, ["exec", "rb", "-i", "inv", "--output", "json"])
    assert res.exit_code == 1, res.output
    step = json.loads(res.stdout)["hosts"]["localhost"]["steps"][0]
    assert (
        step["outcome"] == "failed"
        and "loop_control.pause must be a number (or a {{ template }}), got 'soon'" in step["msg"]
    )
    bad = CliRunner().invoke(cli, ["validate", "rb", "-i", "inv"])
    assert bad.exit_code == 0, bad.output  # a template is checked once rendered


def test_now_gives_the_control_machines_time_as_ansible_does(project: Path) -> None:
    import datetime

    body = """\
        hosts: app
        steps:
          - set_fact: {started: "{{ now() }}", stamp: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M') }}"}
          - debug: {msg: "{{ started.year }} {{ stamp }} {{ (now() - started).total_seconds() >= 0 }}"}
        """
    before = datetime.datetime.now(datetime.UTC)
    year, stamp, ordered = messages(run(project, body))[-1].split()
    after = datetime.datetime.now(datetime.UTC)
    assert int(year) in (before.year, after.year) and ordered == "True"
    assert before.strftime("%Y-%m-%dT%H:%M") <= stamp <= after.strftime("%Y-%m-%dT%H:%M")


def test_a_mapping_entry_may_use_another_entry_of_the_same_variable_as_in_ansible(project: Path) -> None:
    body = """\
        hosts: app
        vars:
          app: {name: demo, dirs: {data: "/srv/{{ app_name }}/data", logs: "{{ app.dirs.data }}/../logs"}}
          app_name: "{{ app.name }}"
        steps:
          - debug: {msg: "{{ app.dirs.data }} {{ app.dirs.logs }}"}
        """
    assert messages(run(project, body)) == ["/srv/demo/data /srv/demo/data/../logs"]


def test_an_entry_that_needs_itself_is_still_a_recursive_loop(project: Path) -> None:
    (project / "playbooks" / "rb.yml").write_text(
        "hosts: app\nvars:\n  a: {x: '{{ a.x }}'}\nsteps:\n  - debug: {msg: '{{ a }}'}\n"
    )
    res = CliRunner().invoke(cli, ["exec", "rb", "-i", "inv", "--output", "json"])
    assert res.exit_code == 1 and "variable 'a.x' refers to itself (recursive loop)" in res.stdout


def test_a_variable_scope_is_true_exactly_when_it_holds_a_variable() -> None:
    """A scope's truth value is its length's (it is asked without walking every key), also when
    only a lower layer, or a layer below empty ones, holds a name; become variables are read the
    same through it."""
    from runbook.model import become
    from runbook.render.templar import LazyVars, Templar

    templar = Templar()
    layers = [({}, True), ({}, False), ({"ansible_become": "yes"}, False)]
    for n in range(len(layers) + 1):
        scope = LazyVars(layers[n:], templar)
        assert bool(scope) == (len(scope) > 0) == (n < len(layers))
        assert bool(scope.child(({}, True))) == bool(scope)
        assert become.pick(scope, "become") == ("yes" if n < len(layers) else None)
    assert become.pick(None, "become") is None
