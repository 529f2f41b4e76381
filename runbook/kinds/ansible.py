"""ansible.playbook: run an Ansible playbook through ansible-runner against the same inventory,
limited to the current host. The path for fleets beyond one control machine: the same playbooks run
under AWX / Receptor unchanged. In a dry-run it runs in Ansible's check mode (``--check --diff``),
which changes nothing and reports what would change."""

from __future__ import annotations

from typing import Any

from runbook.actions import Client, Note, Operation
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register

PLAYBOOK = Operation("ansible.playbook", "runbook.execute.clients.ansible:playbook")


@register
class AnsiblePlaybook(StepKind):
    name = "ansible.playbook"
    needs_native_transport = False
    registers = {
        "ansible_stats": "per host: ok, changed, failures, unreachable, skipped",
        "ansible_status": "ansible-runner's status (successful, failed, timeout)",
        "check_mode": "whether it ran with --check",
    }
    description = "Run an Ansible playbook (ansible-runner) on this host, with the same inventory."
    mutating = True
    free_form = "playbook"
    schema = {
        "type": "object",
        "properties": {
            "playbook": {"type": "string", "minLength": 1, "description": "path, relative to the project"},
            "extra_vars": {"type": "object"},
            "tags": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "skip_tags": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "check": {"type": "boolean", "description": "always run in check mode"},
            "diff": {"type": "boolean"},
            "forks": {"type": "integer", "minimum": 1},
            "timeout": {"type": "number", "minimum": 1},
            "inventory": {"type": "string", "description": "inventory source (default: the run's)"},
        },
        "required": ["playbook"],
        "additionalProperties": False,
    }

    def mutates(self, args: Any) -> bool:
        """Check mode changes nothing."""
        return not (isinstance(args, dict) and args.get("check") is True)

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        playbook = ctx.find_file(args["playbook"], "playbooks")
        if not playbook.exists():
            return Outcome.failure(f"playbook not found: {args['playbook']} (looked in {ctx.project_dir})")
        check = bool(args.get("check")) or ctx.dry_run
        sources = (
            [args["inventory"]] if args.get("inventory") else list(ctx.vars.get("inventory_sources") or [])
        )
        tags = args.get("tags")
        skip = args.get("skip_tags")
        params = {
            "playbook": str(playbook),
            "inventory": sources,
            "limit": ctx.host,
            "extravars": dict(args.get("extra_vars") or {}),
            "check": check,
            "diff": bool(args.get("diff", check)),
            "tags": ",".join(tags) if isinstance(tags, list) else tags,
            "skip_tags": ",".join(skip) if isinstance(skip, list) else skip,
            "forks": args.get("forks"),
            "timeout": args.get("timeout"),
        }
        res = yield Client(PLAYBOOK, params, changes=not check)
        if res is None:  # dry-run of a step that is not in check mode
            return Outcome.success("would run the playbook", changed=True)
        for line in res.get("tasks", [])[-200:]:
            yield Note(line)
        stats = res.get("stats", {}).get(ctx.host, {})
        changed = bool(stats.get("changed"))
        ok = res.get("rc") == 0 and res.get("status") == "successful"
        msg = f"{res.get('status')}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
        if not ok and res.get("failed_task"):
            msg += f"; failed task: {res['failed_task']}"
        return Outcome(
            ok=ok,
            changed=changed and not check,
            msg=msg,
            rc=res.get("rc"),
            stdout=res.get("stdout", ""),
            data={"ansible_stats": stats, "ansible_status": res.get("status"), "check_mode": check},
            command=f"ansible-playbook {'--check ' if check else ''}-l {ctx.host} {playbook.name}",
        )
