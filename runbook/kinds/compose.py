"""compose.*: Docker Compose v2 on the host (``docker compose -f FILE -p PROJECT ...``).

- ``compose.budget`` (read-only): the memory limits of a compose file's services, plus services that
  run outside it (PostgreSQL, Redis as host services) and a reserve, against the host's memory
  (/proc/meminfo capped by cgroup limits) or a given total; a table like seed 002's allocation table.
  The file is read by the real ``docker compose config`` on the host (``extends``, profiles,
  ``${VAR}`` from the project's .env, merged override files: exactly what ``up`` would run). Only
  where the host has no Compose v2 does a hand parser of the YAML remain (runbook.facts.compose
  ``memory_limits``), and the step then says so: it cannot follow ``extends`` or interpolation.
- ``compose.pull``: pull the images that are not present locally (locally built images need no
  registry); ``compose.ps`` (read-only): crashed, exited, unhealthy, restarting or OOM-killed containers.
- ``compose.up`` / ``compose.down``: change the running stack; undo brings the previous release back.

Releases: after every successful ``up`` the compose file and env files are recorded on the host under
``<dir of file>/.runbook-releases/<project>/<run id>/`` (mode 0700, ``current`` names the live one).
``compose.up``'s snapshot names the release that was live before and the image IDs its containers ran;
undo copies that release's files back, re-tags the images by ID where tags have moved, and runs
``up --wait`` again. It does not depend on the step that rendered the compose file: in reverse order
``compose.up`` is undone first, while the new compose file is still in place.
The release a rollback replaced is marked ``undone``; old records are pruned to ``keep_releases``,
never the live one, the previous one, the last successful one or one an unfinished run may still roll
back to (runbook.facts.releases). After a rollback, ``verify_undo`` checks the running
containers' image IDs, the tags and the live record against the snapshot.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Generator
from typing import Any

from runbook.actions import Action, Note, ReadFile, Run, Snapshot
from runbook.facts.compose import budget_table, memory_limits, parse_memory, problems_of, tail
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.compose_release import (
    Failed,
    compose,
    containers,
    docker,
    images_of,
    record,
    resolve,
    restore,
    snapshot,
    verify,
)
from runbook.model.yamllib import yaml

Gen = Generator[Action, Any, Any]
MIB = 1024 * 1024

_TARGET = {
    "file": {"type": "string", "minLength": 1, "description": "compose file on the host"},
    "project": {"type": "string", "minLength": 1, "description": "compose project name (-p)"},
    "docker": {"type": "string", "description": "docker CLI to use (default docker)"},
    "docker_host": {"type": "string", "description": "DOCKER_HOST for the docker CLI"},
}
_TIMEOUT = {"type": "integer", "minimum": 1, "description": "seconds (default 120)"}


# ------------------------------------------------------------------------------------ step kinds
class RestoresRelease(StepKind):
    """A kind whose snapshot names the live release and its image IDs (compose.up, compose.down):
    undo brings that release back from its record, and the rollback checks what runs."""

    def undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        return (yield from restore(args, dict(snapshot), ctx))

    def verify_undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        return (yield from verify(args, dict(snapshot), ctx))

    def undo_target(self, args: dict[str, Any], snapshot: Any) -> str | None:
        return f"compose:{args.get('docker_host') or ''}:{snapshot.get('project')}"

    def needed_records(self, snapshot: Any) -> list[str]:
        return [str(snapshot["previous_release"])] if snapshot.get("previous_release") else []


_NO_COMPOSE = ("is not a docker command", "unknown shorthand flag", "unknown flag: --file")
HAND_PARSER = "runbook's YAML reader: the host has no `docker compose`, so extends, profiles and ${VAR} are not resolved"


def _resolved(args: dict[str, Any], ctx: StepContext, text: str, where: str) -> Gen:
    """(the file as ``docker compose config --format json`` resolves it, who read it); (None, why)
    when the host has no Compose v2; (an Outcome, _) when compose refuses the file.

    The text goes on stdin without its ``env_file:`` entries: they hold no limits, and a budget check
    runs in pre-flight, before the step that writes them. The project directory is the file's (its
    ``.env`` interpolates ``${VAR}``, relative ``extends`` files resolve there)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return Outcome.failure(f"{where}: {exc}"), ""
    if isinstance(doc, dict) and isinstance(doc.get("services"), dict):
        for svc in doc["services"].values():
            if isinstance(svc, dict):
                svc.pop("env_file", None)
    argv = ["compose", "--file=-"]
    directory = args.get("project_directory") or (
        posixpath.dirname(str(args["file"])) if args.get("file") else None
    )
    if directory:
        argv.append(f"--project-directory={directory}")
    if args.get("project"):
        argv.append(f"--project-name={args['project']}")
    if args.get("env_file"):
        argv.append(f"--env-file={args['env_file']}")
    argv += [f"--profile={p}" for p in args.get("profiles") or []]
    cmd = docker(args, ctx, *argv, "config", "--format", "json")
    cmd = dataclasses.replace(cmd, stdin=json.dumps(doc, default=str).encode("utf-8"))
    res = yield Run(cmd, timeout=60, changes=False)
    out = (res.stderr or "") + (res.stdout or "")
    if res.rc == 127 or (not res.ok and any(marker in out for marker in _NO_COMPOSE)):
        return doc, HAND_PARSER
    if not res.ok:
        return (
            Outcome.failure(
                f"{where}: docker compose cannot read it: {tail(res.stderr or res.stdout)}",
                rc=res.rc,
                stderr=res.stderr,
                command=cmd.display(),
            ),
            "",
        )
    try:
        return json.loads(res.stdout), "docker compose config"
    except ValueError:
        return Outcome.failure(f"unexpected output from `{cmd.display()}`"), ""


