"""A rollback never lies: changes no undo covers are named (validate, show, plan, the rollback itself,
exit 4) unless the runbook declares they need none; "rolled back" is said only once the restored
state was checked against the snapshots (a difference: exit 4, host, step, expected vs found)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.core.conftest import Project, tree_state


@pytest.fixture
def t(tmp_path: Path) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "app.conf").write_text("old\n")
    (d / "app.conf").chmod(0o640)
    return d


NO_UNDO = """
hosts: localhost
steps:
  - name: Config
    copy: {{content: "new\\n", dest: "{{{{ t }}}}/app.conf"}}
  - name: Warm the cache
    shell: "echo warm > {{{{ (t ~ '/cache') | quote }}}}"
{declare}
  - name: Boom
    fail: {{msg: injected}}
"""


def audit_records(project: Project, doc: dict) -> list[dict]:
    path = Path(doc["audit"])
    path = path if path.is_absolute() else project.root / path
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------ no undo: named


def test_a_change_without_undo_is_named_by_validate_show_and_plan(project: Project, t: Path) -> None:
    project.runbook("rb", NO_UNDO.format(declare=""))
    res = project.cli("validate", "rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output  # a warning, not an error
    assert "warning:" in res.stderr and "'Warm the cache' (steps[1])" in res.stderr
    assert "shell changes the host and has no undo" in res.stderr and "undo: none" in res.stderr
    assert "'Config'" not in res.stderr  # copy undoes itself from its snapshot

    res = project.cli("show", "rb")
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if "Warm the cache" in x)
    assert "CANNOT BE UNDONE" in line
    assert "CANNOT BE UNDONE" not in next(x for x in res.stdout.splitlines() if "Config" in x)

    res = project.plan("rb", "-e", f"t={t}")
    assert "1 step(s) a rollback cannot undo" in res.stdout
    assert "'Warm the cache' (steps[1])" in res.stdout
    res = project.plan("rb", "-e", f"t={t}", "--output", "json")
    doc = json.loads(res.stdout)
    assert [g["key"] for g in doc["cannot_undo"]] == ["steps[1]"]
    assert doc["cannot_undo"][0]["module"] == "shell"


def test_rollback_that_leaves_a_change_says_not_undone_and_exits_4(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNBOOK_AUDIT")
    monkeypatch.setenv("HOME", str(t.parent / "home"))
    project.runbook("rb", NO_UNDO.format(declare=""))
    res = project.exec("rb", "-e", f"t={t}")
    assert res.exit_code == 4, res.output
    assert "NOT undone: shell changed the host" in res.stdout
    assert "rollback complete" not in res.stdout and "rollback FAILED" in res.stdout
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 4 and doc["status"] == "rollback_failed"
    host = doc["hosts"]["localhost"]
    assert host["rollback"] == "failed"
    assert host["rollback_problems"] == [
        "localhost: step 'Warm the cache': NOT undone: shell changed the host and it has no undo:; "
        "give it an undo: step, or declare `undo: none` (or `undo: {none: REASON}`) if it needs none"
    ]
    assert "Warm the cache" in doc["message"]
    undo = {s["name"]: s for s in host["steps"] if s["phase"] == "rollback"}
    assert undo["undo: Warm the cache"]["outcome"] == "failed"
    assert undo["undo: Config"]["outcome"] == "rolled_back"  # what could be undone still was
    assert (t / "app.conf").read_text() == "old\n"
    records = audit_records(project, doc)
    failed = [r for r in records if r["event"] == "rollback.step" and r["outcome"] == "failed"]
    assert [r["data"]["step"] for r in failed] == ["Warm the cache"]
    end = next(r for r in records if r["event"] == "rollback.end")
    assert end["outcome"] == "failed" and "Warm the cache" in end["data"]["problems"][0]


@pytest.mark.parametrize(
    "declare, reason",
    [
        ('    undo: {none: "idempotent cache warm"}', "idempotent cache warm"),
        ("    undo: none", "declared undo: none"),
        ("    undo: false", "declared undo: none"),
        ("    changed_when: false", None),
        ("    changes: false", None),
    ],
)
def test_a_step_that_needs_no_undo_leaves_the_rollback_at_exit_1(
    project: Project, t: Path, declare: str, reason: str | None
) -> None:
    project.runbook("rb", NO_UNDO.format(declare=declare))
    res = project.cli("validate", "rb", "-e", f"t={t}")
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output
    assert "CANNOT BE UNDONE" not in project.cli("show", "rb").stdout
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 1, res.output
    assert doc["status"] == "rolled_back" and doc["hosts"]["localhost"]["rollback_problems"] == []
    undo = {s["name"]: s for s in doc["hosts"]["localhost"]["steps"] if s["phase"] == "rollback"}
    if reason is None:  # it never reported a change: nothing to undo, nothing listed
        assert "undo: Warm the cache" not in undo
    else:
        assert undo["undo: Warm the cache"]["outcome"] == "skipped"
        assert undo["undo: Warm the cache"]["msg"] == f"needs no undo: {reason}"
    assert (t / "app.conf").read_text() == "old\n"


def test_show_names_the_declared_reason(project: Project) -> None:
    project.runbook("rb", NO_UNDO.format(declare='    undo: {none: "idempotent cache warm"}'))
    res = project.cli("show", "rb")
    assert "undo: none (idempotent cache warm)" in res.stdout


def test_undo_none_with_a_bad_reason_is_a_validation_error(project: Project) -> None:
    project.runbook("rb", NO_UNDO.format(declare="    undo: {none: [a, b]}"))
    res = project.cli("validate", "rb")
    assert res.exit_code == 2 and "undo: {none: ...} takes the reason as a string" in res.stderr


def test_the_schema_documents_undo_none(project: Project) -> None:
    schema = json.loads(project.cli("schema").stdout)
    shell = next(v for v in schema["$defs"]["step"]["oneOf"] if "shell" in v["required"])
    forms = shell["properties"]["undo"]["oneOf"]
    assert {"$ref": "#/$defs/step"} in forms
    assert any(f.get("enum") == ["none", False] for f in forms)
    assert any(f.get("required") == ["none"] for f in forms)


def test_a_later_rollback_of_a_finished_run_names_what_it_cannot_undo(project: Project, t: Path) -> None:
    project.runbook("rb", NO_UNDO.format(declare="").replace("  - name: Boom\n    fail: {msg: injected}\n", ""))
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 0, res.output
    res = project.cli("rollback", "rb", "--run", doc["run_id"], "--yes", "--output", "json")
    assert res.exit_code == 4, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "rollback_failed"
    assert any("'Warm the cache'" in p for p in out["hosts"]["localhost"]["rollback_problems"])
    assert (t / "app.conf").read_text() == "old\n"


def test_a_command_step_and_a_mutating_request_are_named_too(project: Project) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Restart
            command: {argv: [systemctl, restart, app]}
          - name: Tell the deploy API
            http.request: {url: "http://127.0.0.1:1/deploy", method: POST}
          - name: Ask only
            http.request: {url: "http://127.0.0.1:1/health"}
          - name: Notify
            notify.webhook: {url: "http://127.0.0.1:1/hook", text: hi}
        """,
    )
    res = project.cli("validate", "rb")
    assert res.exit_code == 0, res.output
    warned = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert len(warned) == 2
    assert "'Restart'" in warned[0] and "'Tell the deploy API'" in warned[1]


