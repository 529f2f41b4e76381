"""Action plugin runbook.core.lock: take or release runbook's per-host deploy lock on the host, through
Ansible's connection (the same lock directory and staleness rules as `runbook exec`:
runbook.execute.lock). The holder recorded is the ansible-playbook process (the workers that run
tasks are short-lived), so a run that died leaves a lock the next run may break."""

from __future__ import annotations

import socket
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.runbook.core.plugins.plugin_utils.runid import playbook_pid, run_id
from ansible_collections.runbook.core.plugins.plugin_utils.transport import ConnectionTransport

VALID = frozenset({"name", "state", "ttl"})


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = VALID

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        from runbook.execute import lock as locks
        from runbook.execute.transports.base import HostSpec

        a = dict(self._task.args)
        name, state = str(a.get("name") or ""), str(a.get("state") or "acquired")
        if not name or state not in ("acquired", "released"):
            return {**result, "failed": True, "msg": "lock needs name and state: acquired | released"}
        host = str(task_vars.get("inventory_hostname") or "localhost")
        transport = ConnectionTransport(self, HostSpec(name=host, address=host, vars={}))
        rid = run_id(task_vars)
        try:
            if state == "released":
                locks.release(transport, name, rid, host)
                return {**result, "changed": False, "msg": f"deploy lock '{name}' released"}
            owner = {"pid": playbook_pid(), "control_host": socket.gethostname()}
            res = locks.acquire(transport, name, rid, host, float(a.get("ttl") or 4 * 3600), owner)
        except Exception as exc:
            if transport.unreachable:
                return {**result, "unreachable": True, "msg": transport.unreachable}
            return {**result, "failed": True, "msg": f"deploy lock: {exc}"}
        if not res.acquired:
            return {**result, "failed": True, "changed": False, "msg": res.message}
        msg = res.message or f"deploy lock '{name}' taken by run {rid}"
        return {**result, "changed": False, "msg": msg, "runbook_lock": locks.lock_dir(name, host)}
