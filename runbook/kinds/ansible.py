"""ansible.playbook: run an Ansible playbook through ansible-runner against the same inventory,
limited to the current host. The path for fleets beyond one control machine: the same playbooks run
under AWX / Receptor unchanged. In a dry-run it runs in Ansible's check mode (``--check --diff``),
which changes nothing and reports what would change (as planned changes, with Ansible's diffs).

The run's variables (the runbook's ``vars:`` and ``-e``, rendered for the host) are the playbook's
extra variables, under the step's own ``extra_vars``; secrets among them reach Ansible vault-encrypted
(runbook.execute.clients.ansible_io), never in clear in ansible-runner's private data directory."""

from __future__ import annotations

from typing import Any

from runbook.actions import Client, Operation, Planned
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.render.secrets import leaves

PLAYBOOK = Operation("ansible.playbook", "runbook.execute.clients.ansible:playbook", streams=True)


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
        extravars = {**_plain(ctx.play_vars()), **dict(args.get("extra_vars") or {})}
        secrets = sorted({s for s in leaves(extravars) if len(s) >= 3 and ctx.holds_secret(s)})
        params = {
            "playbook": str(playbook),
            "inventory": sources,
            "limit": ctx.host,
            "extravars": extravars,
            "secrets": secrets,
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
        stats = res.get("stats", {}).get(ctx.host, {})
        changed = bool(stats.get("changed"))
        if check and changed:  # what check mode says would change, shown like runbook's own diffs
            for diff in res.get("diffs") or [""]:
                yield Planned(f"ansible-playbook {playbook.name}: would change", diff)
        ok = res.get("rc") == 0 and res.get("status") == "successful"
        msg = f"{res.get('status')}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
        if check and changed:
            msg = f"would change: {msg}"
        if not ok and res.get("failed_task"):
            msg += f"; failed task: {res['failed_task']}"
        return Outcome(
            ok=ok,
            changed=changed and (ctx.dry_run or not check),  # a plan's "changed": it would
            msg=msg,
            rc=res.get("rc"),
            stdout=res.get("stdout", ""),
            data={"ansible_stats": stats, "ansible_status": res.get("status"), "check_mode": check},
            command=f"ansible-playbook {'--check ' if check else ''}-l {ctx.host} {playbook.name}",
        )


def _plain(values: Any) -> dict[str, Any]:
    """Values Ansible can take as extra variables (JSON data; lazily rendered ones made plain)."""
    import json

    out: dict[str, Any] = {}
    for k, v in dict(values).items():
        try:
            out[str(k)] = json.loads(json.dumps(v, default=str))
        except (TypeError, ValueError):
            continue
    return out


# Ansible's names for runbook's own modules (ansible.builtin.shell, uri, ...): the same family
from runbook.kinds import ansible_builtin  # noqa: E402,F401 - registers them
