"""Dry-run (`runbook plan`, `exec --dry-run`): read-only probes run for real, every command and file
diff is shown, nothing changes anywhere, and the exit code says whether the real run would fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import REPO, HttpServer, Project, free_port, tree_state

RUNBOOK = """
hosts: localhost
preflight:
  - name: Service answers
    http.get: {{url: "{url}/health", expect: {{status: 200}}}}
  - name: Probe the target
    shell: "test -d {{{{ t }}}}"
steps:
  - name: Rewrite config
    copy: {{content: "new config\\nline 2\\n", dest: "{{{{ t }}}}/app.conf", mode: "0600"}}
  - name: Render template
    template: {{src: conf.j2, dest: "{{{{ t }}}}/new/app.ini"}}
  - name: Make a directory
    file: {{path: "{{{{ t }}}}/made", state: directory}}
  - name: Remove a file
    file: {{path: "{{{{ t }}}}/old.txt", state: absent}}
  - name: Restart the service
    shell: "touch {{{{ t }}}}/restarted && echo restarted"
  - name: Notify
    http.request: {{url: "{url}/notify", method: POST, json: {{event: deploy}}}}
  - name: Check after the change
    http.get: {{url: "{url}/health"}}
"""


@pytest.fixture
def planned(
    project: Project, http_server: HttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.delenv("RUNBOOK_AUDIT")  # the audit stays on: a dry-run must not write one either
    t = tmp_path / "target"
    t.mkdir()
    (t / "app.conf").write_text("old config\nline 2\n")
    (t / "app.conf").chmod(0o644)
    (t / "old.txt").write_text("old")
    project.template("conf.j2", "[app]\nhost = {{ inventory_hostname }}\n")
    project.runbook("deploy", RUNBOOK.format(url=http_server.url))
    return t


@pytest.mark.parametrize("command", [("plan", "deploy"), ("exec", "deploy", "--dry-run")])
def test_dry_run_changes_nothing_at_all(
    project: Project, http_server: HttpServer, planned: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    before = tree_state(tmp_path)
    res = project.cli(*command, "-i", "inv", "-e", f"t={planned}")
    assert res.exit_code == 0, res.output
    assert tree_state(tmp_path) == before  # byte-identical, same modes, no new files
    assert not (tmp_path / ".runbook").exists()
    assert not (tmp_path / "audit").exists()
    assert http_server.state.hits["/health"] == 1  # the preflight probe ran for real
    assert http_server.state.hits["POST /notify"] == 0  # the mutating request was not sent


def test_plan_shows_commands_and_unified_diffs(project: Project, planned: Path) -> None:
    res = project.plan("deploy", "-e", f"t={planned}")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "(dry-run)" in out
    assert f"would run touch {planned}/restarted && echo restarted" in out
    assert f"would write {planned}/app.conf (mode 0o644 -> 0o600)" in out
    assert f"--- {planned}/app.conf" in out and f"+++ {planned}/app.conf" in out
    assert "-old config" in out and "+new config" in out
    assert f"+++ {planned}/new/app.ini" in out and "+host = localhost" in out
    assert "would send POST" in out and "/notify" in out


def test_plan_json_lists_planned_changes(project: Project, planned: Path) -> None:
    res = project.plan("deploy", "-e", f"t={planned}", "--output", "json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["dry_run"] is True
    steps = project.steps(doc)
    diff = next(p for p in steps["Rewrite config"]["planned"] if p["kind"] == "file")["diff"]
    assert "-old config" in diff and "+new config" in diff
    assert steps["Check after the change"]["outcome"] == "skipped"  # checked during the real run


def test_plan_exits_3_when_a_probe_fails(project: Project, planned: Path, http_server: HttpServer) -> None:
    http_server.state.healthy_after = 100
    before = tree_state(planned)
    res = project.plan("deploy", "-e", f"t={planned}")
    assert res.exit_code == 3, res.output
    assert "preflight_failed" in res.stdout
    assert tree_state(planned) == before


def test_plan_exits_2_when_something_cannot_render(project: Project, planned: Path) -> None:
    project.runbook(
        "broken",
        """
        hosts: localhost
        steps:
          - name: Uses an undefined variable
            copy: {content: "{{ not_defined_anywhere }}", dest: /tmp/never-written}
        """,
    )
    res = project.plan("broken")
    assert res.exit_code == 2, res.output
    assert "undefined variable: 'not_defined_anywhere' is undefined" in res.stdout
    assert not Path("/tmp/never-written").exists()


def test_plan_exits_2_when_a_template_file_cannot_render(project: Project, planned: Path) -> None:
    project.template("conf.j2", "value = {{ missing_in_template }}\n")
    res = project.plan("deploy", "-e", f"t={planned}")
    assert res.exit_code == 2, res.output
    assert "missing_in_template" in res.stdout


def test_plan_of_the_shipped_smoke_runbook_changes_nothing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    before = tree_state(tmp_path)
    smoke = tmp_path / "smoke"
    res = project.cli("plan", "local-smoke", "-e", f"smoke_dir={smoke}", "-e", f"smoke_port={free_port()}")
    assert res.exit_code == 0, res.output
    assert not smoke.exists()
    assert tree_state(tmp_path) == before


def test_plan_exits_2_when_a_preflight_argument_cannot_render(project: Project) -> None:
    project.runbook(
        "pre",
        """
        hosts: localhost
        preflight:
          - name: Port
            check.port: {port: "{{ service_port }}", state: free}
        steps:
          - debug: {msg: x}
        """,
    )
    res = project.plan("pre")
    assert res.exit_code == 2, res.output
    assert "'service_port' is undefined" in res.stdout
    assert project.exec("pre").exit_code == 3  # a real run: pre-flight failed, nothing changed


def test_read_only_shell_steps_run_for_real_in_a_dry_run(project: Project, tmp_path: Path) -> None:
    (tmp_path / "version").write_text("1.2.3\n")
    project.runbook(
        "probe",
        """
        hosts: localhost
        steps:
          - name: Read the version
            shell: "cat {{ v }}"
            changes: false
            register: current
          - name: Would write it
            copy: {content: "{{ current.stdout }}+1", dest: "{{ v }}.next"}
          - name: Say
            debug: {msg: "current {{ current.stdout }}"}
        """,
    )
    res = project.plan("probe", "-e", f"v={tmp_path / 'version'}", "--output", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    steps = project.steps(doc)
    assert steps["Read the version"]["stdout"] == "1.2.3\n"
    assert "+1.2.3+1" in steps["Would write it"]["planned"][-1]["diff"]
    assert steps["Say"]["msg"] == "current 1.2.3"
    assert not (tmp_path / "version.next").exists()
