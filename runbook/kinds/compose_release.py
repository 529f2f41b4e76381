"""Docker Compose releases on a host: the docker commands, the project's containers, the release
record kept after every successful ``up``, and the restore that brings a recorded release back.

A release is ``<dir of the compose file>/.runbook-releases/<project>/<run id>/`` (mode 0700):
``compose.yml``, ``env.N`` (the env files), ``manifest.json`` (paths and image IDs); ``current``
names the live one. Used by the compose.* step kinds (runbook.kinds.compose).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Generator, Iterable
from typing import Any

from runbook.actions import Action, ReadFile, Run
from runbook.actions.commands import Command, q
from runbook.facts import releases as retention
from runbook.facts.compose import Container, parse_inspect, problems_of, tail
from runbook.kinds.base import Outcome, StepContext, StepGen

Gen = Generator[Action, Any, Any]


class Failed(Exception):
    def __init__(self, outcome: Outcome):
        super().__init__(outcome.msg)
        self.outcome = outcome


def docker(args: dict[str, Any], ctx: StepContext, *argv: str) -> Command:
    env = {"DOCKER_HOST": str(args["docker_host"])} if args.get("docker_host") else {}
    return Command.exec([str(args.get("docker") or "docker"), *argv], env=env, become=ctx.become)


def compose(args: dict[str, Any], ctx: StepContext, project: str | None, *argv: str) -> Command:
    # `--flag=value`: a value that begins with `-` is still the flag's value, never another flag
    head = ["compose", f"--file={args['file']}"]
    if project:
        head.append(f"--project-name={project}")
    return docker(args, ctx, *head, *argv)


def probe(args: dict[str, Any], ctx: StepContext, *argv: str, timeout: float = 60) -> Gen:
    """A read-only docker command; raises _Failed when it fails."""
    cmd = docker(args, ctx, *argv)
    res = yield Run(cmd, timeout=timeout, changes=False)
    if not res.ok:
        raise Failed(
            Outcome.failure(
                f"`{cmd.display()}` failed: {tail(res.stderr or res.stdout)}",
                rc=res.rc,
                stderr=res.stderr,
                command=cmd.display(),
            )
        )
    return res.stdout


def resolve(args: dict[str, Any], ctx: StepContext) -> Gen:
    """(project, services) from ``docker compose config``: validates the file before any change."""
    cmd = compose(args, ctx, args.get("project"), "config", "--format", "json")
    res = yield Run(cmd, timeout=60, changes=False)
    if not res.ok:
        raise Failed(
            Outcome.failure(
                f"{args['file']}: docker compose cannot read it: {tail(res.stderr or res.stdout)}",
                rc=res.rc,
                stderr=res.stderr,
                command=cmd.display(),
            )
        )
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        raise Failed(Outcome.failure(f"unexpected output from `{cmd.display()}`"))
    return str(args.get("project") or doc.get("name") or ""), dict(doc.get("services") or {})


def containers(args: dict[str, Any], ctx: StepContext, project: str) -> Gen:
    """The project's containers (one-off `run` containers excluded), from docker inspect."""
    ids = yield from probe(
        args, ctx, "ps", "-a", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"
    )
    ids = ids.split()
    if not ids:
        return []
    fmt = (
        "{{json .Id}}\t{{json .Name}}\t{{json .Config.Labels}}\t{{json .Config.Image}}\t{{json .Image}}\t"
        "{{json .State}}\t{{json .RestartCount}}\t{{json .HostConfig.Memory}}"
    )
    out = yield from probe(args, ctx, "inspect", "--format", fmt, "--", *ids)
    return [c for c in parse_inspect(out) if not c.oneoff]


def store_dir(args: dict[str, Any], project: str) -> str:
    if args.get("releases_dir"):
        return posixpath.join(str(args["releases_dir"]), project)
    return posixpath.join(posixpath.dirname(str(args["file"])) or ".", ".runbook-releases", project)


