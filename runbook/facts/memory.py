"""Memory as a process on the host really has it: /proc/meminfo, capped by the cgroup limits.

``memory_probe`` is a generator that yields the *paths* it wants to read and receives their text (or
None when a file does not exist), so the same algorithm runs against a real host (the step kind
turns each path into a ReadFile action) and against fixture texts in unit tests.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
UNLIMITED_V1 = 1 << 60  # cgroup v1 reports "no limit" as a huge page-rounded number


@dataclass(frozen=True)
class CgroupMount:
    version: int  # 1 or 2
    mountpoint: str  # where the hierarchy is mounted, e.g. /sys/fs/cgroup
    root: str  # the cgroup path the mount shows at its mountpoint (mountinfo field 4)


@dataclass(frozen=True)
class CgroupLevel:
    """One cgroup directory that has a memory limit."""

    version: int
    path: str  # the directory
    limit: int  # bytes
    usage: int | None = None  # bytes (memory.current / memory.usage_in_bytes)
    inactive_file: int = 0  # reclaimable page cache, not counted as used


@dataclass(frozen=True)
class MemoryFacts:
    total: int  # bytes: min(MemTotal, cgroup limit)
    available: int  # bytes
    limit_source: str  # "meminfo" or "cgroup v2 <dir>/memory.max" ...
    meminfo_total: int
    meminfo_available: int

    @property
    def total_mb(self) -> int:
        return self.total // MIB

    @property
    def available_mb(self) -> int:
        return self.available // MIB

    @property
    def used_percent(self) -> float:
        return 0.0 if self.total <= 0 else round(100.0 * (self.total - self.available) / self.total, 1)


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {field: bytes} ("MemTotal: 16384 kB" -> 16777216)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        if len(parts) > 1 and parts[1].lower() == "kb":
            value *= 1024
        out[key.strip()] = value
    return out


def parse_proc_cgroup(text: str) -> tuple[str | None, str | None]:
    """/proc/self/cgroup -> (cgroup v2 path, cgroup v1 memory controller path)."""
    v2 = v1 = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """/proc/self/mountinfo -> the cgroup2 mounts and the cgroup v1 mounts of the memory controller."""
    out: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or not rf:
            continue
        root, mountpoint = _unescape_mount(lf[3]), _unescape_mount(lf[4])
        superopts = rf[2] if len(rf) > 2 else ""
        if rf[0] == "cgroup2":
            out.append(CgroupMount(2, mountpoint, root))
        elif rf[0] == "cgroup" and "memory" in superopts.split(","):
            out.append(CgroupMount(1, mountpoint, root))
    return out


def cgroup_dirs(mount: CgroupMount, path: str) -> list[str]:
    """The directories of a cgroup and its ancestors under a mount, leaf first."""
    rel = path
    root = mount.root.rstrip("/")
    if root and (rel == root or rel.startswith(root + "/")):
        rel = rel[len(root) :]
    parts = [p for p in rel.split("/") if p and p != ".."]
    return [posixpath.join(mount.mountpoint, *parts[:i]) for i in range(len(parts), -1, -1)]


def parse_limit(version: int, text: str | None) -> int | None:
    """memory.max (v2) / memory.limit_in_bytes (v1) -> bytes, or None for no limit."""
    if text is None:
        return None
    value = text.strip()
    if not value or value == "max":
        return None
    try:
        limit = int(value)
    except ValueError:
        return None
    if version == 1 and limit >= UNLIMITED_V1:
        return None
    return limit


def parse_memory_stat(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _int_or_none(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def effective_memory(meminfo: dict[str, int], levels: list[CgroupLevel]) -> MemoryFacts:
    """Combine /proc/meminfo with the cgroup limits: the smallest limit wins, for total and available."""
    mem_total = meminfo.get("MemTotal", 0)
    mem_avail = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    total, available, source = mem_total, mem_avail, "meminfo"
    for level in levels:
        fname = "memory.max" if level.version == 2 else "memory.limit_in_bytes"
        if level.limit < total:
            total = level.limit
            source = f"cgroup v{level.version} {posixpath.join(level.path, fname)}"
        if level.usage is not None:
            working_set = max(0, level.usage - level.inactive_file)
            available = min(available, max(0, level.limit - working_set))
    return MemoryFacts(
        total=total,
        available=min(available, total),
        limit_source=source,
        meminfo_total=mem_total,
        meminfo_available=mem_avail,
    )


DEFAULT_MOUNTS = (CgroupMount(2, "/sys/fs/cgroup", "/"), CgroupMount(1, "/sys/fs/cgroup/memory", "/"))


def memory_probe() -> Generator[str, str | None, MemoryFacts]:
    """Yield paths to read; receive their text (None = missing); return MemoryFacts."""
    meminfo = parse_meminfo((yield "/proc/meminfo") or "")
    v2_path, v1_path = parse_proc_cgroup((yield "/proc/self/cgroup") or "")
    mountinfo = yield "/proc/self/mountinfo"
    mounts = parse_mountinfo(mountinfo) if mountinfo else list(DEFAULT_MOUNTS)
    levels: list[CgroupLevel] = []
    seen: set[str] = set()
    for mount in mounts:
        path = v2_path if mount.version == 2 else v1_path
        if path is None:
            continue
        for directory in cgroup_dirs(mount, path):
            if directory in seen:
                continue
            seen.add(directory)
            if mount.version == 2:
                limit = parse_limit(2, (yield posixpath.join(directory, "memory.max")))
            else:
                limit = parse_limit(1, (yield posixpath.join(directory, "memory.limit_in_bytes")))
            if limit is None:
                continue
            usage_file = "memory.current" if mount.version == 2 else "memory.usage_in_bytes"
            usage = _int_or_none((yield posixpath.join(directory, usage_file)))
            stat = parse_memory_stat((yield posixpath.join(directory, "memory.stat")))
            inactive = stat.get("inactive_file" if mount.version == 2 else "total_inactive_file", 0)
            levels.append(CgroupLevel(mount.version, directory, limit, usage, inactive))
    return effective_memory(meminfo, levels)


def read_memory_facts() -> Generator[Any, Any, MemoryFacts]:
    """Drive ``memory_probe`` with ReadFile actions (``facts = yield from read_memory_facts()``
    inside a step kind)."""
    from runbook.actions import ReadFile

    probe = memory_probe()
    path = next(probe)
    while True:
        data = yield ReadFile(path)
        try:
            path = probe.send(None if data is None else data.decode("utf-8", "replace"))
        except StopIteration as stop:
            return stop.value
