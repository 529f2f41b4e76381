"""What runbook hands ansible-runner, and how it keeps secrets out of the private data directory.

- The private data directory is a fresh 0700 directory under ``$TMPDIR/runbook-ansible-<uid>/``,
  named after this process (``<pid>-…``) and removed when the step ends; one left by a process that
  was SIGKILLed is removed the next time a process runs an Ansible step (``clean_stale``).
- Nothing goes through ansible-runner's keyword arguments that it would write to ``env/`` (its
  ``dump_artifacts``): runbook builds its RunnerConfig itself. Extra variables and inventories are
  YAML files written by runbook, every string tagged ``!unsafe`` (Ansible templates any string
  holding ``{{``, unsandboxed, on this machine) and every secret an inline ``!vault`` value,
  encrypted with a password made for this one process run. That password reaches ansible-playbook
  through its ``--ask-vault-pass`` prompt, answered over the pty by ansible-runner (in memory).
- ``artifacts/<id>/command`` holds the command line and the environment: the command line carries
  no value, and credential-named variables of runbook's own environment are not passed on.
- Events are not written to ``job_events/`` (the event handler says so) and output is not written to
  ``stdout``: runbook keeps what it needs in memory, masked.
- Colour is off (ANSIBLE_NOCOLOR, ANSIBLE_FORCE_COLOR=0) and host-key checking is on; SSH master
  connections are this process's own (control_dir), so one made by another run, with another
  known_hosts, is never reused (that would skip the host-key check). Pipelining is on unless the
  environment says otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets as pysecrets
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

VAULT_PROMPT = r"^Vault password:\s*?$"
ENV = {
    "ANSIBLE_HOST_KEY_CHECKING": "True",  # never off (ansible-runner's own default is False)
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_FORCE_COLOR": "0",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_SYSTEM_WARNINGS": "False",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
    "ANSIBLE_LOCALHOST_WARNING": "False",
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
}
# names of runbook's own environment that look like credentials: not passed to Ansible (they would
# be written to artifacts/<id>/command); the step's `environment`, if any, is the way to pass one
_CREDENTIAL_ENV = re.compile(r"pass|token|secret|credential|(^|_)key($|_)|api_?key|auth|cookie", re.I)


def root() -> Path:
    return Path(tempfile.gettempdir()) / f"runbook-ansible-{os.getuid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(base: Path | None = None) -> list[Path]:
    """Remove the private data directories of processes that are gone (SIGKILLed mid-step)."""
    base = base or root()
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid, _, _ = entry.name.partition("-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
    """A fresh 0700 private data directory, removed afterwards (stale ones are cleaned first)."""
    base = root()
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid() or base.is_symlink():
        raise RuntimeError(f"{base} is not this user's directory; refusing to use it")
    os.chmod(base, 0o700)
    clean_stale(base)  # a few directory entries: cheap next to starting ansible-playbook
    pdd = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
    try:
        for sub in ("env", "inventory", "project", "artifacts"):
            (pdd / sub).mkdir(mode=0o700)
        yield pdd
    finally:
        shutil.rmtree(pdd, ignore_errors=True)


CONTROL_PERSIST = 30
_control: dict[str, Path] = {}


def control_dir() -> Path:
    """Where this process's SSH master connections live (ControlPath): shared by the Ansible steps
    of one run — the same hosts, the same known_hosts — and by nobody else: a master another run
    left in ~/.ansible/cp, made with another known_hosts, is never reused (reusing one skips the
    host-key check). Named ``<pid>-cp`` under root(): stale ones go with clean_stale; at exit the
    masters are told to stop and the directory is removed."""
    if "dir" not in _control:
        import atexit

        d = root() / f"{os.getpid()}-cp"
        d.mkdir(mode=0o700, exist_ok=True)
        _control["dir"] = d
        atexit.register(close_masters)
    return _control["dir"]


def close_masters() -> None:
    import subprocess

    d = _control.pop("dir", None)
    if d is None:
        return
    for sock in d.glob("*/*") if d.exists() else ():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "runbook-master"],
                           capture_output=True, timeout=5, stdin=subprocess.DEVNULL)  # fmt: skip
    shutil.rmtree(d, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


class Vault:
    """Inline ``!vault`` values for one ansible-playbook process (its password lives in memory)."""

    def __init__(self) -> None:
        self.password = pysecrets.token_urlsafe(32)
        self._lib: Any = None
        self.used = False

    def encrypt(self, text: str) -> str:
        if self._lib is None:
            from ansible.constants import DEFAULT_VAULT_ID_MATCH
            from ansible.parsing.vault import VaultLib, VaultSecret

            self._lib = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(self.password.encode()))])
        self.used = True
        return self._lib.encrypt(text).decode()


def to_yaml(value: Any, is_secret: Callable[[str], bool], vault: Vault) -> str:
    """``value`` as YAML for Ansible: strings that hold a ``{`` or ``#`` ``!unsafe``, secret strings ``!vault``
    (encrypted), every other string a plain (quoted where YAML needs it) string."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
        if is_secret(s):
            return dumper.represent_scalar("!vault", vault.encrypt(s), style="|")
        if "{" not in s and "#" not in s:  # nothing Ansible could template (its delimiters start with
            # "{"; a `#jinja2:` first line sets others): a plain string, since Ansible 2.19 resolves an
            # `!unsafe '0644'` scalar as YAML 1.1 would an untagged one: 420, '2.0' a float, 'yes' true
            return dumper.represent_str(s)
        return dumper.represent_scalar("!unsafe", s)

    def mapping(dumper: yaml.SafeDumper, m: dict[str, Any]) -> yaml.Node:
        pairs = [(dumper.represent_scalar("tag:yaml.org,2002:str", str(k)), dumper.represent_data(v)) for k, v in m.items()]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs)

    Dumper.add_representer(str, text)
    Dumper.add_representer(dict, mapping)
    plain = json.loads(json.dumps(value, default=str))
    return yaml.dump(plain, Dumper=Dumper, default_flow_style=False, allow_unicode=True, width=1 << 16)


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the ansible-playbook process (credential-named variables dropped)."""
    env = {k: v for k, v in os.environ.items() if passed_on(k)}
    env.update(extra or {})
    env.update(ENV)
    return env


def passed_on(name: str) -> bool:
    """Is this variable of runbook's environment passed to ansible-playbook? (Not a credential.)"""
    return not _CREDENTIAL_ENV.search(name) or name.upper().endswith(("_FILE", "_PATH", "_CHECKING"))


