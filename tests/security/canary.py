"""The secret canary: one unique random value per secret origin, a project that uses all of them, and
the artefacts a run leaves (console, JSON, JUnit, audit, state, temp files, process command lines),
searched for every canary.

Origins: an inline ``!vault`` string, a vault-encrypted whole group_vars file (a nested value, and
values derived from it by templating), a vault-encrypted host_vars file, a vault-encrypted
vars_files file, a vault-encrypted ``-e @file``, the runbook's ``secrets:`` list, ``--secret NAME``
on the command line, URL userinfo of an http step, Authorization / Cookie / X-API-Key / *-Token
headers echoed back by a real local HTTP server, a DSN password, and variables named
*PASSWORD* / *TOKEN*.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ansible.parsing.vault import VaultLib, VaultSecret

REPO = Path(__file__).resolve().parents[2]
VAULT_PASSWORD = "canary-vault-password"

ORIGINS = (
    "inline_vault",
    "vault_group_vars",
    "vault_group_vars_nested",
    "derived_url",
    "derived_filter",
    "vault_host_vars",
    "vault_vars_file",
    "vault_extra_file",
    "runbook_secrets",
    "cli_secret",
    "url_userinfo",
    "url_userinfo_basic",
    "header_authorization",
    "header_cookie",
    "header_api_key",
    "header_token",
    "dsn_password",
    "name_password",
    "name_token",
)


def new_canaries() -> dict[str, str]:
    """A unique value per origin; the derived ones are what the runbook computes from them."""
    c = {o: f"CANARY{secrets.token_hex(6)}" for o in ORIGINS}
    c["derived_url"] = f"postgres://app:{c['vault_group_vars']}@db.internal/app"
    c["derived_filter"] = base64.b64encode(c["vault_group_vars"].encode()).decode()
    c["url_userinfo_basic"] = base64.b64encode(f"svc:{c['url_userinfo']}".encode()).decode()
    return c


def encrypt(text: str) -> str:
    """ansible-vault encrypt, with ansible-core's own library."""
    return VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt(text.encode()).decode()


def inline_vault(text: str, indent: int = 2) -> str:
    pad = " " * indent
    return "!vault |\n" + "".join(f"{pad}{line}\n" for line in encrypt(text).splitlines())