def env_files(args: dict[str, Any]) -> list[str]:
    value = args.get("env_file")
    if not value:
        return []
    return [str(v) for v in ([value] if isinstance(value, str) else value)]


def images_of(cs: Iterable[Container]) -> dict[str, dict[str, str]]:
    return {c.service: {"image": c.image, "id": c.image_id} for c in cs if c.running}


def record(
    args: dict[str, Any], ctx: StepContext, snap: dict[str, Any], release: str, cs: list[Container]
) -> Gen:
    """Keep the compose file and env files that are now live as release ``release``, make it the
    live one, then prune old records (never one a rollback could still need: facts.releases)."""
    store = snap["store"]
    d = posixpath.join(store, release)
    manifest = {
        "file": str(args["file"]),
        "env_files": env_files(args),
        "images": images_of(cs),
        "previous": snap.get("previous_release"),
        "run_id": ctx.run_id,
    }
    lines = [
        "set -e",
        "umask 077",
        f"rm -rf -- {q(d)}",
        f"mkdir -p -- {q(d)}",
        f"cp -p -- {q(str(args['file']))} {q(d)}/compose.yml",
    ]
    for i, env in enumerate(env_files(args)):
        lines.append(f"if [ -f {q(env)} ]; then cp -p -- {q(env)} {q(d)}/env.{i}; fi")
    lines += [
        f"printf '%s\\n' {q(json.dumps(manifest, sort_keys=True))} > {q(d)}/{retention.MANIFEST}",
        f"printf '%s\\n' {q(release)} > {q(store)}/current.tmp && mv -f -- {q(store)}/current.tmp {q(store)}/current",
    ]
    res = yield Run(Command.shell("\n".join(lines), become=ctx.become), timeout=60)
    if not res.ok:
        return res
    listing = yield Run(
        Command.exec(retention.listing_argv(store), become=ctx.become), timeout=60, changes=False
    )
    if not listing.ok:
        return listing
    found = retention.parse_listing(listing.stdout)
    good = retention.last_successful(found, exclude=release)
    good_previous = None
    if good:  # a later rollback of the last successful run brings back the release it replaced
        raw = yield ReadFile(posixpath.join(store, good, retention.MANIFEST), become=ctx.become)
        try:
            good_previous = json.loads(raw).get("previous") if raw else None
        except (ValueError, AttributeError):
            good_previous = None
    keep = retention.protected(
        found, release, snap.get("previous_release"), ctx.pinned(), good_previous=good_previous
    )
    doomed = retention.to_prune(found, keep, int(args.get("keep_releases", 5)))
    if doomed:
        paths = [posixpath.join(store, name) for name in doomed]
        res = yield Run(Command.exec(["rm", "-rf", "--", *paths], become=ctx.become), timeout=60)
    return res


def release_name(ctx: StepContext, store: str) -> Gen:
    """This run's release name: its run id, or run id.N when this run already recorded one (a
    second compose.up of the same project in one run must not overwrite the first one's record)."""
    name = ctx.run_id
    for n in range(2, 1000):
        seen = yield ReadFile(posixpath.join(store, name, retention.MANIFEST), become=ctx.become)
        if seen is None:
            return name
        name = f"{ctx.run_id}.{n}"
    return name


def snapshot(args: dict[str, Any], ctx: StepContext) -> Gen:
    project, services = yield from resolve(args, ctx)
    store = store_dir(args, project)
    current = yield ReadFile(posixpath.join(store, "current"), become=ctx.become)
    prev = (current or b"").decode("utf-8", "replace").strip() or None
    before = yield from containers(args, ctx, project)
    release = yield from release_name(ctx, store)
    snap = {
        "project": project,
        "release": release,  # the record this step makes if it succeeds (undo marks it undone)
        "file": str(args["file"]),
        "env_files": env_files(args),
        "store": store,
        "previous_release": prev,
        "images": images_of(before),
        "had_containers": bool(before),
    }
    return project, services, before, snap


