"""check.*: read-only pre-flight checks (memory, disk, tool versions, .env files, ports).

They never change the host, so they run for real in dry-run and in the preflight phase. A failed
check says what was found and what was required; check.env_file never shows a value, only key names.
"""

from __future__ import annotations

import posixpath
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from runbook.actions import Action, ReadFile, Run, Stat
from runbook.actions.commands import Command
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.filestate import StepFailed, fmt_mode, owner_matches, parse_mode

if TYPE_CHECKING:
    from runbook.facts.versions import Version

# the facts' parsers are imported where a check runs: a static check (validate, plan) needs none

_C = {"LC_ALL": "C"}
_NUM = {"type": "number", "minimum": 0}
_VERSION = {
    "type": ["string", "integer"],
    "description": 'quote it: "20.10" (YAML reads 20.10 as the number 20.1)',
}


@register
class CheckMemory(StepKind):
    name = "check.memory"
    registers = {
        "total_mb": "memory the host (or its cgroup limit) has",
        "available_mb": "memory available",
        "used_percent": "share in use",
        "limit_source": "where the total comes from (meminfo, cgroup v1/v2)",
    }
    description = "Memory the host really has: /proc/meminfo capped by cgroup v1/v2 limits."
    schema = {
        "type": "object",
        "properties": {
            "min_mb": {**_NUM, "description": "minimum total memory (MiB), after cgroup limits"},
            "min_available_mb": {**_NUM, "description": "minimum available memory (MiB)"},
            "max_used_percent": {"type": "number", "minimum": 0, "maximum": 100},
        },
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        from runbook.facts.memory import read_memory_facts

        facts = yield from read_memory_facts()
        if facts.meminfo_total <= 0:
            return Outcome.failure("cannot read MemTotal from /proc/meminfo (is the host Linux?)")
        limited = "" if facts.limit_source == "meminfo" else f", limited by {facts.limit_source}"
        summary = (
            f"total {facts.total_mb} MB, available {facts.available_mb} MB "
            f"({facts.used_percent}% used){limited}"
        )
        data = {
            "total_mb": facts.total_mb,
            "available_mb": facts.available_mb,
            "used_percent": facts.used_percent,
            "limit_source": facts.limit_source,
        }
        problems = []
        if args.get("min_mb") is not None and facts.total_mb < args["min_mb"]:
            problems.append(f"memory {facts.total_mb} MB < required {args['min_mb']} MB")
        if args.get("min_available_mb") is not None and facts.available_mb < args["min_available_mb"]:
            problems.append(
                f"available memory {facts.available_mb} MB < required {args['min_available_mb']} MB"
            )
        if args.get("max_used_percent") is not None and facts.used_percent > args["max_used_percent"]:
            problems.append(f"memory used {facts.used_percent}% > allowed {args['max_used_percent']}%")
        if problems:
            return Outcome.failure("; ".join(problems) + f" ({summary})", data=data)
        return Outcome.success(summary, data=data)


@register
class CheckDisk(StepKind):
    name = "check.disk"
    registers = {
        "path": "the path checked",
        "mount": "its mount point",
        "filesystem": "the filesystem",
        "free_mb": "free space",
        "total_mb": "size",
        "free_percent": "free share",
        "free_inodes": "free inodes (null where the filesystem has no fixed inode table)",
    }
    description = "Free space (and inodes) of the file system holding a path (df -P)."
    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1, "description": "default /"},
            "min_free_gb": _NUM,
            "min_free_mb": _NUM,
            "min_free_percent": {"type": "number", "minimum": 0, "maximum": 100},
            "min_free_inodes": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        from runbook.facts.disk import parse_df

        path = str(args.get("path") or "/")
        probe_path = path
        st = yield Stat(probe_path)
        root = "/" if path.startswith("/") else "."  # a relative path is below the working directory
        while not st.exists and probe_path not in ("/", ".", ""):  # a path to be created: its parent
            probe_path = posixpath.dirname(probe_path.rstrip("/")) or root
            st = yield Stat(probe_path)
        res = yield Run(Command.exec(["df", "-Pk", "--", probe_path], env=_C), changes=False)
        row = parse_df(res.stdout) if res.ok else None
        if row is None or row.size is None or row.avail is None:
            why = res.stderr.strip() or "unexpected output"
            return Outcome.failure(f"cannot measure free space of {path}: df -Pk {probe_path}: {why}")
        free_mb = row.avail // 1024
        total_mb = row.size // 1024
        percent = round(100.0 * row.avail / row.size, 1) if row.size else 0.0
        data: dict[str, Any] = {
            "path": path,
            "mount": row.mount,
            "filesystem": row.filesystem,
            "free_mb": free_mb,
            "total_mb": total_mb,
            "free_percent": percent,
        }
        where = f"{path} (on {row.mount})"
        problems = []
        if args.get("min_free_gb") is not None and free_mb / 1024 < args["min_free_gb"]:
            problems.append(f"{where}: {free_mb / 1024:.1f} GB free < required {args['min_free_gb']} GB")
        if args.get("min_free_mb") is not None and free_mb < args["min_free_mb"]:
            problems.append(f"{where}: {free_mb} MB free < required {args['min_free_mb']} MB")
        if args.get("min_free_percent") is not None and percent < args["min_free_percent"]:
            problems.append(f"{where}: {percent}% free < required {args['min_free_percent']}%")
        if args.get("min_free_inodes") is not None:
            res = yield Run(Command.exec(["df", "-Pi", "--", probe_path], env=_C), changes=False)
            irow = parse_df(res.stdout) if res.ok else None
            if irow is not None and irow.avail is not None and irow.size:
                data["free_inodes"] = irow.avail
                if irow.avail < args["min_free_inodes"]:
                    problems.append(f"{where}: {irow.avail} inodes free < required {args['min_free_inodes']}")
            else:
                data["free_inodes"] = None  # e.g. btrfs: no fixed inode table, nothing to run out of
        summary = f"{where}: {free_mb / 1024:.1f} GB free of {total_mb / 1024:.1f} GB ({percent}%)"
        if problems:
            return Outcome.failure("; ".join(problems), data=data)
        return Outcome.success(summary, data=data)


