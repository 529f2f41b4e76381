"""ansible-runner, on the control machine. Imported only when an ansible.playbook step runs."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Any

from runbook.execute.transports.base import Transport


def playbook(
    params: dict[str, Any], transport: Transport, stack: contextlib.ExitStack, cancel: threading.Event
) -> dict[str, Any]:
    try:
        import ansible_runner
    except ImportError:
        return {
            "rc": 127,
            "status": "failed",
            "failed_task": "ansible-runner is not installed (pip install 'runbook[ansible]')",
        }
    tasks: list[str] = []
    failed: dict[str, str] = {}

    def on_event(ev: dict[str, Any]) -> bool:
        kind = ev.get("event", "")
        data = ev.get("event_data", {})
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            status = kind.removeprefix("runner_on_")
            if status == "ok" and data.get("res", {}).get("changed"):
                status = "changed"
            tasks.append(f"{status}: {data.get('task', '?')} [{data.get('host', '?')}]")
            if status in ("failed", "unreachable") and not data.get("ignore_errors"):
                res = data.get("res", {})
                failed["task"] = f"{data.get('task')}: {res.get('msg') or res.get('stderr') or status}"[:500]
        return True

    with tempfile.TemporaryDirectory(prefix="runbook-ansible-") as pdd:
        cmdline = []
        if params.get("check"):
            cmdline.append("--check")
        if params.get("diff"):
            cmdline.append("--diff")
        env = {
            "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
        }
        kwargs: dict[str, Any] = {
            "private_data_dir": pdd,
            "playbook": params["playbook"],
            "inventory": [
                os.path.abspath(s) if os.path.exists(s) else s for s in params.get("inventory") or []
            ]
            or None,
            "limit": params.get("limit"),
            "extravars": params.get("extravars") or {},
            "quiet": True,
            "event_handler": on_event,
            "cancel_callback": cancel.is_set,
            "envvars": env,
            "cmdline": " ".join(cmdline) or None,
            "json_mode": False,
        }
        if params.get("tags"):
            kwargs["tags"] = params["tags"]
        if params.get("skip_tags"):
            kwargs["skip_tags"] = params["skip_tags"]
        if params.get("forks"):
            kwargs["forks"] = params["forks"]
        if params.get("timeout"):
            kwargs["timeout"] = params["timeout"]
        r = ansible_runner.run(**{k: v for k, v in kwargs.items() if v is not None})
        stdout = r.stdout.read() if r.stdout else ""
        stats = r.stats or {}
    per_host: dict[str, dict[str, int]] = {}
    for key, hosts in stats.items():
        if isinstance(hosts, dict):
            for h, n in hosts.items():
                per_host.setdefault(h, {})[key] = n
    return {
        "rc": r.rc,
        "status": r.status,
        "stats": per_host,
        "tasks": tasks,
        "failed_task": failed.get("task"),
        "stdout": stdout[-65536:],
    }


OPS = {"playbook": playbook}
