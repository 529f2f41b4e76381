"""ansible.cfg and the ANSIBLE_* environment, read as ansible-core 2.19 reads them (the settings runbook
honours: inventory, remote_user, private_key_file, forks, become*, vault_password_file,
vault_identity_list, ask_vault_pass, host_key_checking).

The file is the first of ``$ANSIBLE_CONFIG`` (a file, or a directory holding ansible.cfg),
``./ansible.cfg`` -- skipped, with a warning, when the current directory is world-writable --,
``~/.ansible.cfg`` and ``/etc/ansible/ansible.cfg``. An environment variable wins over the file.
Relative paths in the file are relative to the file's directory; from the environment, to the
current directory (Ansible's `resolve_path`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import Location, ValidationError

_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f", ""})

# name -> (section, key, environment variable, type)
SETTINGS: dict[str, tuple[str, str, str, str]] = {
    "inventory": ("defaults", "inventory", "ANSIBLE_INVENTORY", "pathlist"),
    "remote_user": ("defaults", "remote_user", "ANSIBLE_REMOTE_USER", "str"),
    "private_key_file": ("defaults", "private_key_file", "ANSIBLE_PRIVATE_KEY_FILE", "path"),
    "forks": ("defaults", "forks", "ANSIBLE_FORKS", "int"),
    "become": ("privilege_escalation", "become", "ANSIBLE_BECOME", "bool"),
    "become_method": ("privilege_escalation", "become_method", "ANSIBLE_BECOME_METHOD", "str"),
    "become_user": ("privilege_escalation", "become_user", "ANSIBLE_BECOME_USER", "str"),
    "vault_password_file": ("defaults", "vault_password_file", "ANSIBLE_VAULT_PASSWORD_FILE", "path"),
    "vault_identity_list": ("defaults", "vault_identity_list", "ANSIBLE_VAULT_IDENTITY_LIST", "list"),
    "ask_vault_pass": ("defaults", "ask_vault_pass", "ANSIBLE_ASK_VAULT_PASS", "bool"),
    "host_key_checking": ("defaults", "host_key_checking", "ANSIBLE_HOST_KEY_CHECKING", "bool"),
}

# a config setting -> the inventory variable it is the default of (lowest precedence)
HOST_DEFAULTS = {
    "remote_user": "ansible_user",
    "private_key_file": "ansible_ssh_private_key_file",
    "become": "ansible_become",
    "become_method": "ansible_become_method",
    "become_user": "ansible_become_user",
}


@dataclass(frozen=True)
class AnsibleConfig:
    path: str | None = None  # the ansible.cfg read (None: none found)
    values: dict[str, Any] = field(default_factory=dict)  # set settings only (file or environment)
    origins: dict[str, str] = field(default_factory=dict)  # setting -> "env: NAME" or "PATH: [section] key"
    warnings: tuple[str, ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def inventory(self) -> list[str]:
        return list(self.values.get("inventory") or [])

    @property
    def forks(self) -> int | None:
        return self.values.get("forks")

    @property
    def host_key_checking(self) -> bool:
        return bool(self.values.get("host_key_checking", True))

    def host_defaults(self) -> dict[str, Any]:
        """Inventory variables the settings supply a default for (remote_user -> ansible_user, ...)."""
        return {var: self.values[name] for name, var in HOST_DEFAULTS.items() if name in self.values}


_UNSET = object()


def find_config_file(warnings: list[str] | None = None) -> str | None:
    """The ansible.cfg Ansible would read (ansible.config.manager.find_ini_config_file)."""
    warnings = warnings if warnings is not None else []
    candidates: list[str] = []
    from_env: str | object = os.environ.get("ANSIBLE_CONFIG", _UNSET)
    if isinstance(from_env, str):
        from_env = _unfrack(from_env)
        if os.path.isdir(from_env):
            from_env = os.path.join(from_env, "ansible.cfg")
        candidates.append(from_env)
    skipped_public = False
    try:
        cwd = os.getcwd()
        cwd_cfg = os.path.join(cwd, "ansible.cfg")
        if os.stat(cwd).st_mode & stat.S_IWOTH:
            skipped_public = os.path.exists(cwd_cfg)
        else:
            candidates.append(cwd_cfg)
    except OSError:
        cwd = ""
    candidates.append(_unfrack("~/.ansible.cfg"))
    candidates.append("/etc/ansible/ansible.cfg")
    found = next((p for p in candidates if os.path.exists(p) and os.access(p, os.R_OK)), None)
    if skipped_public and found != from_env:
        warnings.append(
            f"Ansible is being run in a world writable directory ({cwd}), ignoring it as an ansible.cfg "
            "source (as Ansible does): make the directory not world-writable (chmod o-w) or point "
            "ANSIBLE_CONFIG at the file"
        )
    return found


def load_config() -> AnsibleConfig:
    """The settings from ansible.cfg and the environment (ValidationError on a malformed value)."""
    warnings: list[str] = []
    path = find_config_file(warnings)
    parser = None
    if path is not None:
        import configparser  # only when there is a file to read (~1.7 ms: most runs have none)

        parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
        try:
            with open(path, encoding="utf-8") as fh:
                parser.read_file(fh, source=path)
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ValidationError(
                f"cannot read ansible.cfg: {exc}", location=Location(path), hint="fix the file (INI format)"
            ) from None
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, (section, key, env, kind) in SETTINGS.items():
        if env in os.environ:
            raw, basedir, origin = os.environ[env], None, f"env: {env}"
        elif parser is not None and parser.has_option(section, key):  # (a file was read)
            assert path is not None
            raw, basedir, origin = parser.get(section, key), os.path.dirname(path), f"{path}: [{section}] {key}"
            raw = _unquote(raw) if kind == "str" else raw  # as Ansible: paths keep their quotes
        else:
            continue
        values[name] = _convert(raw, kind, basedir, origin, path)
        origins[name] = origin
    return AnsibleConfig(path=path, values=values, origins=origins, warnings=tuple(warnings))


def _convert(raw: str, kind: str, basedir: str | None, origin: str, path: str | None) -> Any:
    where = Location(path) if path and not origin.startswith("env:") else None
    if kind == "bool":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValidationError(f"{origin}: {raw!r} is not a boolean", location=where, hint="write True or False")
    if kind == "int":
        try:
            return int(raw.strip())
        except ValueError:
            raise ValidationError(f"{origin}: {raw!r} is not an integer", location=where) from None
    if kind == "list":
        return [_unquote(x.strip()) for x in raw.split(",") if x.strip()]
    if kind == "path":
        return _unfrack(raw, basedir)
    if kind == "pathlist":
        return [_unfrack(x.strip(), basedir) for x in raw.split(",") if x.strip()]
    return raw


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _unfrack(path: str, basedir: str | None = None) -> str:
    """ansible.utils.path.unfrackpath(follow=False): ~ and $VARS expanded, absolute, normalised."""
    path = path.replace("{{CWD}}", os.getcwd())
    expanded = os.path.expanduser(os.path.expandvars(path))
    if not os.path.isabs(expanded):
        expanded = os.path.join(basedir or os.getcwd(), expanded)
    return os.path.normpath(expanded)