# How to ask well-known tools for their version: alternatives, tried in order.
KNOWN_TOOLS: dict[str, list[list[str]]] = {
    "docker": [["docker", "version", "--format", "{{.Server.Version}}"], ["docker", "--version"]],
    "compose": [["docker", "compose", "version", "--short"], ["docker-compose", "version", "--short"]],
    "postgres": [["psql", "--version"], ["postgres", "--version"]],
    "redis": [["redis-server", "--version"], ["redis-cli", "--version"]],
    "python": [["python3", "--version"], ["python", "--version"]],
}
_ALIASES = {"docker-compose": "compose", "postgresql": "postgres", "psql": "postgres", "python3": "python"}


def _not_found(rc: int, stderr: str) -> bool:
    s = stderr.lower()
    return rc == 127 or "not found" in s or "no such file" in s or "is not a docker command" in s


@register
class CheckVersion(StepKind):
    name = "check.version"
    registers = {
        "version": "the version found",
        "command": "the command that printed it",
    }
    description = "A tool's version is at least min (and at most max, as a prefix: max 15 admits 15.18)."
    shell_args = ("command",)  # as a string it is shell text
    schema = {
        "type": "object",
        "properties": {
            "of": {
                "type": "string",
                "minLength": 1,
                "description": "docker|compose|postgres|redis|python|<tool>",
            },
            "command": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                "description": "custom command printing the version (shell text or argv)",
            },
            "regex": {"type": "string", "description": "custom regex; group 1 (or the match) is the version"},
            "min": _VERSION,
            "max": _VERSION,
        },
        "anyOf": [{"required": ["of"]}, {"required": ["command"]}],
        "additionalProperties": False,
    }

    def _bound(self, args: dict[str, Any], key: str) -> Version | None:
        from runbook.facts.versions import parse_version

        value = args.get(key)
        if value is None:
            return None
        if isinstance(value, float):
            raise ValueError(f'{key}: {value} was read as a number; quote versions, e.g. {key}: "20.10"')
        v = parse_version(str(value))
        if v is None:
            raise ValueError(f"{key}: {value!r} is not a version")
        return v

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        from runbook.facts.versions import extract_version

        try:
            vmin, vmax = self._bound(args, "min"), self._bound(args, "max")
        except ValueError as exc:
            return Outcome.failure(str(exc))
        of = str(args.get("of") or "")
        tool = _ALIASES.get(of, of)
        command = args.get("command")
        if command is not None:
            cmds = [
                Command.shell(command, env=_C) if isinstance(command, str) else Command.exec(command, env=_C)
            ]
        else:
            cmds = [Command.exec(argv, env=_C) for argv in KNOWN_TOOLS.get(tool, [[of, "--version"]])]
        label = of or cmds[0].display()
        found: Version | None = None
        failures: list[tuple[Command, Any]] = []
        used = cmds[0]
        for c in cmds:
            res = yield Run(c, timeout=60, changes=False)
            if res.ok:
                found = extract_version(res.stdout, args.get("regex")) or extract_version(
                    res.stderr, args.get("regex")
                )
                if found is not None:
                    used = c
                    break
            failures.append((c, res))
        if found is None:
            c, res = failures[0]
            err = (res.stderr.strip() or res.stdout.strip()).splitlines()
            first = err[0] if err else f"exit code {res.rc}"
            if all(_not_found(r.rc, r.stderr) for _, r in failures):
                return Outcome.failure(f"{label} not found: {first}", rc=res.rc, stderr=res.stderr)
            if res.ok:
                return Outcome.failure(
                    f"{label}: no version in the output of `{c.display()}`", stdout=res.stdout
                )
            return Outcome.failure(f"{label}: `{c.display()}` failed: {first}", rc=res.rc, stderr=res.stderr)
        data = {"version": str(found), "command": used.display()}
        note = ""
        if failures and tool == "docker":
            why = (failures[0][1].stderr.strip().splitlines() or ["no answer"])[0]
            note = f" (client version; the server did not answer: {why})"
        if vmin is not None and found < vmin:
            return Outcome.failure(
                f"{label} {found} < required {vmin}{note}", data=data, command=data["command"]
            )
        if vmax is not None and not found.within_max(vmax):
            return Outcome.failure(
                f"{label} {found} > allowed max {vmax}{note}", data=data, command=data["command"]
            )
        return Outcome.success(f"{label} {found}{note}", data=data, command=data["command"])