def run(
    pdd: Path,
    *,
    playbook: str,
    inventory: list[str],
    cmdline: list[str],
    vault: Vault | None,
    on_event: Callable[[dict[str, Any]], None],
    cancel: Callable[[], bool],
    limit: str | None = None,
    forks: int | None = None,
    timeout: float | None = None,
    tags: str | None = None,
    skip_tags: str | None = None,
    envvars: Mapping[str, str] | None = None,
    control_key: str = "",
) -> Any:
    """Run ansible-playbook through ansible-runner without its ``dump_artifacts`` (see above)."""
    from ansible_runner.config.runner import RunnerConfig
    from ansible_runner.runner import Runner

    args = list(cmdline)
    passwords: dict[str, str] = {}
    if vault is not None and vault.used:
        args.append("--ask-vault-pass")
        passwords[VAULT_PROMPT] = vault.password
    # the run's own vault ids (--vault-id, ansible.cfg ...): one `--vault-id LABEL@prompt` each, the
    # password typed at Ansible's prompt, as AWX does (runbook.model.vault.runner_vault)
    from runbook.model.vault import runner_vault

    ids, answers = runner_vault()
    args += ids
    passwords.update(answers)
    rc = RunnerConfig(
        private_data_dir=str(pdd),
        playbook=playbook,
        inventory=inventory or None,
        limit=limit,
        forks=forks,
        tags=tags,
        skip_tags=skip_tags,
        cmdline=shlex.join(args) or None,
        passwords=passwords or None,
        envvars=environment(envvars),
        quiet=True,
        suppress_output_file=True,
        timeout=timeout,
        json_mode=False,
    )
    import hashlib

    # masters are shared only by runs that check host keys the same way (known_hosts, ssh options)
    cp = control_dir() / hashlib.sha256(control_key.encode()).hexdigest()[:12]
    cp.mkdir(mode=0o700, exist_ok=True)
    rc.envvars = {**(rc.envvars or {}), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp)}
    if "ANSIBLE_SSH_ARGS" not in os.environ:
        rc.envvars["ANSIBLE_SSH_ARGS"] = f"-C -o ControlMaster=auto -o ControlPersist={CONTROL_PERSIST}s"
    if "ANSIBLE_PIPELINING" not in os.environ:  # one SSH round trip per module, not five
        rc.envvars["ANSIBLE_PIPELINING"] = "True"
    rc.prepare()
    rc.env = {k: v for k, v in rc.env.items() if passed_on(k) or k in (envvars or {})}
    rc.env.update(ENV)

    def handler(ev: dict[str, Any]) -> bool:
        on_event(ev)
        return False  # never written to job_events/

    runner = Runner(rc, event_handler=handler, cancel_callback=cancel)
    runner.run()
    return runner