def restore(args: dict[str, Any], snap: dict[str, Any], ctx: StepContext) -> StepGen:
    """Bring back the release a snapshot names (files, images by ID, containers), wait until it is
    healthy, and mark the release it replaced as undone. ``verify`` then checks what runs."""
    project, store, prev = snap["project"], snap["store"], snap.get("previous_release")
    images: dict[str, dict[str, str]] = dict(snap.get("images") or {})
    timeout = int(args.get("timeout", 120))
    undone = snap.get("release")
    if not undone:  # a snapshot from before releases were named in it: the one live now
        raw = yield ReadFile(posixpath.join(store, "current"), become=ctx.become)
        undone = (raw or b"").decode("utf-8", "replace").strip() or None
    if not prev:
        if snap.get("had_containers"):
            was = ", ".join(f"{s}={i.get('image')}" for s, i in sorted(images.items()))
            return Outcome.failure(
                f"{project}: no release record of the stack that ran before (deployed outside runbook?); "
                f"its images were {was}: "
                "restore its compose file by hand and run `docker compose up -d`"
            )
        cmd = compose(args, ctx, project, "down", "--remove-orphans", "--timeout", "10")
        res = yield Run(cmd, timeout=timeout + 60)
        if not res.ok:
            return Outcome.failure(
                f"{project}: down failed: {tail(res.stderr)}", rc=res.rc, command=cmd.display()
            )
        # no release is live any more: the next up must see a first deploy, not the one undone here
        marker = posixpath.join(store, "current")
        res = yield Run(Command.exec(["rm", "-f", "--", marker], become=ctx.become), timeout=60)
        if not res.ok:
            return Outcome.failure(f"{project}: down, but could not remove {marker}: {tail(res.stderr)}")
        yield from _mark_undone(ctx, store, undone, None)
        return Outcome.success(
            f"{project}: first release removed (nothing ran before)",
            changed=True,
            data={"release": None, "undone": undone},
        )
    d = posixpath.join(store, prev)
    raw = yield ReadFile(posixpath.join(d, retention.MANIFEST), become=ctx.become)
    if raw is None:
        return Outcome.failure(f"{project}: release {prev} is missing from {store} (pruned or deleted?)")
    manifest = json.loads(raw)
    lines = ["set -e", f"cp -p -- {q(d)}/compose.yml {q(snap['file'])}"]
    for i, env in enumerate(snap.get("env_files") or []):
        if i < len(manifest.get("env_files") or []):
            lines.append(f"if [ -f {q(d)}/env.{i} ]; then cp -p -- {q(d)}/env.{i} {q(env)}; fi")
    lines.append(
        f"printf '%s\\n' {q(prev)} > {q(store)}/current.tmp && mv -f {q(store)}/current.tmp {q(store)}/current"
    )
    res = yield Run(Command.shell("\n".join(lines), become=ctx.become), timeout=60)
    if not res.ok:
        return Outcome.failure(f"{project}: could not restore release {prev}: {tail(res.stderr)}")
    retagged = []
    for svc, img in sorted(images.items()):
        ref, want = img.get("image", ""), img.get("id", "")
        if not ref or not want or ref.startswith("sha256:"):
            continue
        res = yield Run(
            docker(args, ctx, "image", "inspect", "--format", "{{.Id}}", "--", ref), changes=False
        )
        if res.ok and res.stdout.strip() == want:
            continue
        res = yield Run(docker(args, ctx, "tag", "--", want, ref))
        if not res.ok:
            return Outcome.failure(f"{project}: cannot re-tag {want} as {ref} for {svc}: {tail(res.stderr)}")
        retagged.append(f"{ref} -> {want[:19]}")
    up = compose(
        args,
        ctx,
        project,
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        str(timeout),
        "--remove-orphans",
        "--pull",
        "never",
    )
    res = yield Run(up, timeout=timeout + 60)
    if not res.ok:
        return Outcome.failure(
            f"{project}: release {prev} did not come back healthy: {tail(res.stderr)}",
            rc=res.rc,
            stderr=res.stderr,
            command=up.display(),
        )
    try:
        after = yield from containers(args, ctx, project)
    except Failed as exc:
        return exc.outcome
    bad = [p for c in after for p in problems_of(c, max_restarts=None)]
    if bad:
        return Outcome.failure(f"{project}: release {prev} restored but not healthy: {'; '.join(bad)}")
    if undone != prev:
        yield from _mark_undone(ctx, store, undone, prev)
    running = sorted({c.service for c in after if c.running})
    extra = f"; re-tagged {', '.join(retagged)}" if retagged else ""
    replaced = f"; live again instead of {undone}" if undone and undone != prev else "; live again"
    return Outcome.success(
        f"{project}: release {prev} restored and healthy ({', '.join(running)}){replaced}{extra}",
        changed=True,
        data={"release": prev, "undone": undone, "services": running},
    )