@register
class CheckEnvFile(StepKind):
    name = "check.env_file"
    registers = {
        "path": "the file",
        "keys": "the variable names in it (sorted; never their values)",
        "missing": "required keys not there",
        "empty": "keys with empty values",
        "mode": "the file's mode",
    }
    description = "A dotenv file exists, is not too open, and defines the required keys (values never shown)."
    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "mode": {
                "type": ["string", "integer"],
                "description": 'the most permissive mode allowed, "0600"',
            },
            "owner": {"type": ["string", "integer"]},
            "require": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "forbid_empty": {
                "type": "boolean",
                "description": "required keys (every key if require is not given) must not be empty",
            },
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        from runbook.facts.dotenv import parse_dotenv

        path = str(args["path"])
        st = yield Stat(path, become=ctx.become)
        if not st.exists:
            return Outcome.failure(f"{path} does not exist")
        if st.is_dir:
            return Outcome.failure(f"{path} is a directory, not an env file")
        problems: list[str] = []
        if args.get("mode") is not None:
            try:
                allowed = parse_mode(args["mode"])
            except ValueError as exc:
                return Outcome.failure(str(exc))
            if st.mode & ~allowed:
                problems.append(
                    f"{path} has mode {fmt_mode(st.mode)}, more open than {fmt_mode(allowed)} "
                    f"(fix: chmod {fmt_mode(st.mode & allowed)} {path})"
                )
        if not owner_matches(st, args.get("owner")):
            problems.append(f"{path} is owned by {st.owner or st.uid}, not {args['owner']}")
        try:
            raw = yield ReadFile(path, become=ctx.become)
        except PermissionError:
            return Outcome.failure(f"cannot read {path}: permission denied (use become: true)")
        if raw is None:
            return Outcome.failure(f"cannot read {path}")
        env = parse_dotenv(raw.decode("utf-8", "replace").lstrip("\ufeff"))
        problems += [f"{path}:{line}: {reason}" for line, reason in env.errors]
        require = [str(k) for k in args.get("require") or []]
        missing = [k for k in require if k not in env.values]
        empty: list[str] = []
        if args.get("forbid_empty"):
            empty = [
                k for k in (require or env.values) if k in env.values and not (env.values[k] or "").strip()
            ]
        if missing:
            problems.append(f"{path} lacks {', '.join(missing)}")
        if empty:
            problems.append(f"{path} has empty {', '.join(empty)}")
        data = {
            "path": path,
            "keys": sorted(env.values),
            "missing": missing,
            "empty": empty,
            "mode": fmt_mode(st.mode),
        }
        if problems:
            return Outcome.failure("; ".join(problems), data=data)
        return Outcome.success(f"{path}: {len(env.values)} keys, mode {fmt_mode(st.mode)}", data=data)


