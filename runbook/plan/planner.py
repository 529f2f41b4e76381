"""Pure planning: which hosts, in which batches. No I/O."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from runbook.errors import RunbookError


def batches(hosts: Sequence[str], serial: Sequence[int | str]) -> list[list[str]]:
    """Split hosts into rolling batches like Ansible's ``serial`` (numbers and percentages; the last
    size repeats until every host is placed)."""
    hosts = list(hosts)
    if not serial:
        return [hosts] if hosts else []
    out: list[list[str]] = []
    i = 0
    sizes = list(serial)
    k = 0
    while i < len(hosts):
        spec = sizes[min(k, len(sizes) - 1)]
        if isinstance(spec, str) and spec.strip().endswith("%"):
            size = math.floor(len(hosts) * float(spec.strip()[:-1]) / 100.0)
        else:
            size = int(spec)
        size = max(1, size)
        out.append(hosts[i : i + size])
        i += size
        k += 1
    return out


def selected(step: Any, tags: Collection[str], skip_tags: Collection[str]) -> bool:
    """Does --tags/--skip-tags let ``step`` run? (`never` only when asked for, `always` unless skipped.)"""
    own = set(step.tags)
    if "never" in own and not (own & set(tags)):
        return False
    if tags and not (own & set(tags)) and "always" not in own:
        return False
    return not (skip_tags and own & set(skip_tags))


def start_index(rb: Any, start_at: str | None) -> int:
    """The index of the step ``--start-at`` names (its name, number as `runbook show` numbers it,
    or key); 0 without one. RunbookError when no step has that name."""
    if not start_at:
        return 0
    for s in rb.steps:
        if start_at in (s.name, str(s.index + 1), s.key):
            return s.index
    raise RunbookError(
        f"--start-at: no step named {start_at!r}",
        hint="use a step's name or number as `runbook show` lists it",
    )


def failed_too_many(failed: int, total: int, max_fail_percentage: float) -> bool:
    """Ansible's rule: abort when the failed share of the batch is *greater than* the maximum."""
    if total == 0 or failed == 0:
        return False
    return (failed * 100.0 / total) > max_fail_percentage


def plan_digest(
    runbook_sha256: str,
    hosts: Sequence[str],
    batches: Sequence[Sequence[str]],
    *,
    tags: Collection[str] = (),
    skip_tags: Collection[str] = (),
    extra_vars: Mapping[str, Any] | Collection[str] = (),
) -> str:
    """SHA-256 of the static plan as canonical JSON (sorted keys, no whitespace): the runbook's
    SHA-256, the selected hosts, the batches, the tags and the *names* of the extra vars (never their
    values). A dry-run and the real run of the same plan have the same digest."""
    plan = {
        "runbook_sha256": runbook_sha256,
        "hosts": list(hosts),
        "batches": [list(b) for b in batches],
        "tags": sorted(tags),
        "skip_tags": sorted(skip_tags),
        "extra_vars": sorted(str(k) for k in extra_vars),
    }
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
