"""Where and how to connect: an inventory HostSpec combined with ~/.ssh/config, the way OpenSSH would.

Inventory connection variables win over ssh_config (Ansible passes them as ``-o`` options); the
ssh_config ``Host`` block is looked up with ``ansible_host`` (or the inventory name), so an alias in
``~/.ssh/config`` works as ``ansible_host``. ProxyJump hops are resolved through ssh_config too.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import threading
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import TransportError
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.paramiko_import import enable_match_exec, load_paramiko, needs_match_exec

_CACHE: dict[str, tuple[float, Any]] = {}
_CACHE_LOCK = threading.Lock()
_MAX_HOPS = 8


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to authenticate to (the target, or a jump host on the way)."""

    alias: str  # the name that was looked up in ssh_config
    hostname: str
    port: int = 22
    user: str = ""
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    password: str | None = field(default=None, repr=False)
    jumps: tuple[Endpoint, ...] = ()  # hops in order; the first is reached directly
    proxy_command: str | None = None
    known_hosts_files: tuple[str, ...] = ()  # UserKnownHostsFile from ssh_config ([] = default)
    global_known_hosts_files: tuple[str, ...] = ("/etc/ssh/ssh_known_hosts",)
    host_key_alias: str | None = None
    strict_host_key_checking: str | None = None  # ssh_config StrictHostKeyChecking value
    connect_timeout: float | None = None
    server_alive_interval: float | None = None  # ServerAliveInterval (None: the transport's default)
    server_alive_count_max: int | None = None  # ServerAliveCountMax

    @property
    def display(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def jump_spec(self) -> str | None:
        """The hops as an ``ssh -J`` argument (for messages)."""
        if not self.jumps:
            return None
        return ",".join(f"{j.user}@{j.hostname}:{j.port}" for j in self.jumps)


def load_ssh_config(path: str | None) -> Any:
    """A paramiko SSHConfig for ``path`` (cached by mtime); an empty one if the file is missing."""
    paramiko = load_paramiko()

    if path is None:
        path = "~/.ssh/config"
    path = os.path.expanduser(path)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return paramiko.SSHConfig()
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
        if hit and hit[0] == mtime:
            return hit[1]
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if needs_match_exec(text):
            enable_match_exec()
        cfg = paramiko.SSHConfig.from_text(text)
    except Exception as exc:  # paramiko raises assorted errors for bad lines
        raise TransportError(
            f"cannot read ssh config {path}: {exc}",
            hint="fix the file (ssh -G HOST shows how OpenSSH reads it) or pass another one",
        ) from None
    with _CACHE_LOCK:
        _CACHE[path] = (mtime, cfg)
    return cfg


_JUMP_RE = re.compile(r"^(?:ssh://)?(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/?$")


def parse_jump(text: str) -> list[tuple[str | None, str, int | None]]:
    """``[user@]host[:port][,...]`` (or ssh:// URIs) -> [(user, host, port)]."""
    hops = []
    for part in text.split(","):
        part = part.strip()
        m = _JUMP_RE.match(part)
        if not part or not m:
            raise TransportError(
                f"bad ProxyJump value {text!r}", hint="use [user@]host[:port], comma-separated for chains"
            )
        host = m["host"].strip("[]")
        hops.append((m["user"], host, int(m["port"]) if m["port"] else None))
    return hops


ARG_OPTIONS = ("proxyjump", "connecttimeout", "serveraliveinterval", "serveralivecountmax")


def options_from_args(hv: Any) -> dict[str, str]:
    """ssh options given the Ansible way (``-o Key=value``, ``-J hops``) in the host's
    ansible_ssh_common_args / ansible_ssh_extra_args / ansible_ssh_args: lower-case key -> value, the
    first value of each winning (as with ssh). Only the options this transport honours."""
    found: dict[str, str] = {}
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args"):
        raw = (hv or {}).get(var)
        if not raw:
            continue
        try:
            words = shlex.split(str(raw))
        except ValueError:
            continue
        for i, w in enumerate(words):
            key = val = None
            if w == "-J" and i + 1 < len(words):
                key, val = "proxyjump", words[i + 1]
            elif w.startswith("-J") and len(w) > 2:
                key, val = "proxyjump", w[2:]
            else:
                opt = w[2:] if w.startswith("-o") and len(w) > 2 else None
                if w == "-o" and i + 1 < len(words):
                    opt = words[i + 1]
                if opt:
                    k, _, v = opt.strip().replace("=", " ", 1).partition(" ")
                    key, val = k.lower(), v
            if key in ARG_OPTIONS and val and val.strip() and key not in found:
                found[key] = val.strip()
    return found


def jump_from_args(hv: Any) -> str | None:
    """A ProxyJump given the Ansible way: ansible_ssh_common_args / ansible_ssh_extra_args."""
    return options_from_args(hv).get("proxyjump")


def _split_files(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, list):
        value = " ".join(value)
    return tuple(os.path.expanduser(f) for f in str(value).split() if f.lower() != "none")


def _endpoint(
    cfg: Any,
    alias: str,
    *,
    user: str | None,
    port: int | None,
    keys: tuple[str, ...],
    password: str | None,
    jump_override: str | None,
    depth: int,
    fallback_keys: tuple[str, ...] = (),
    overrides: dict[str, str] | None = None,
) -> Endpoint:
    if depth > _MAX_HOPS:
        raise TransportError(
            f"ProxyJump chain through {alias!r} is longer than {_MAX_HOPS} hops (a loop in ssh_config?)",
            hint="check the ProxyJump lines in ~/.ssh/config",
        )
    c = cfg.lookup(alias)
    c = {**c, **(overrides or {})}  # the inventory's ssh args win over ssh_config (as ssh -o does)
    try:
        port_num = port or int(c.get("port", 22))
    except ValueError:
        raise TransportError(f"ssh_config for {alias!r}: bad Port {c.get('port')!r}") from None
    cfg_keys = tuple(os.path.expanduser(k) for k in c.get("identityfile", []) or [])
    jump_text = jump_override if jump_override is not None else c.get("proxyjump")
    jumps: list[Endpoint] = []
    if jump_text and jump_text.lower() != "none":
        for juser, jhost, jport in parse_jump(jump_text):
            jumps.append(
                _endpoint(
                    cfg,
                    jhost,
                    user=juser,
                    port=jport,
                    keys=(),
                    password=None,
                    jump_override=None,
                    depth=depth + 1,
                    fallback_keys=keys + cfg_keys + fallback_keys,
                )
            )
    # a jump host's own chain comes first (OpenSSH resolves ProxyJump recursively)
    flat: list[Endpoint] = []
    for j in jumps:
        flat.extend(j.jumps)
        flat.append(_strip_jumps(j))
    timeout = c.get("connecttimeout")
    alive = _number(c, "serveraliveinterval", alias)
    count = _number(c, "serveralivecountmax", alias)
    return Endpoint(
        alias=alias,
        hostname=c.get("hostname", alias),
        port=port_num,
        user=user or c.get("user") or getpass.getuser(),
        identity_files=_dedupe(keys + cfg_keys + fallback_keys),
        identities_only=str(c.get("identitiesonly", "no")).lower() == "yes",
        password=password,
        jumps=tuple(flat),
        proxy_command=None if jumps else _proxy_command(c),
        known_hosts_files=_split_files(c.get("userknownhostsfile")),
        global_known_hosts_files=_split_files(c.get("globalknownhostsfile")) or ("/etc/ssh/ssh_known_hosts",),
        host_key_alias=c.get("hostkeyalias"),
        strict_host_key_checking=(c.get("stricthostkeychecking") or None),
        connect_timeout=float(timeout) if timeout else None,
        server_alive_interval=alive,
        server_alive_count_max=int(count) if count is not None else None,
    )


def _number(c: Any, key: str, alias: str) -> float | None:
    raw = c.get(key)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise TransportError(f"ssh options for {alias!r}: {key} must be a number, not {raw!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise TransportError(f"ssh options for {alias!r}: {key} must be a number >= 0, not {raw!r}")
    return value


def _proxy_command(c: Any) -> str | None:
    pc = c.get("proxycommand")
    if not pc or str(pc).lower() == "none":
        return None
    return str(pc)


def _strip_jumps(ep: Endpoint) -> Endpoint:
    from dataclasses import replace

    return replace(ep, jumps=())


def _dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    seen: list[str] = []
    for i in items:
        if i and i not in seen:
            seen.append(i)
    return tuple(seen)


def resolve(spec: HostSpec, ssh_config: str | None = None) -> Endpoint:
    """The endpoint (with its jump hosts) for one inventory host."""
    cfg = load_ssh_config(ssh_config)
    keys = (os.path.expanduser(spec.private_key_file),) if spec.private_key_file else ()
    args = options_from_args(spec.vars)
    return _endpoint(
        cfg,
        spec.address,
        user=spec.user,
        port=spec.port,
        keys=keys,
        password=spec.password,
        jump_override=args.get("proxyjump"),
        depth=0,
        overrides={k: v for k, v in args.items() if k != "proxyjump"},
    )
