"""`df -P` output, parsed (POSIX format: one line per file system, never wrapped)."""

from __future__ import annotations

from dataclasses import dataclass

from runbook.model.lazyre import lazy_re

# Filesystem  <blocks|inodes>  Used  Available|IFree  Capacity|IUse%  Mounted on
# The file system name and the mount point may contain spaces; the numbers may be "-" (e.g. inodes
# on btrfs), so parse the numeric middle, not by splitting.
_ROW = lazy_re(
    r"^(?P<fs>.+?)\s+(?P<size>\d+|-)\s+(?P<used>\d+|-)\s+(?P<avail>\d+|-)\s+(?P<pct>\d+%|-)\s+(?P<mount>/.*)$"
)


@dataclass(frozen=True)
class DfRow:
    filesystem: str
    size: int | None  # 1K blocks (df -Pk) or inodes (df -Pi)
    used: int | None
    avail: int | None
    use_percent: int | None
    mount: str


def _num(v: str) -> int | None:
    return None if v == "-" else int(v)


def parse_df(text: str) -> DfRow | None:
    """The first data row of ``df -Pk PATH`` / ``df -Pi PATH`` output, or None if there is none."""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().lower().startswith("filesystem"):
            continue
        m = _ROW.match(line.rstrip())
        if m is None:
            continue
        pct = m["pct"]
        return DfRow(
            filesystem=m["fs"],
            size=_num(m["size"]),
            used=_num(m["used"]),
            avail=_num(m["avail"]),
            use_percent=None if pct == "-" else int(pct.rstrip("%")),
            mount=m["mount"],
        )
    return None
