"""Runbook's own modules under their ansible.builtin names (and Ansible's argument names): the
native path (no ansible-playbook process), and a clear error for what the mapping does not take."""

from __future__ import annotations

import http.server
import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runbook.cli.main import cli
from runbook.execute.clients import ansible as ansible_client
from runbook.kinds import base as kinds


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "app.conf").write_text("port=80\n")
    return tmp_path


@pytest.fixture
def web() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(201 if json.loads(body or b"{}").get("ok") else 400)
            self.end_headers()
            self.wfile.write(b'{"created": true}')

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def run(project: Path, body: str, *args: str) -> tuple[int, dict[str, Any]]:
    (project / "rb.yml").write_text(textwrap.dedent(body))
    before = ansible_client.INVOCATIONS["count"]
    res = CliRunner().invoke(cli, [*args, "rb.yml", "-i", "inv", "--output", "json", "--yes"])
    if args[0] != "plan":
        assert ansible_client.INVOCATIONS["count"] == before  # native: no ansible-playbook
    try:
        return res.exit_code, json.loads(res.stdout)
    except json.JSONDecodeError:
        pytest.fail(res.output)


def test_builtin_names_run_natively_with_ansibles_arguments(project: Path, web: str) -> None:
    code, doc = run(
        project,
        f"""\
        name: names
        hosts: all
        steps:
          - ansible.builtin.copy: {{src: app.conf, dest: "{project}/out/app.conf", mode: "0600"}}
          - ansible.builtin.file: {{dest: "{project}/out/dir", state: directory}}
          - ansible.builtin.command: {{argv: [cat, "{project}/out/app.conf"]}}
            register: cat
          - ansible.builtin.shell: echo "{{{{ cat.stdout }}}}" > {project}/out/echo
          - ansible.builtin.uri: {{url: "{web}/things", method: POST, body_format: json, body: {{ok: true}}, status_code: 201}}
            register: made
          - ansible.builtin.debug: {{msg: "{{{{ made.status }}}}"}}
          - ansible.builtin.pause: {{seconds: 0}}
          - ansible.builtin.wait_for: {{path: "{project}/out/echo", timeout: 5}}
          - ansible.builtin.set_fact: {{seen: "{{{{ cat.stdout }}}}"}}
          - ansible.builtin.assert: {{that: ["{{{{ seen == 'port=80' }}}}"]}}
        """,
        "exec",
    )
    assert code == 0, doc
    out = project / "out"
    assert (out / "app.conf").read_text() == "port=80\n" and (out / "app.conf").stat().st_mode & 0o777 == 0o600
    assert (out / "dir").is_dir()
    assert (out / "echo").read_text() == "port=80\n"
    steps = doc["hosts"]["localhost"]["steps"]
    assert steps[5]["msg"] == "201"
    assert all(s["outcome"] in ("ok", "changed") for s in steps)


def test_an_argument_the_mapping_does_not_take_is_named(project: Path) -> None:
    (project / "rb.yml").write_text(
        f"name: names\nhosts: all\nsteps:\n  - ansible.builtin.copy: {{src: app.conf, dest: {project}/x, remote_src: true}}\n"
    )
    res = CliRunner().invoke(cli, ["validate", "rb.yml", "-i", "inv"])
    assert res.exit_code == 2
    text = res.output
    assert "remote_src" in text and "not supported" in text and "ansible.legacy.copy" in text


def test_aliases_are_kinds_with_the_native_traits() -> None:
    copy = kinds.get("ansible.builtin.copy")
    assert copy is not None and copy.can_undo and kinds.native_name("ansible.builtin.copy") == "copy"
    uri = kinds.get("uri")
    assert uri is not None
    assert uri.normalize({"url": "http://x", "status_code": [200, 201]}) == {
        "url": "http://x", "expect": {"status": [200, 201]},
    }  # fmt: skip
    assert not uri.mutates({"url": "http://x"})  # a GET
    assert kinds.get("ansible.builtin.lineinfile").fqcn == "ansible.builtin.lineinfile"  # type: ignore[union-attr]
    assert kinds.get("ansible.builtin.include_tasks") is None  # play structure, not a module
    assert kinds.get("nosuch.collection.module") is None


@pytest.mark.slow
def test_an_ansible_module_step_cannot_be_undone_unless_it_says_how(project: Path) -> None:
    _code, doc = run(
        project,
        """\
        name: gaps
        hosts: all
        steps:
          - ansible.builtin.lineinfile: {path: /tmp/runbook-nowhere/x, line: y}
          - ansible.builtin.lineinfile: {path: /tmp/runbook-nowhere/x, line: y}
            undo: {ansible.builtin.lineinfile: {path: /tmp/runbook-nowhere/x, line: y, state: absent}}
        """,
        "plan",
    )
    gaps = doc["cannot_undo"]
    assert [g["key"] for g in gaps] == ["steps[0]"]
    assert "has no undo" in gaps[0]["why"]


def test_doc_knows_ansible_names() -> None:
    res = CliRunner().invoke(cli, ["doc", "ansible.builtin.lineinfile"])
    assert res.exit_code == 0 and "ansible-doc ansible.builtin.lineinfile" in res.output
    res = CliRunner().invoke(cli, ["doc", "ansible.builtin.copy"])
    assert res.exit_code == 0 and "runbook's native copy" in res.output and "dest" in res.output
