"""Which compose release records a host keeps (pure: the step kinds hand the listing over).

A release record is a directory ``<store>/<name>/`` holding ``manifest.json`` (written when the release
went live) and, once a rollback replaced it, ``undone`` (who undid it, which release is live again).

Retention never drops a release a rollback could still need. Protected, whatever ``keep_releases``:

- the release being recorded now (it is live),
- the release that was live before it (this run's own rollback brings it back),
- the last successful release: the newest complete record that no rollback undid, and the release
  that was live before it (a later `runbook rollback` of that successful run brings it back),
- every release an unfinished run (killed, failed without rollback, rollback failed) may roll back to:
  the previous releases its snapshots name (``pinned``, read from the control machine's run states).

Beyond those, the newest ``keep_releases`` records (by when they went live) are kept and the rest go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runbook.actions.commands import operand

MANIFEST = "manifest.json"
UNDONE = "undone"


@dataclass(frozen=True)
class Release:
    name: str
    time: float  # when it went live (its manifest's mtime; the directory's when it has none)
    complete: bool  # has a manifest (a record cut short has none)
    undone: bool  # a rollback replaced it


def listing_argv(store: str) -> list[str]:
    """find(1) over the store: one line per release directory and per file directly in one."""
    return ["find", operand(store), "-mindepth", "1", "-maxdepth", "2", "-printf", r"%d\t%y\t%T@\t%P\n"]


def parse_listing(text: str) -> list[Release]:
    """The releases in ``listing_argv``'s output."""
    dirs: dict[str, float] = {}
    files: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split("\t", 3)
        if len(parts) != 4:
            continue
        depth, kind, mtime, rel = parts
        try:
            t = float(mtime)
        except ValueError:
            continue
        if depth == "1" and kind == "d":
            dirs[rel] = t
        elif depth == "2" and "/" in rel:
            parent, name = rel.split("/", 1)
            files.setdefault(parent, {})[name] = t
    out = []
    for name, t in dirs.items():
        inside = files.get(name, {})
        out.append(
            Release(
                name=name,
                time=inside.get(MANIFEST, t),
                complete=MANIFEST in inside,
                undone=UNDONE in inside,
            )
        )
    return out


def last_successful(releases: Iterable[Release], exclude: str | None = None) -> str | None:
    """The newest complete release no rollback undid (other than ``exclude``)."""
    good = [r for r in releases if r.complete and not r.undone and r.name != exclude]
    return max(good, key=lambda r: (r.time, r.name)).name if good else None


def protected(
    releases: Iterable[Release],
    new: str,
    previous: str | None,
    pinned: Iterable[str] = (),
    good_previous: str | None = None,
) -> set[str]:
    """The releases retention must never drop (see the module docstring); ``good_previous``: the
    release the last successful one replaced (from its manifest)."""
    keep = {new, *pinned}
    for name in (previous, good_previous):
        if name:
            keep.add(name)
    good = last_successful(releases, exclude=new)
    if good:
        keep.add(good)
    return keep


def to_prune(releases: Iterable[Release], keep_set: set[str], keep: int) -> list[str]:
    """The releases to delete: not protected and beyond the newest ``keep``."""
    ordered = sorted(releases, key=lambda r: (r.time, r.name), reverse=True)
    window = {r.name for r in ordered[: max(keep, 0)]}
    return [r.name for r in ordered if r.name not in keep_set and r.name not in window]