@register
class ComposeBudget(StepKind):
    name = "compose.budget"
    registers = {
        "total_mb": "the memory budget",
        "allocated_mb": "sum of the services' limits",
        "reserve_mb": "the reserve",
        "buffer_mb": "what is left",
        "services": "limit per service (MB; null: none)",
        "extra": "host services counted (MB)",
        "read_by": "'docker compose config', or the hand parser where the host has no Compose v2",
    }
    description = (
        "Sum a compose file's memory limits (+ host services + reserve) against the host's memory; "
        "fails naming each service's share, and for any service without a limit."
    )
    schema = {
        "type": "object",
        "properties": {
            "template": {"type": "string", "minLength": 1, "description": "a template under templates/"},
            "file": {"type": "string", "minLength": 1, "description": "a compose file on the host"},
            "total_mb": {"type": "number", "exclusiveMinimum": 0, "description": "default: the host's"},
            "reserve_mb": {"type": "number", "minimum": 0, "description": "kept free (seed 002: 500)"},
            "services": {
                "type": "array",
                "items": {"type": "string"},
                "description": "services that must be in the file",
            },
            "extra": {
                "type": "object",
                "additionalProperties": {"type": ["number", "string"]},
                "description": "memory of services outside the file, e.g. {postgres: 800, redis: 300} (MB or 1g)",
            },
            "profiles": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "compose profiles to count (as `docker compose --profile`); default: none",
            },
            "env_file": {
                "type": "string",
                "minLength": 1,
                "description": "env file on the host (--env-file)",
            },
            "project_directory": {
                "type": "string",
                "minLength": 1,
                "description": "for template: the directory on the host whose .env the file reads",
            },
            "project": _TARGET["project"],
            "docker": _TARGET["docker"],
            "docker_host": _TARGET["docker_host"],
        },
        "oneOf": [{"required": ["template"]}, {"required": ["file"]}],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if args.get("template"):
            src = ctx.find_file(str(args["template"]), "templates")
            if not src.is_file():
                return Outcome.failure(f"template {args['template']!r} not found (looked at {src})")
            try:
                text, where = ctx.render_str(src.read_text(encoding="utf-8")), str(src)
            except Exception as exc:  # RenderError or a jinja2 error
                return Outcome.failure(f"template {src}: {getattr(exc, 'message', exc)}")
        else:
            raw = yield ReadFile(str(args["file"]), become=ctx.become)
            if raw is None:
                return Outcome.failure(f"{args['file']} does not exist")
            text, where = raw.decode("utf-8", "replace"), str(args["file"])
        doc, reader = yield from _resolved(args, ctx, text, where)
        if isinstance(doc, Outcome):
            return doc
        try:
            limits = memory_limits(doc)
            extra = {str(k): parse_memory(v, default_unit="m") for k, v in (args.get("extra") or {}).items()}
        except (yaml.YAMLError, ValueError) as exc:
            return Outcome.failure(f"{where}: {exc}")
        if args.get("total_mb") is not None:
            total, source = int(float(args["total_mb"]) * MIB), "total_mb"
        else:
            from runbook.facts.memory import read_memory_facts  # the host's limits: only when run

            facts = yield from read_memory_facts()
            total, source = facts.total, facts.limit_source
        reserve = int(float(args.get("reserve_mb") or 0) * MIB)
        table, allocated = budget_table(limits, extra, total, reserve, source)
        problems = [f"service {s} has no memory limit" for s, (lim, _) in limits.items() if lim is None]
        problems += [f"service {s} is not in {where}" for s in args.get("services") or [] if s not in limits]
        if allocated + reserve > total:
            problems.append(
                f"memory budget exceeded: {allocated // MIB} MB allocated + {reserve // MIB} MB reserve "
                f"= {(allocated + reserve) // MIB} MB > {total // MIB} MB"
            )
        data = {
            "total_mb": total // MIB,
            "allocated_mb": allocated // MIB,
            "reserve_mb": reserve // MIB,
            "buffer_mb": (total - allocated - reserve) // MIB,
            "services": {s: (lim // MIB if lim else None) for s, (lim, _) in limits.items()},
            "extra": {s: v // MIB for s, v in extra.items()},
            "read_by": reader,
        }
        if reader != "docker compose config":
            table += f"\n(read by {reader})"
        if problems:
            return Outcome.failure("; ".join(problems) + "\n" + table, stdout=table, data=data)
        pct = 100.0 * allocated / total if total else 0.0
        return Outcome.success(
            f"{allocated // MIB} MB of {total // MIB} MB allocated ({pct:.1f}%), "
            f"{(total - allocated - reserve) // MIB} MB buffer after a {reserve // MIB} MB reserve",
            stdout=table,
            data=data,
        )


@register
class ComposePull(StepKind):
    name = "compose.pull"
    registers = {
        "project": "the compose project",
        "present": "images already present",
        "pulled": "images pulled",
    }
    description = "Pull the compose file's images that are not present locally (policy: always pulls all)."
    mutating = True
    no_undo_needed = "pulled images only add to the host's image cache; nothing running changed"
    schema = {
        "type": "object",
        "properties": {
            **_TARGET,
            "policy": {"enum": ["missing", "always"], "default": "missing"},
            "timeout": {**_TIMEOUT, "description": "seconds (default 600)"},
        },
        "required": ["file"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if ctx.dry_run:  # the file on the host is the old one (or none yet): an earlier step renders it
            return Outcome.success(f"would pull the images of {args['file']} that are not present locally")
        try:
            project, services = yield from resolve(args, ctx)
        except Failed as exc:
            return exc.outcome
        wanted = sorted({str(s["image"]) for s in services.values() if s.get("image")})
        present: dict[str, str] = {}
        if args.get("policy", "missing") == "missing":
            for image in wanted:
                res = yield Run(
                    docker(args, ctx, "image", "inspect", "--format", "{{.Id}}", "--", image), changes=False
                )
                if res.ok:
                    present[image] = res.stdout.strip()
        pulled, failed = [], []
        for image in (i for i in wanted if i not in present):
            cmd = docker(args, ctx, "pull", "--quiet", "--", image)
            res = yield Run(cmd, timeout=int(args.get("timeout", 600)))
            if res.dry_run or res.ok:
                pulled.append(image)
            else:
                failed.append(f"{image}: {tail(res.stderr or res.stdout)}")
        data = {"project": project, "present": sorted(present), "pulled": pulled}
        if failed:
            return Outcome.failure("pull failed: " + "; ".join(failed), data=data, changed=bool(pulled))
        msg = f"pulled {', '.join(pulled)}" if pulled else "all images present"
        if present and pulled:
            msg += f" ({len(present)} already present)"
        return Outcome.success(msg, changed=bool(pulled), data=data)


@register
class ComposeUp(RestoresRelease):
    name = "compose.up"
    registers = {
        "project": "the compose project",
        "release": "the release record this run made",
        "previous_release": "the release that was live before",
        "services": "per service: {image, id} running now",
    }
    description = (
        "docker compose up -d --wait; records the release; undo restores the previous release's compose "
        "file, env files and images (by ID) and waits until it is healthy again."
    )
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            **_TARGET,
            "env_file": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": "env file(s) the services use: recorded and restored with the release",
            },
            "wait": {
                "type": "boolean",
                "default": True,
                "description": "wait until services are running/healthy",
            },
            "timeout": _TIMEOUT,
            "remove_orphans": {"type": "boolean", "default": True},
            "pull": {"enum": ["missing", "never", "always"], "description": "default missing"},
            "services": {"type": "array", "items": {"type": "string"}},
            "releases_dir": {"type": "string", "description": "default <dir of file>/.runbook-releases"},
            "keep_releases": {"type": "integer", "minimum": 2, "default": 5},
        },
        "required": ["file"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        try:
            project, _services, before, snap = yield from snapshot(args, ctx)
        except Failed as exc:
            if not ctx.dry_run:
                return exc.outcome
            # dry-run: the compose file is rendered by an earlier step, not on the host yet
            project, before, snap = str(args.get("project") or ""), [], {"previous_release": None}
        yield Snapshot(snap)
        if snap["previous_release"] is None and before:
            yield Note(f"{project}: containers run without a release record; undo cannot restore them")
        timeout = int(args.get("timeout", 120))
        argv = ["up", "-d"]
        if args.get("wait", True):
            argv += ["--wait", "--wait-timeout", str(timeout)]
        if args.get("remove_orphans", True):
            argv.append("--remove-orphans")
        argv += ["--pull", str(args.get("pull", "missing"))]
        if args.get("services"):  # operands after `--`: a service named `-d` is still a service
            argv += ["--", *[str(s) for s in args["services"]]]
        cmd = compose(args, ctx, project, *argv)
        res = yield Run(cmd, timeout=timeout + 60)
        if res.dry_run:
            return Outcome.success(f"would bring {project} up", changed=True, command=cmd.display())
        if not res.ok:
            return Outcome.failure(
                f"{project}: docker compose up failed: {tail(res.stderr or res.stdout)}",
                rc=res.rc,
                stderr=res.stderr,
                command=cmd.display(),
            )
        try:
            after = yield from containers(args, ctx, project)
        except Failed as exc:
            return exc.outcome
        rec = yield from record(args, ctx, snap, snap["release"], after)
        if not rec.ok:
            return Outcome.failure(f"{project}: up, but the release record failed: {tail(rec.stderr)}")
        changed = sorted(c.id for c in after) != sorted(c.id for c in before)
        running = images_of(after)
        return Outcome.success(
            f"{project} up: " + ", ".join(f"{s}={i['image']}" for s, i in sorted(running.items())),
            changed=changed,
            command=cmd.display(),
            stderr=res.stderr,
            data={
                "project": project,
                "release": snap["release"],
                "previous_release": snap["previous_release"],
                "services": running,
            },
        )


@register
class ComposeDown(RestoresRelease):
    name = "compose.down"
    registers = {}
    description = "docker compose down; undo brings the live release back (from its release record)."
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            **_TARGET,
            "env_file": ComposeUp.schema["properties"]["env_file"],
            "timeout": _TIMEOUT,
            "volumes": {"type": "boolean", "description": "also remove named volumes (cannot be undone)"},
            "releases_dir": {"type": "string"},
        },
        "required": ["file"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        try:
            project, _services, before, snap = yield from snapshot(args, ctx)
        except Failed as exc:
            return exc.outcome
        if not before:
            return Outcome.success(f"{project}: nothing running")
        yield Snapshot(snap)
        argv = ["down", "--remove-orphans", "--timeout", "10"] + (
            ["--volumes"] if args.get("volumes") else []
        )
        cmd = compose(args, ctx, project, *argv)
        res = yield Run(cmd, timeout=int(args.get("timeout", 120)) + 60)
        if not res.ok:
            return Outcome.failure(
                f"{project}: down failed: {tail(res.stderr)}", rc=res.rc, command=cmd.display()
            )
        return Outcome.success(
            f"{project}: {len(before)} container(s) removed", changed=True, command=cmd.display()
        )


@register
class ComposePs(StepKind):
    name = "compose.ps"
    registers = {
        "project": "the compose project",
        "containers": "per container: id, name, service, image, image_id, state, running, health, restarts, exit_code, oom_killed, memory_limit",
    }
    description = (
        "The stack's containers: fails on missing, exited, restarting, unhealthy or OOM-killed ones."
    )
    schema = {
        "type": "object",
        "properties": {
            **_TARGET,
            "expect_running": {
                "type": "array",
                "items": {"type": "string"},
                "description": "default: every service in the file",
            },
            "max_restarts": {"type": "integer", "minimum": 0, "description": "default 0"},
        },
        "required": ["file"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        try:
            project, services = yield from resolve(args, ctx)
            cs = yield from containers(args, ctx, project)
        except Failed as exc:
            return exc.outcome
        expect = [str(s) for s in args.get("expect_running") or services]
        problems = [
            f"{s}: no running container" for s in expect if not any(c.service == s and c.running for c in cs)
        ]
        for c in cs:
            problems += problems_of(c, max_restarts=int(args.get("max_restarts", 0)))
        lines = [f"{'SERVICE':<14}{'STATE':<12}{'HEALTH':<11}{'EXIT':<6}{'OOM':<5}{'RESTARTS':<10}IMAGE"]
        for c in sorted(cs, key=lambda c: (c.service, c.name)):
            lines.append(
                f"{c.service:<14}{c.state:<12}{c.health or '-':<11}{c.exit_code:<6}"
                f"{'yes' if c.oom_killed else 'no':<5}{c.restarts:<10}{c.image}"
            )
        table = "\n".join(lines)
        data = {"project": project, "containers": [c.as_dict() for c in cs]}
        if problems:
            return Outcome.failure(f"{project}: " + "; ".join(problems), stdout=table, data=data)
        return Outcome.success(f"{project}: {len(cs)} container(s) running", stdout=table, data=data)
