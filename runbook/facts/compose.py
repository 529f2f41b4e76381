"""Docker Compose facts: memory limits as compose writes them, the budget table (seed 002's allocation
table), and container state from ``docker inspect``. Pure: step kinds hand the text over."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from runbook.model.lazyre import lazy_re

MIB = 1024 * 1024
_MEM = lazy_re(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory(value: Any, default_unit: str = "") -> int:
    """A memory size as compose reads it ("500m", "1g", "512MB", "1.5GiB", 1048576) -> bytes.

    Units are powers of 1024; a bare number is bytes (``default_unit`` "m": MiB, for budget entries)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"memory size {value!r} is not a size")
    if isinstance(value, int | float):
        return int(value * _SCALE[default_unit])
    text = str(value)
    if "${" in text or text.startswith("$"):
        raise ValueError(f"memory size {text!r} uses variable interpolation; give a literal size")
    m = _MEM.match(text)
    if not m or (m.group(3) and m.group(3).lower() == "i"):
        raise ValueError(f"memory size {text!r} is not a size like 500m, 1g, 512MB")
    unit = m.group(2).lower() if (m.group(2) or m.group(3)) else default_unit
    return int(float(m.group(1)) * _SCALE[unit])


def memory_limits(doc: Any) -> dict[str, tuple[int | None, int]]:
    """{service: (limit in bytes per container or None, replicas)} of a compose document."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("services"), Mapping):
        raise ValueError("not a compose file: no `services:` mapping")
    out: dict[str, tuple[int | None, int]] = {}
    for name, svc in doc["services"].items():
        svc = svc if isinstance(svc, Mapping) else {}
        deploy = svc.get("deploy") if isinstance(svc.get("deploy"), Mapping) else {}
        limits = ((deploy.get("resources") or {}).get("limits") or {}) if deploy else {}
        a = parse_memory(limits["memory"]) if limits.get("memory") is not None else None
        b = parse_memory(svc["mem_limit"]) if svc.get("mem_limit") is not None else None
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"service {name}: mem_limit ({b // MIB} MB) and deploy.resources.limits.memory "
                f"({a // MIB} MB) differ"
            )
        replicas = deploy.get("replicas", svc.get("scale", 1)) if deploy else svc.get("scale", 1)
        try:
            replicas = int(replicas)
        except (TypeError, ValueError):
            raise ValueError(f"service {name}: replicas {replicas!r} is not a number")
        out[str(name)] = (a if a is not None else b, replicas)
    return out


def _mb(n: int) -> str:
    return f"{int(n / MIB):>6} MB"


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:5.1f}%" if total > 0 else "    - "


def budget_table(
    limits: Mapping[str, tuple[int | None, int]],
    extra: Mapping[str, int],
    total: int,
    reserve: int,
    source: str,
) -> tuple[str, int]:
    """The allocation table and the allocated bytes (compose limits x replicas + extra)."""
    rows: list[str] = [f"{'SERVICE':<24}{'LIMIT':>9}  {'SHARE':>6}"]
    allocated = 0
    for name, (limit, replicas) in limits.items():
        label = name if replicas == 1 else f"{name} x{replicas}"
        if limit is None:
            rows.append(f"{label:<24}{'-':>9}  {'-':>6}  NO MEMORY LIMIT")
            continue
        share = limit * replicas
        allocated += share
        rows.append(f"{label:<24}{_mb(share):>9}  {_pct(share, total)}")
    for name, size in extra.items():
        allocated += size
        rows.append(f"{name:<24}{_mb(size):>9}  {_pct(size, total)}  (outside compose)")
    buffer = total - allocated - reserve
    where = "given total_mb" if source == "total_mb" else source
    rows += [
        "-" * 42,
        f"{'TOTAL ALLOCATED':<24}{_mb(allocated):>9}  {_pct(allocated, total)}",
        f"{'RESERVE':<24}{_mb(reserve):>9}  {_pct(reserve, total)}",
        f"{'SAFETY BUFFER':<24}{_mb(buffer):>9}  {_pct(buffer, total)}",
        f"{'HOST MEMORY':<24}{_mb(total):>9}  ({where})",
    ]
    return "\n".join(rows), allocated


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    image: str  # the reference it was created from (runbook-demo:v1)
    image_id: str  # sha256:...
    state: str  # created | running | restarting | exited | dead | paused
    running: bool
    exit_code: int
    oom_killed: bool
    health: str  # "" (no healthcheck) | starting | healthy | unhealthy
    restarts: int
    memory_limit: int
    oneoff: bool
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_inspect(text: str) -> list[Container]:
    """Lines of tab-separated JSON fields: Id, Name, Config.Labels, Config.Image, Image, State,
    RestartCount, HostConfig.Memory (the format compose.py asks docker inspect for)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [json.loads(f) for f in line.split("\t")]
        cid, name, labels, image, image_id, state, restarts, memory = fields
        labels = labels or {}
        state = state or {}
        out.append(
            Container(
                id=cid,
                name=str(name).lstrip("/"),
                service=labels.get("com.docker.compose.service", ""),
                image=image or "",
                image_id=image_id or "",
                state=state.get("Status", ""),
                running=bool(state.get("Running")) and not state.get("Restarting"),
                exit_code=int(state.get("ExitCode") or 0),
                oom_killed=bool(state.get("OOMKilled")),
                health=((state.get("Health") or {}).get("Status") or ""),
                restarts=int(restarts or 0),
                memory_limit=int(memory or 0),
                oneoff=labels.get("com.docker.compose.oneoff", "False") == "True",
                error=state.get("Error") or "",
            )
        )
    return out


def problems_of(c: Container, max_restarts: int | None) -> list[str]:
    """What is wrong with a container, for an operator ("api (app-api-1): OOM-killed ...")."""
    who = f"{c.service} ({c.name})"
    out = []
    if c.oom_killed:
        limit = f" (memory limit {c.memory_limit // MIB} MB)" if c.memory_limit else ""
        out.append(f"{who}: OOM-killed{limit}")
    if c.state == "restarting":
        out.append(f"{who}: restarting (last exit code {c.exit_code})")
    elif c.state in ("exited", "dead") and (c.exit_code != 0 or c.oom_killed):
        out.append(f"{who}: exited with code {c.exit_code}" + (f" ({c.error})" if c.error else ""))
    elif c.state == "created":
        out.append(f"{who}: created but never started" + (f" ({c.error})" if c.error else ""))
    if c.health == "unhealthy":
        out.append(f"{who}: unhealthy")
    if max_restarts is not None and c.restarts > max_restarts:
        out.append(f"{who}: restarted {c.restarts} time(s) (crashing?)")
    return out


def tail(text: str, lines: int = 3, limit: int = 500) -> str:
    """The last lines of command output, for a one-line message."""
    kept = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()][-lines:]
    out = " | ".join(kept)
    return out[-limit:] if len(out) > limit else out