# ------------------------------------------------------------------------------------ HTTP echo
class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with its own headers (and body) in JSON, and a Set-Cookie echoing the
    request's Cookie: a server that reflects credentials back."""

    def log_message(self, *a: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        data = json.dumps({"headers": dict(self.headers), "body": body, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.headers.get("Cookie"):
            self.send_header("Set-Cookie", self.headers["Cookie"])
        self.end_headers()
        self.wfile.write(data)
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]

    do_GET = do_POST = _answer


@contextmanager
def echo_server() -> Iterator[tuple[int, list[dict[str, str]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ------------------------------------------------------------------------------------ the project
@dataclass
class CanaryProject:
    root: Path
    canary: dict[str, str]
    port: int
    host_line: str = "localhost ansible_connection=local"
    host: str = "localhost"
    extra_args: list[str] = field(default_factory=list)

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "ANSIBLE_"))}
        env.update(
            PYTHONPATH=str(REPO),
            RUNBOOK_VAULT_PASSWORD_FILE=str(self.root / "vault-password"),
            TMPDIR=str(self.tmpdir),
            HOME=str(self.root / "home"),
            COLUMNS="240",
            NO_COLOR="1",
        )
        return env

    def argv(self, command: str, runbook: str, *args: str) -> list[str]:
        base = [sys.executable, "-m", "runbook", command, runbook, "-i", str(self.root / "inventory")]
        base += ["--secret", "pwd", "-e", f"@{self.root / 'cli.yml'}", "-e", f"@{self.root / 'extra.vault.yml'}"]
        return base + self.extra_args + list(args)

    def run(self, command: str, runbook: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(command, runbook, *args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, command: str, runbook: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(command, runbook, *args),
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def make_project(root: Path, canary: dict[str, str], port: int, host_line: str | None = None,
                 host: str = "localhost") -> CanaryProject:  # fmt: skip
    c = canary
    p = CanaryProject(root, canary, port)
    if host_line is not None:
        p.host_line, p.host = host_line, host
    (root / "tmp").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "out").mkdir()
    (root / "vault-password").write_text(VAULT_PASSWORD + "\n")
    inv = root / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts").write_text(f"[app]\n{p.host_line}\n")
    (inv / "group_vars" / "all" / "vault.yml").write_text(
        encrypt(
            f"gv_db_pw: {c['vault_group_vars']}\n"
            f"gv_api:\n  nested:\n    - {{region: eu, value: {c['vault_group_vars_nested']}}}\n"
        )
    )
    (inv / "group_vars" / "all" / "inline.yml").write_text(
        "inline_pw: " + inline_vault(c["inline_vault"]) + "app_name: shop\n"
    )
    (inv / "host_vars" / f"{p.host}.yml").write_text(encrypt(f"hv_secret: {c['vault_host_vars']}\n"))
    (root / "playbooks").mkdir()
    (root / "playbooks" / "vars.vault.yml").write_text(encrypt(f"vf_secret: {c['vault_vars_file']}\n"))
    (root / "extra.vault.yml").write_text(encrypt(f"ex_secret: {c['vault_extra_file']}\n"))
    (root / "cli.yml").write_text(f"pwd: {c['cli_secret']}\n")  # a plain file: --secret pwd declares it
    write_runbooks(p)
    return p


# every secret, as the steps use them (templated; the literal ones written in the runbook)
ALL = (
    "{{ inline_pw }} {{ gv_db_pw }} {{ gv_api.nested[0].value }} {{ db_url }} {{ gv_b64 }} {{ hv_secret }} "
    "{{ vf_secret }} {{ ex_secret }} {{ bearer }} {{ pwd }} {{ db_dsn }} {{ service_password }} "
    "{{ deploy_token }}"
)


def write_runbooks(p: CanaryProject) -> None:
    c = p.canary
    common = f"""\
hosts: app
secrets: [bearer]
vars_files: [vars.vault.yml]
vars:
  bearer: {c['runbook_secrets']}
  service_password: {c['name_password']}
  deploy_token: {c['name_token']}
  db_dsn: "postgresql://app:{c['dsn_password']}@127.0.0.1:5432/app"
  db_url: "postgres://app:{{{{ gv_db_pw }}}}@db.internal/app"
  gv_b64: "{{{{ gv_db_pw | b64encode }}}}"
  conf: "{{{{ t }}}}/app.conf"
  runbook_backup_dir: "{p.root / 'host-backups'}"  # the host's copies of files it had
"""
    steps = f"""\
steps:
  - name: Write the config
    copy:
      content: "{ALL} failing={{{{ fail | default(false) }}}}\\n"
      dest: "{{{{ conf }}}}"
      mode: "0600"
  - name: Log in with the URL's userinfo
    http.get: "http://svc:{c['url_userinfo']}@127.0.0.1:{p.port}/login"
    register: login
  - name: Call the API
    http.get:
      url: "http://127.0.0.1:{p.port}/echo"
      headers:
        Authorization: "Bearer {c['header_authorization']}"
        Cookie: "session={c['header_cookie']}"
        X-API-Key: "{c['header_api_key']}"
        X-Deploy-Token: "{c['header_token']}"
    register: api
  - name: Show what the API saw
    shell: "echo {{{{ (api.json.headers, login.json.headers) | to_json | quote }}}}"
    changes: false
  - name: Use every secret while the step runs
    shell: "echo {ALL}; sleep {{{{ linger | default(0) }}}}"
    undo:
      shell: "echo undo {ALL}"
  - name: Use every secret in bash
    shell:
      cmd: "echo {ALL}; sleep {{{{ linger | default(0) }}}}"
      executable: /bin/bash
    changes: false
  - name: A private step
    shell: "echo private {ALL}"
    changes: false
    no_log: true
  - name: Fail with every secret in the message
    shell: "echo {ALL} >&2; exit 3"
    changes: false
    when: "{{{{ fail | default(false) | bool }}}}"
    ignore_errors: true
  - name: Judge a secret
    shell: "true"
    when: "{{{{ fail | default(false) | bool and (pwd is version('1', '>', strict=true)) }}}}"
    changes: false
"""
    (p.root / "playbooks" / "canary.yml").write_text(common + steps)
    # validate: every secret in a problem's message ("invalid version number '...'": a strict
    # version test fails with the value in its message; `bool` reads any text, as Ansible's does)
    names = ["inline_pw", "gv_db_pw", "gv_api.nested[0].value", "db_url", "gv_b64", "hv_secret",
             "vf_secret", "ex_secret", "bearer", "pwd", "db_dsn", "service_password", "deploy_token"]  # fmt: skip
    checks = "".join(
        f"  - name: Check {i}\n    shell: \"true\"\n    when: \"{{{{ {n} is version('1', '>', strict=true) }}}}\"\n"
        for i, n in enumerate(names)
    )
    (p.root / "playbooks" / "judge.yml").write_text(common + "steps:\n" + checks)


# ------------------------------------------------------------------------------------ artefacts
_B64 = re.compile(r'"(?:content_b64|[a-z_]*_b64)": "([A-Za-z0-9+/=]+)"')


def files_text(*dirs: Path) -> dict[str, str]:
    """Every file under the directories, as text; base64 values of the run state (snapshots'
    ``content_b64``) decoded too, so an encoded copy of a secret counts as a leak."""
    out: dict[str, str] = {}
    for d in dirs:
        if not d.exists():
            continue
        for f in d.rglob("*"):
            if f.is_file():
                text = f.read_bytes().decode("utf-8", "replace")
                decoded = [base64.b64decode(m).decode("utf-8", "replace") for m in _B64.findall(text)]
                out[str(f)] = "\n".join([text, *decoded])
    return out


def leaks(canary: dict[str, str], artefacts: dict[str, str]) -> list[str]:
    """'origin in artefact' for every canary found (empty: nothing leaked)."""
    return [f"{o} in {where}" for where, text in artefacts.items() for o, v in canary.items() if v in text]


def command_lines(exclude: set[int]) -> list[tuple[int, str]]:
    """Every process's argv (``/proc/*/cmdline``), NUL-separated arguments joined by spaces."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        out.append((int(entry.name), raw.replace(b"\0", b" ").decode("utf-8", "replace")))
    return out


def watch_command_lines(proc: subprocess.Popen, canary: dict[str, str], marker: str,
                        timeout: float = 60) -> tuple[bool, list[str]]:  # fmt: skip
    """While ``proc`` runs: poll every process's command line (the runbook CLI's own included) for
    the canaries. Returns (whether a process holding ``marker`` was seen, what leaked).
    ``ps -eo args`` reads the same files."""
    seen, found = False, set()
    deadline = time.monotonic() + timeout
    polls = 0
    while proc.poll() is None and time.monotonic() < deadline:
        polls += 1
        lines = command_lines({os.getpid()})
        if polls % 5 == 1:  # and ps itself, as an operator would look
            ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, timeout=30)
            lines += [(int(x.split(None, 1)[0]), x.split(None, 1)[-1]) for x in ps.stdout.splitlines() if x.strip()]
        for pid, line in lines:
            if marker in line:
                seen = True
            for origin, value in canary.items():
                if value in line:
                    found.add(f"{origin} in the command line of pid {pid}: {line[:200]}")
        time.sleep(0.05)
    return seen, sorted(found)
