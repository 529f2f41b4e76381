"""Ansible's magic variables for one host of a run: inventory_hostname, groups, hostvars,
ansible_play_hosts / ansible_play_batch (they change as hosts fail and batches go by), run, snapshots."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook.model.inventory_view import InventoryView

if TYPE_CHECKING:  # validate uses these magic variables too: it needs no run state module
    from runbook.execute.state import RunState


# The magic variables named like connection variables (ansible_*, runbook_*): a host's spec holds
# them (HostSpec.vars) but they are the run's, not how the host is reached (early connections).
SPEC_MAGIC = frozenset(
    {"ansible_check_mode", "ansible_play_hosts", "ansible_play_batch", "ansible_play_hosts_all", "runbook_dir"}
)


class MagicVars(Mapping[str, Any]):
    """Fixed values plus live ones (computed on every lookup: the batch, the hosts still in play)."""

    def __init__(self, fixed: Mapping[str, Any], live: Mapping[str, Callable[[], Any]]):
        self._fixed, self._live = fixed, live

    def __getitem__(self, key: str) -> Any:
        if key in self._live:
            return self._live[key]()
        return self._fixed[key]

    def __contains__(self, key: object) -> bool:
        return key in self._live or key in self._fixed

    def __iter__(self) -> Iterator[str]:
        yield from self._fixed
        yield from (k for k in self._live if k not in self._fixed)

    def __len__(self) -> int:
        return len(set(self._fixed) | set(self._live))


class Play:
    """Which hosts are in play: all targeted hosts, the current serial batch, and who failed."""

    def __init__(self, hosts: list[str], failed: Callable[[str], bool]):
        self.hosts_all = list(hosts)
        self.batch = list(hosts)  # the engine sets each serial batch; preflight/always see every host
        self._failed = failed

    def hosts(self) -> list[str]:
        """ansible_play_hosts: the targeted hosts that have not failed."""
        return [h for h in self.hosts_all if not self._failed(h)]

    def batch_hosts(self) -> list[str]:
        """ansible_play_batch: the current batch's hosts that have not failed."""
        return [h for h in self.batch if not self._failed(h)]

    def live(self) -> dict[str, Callable[[], Any]]:
        return {
            "ansible_play_hosts": self.hosts,
            "ansible_play_batch": self.batch_hosts,
            "ansible_play_hosts_all": lambda: list(self.hosts_all),
        }


def host_magic(
    name: str,
    inventory: InventoryView,
    *,
    play: Play,
    hostvars: Mapping[str, Any],
    run: Mapping[str, Any],
    runbook_dir: Path,
    dry_run: bool,
    state: RunState | None,
    groups: Mapping[str, list[str]] | None = None,
) -> MagicVars:
    """The magic variables of host ``name``. Without a run ``state`` (validate: no run yet) there are
    no snapshots; ``groups`` may be given already resolved (validate renders for every host)."""
    known = name in inventory.hosts
    fixed = {
        "inventory_hostname": name,
        "inventory_hostname_short": name.split(".")[0],
        "host": name,
        "group_names": inventory.group_names(name) if known else [],
        "groups": Groups(inventory) if groups is None else groups,
        "hostvars": hostvars,
        "run": run,
        "playbook_dir": str(runbook_dir),
        "runbook_dir": str(runbook_dir),
        "ansible_check_mode": dry_run,
        "inventory_sources": list(inventory.sources or []),
        "snapshots": Snapshots(state, name) if state is not None else {},
    }
    return MagicVars(fixed, play.live())


class Groups(Mapping[str, list[str]]):
    def __init__(self, inventory: InventoryView):
        self._inv = inventory

    def __getitem__(self, key: str) -> list[str]:
        if key not in self._inv.groups:
            raise KeyError(key)
        return self._inv.select(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._inv.groups)

    def __len__(self) -> int:
        return len(self._inv.groups)


class HostVars(Mapping[str, Any]):
    """``hostvars[name]``: another host's variables (its host context is made on first use)."""

    def __init__(self, inventory: InventoryView, known: Callable[[str], bool], host_vars: Callable[[str], Any]):
        self._inv, self._known, self._vars = inventory, known, host_vars

    def __getitem__(self, key: str) -> Any:
        if not self._known(key) and key not in self._inv.hosts:
            raise KeyError(key)
        return self._vars(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._inv.hosts)

    def __len__(self) -> int:
        return len(self._inv.hosts)


class Snapshots(Mapping[str, Any]):
    """``{{ snapshots['Step name'] }}`` in explicit rollback steps: the snapshots taken by that step."""

    def __init__(self, state: RunState, host: str):
        self._state, self._h = state, host

    def _map(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for e in self._state.host(self._h).entries:
            out.setdefault(e.name, []).extend(e.snapshots)
        return {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}

    def __getitem__(self, key: str) -> Any:
        return self._map()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def operator() -> dict[str, str]:
    import getpass  # here: validate imports this module for the magic variables, not for these

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": hostname()}


def hostname() -> str:
    """The control machine's name: ``socket.gethostname()``, which on POSIX is uname's node name
    (read so, without importing socket for it)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def git_commit(path: Path) -> str | None:
    p = path.resolve()
    for d in [p, *p.parents]:
        head = d / ".git" / "HEAD"
        if head.exists():
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                ref_file = d / ".git" / ref[5:]
                if ref_file.exists():
                    return ref_file.read_text().strip()
                packed = d / ".git" / "packed-refs"
                if packed.exists():
                    for line in packed.read_text().splitlines():
                        if line.endswith(ref[5:]):
                            return line.split()[0]
                return None
            return ref
    return None
