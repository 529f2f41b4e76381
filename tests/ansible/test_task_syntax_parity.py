"""block/rescue/always, handlers + notify + meta: flush_handlers, include_tasks, with_items and
with_dict: the same play file run by the real ansible-playbook (-c local) and by `runbook exec`,
each task appending its name to a log; the order of the executed tasks must be the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.core.conftest import Project

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core not installed")


def _ansible(play: Path, log: Path) -> tuple[int, list[str]]:
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(play), "-e", f"log={log}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, env=env, timeout=300, cwd=play.parent,
    )  # fmt: skip
    return proc.returncode, log.read_text().split() if log.exists() else []


def _runbook(project: Project, play: Path, log: Path) -> tuple[int, list[str], str]:
    res = project.cli("exec", str(play), "-i", str(project.root / "inv"), "-e", f"log={log}", "--yes")
    return res.exit_code, log.read_text().split() if log.exists() else [], res.output


def _both(project: Project, tmp_path: Path, play_text: str, files: dict[str, str] | None = None) -> tuple:
    play = tmp_path / "play" / "play.yml"
    play.parent.mkdir(exist_ok=True)
    play.write_text(textwrap.dedent(play_text).lstrip("\n"))
    for name, text in (files or {}).items():
        (play.parent / name).parent.mkdir(parents=True, exist_ok=True)
        (play.parent / name).write_text(textwrap.dedent(text).lstrip("\n"))
    a_rc, a_log = _ansible(play, tmp_path / "ansible.log")
    r_rc, r_log, out = _runbook(project, play, tmp_path / "runbook.log")
    return a_rc, a_log, r_rc, r_log, out


def mark(name: str) -> str:
    return f"shell: echo {name} >> {{{{ log | quote }}}}"


BLOCK_RESCUE_HANDLERS = f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: t1
      {mark("t1")}
      notify: h_reload
    - block:
        - name: b1
          {mark("b1")}
          notify: h_restart
        - name: b2 fails
          shell: echo b2 >> {{{{ log | quote }}}}; exit 3
        - name: b3 never
          {mark("b3")}
      rescue:
        - name: r1
          shell: echo r1-{{{{ ansible_failed_task.name | replace(' ', '_') }}}}-{{{{ ansible_failed_result.rc }}}} >> {{{{ log | quote }}}}
          notify: [h_reload, h_topic]
      always:
        - name: a1
          {mark("a1")}
    - name: skipped block
      when: false
      block:
        - name: s1
          {mark("s1")}
    - block:
        - name: nested
          when: "'x' == 'x'"
          block:
            - name: n1
              {mark("n1")}
              changed_when: false
              notify: h_restart
            - name: n2 items
              shell: echo n2-{{{{ item }}}} >> {{{{ log | quote }}}}
              with_items: [[a, b], c]
    - name: dict loop
      shell: echo d-{{{{ item.key }}}}={{{{ item.value }}}} >> {{{{ log | quote }}}}
      with_dict: {{k1: v1}}
    - meta: flush_handlers
    - name: after flush
      {mark("after_flush")}
      notify: h_restart
  handlers:
    - name: h_restart
      {mark("h_restart")}
    - name: h_reload
      {mark("h_reload")}
    - name: h_listener
      {mark("h_listener")}
      listen: h_topic
"""


def test_block_rescue_always_and_handlers_run_in_ansibles_order(project: Project, tmp_path: Path) -> None:
    a_rc, a_log, r_rc, r_log, out = _both(project, tmp_path, BLOCK_RESCUE_HANDLERS)
    assert a_rc == 0
    assert a_log[:4] == ["t1", "b1", "b2", "r1-b2_fails-3"]  # the reference itself, as documented
    assert r_log == a_log, out
    assert r_rc == 0, out  # a rescued failure is not a run failure


UNRESCUED = f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: t1
      {mark("t1")}
      notify: h1
    - block:
        - name: b1 fails
          shell: echo b1 >> {{{{ log | quote }}}}; exit 1
      rescue:
        - name: r1 fails too
          shell: echo r1 >> {{{{ log | quote }}}}; exit 1
      always:
        - name: a1
          {mark("a1")}
    - name: never
      {mark("never")}
  handlers:
    - name: h1
      {mark("h1")}
"""


def test_unrescued_failure_runs_always_then_fails_the_host(project: Project, tmp_path: Path) -> None:
    a_rc, a_log, r_rc, r_log, out = _both(project, tmp_path, UNRESCUED)
    assert a_rc != 0 and a_log == ["t1", "b1", "r1", "a1"]  # no handler on a failed host
    assert r_log == a_log, out
    assert r_rc != 0, out  # the host failed: runbook's rollback ran (exit 1 or 4)
    assert "rollback" in out.lower()


INCLUDES = f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: first
      {mark("first")}
    - include_tasks: tasks/part.yml
      vars:
        who: inc
    - import_tasks: tasks/skip.yml
      when: false
"""


def test_include_and_import_tasks_relative_to_the_including_file(project: Project, tmp_path: Path) -> None:
    files = {
        "tasks/part.yml": """
            - name: part
              shell: echo part-{{ who }} >> {{ log | quote }}
            - include_tasks: inner.yml
            """,
        "tasks/inner.yml": f"""
            - name: inner
              {mark("inner")}
            """,
        "tasks/skip.yml": f"""
            - name: skipped
              {mark("skipped")}
            """,
    }
    a_rc, a_log, r_rc, r_log, out = _both(project, tmp_path, INCLUDES, files)
    assert a_rc == 0 and a_log == ["first", "part-inc", "inner"]
    assert r_log == a_log, out
    assert r_rc == 0, out


def test_the_play_as_a_runbook_matches_runbook_schema() -> None:
    import jsonschema
    import yaml

    from runbook.kinds.schema import json_schema

    doc = yaml.safe_load(textwrap.dedent(BLOCK_RESCUE_HANDLERS))[0]
    doc["steps"] = doc.pop("tasks")  # the play keys runbook reads as its own
    doc.pop("gather_facts")
    jsonschema.validate(doc, json_schema())