DEFAULT_PORT_HOST = "127.0.0.1"  # a port step's host when none is given (the host's own loopback)


def port_host(args: Mapping[str, Any]) -> str:
    """The address a port step (check.port, wait: {port: ...}) asks about."""
    return str(args.get("host") or DEFAULT_PORT_HOST)


def listeners_at(host: str, port: int, who: str) -> Generator[Action, Any, tuple[list[str], str]]:
    """The listeners that accept host:port, and where they were read; StepFailed (named after
    ``who``, the step) when ``host`` is not an IP address or localhost, or no listener list can be read."""
    from runbook.facts.net import matching

    listeners, source = yield from probe_listeners()
    try:
        return matching(listeners, host, port), source
    except ValueError:
        raise StepFailed(f"{who} host {host!r} must be an IP address or localhost") from None


def probe_listeners() -> Generator[Action, Any, tuple[list[tuple[str, int]], str]]:
    """Listening TCP sockets on the host: /proc/net/tcp{,6}, else ``ss -ltnH``. Read-only."""
    from runbook.facts.net import parse_proc_net_tcp, parse_ss

    v4 = yield ReadFile("/proc/net/tcp")
    v6 = yield ReadFile("/proc/net/tcp6")
    if v4 is not None or v6 is not None:
        listeners = parse_proc_net_tcp((v4 or b"").decode("ascii", "replace"))
        listeners += parse_proc_net_tcp((v6 or b"").decode("ascii", "replace"), ipv6=True)
        return listeners, "/proc/net/tcp"
    res = yield Run(Command.exec(["ss", "-ltnH"], env=_C), changes=False)
    if not res.ok:
        raise StepFailed(
            f"cannot list listening sockets: no /proc/net/tcp and `ss -ltnH` failed: {res.stderr}"
        )
    return parse_ss(res.stdout), "ss"


PORT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 65535}


@register
class CheckPort(StepKind):
    name = "check.port"
    registers = {
        "port": "the port",
        "host": "the address",
        "listening": "whether something listens",
        "listeners": "who listens (process names where known)",
        "source": "how it was found (ss, /proc/net)",
    }
    description = "Whether something listens on host:port (state: listening) or nothing does (state: free)."
    schema = {
        "type": "object",
        "properties": {
            "port": PORT_SCHEMA,
            "host": {
                "type": "string",
                "description": "IP address or localhost; 0.0.0.0 means any (default 127.0.0.1)",
            },
            "state": {"enum": ["free", "listening"], "description": "default listening"},
        },
        "required": ["port"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        port, host = int(args["port"]), port_host(args)
        state = args.get("state") or "listening"
        try:
            hits, source = yield from listeners_at(host, port, "check.port")
        except StepFailed as exc:
            return Outcome.failure(str(exc))
        data = {"port": port, "host": host, "listening": bool(hits), "listeners": hits, "source": source}
        if state == "free":
            if hits:
                return Outcome.failure(
                    f"port {port} on {host} is in use (listening: {', '.join(hits)})", data=data
                )
            return Outcome.success(f"port {port} on {host} is free", data=data)
        if not hits:
            return Outcome.failure(f"nothing listens on {host}:{port}", data=data)
        return Outcome.success(f"{host}:{port} is listening ({', '.join(hits)})", data=data)