# --------------------------------------------------------------------- verified after undo


def test_an_undo_step_that_restores_something_else_is_exit_4_naming_the_digest(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNBOOK_AUDIT")
    monkeypatch.setenv("HOME", str(t.parent / "home"))
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Config
            copy: {content: "new\\n", dest: "{{ t }}/app.conf", mode: "0640"}
            undo:
              shell: "echo almost-old > {{ t }}/app.conf"
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 4, res.output
    host = doc["hosts"]["localhost"]
    verify = next(s for s in host["steps"] if s["name"] == "verify: Config")
    assert verify["outcome"] == "failed"
    import hashlib

    want = hashlib.sha256(b"old\n").hexdigest()[:16]
    found = hashlib.sha256(b"almost-old\n").hexdigest()[:16]
    assert f"{t}/app.conf: sha256 expected {want}…, found {found}…" in verify["msg"]
    assert host["rollback_problems"][0].startswith("localhost: step 'Config' (copy) is not as before the run")
    assert "sha256 expected" in doc["message"]
    records = audit_records(project, doc)
    (check,) = [r for r in records if r["event"] == "rollback.verify"]
    assert check["outcome"] == "failed" and f"sha256 expected {want}…" in check["data"]["msg"]
    (t / "app.conf").write_text("old\n")  # as before the first run (its undo left "almost-old")
    res = project.exec("rb", "-e", f"t={t}")  # the console says it too
    assert res.exit_code == 4 and "NOT AS BEFORE" in res.stdout and "sha256 expected" in res.stdout


def test_a_later_undo_that_tampers_with_a_restored_file_is_caught(project: Project, t: Path) -> None:
    """The check runs once everything is undone: an earlier step's undo that changes the file again
    (after the copy's undo restored it) leaves a host that is not as before the run."""
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Prepare
            shell: "true"
            undo:
              shell: "chmod 0606 {{ t }}/app.conf"
          - name: Config
            copy: {content: "new\\n", dest: "{{ t }}/app.conf"}
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 4, res.output
    problems = doc["hosts"]["localhost"]["rollback_problems"]
    assert problems == [
        f"localhost: step 'Config' (copy) is not as before the run: {t}/app.conf: mode expected 0640, found 0606"
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_an_owner_that_differs_after_undo_is_named(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Own it
            file: {path: "{{ t }}/app.conf", mode: "0600"}
            undo:
              shell: "chmod 0640 {{ t }}/app.conf; chown 65534:65534 {{ t }}/app.conf"
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 4, res.output
    assert "owner expected 0:0, found 65534:65534" in doc["hosts"]["localhost"]["rollback_problems"][0]


def test_a_file_the_run_created_and_something_put_back_is_named(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Marker
            shell: "true"
            undo:
              shell: "echo again > {{ t }}/new.txt"
          - name: New file
            copy: {content: "x\\n", dest: "{{ t }}/new.txt"}
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 4, res.output
    assert (
        f"{t}/new.txt: expected absent (it did not exist before), found a file"
        in doc["hosts"]["localhost"]["rollback_problems"][0]
    )


def test_a_faithful_rollback_is_checked_and_says_so(project: Project, t: Path) -> None:
    (t / "link").symlink_to("app.conf")
    (t / "dir").mkdir()
    (t / "dir" / "f").write_text("f\n")
    before = tree_state(t)
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - {name: One, copy: {content: "1\\n", dest: "{{ t }}/app.conf", mode: "0600"}}
          - {name: Two, copy: {content: "2\\n", dest: "{{ t }}/app.conf"}}
          - {name: Link, file: {path: "{{ t }}/link", src: "{{ t }}/dir", state: link, force: true}}
          - {name: Gone, file: {path: "{{ t }}/dir", state: absent}}
          - {name: Made, file: {path: "{{ t }}/made/deep", state: directory}}
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}", "-e", f"runbook_backup_dir={t.parent / 'bk'}")
    assert res.exit_code == 1, res.output
    assert tree_state(t) == before
    undo = {s["name"]: s for s in doc["hosts"]["localhost"]["steps"] if s["phase"] == "rollback"}
    assert f"checked: {t}/app.conf as before" in undo["undo: One"]["msg"]  # the oldest snapshot of it
    assert "checked" not in undo["undo: Two"]["msg"]  # one check per path
    assert "checked: " in undo["undo: Link"]["msg"] and "checked: " in undo["undo: Gone"]["msg"]


@pytest.mark.parametrize("rollback", ["none", "[{debug: {msg: undo by hand}}]"])
def test_no_warning_when_steps_are_not_undone_one_by_one(project: Project, t: Path, rollback: str) -> None:
    project.runbook("rb", f"rollback: {rollback}\n" + NO_UNDO.format(declare=""))
    res = project.cli("validate", "rb", "-e", f"t={t}")
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output
    assert "CANNOT BE UNDONE" not in project.cli("show", "rb").stdout


def test_every_difference_is_named_not_only_the_first(project: Project, t: Path) -> None:
    (t / "b.conf").write_text("b\n")
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Tamper
            shell: "true"
            undo: {shell: "echo x > {{ t }}/b.conf"}
          - {name: A, copy: {content: "new\\n", dest: "{{ t }}/app.conf"}}
          - {name: B, copy: {content: "new\\n", dest: "{{ t }}/b.conf"}}
          - name: Unknown
            shell: "echo > {{ t }}/c"
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 4, res.output
    problems = doc["hosts"]["localhost"]["rollback_problems"]
    assert len(problems) == 2
    assert "step 'Unknown': NOT undone" in problems[0]
    assert f"step 'B' (copy) is not as before the run: {t}/b.conf: sha256 expected" in problems[1]
    assert (t / "app.conf").read_text() == "old\n"


@pytest.mark.parametrize("undo, code", [("", 1), ("echo other > {{ t }}/app.conf", 4)])
def test_a_large_file_kept_as_a_backup_on_the_host_is_checked_too(
    project: Project, t: Path, monkeypatch: pytest.MonkeyPatch, undo: str, code: int
) -> None:
    from runbook.kinds import filestate

    monkeypatch.setattr(filestate, "INLINE_MAX", 2)  # "old\n" is larger: copied to a backup file
    step_undo = f'\n    undo: {{shell: "{undo}"}}' if undo else ""
    project.runbook(
        "rb",
        f"""
hosts: localhost
steps:
  - name: Config
    copy: {{content: "new\\n", dest: "{{{{ t }}}}/app.conf"}}{step_undo}
  - fail: {{msg: injected}}
""",
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}", "-e", f"runbook_backup_dir={t.parent / 'bk'}")
    assert res.exit_code == code, res.output
    assert any((t.parent / "bk").iterdir())  # the snapshot's content is a backup on the host
    if code == 4:
        assert "sha256 expected" in doc["hosts"]["localhost"]["rollback_problems"][0]
    else:
        assert (t / "app.conf").read_text() == "old\n"


def test_undo_none_on_a_kind_that_could_undo_leaves_the_change(project: Project, t: Path) -> None:
    project.runbook(
        "rb",
        """
        hosts: localhost
        steps:
          - name: Keep this config
            copy: {content: "kept\\n", dest: "{{ t }}/app.conf"}
            undo: {none: "the new config is compatible with the old release"}
          - fail: {msg: injected}
        """,
    )
    res, doc = project.exec_json("rb", "-e", f"t={t}")
    assert res.exit_code == 1, res.output
    assert (t / "app.conf").read_text() == "kept\n"
    undo = next(s for s in doc["hosts"]["localhost"]["steps"] if s["phase"] == "rollback")
    assert undo["outcome"] == "skipped"
    assert undo["msg"] == "needs no undo: the new config is compatible with the old release"
