"""Early connections: which hosts a run will reach before anything can change its course, and how
(their connection variables), known from the runbook and the inventory alone, before the engine
exists. The session starts those connects (runbook.execute.transports.pool.Connections.start) as
soon as it knows them, so the SSH handshake's round trips overlap the rest of the set-up (imports,
validation, the engine, the audit writer); the host's first step adopts the connection.

Only what the run would do first thing anyway, and nothing it might not do:

- the hosts' first step must reach the host whatever the run's variables say: the first selected
  step of preflight (every targeted host runs it), else, without preflight, the first selected step
  from --start-at on (the first serial batch's hosts) or the deploy lock (taken there first). No
  ``when``, ``loop``, ``delegate_to``, ``run_once``, ``check_mode: true``, block or approval (the
  operator may decline) in that step: such a first step means no early connection. Of those hosts,
  the first ``forks``: the ones whose steps start at once (the others wait for a free fork);
- a run refused before any step (a host without a native transport for its native steps or the
  lock) connects nowhere;
- only SSH hosts whose connection variables (``ansible_*``, ``runbook_*``) are plain values, with no
  template in them: the engine renders the variables itself; its spec must be the one the early
  connect used, or that connection is not used (Connections.take).

What the session itself rules out (runbook.session.run.connect_early): a dry run, --resume, --step,
a transport factory of the caller's, --list-hosts/--list-steps, a closed maintenance window.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from runbook.execute.faults import debug_log
from runbook.execute.magic import SPEC_MAGIC
from runbook.execute.transports.base import HostSpec
from runbook.execute.transports.pool import Connections
from runbook.kinds import base as kinds
from runbook.model.hostpattern import implicit_host_vars
from runbook.plan import planner
from runbook.plan.connections import native_only_steps

SSH = ("ssh", "paramiko", "smart")
PREFIXES = ("ansible_", "runbook_")


def reaches_first(step: Any) -> bool:
    """Does this step, a host's first, reach the host whatever the run's variables are?"""
    if step.when or step.loop is not None or step.delegate_to or step.run_once or step.check_mode is True:
        return False
    kind = kinds.get(step.module)
    return kind is not None and not kind.asks_approval and not kind.runs_nested_steps


def hosts_reached_first(
    rb: Any, hosts: Sequence[str], *, tags: Collection[str] = (), skip_tags: Collection[str] = (),
    start_at: str | None = None,
) -> list[str]:  # fmt: skip
    """The targeted hosts the run reaches first thing (before any of its steps has run)."""
    preflight = [s for s in rb.preflight if planner.selected(s, tags, skip_tags)]
    if preflight:  # every targeted host runs it, in parallel
        return list(hosts) if reaches_first(preflight[0]) else []
    batches = planner.batches(list(hosts), rb.serial)
    if not batches:
        return []
    if rb.lock:  # each host of the first batch takes its lock before its first step
        return batches[0]
    start = planner.start_index(rb, start_at)
    steps = [s for s in rb.steps if s.index >= start and planner.selected(s, tags, skip_tags)]
    return batches[0] if steps and reaches_first(steps[0]) else []


def _plain(value: Any) -> bool:
    """Data the engine's rendering returns as it is: no template, no vault value, nothing lazy."""
    if isinstance(value, str):
        return not ("{{" in value or "{%" in value or "{#" in value)
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def connection_spec(name: str, inventory: Any, rb: Any, extra_vars: Mapping[str, Any]) -> HostSpec | None:
    """The host's spec as the engine will make it (runbook.execute.engine.Engine.host_run), if its
    connection variables are plain values; else None (the engine's rendering alone says)."""
    hv = implicit_host_vars(name, inventory.host_vars(name) if name in inventory.hosts else {})
    chosen: dict[str, Any] = {}
    for layer in (extra_vars, rb.vars, hv, rb.defaults):  # the engine's precedence, highest first
        for key, value in layer.items():
            if isinstance(key, str) and key.startswith(PREFIXES) and key not in SPEC_MAGIC:
                chosen.setdefault(key, value)
    if not all(_plain(v) for v in chosen.values()):
        return None
    try:
        spec = HostSpec.from_vars(name, chosen)
    except Exception:  # the engine raises it (an InventoryError), before anything runs
        return None
    return replace(spec, become=False)


def connect_early(
    connections: Connections, rb: Any, inventory: Any, hosts: Sequence[str], *,
    extra_vars: Mapping[str, Any], tags: Collection[str] = (), skip_tags: Collection[str] = (),
    start_at: str | None = None, forks: int = 10,
) -> list[str]:  # fmt: skip
    """Start the connects the run makes first thing (see the module's rules): for the first
    ``forks`` of those hosts, the ones whose steps start at once. Returns those hosts."""
    try:
        first = hosts_reached_first(rb, hosts, tags=tags, skip_tags=skip_tags, start_at=start_at)
        if not first:
            return []
        specs = {h: connection_spec(h, inventory, rb, extra_vars) for h in hosts}
        native = native_only_steps(s for s in rb.all_steps() if planner.selected(s, tags, skip_tags))
        if native or rb.lock:  # a host without a native transport: the run is refused, reaches none
            for spec in specs.values():
                if spec is None or not spec.native_transport:
                    return []
    except Exception as exc:  # a bad --start-at, an odd runbook: the run itself says (nothing early)
        if (log := debug_log()) is not None:
            log.debug("no early connections: %s", exc)
        return []
    chosen = [(h, spec) for h in first[: max(1, forks)] if (spec := specs[h]) is not None and spec.connection in SSH]
    connections.start_all([spec for _, spec in chosen])
    return [h for h, _ in chosen]
