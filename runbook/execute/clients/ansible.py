"""ansible-runner, on the control machine. Imported only when an ansible.playbook step runs."""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
import threading
from typing import Any

from runbook.execute.transports.base import Transport


def unsafe_extravars(extravars: dict[str, Any]) -> str:
    """The extra vars as YAML for ``-e @file`` with every string tagged ``!unsafe``: Ansible
    templates any string holding ``{{`` (unsandboxed, on this machine), so a value that came from
    data (a registered output, an inventory value) would otherwise run as code there. Keys stay plain;
    values are as runbook rendered them (JSON types)."""
    import json

    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        return dumper.represent_scalar("!unsafe", value)

    def mapping(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
        pairs = [
            (dumper.represent_scalar("tag:yaml.org,2002:str", str(k)), dumper.represent_data(v))
            for k, v in value.items()
        ]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs)

    Dumper.add_representer(str, text)
    Dumper.add_representer(dict, mapping)
    plain = json.loads(json.dumps(extravars, default=str))
    return yaml.dump(plain, Dumper=Dumper, default_flow_style=False, allow_unicode=True)


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
        # written here (not passed as ansible-runner's `extravars`, which become a JSON argument of
        # ansible-playbook): the values are marked !unsafe and stay off the command line
        os.makedirs(os.path.join(pdd, "env"), mode=0o700)
        fd = os.open(os.path.join(pdd, "env", "extravars"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(unsafe_extravars(dict(params.get("extravars") or {})))
        from runbook.model.vault import runner_vault

        cmdline, vault_answers = runner_vault()  # the run's vault ids, answered at Ansible's prompts
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
            "quiet": True,
            "event_handler": on_event,
            "cancel_callback": cancel.is_set,
            "envvars": env,
            "cmdline": shlex.join(cmdline) or None,
            "json_mode": False,
        }
        if vault_answers:
            kwargs["passwords"] = vault_answers
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