def _mark_undone(ctx: StepContext, store: str, undone: str | None, live: str | None) -> Gen:
    """Mark a release a rollback replaced (it is no longer a candidate for 'last successful')."""
    if not undone:
        return None
    d = posixpath.join(store, undone)
    note = json.dumps({"undone_by": ctx.run_id, "live_again": live}, sort_keys=True)
    script = f"if [ -d {q(d)} ]; then printf '%s\\n' {q(note)} > {q(d)}/{retention.UNDONE}; fi"
    yield Run(Command.shell(script, become=ctx.become), timeout=60)
    return None


def verify(args: dict[str, Any], snap: dict[str, Any], ctx: StepContext) -> StepGen:
    """After a rollback: does the project run exactly the snapshot's stack? The running containers'
    image IDs against the snapshot's, the tags they were started from, and the live release record."""
    project, store, prev = snap["project"], snap["store"], snap.get("previous_release")
    images: dict[str, dict[str, str]] = dict(snap.get("images") or {})
    try:
        after = yield from containers(args, ctx, project)
    except Failed as exc:
        return exc.outcome
    running = {c.service: c for c in after if c.running}
    diffs = []
    for svc, img in sorted(images.items()):
        want = img.get("id", "")
        if svc not in running:
            diffs.append(f"service {svc}: expected a running container of {want[:19]}, found none")
        elif want and running[svc].image_id != want:
            diffs.append(
                f"service {svc}: expected image {want[:19]}, found {running[svc].image_id[:19]} running"
            )
    diffs += [
        f"service {svc}: expected not running (not in the snapshot), found {c.image_id[:19]} running"
        for svc, c in sorted(running.items())
        if svc not in images
    ]
    for _svc, img in sorted(images.items()):
        ref, want = img.get("image", ""), img.get("id", "")
        if not ref or not want or ref.startswith("sha256:"):
            continue
        res = yield Run(docker(args, ctx, "image", "inspect", "--format", "{{.Id}}", ref), changes=False)
        found = res.stdout.strip() if res.ok else "no such image"
        if found != want:
            diffs.append(f"image {ref}: expected {want[:19]}, found {found[:19]} (a later up would run it)")
    raw = yield ReadFile(posixpath.join(store, "current"), become=ctx.become)
    current = (raw or b"").decode("utf-8", "replace").strip() or None
    if current != prev:
        diffs.append(f"live release record: expected {prev or 'none'}, found {current or 'none'}")
    if diffs:
        return Outcome.failure(f"{project}: " + "; ".join(diffs))
    shown = ", ".join(f"{s}={i.get('id', '')[:19]}" for s, i in sorted(images.items())) or "nothing running"
    return Outcome.success(f"{project}: runs release {prev or 'none'} ({shown})")
