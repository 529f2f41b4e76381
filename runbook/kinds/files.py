"""copy, template and file: put files and directories on the host, idempotently, with undo.

Each takes a Snapshot of what it is about to change (previous bytes, mode, owner, link target, a tar
of a directory it removes) before changing anything; ``undo`` puts that back, or removes what the
step created. Nothing changed means no snapshot and ``changed: false``.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Mapping
from typing import Any

from runbook.actions import FileStat, ReadFile, Run, Snapshot, Stat, WriteFile
from runbook.actions.commands import operand
from runbook.errors import RenderError, RunbookError, ValidationError
from runbook.kinds.base import HostCheck, Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.filestate import (
    StepFailed,
    attr_commands,
    capture,
    chunks,
    cmd,
    fmt_mode,
    group_matches,
    missing_parents,
    owner_matches,
    parse_mode,
    restore,
    verify,
)

_MODE = {"type": ["string", "integer"], "description": 'octal "0644" (quote it) or symbolic "u=rw,g=r,o="'}
ATTRS = {
    "mode": _MODE,
    "owner": {"type": ["string", "integer"], "description": "user name or uid"},
    "group": {"type": ["string", "integer"], "description": "group name or gid"},
}
_WRITE = {
    "dest": {"type": "string", "minLength": 1, "description": "path on the host (a directory: src's name)"},
    "backup": {"type": "boolean", "description": "keep the old file as DEST.<time>~ on the host"},
    "force": {"type": "boolean", "description": "false: only write when dest does not exist"},
    **ATTRS,
}


def _data(dest: str, content: bytes, mode: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "dest": dest,
        "checksum": hashlib.sha1(content).hexdigest(),
        "size": len(content),
        "mode": fmt_mode(mode) if mode is not None else None,
        **extra,
    }


def write_file(content: bytes, args: dict[str, Any], ctx: StepContext, src_name: str | None) -> StepGen:
    """Shared by copy and template: compare, snapshot, write."""
    b = ctx.become
    dest = str(args["dest"])
    if dest.endswith("/") and src_name:
        dest = posixpath.join(dest, src_name)
    st: FileStat = yield Stat(dest, become=b)
    if st.is_link:  # write through the link, like `follow: yes`
        res = yield Run(cmd(["readlink", "-f", "--", dest], ctx), changes=False)
        if res.ok and res.stdout.strip():
            dest = res.stdout.strip()
            st = yield Stat(dest, become=b)
    if st.exists and st.is_dir:
        if not src_name:
            return Outcome.failure(f"{dest} is a directory; give the file's full path as dest")
        dest = posixpath.join(dest, src_name)
        st = yield Stat(dest, become=b)
        if st.exists and st.is_dir:
            return Outcome.failure(f"{dest} is a directory")
    try:
        mode = (
            parse_mode(args["mode"], st.mode if st.exists else 0o644)
            if args.get("mode") is not None
            else None
        )
    except ValueError as exc:
        return Outcome.failure(str(exc))
    current = (yield ReadFile(dest, become=b)) if st.exists else None
    final_mode = mode if mode is not None else (st.mode if st.exists else None)
    if st.exists and args.get("force") is False:
        return Outcome.success(f"{dest} exists (force: false)", data=_data(dest, current or b"", st.mode))
    if (
        current == content
        and (mode is None or st.mode == mode)
        and owner_matches(st, args.get("owner"))
        and group_matches(st, args.get("group"))
    ):
        return Outcome.success(f"{dest} unchanged", data=_data(dest, content, final_mode))
    created = [] if st.exists else (yield from missing_parents(dest, ctx))
    try:
        snap = yield from capture(dest, st, ctx, content=current)
    except StepFailed as exc:
        return Outcome.failure(str(exc))
    snap["created_dirs"] = created
    yield Snapshot(snap)
    extra: dict[str, Any] = {}
    if args.get("backup") and current is not None and current != content:
        extra["backup_file"] = f"{dest}.{time.strftime('%Y-%m-%d@%H:%M:%S')}~"
        res = yield Run(cmd(["cp", "-p", "--", dest, extra["backup_file"]], ctx))
        if not res.ok:
            return Outcome.failure(f"could not back up {dest}: {res.stderr.strip()}", stderr=res.stderr)
    if created:
        res = yield Run(cmd(["mkdir", "-p", "--", posixpath.dirname(dest)], ctx))
        if not res.ok:
            return Outcome.failure(f"could not create {posixpath.dirname(dest)}: {res.stderr.strip()}")
    owner, group = args.get("owner"), args.get("group")
    yield WriteFile(
        dest,
        content,
        mode=mode,
        owner=str(owner) if owner is not None else None,
        group=str(group) if group is not None else None,
        become=b,
    )
    what = "content" if current != content else "attributes"
    verb = "created" if current is None else f"updated {what} of"
    return Outcome.success(f"{verb} {dest}", changed=True, data=_data(dest, content, final_mode, **extra))


class RestoresPath(StepKind):
    """A kind whose snapshot is the state of one path (runbook.kinds.filestate): undo puts it back,
    and the rollback checks that it is back."""

    def undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        return (yield from restore(snapshot, ctx))

    def verify_undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        return (yield from verify(snapshot, ctx))

    def undo_target(self, args: dict[str, Any], snapshot: Any) -> str | None:
        return f"path:{snapshot.get('path')}"


def check_source(args: Any, check: HostCheck, folder: str, *, render: bool) -> None:
    """A template's or copy's source file exists on this machine (and a template renders)."""
    if not isinstance(args, Mapping) or not args.get("src") or check.unknown(args["src"]):
        return  # inline content, or made of a registered result: known only during the run
    name = str(args["src"])
    src = check.ctx.find_file(name, folder)
    where = check.where("src")
    if not src.exists():
        raise ValidationError(
            f"{check.module} source not found: {name}",
            location=where,
            hint=f"looked in {check.ctx.project_dir / folder} and next to the runbook",
        )
    if not render:
        return
    try:
        check.render_file(src)
    except ValidationError as exc:  # not readable as text
        raise ValidationError(exc.message, location=exc.location or where, hint=exc.hint) from None
    except RenderError as exc:
        raise RenderError(
            f"in template {src.name}: {exc.message}", location=exc.location or check.location, hint=exc.hint
        ) from None


@register
class Copy(RestoresPath):
    name = "copy"
    registers = {
        "dest": "path written on the host",
        "checksum": "SHA-1 of the content",
        "size": "bytes",
        "mode": "final mode (e.g. 0644)",
        "backup": "with backup: true, where the old file was kept",
    }
    description = "Copy a control-machine file (or inline content) to the host; undo restores the old file."
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            "src": {"type": "string", "minLength": 1, "description": "file under files/ or a path"},
            "content": {"type": "string", "description": "inline content instead of src"},
            **_WRITE,
        },
        "required": ["dest"],
        "oneOf": [{"required": ["src"]}, {"required": ["content"]}],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if args.get("content") is not None:
            return (yield from write_file(str(args["content"]).encode("utf-8"), args, ctx, None))
        src = ctx.find_file(str(args["src"]), "files")
        if not src.is_file():
            where = "is a directory (copying directories is not supported)" if src.is_dir() else "not found"
            return Outcome.failure(f"copy src {args['src']!r} {where} (looked at {src})")
        return (yield from write_file(src.read_bytes(), args, ctx, src.name))

    def check_for_host(self, args: Any, check: HostCheck) -> None:
        check_source(args, check, "files", render=False)


@register
class Template(RestoresPath):
    name = "template"
    registers = {
        "dest": "path written on the host",
        "checksum": "SHA-1 of the rendered content",
        "size": "bytes",
        "mode": "final mode (e.g. 0644)",
        "backup": "with backup: true, where the old file was kept",
    }
    description = "Render a Jinja2 template from templates/ onto the host; undo restores the old file."
    mutating = True
    schema = {
        "type": "object",
        "properties": {"src": {"type": "string", "minLength": 1}, **_WRITE},
        "required": ["src", "dest"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        src = ctx.find_file(str(args["src"]), "templates")
        if not src.is_file():
            return Outcome.failure(f"template {args['src']!r} not found (looked at {src})")
        try:
            text = src.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            return Outcome.failure(f"template {src} is not UTF-8 text: {exc}")
        try:
            rendered = ctx.render_str(text)
        except RunbookError as exc:
            return Outcome.failure(f"template {src}: {exc.message}")
        except Exception as exc:  # jinja2 errors from a plain render_str
            return Outcome.failure(f"template {src}: {type(exc).__name__}: {exc}")
        if text.endswith("\n") and not rendered.endswith("\n"):  # Jinja drops one trailing newline
            rendered += "\n"
        name = src.name[:-3] if src.name.endswith(".j2") else src.name
        return (yield from write_file(rendered.encode("utf-8"), args, ctx, name))

    def check_for_host(self, args: Any, check: HostCheck) -> None:
        check_source(args, check, "templates", render=True)


_STATES = ("file", "directory", "absent", "touch", "link")
MAX_RECURSE_ENTRIES = 50_000


@register
class File(RestoresPath):
    name = "file"
    registers = {
        "path": "the path",
        "state": "directory, touch, absent, link or file",
        "backup": "state: absent: where the removed content was kept",
    }
    description = (
        "Make a path a file, directory, symlink or absent, with mode/owner/group; undo puts it back "
        "(a removed directory is archived with tar under /var/tmp/runbook-backup first)."
    )
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "state": {"enum": list(_STATES), "description": "default: what the path is now, else file"},
            "src": {"type": "string", "minLength": 1, "description": "the link's target (state: link)"},
            "recurse": {"type": "boolean", "description": "apply mode/owner/group below a directory too"},
            "force": {"type": "boolean", "description": "state: link replaces an existing file"},
            **ATTRS,
        },
        "required": ["path"],
        "if": {"properties": {"state": {"const": "link"}}, "required": ["state"]},
        "then": {"required": ["src"]},
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        path = str(args["path"]).rstrip("/") or "/"
        st: FileStat = yield Stat(path, become=ctx.become)
        state = args.get("state") or ("directory" if st.is_dir and not st.is_link else "file")
        try:
            if state == "absent":
                return (yield from self._absent(path, st, ctx))
            if state == "directory":
                return (yield from self._directory(path, st, args, ctx))
            if state == "link":
                return (yield from self._link(path, st, args, ctx))
            if state == "touch":
                return (yield from self._touch(path, st, args, ctx))
            if not st.exists:
                return Outcome.failure(
                    f"{path} does not exist (state: file does not create files; use state: touch, copy or template)"
                )
            if st.is_dir and not st.is_link:
                return Outcome.failure(f"{path} is a directory, not a file (use state: directory)")
            return (yield from self._attrs(path, st, args, ctx, is_dir=False, state=state))
        except (StepFailed, ValueError) as exc:
            return Outcome.failure(str(exc))

    # ---------------------------------------------------------------------------------- states
    def _run_all(self, cmds: list[list[str]], ctx: StepContext) -> StepGen:
        for argv in cmds:
            res = yield Run(cmd(argv, ctx))
            if not res.ok:
                return Outcome.failure(
                    f"{argv[0]} failed: {res.stderr.strip()}", rc=res.rc, stderr=res.stderr
                )
        return None

    def _attrs(
        self, path: str, st: FileStat, args: dict[str, Any], ctx: StepContext, *, is_dir: bool, state: str
    ) -> StepGen:
        link = state == "link"
        cmds = attr_commands(path, st, args, is_dir=is_dir, link=link)
        entries: list[list[Any]] = []
        if args.get("recurse") and is_dir:
            entries, more = yield from self._recurse_plan(path, args, ctx)
            cmds += more
        data = {"path": path, "state": state}
        if not cmds:
            return Outcome.success(f"{path} unchanged", data=data)
        snap = yield from capture(path, st, ctx, attrs_only=True)
        snap["entries"] = entries
        yield Snapshot(snap)
        failed = yield from self._run_all(cmds, ctx)
        return failed or Outcome.success(f"changed attributes of {path}", changed=True, data=data)

    def _recurse_plan(self, path: str, args: dict[str, Any], ctx: StepContext) -> StepGen:
        # find takes no `--`: a path like `-delete` or `!` would be an expression, so it gets `./`
        start = operand(path)
        argv = ["find", start, "-mindepth", "1", "!", "-type", "l", "-printf", r"%m %U %G %u %g %y %p\0"]
        res = yield Run(cmd(argv, ctx), changes=False)
        if not res.ok:
            raise StepFailed(f"cannot list {path}: {res.stderr.strip()}")
        records = [r for r in res.stdout.split("\0") if r.strip()]
        if len(records) > MAX_RECURSE_ENTRIES:
            raise StepFailed(
                f"{path} holds {len(records)} entries, more than {MAX_RECURSE_ENTRIES} that recurse can "
                "snapshot for undo; use a command step (chmod -R / chown -R) with an explicit undo"
            )
        owner, group, spec = args.get("owner"), args.get("group"), args.get("mode")
        entries: list[list[Any]] = []
        chmods: dict[str, list[str]] = {}
        chowns: list[str] = []
        for rec in records:
            mode, uid, gid, uname, gname, typ, p = rec.lstrip("\n").split(" ", 6)
            est = FileStat(p, True, is_dir=typ == "d", mode=int(mode, 8), uid=int(uid), gid=int(gid))
            est = FileStat(**{**est.__dict__, "owner": uname, "group": gname})
            differs = False
            if spec is not None:
                want = parse_mode(spec, est.mode, est.is_dir)
                if want != est.mode:
                    chmods.setdefault(fmt_mode(want), []).append(p)
                    differs = True
            if not owner_matches(est, owner) or not group_matches(est, group):
                chowns.append(p)
                differs = True
            if differs:
                entries.append([posixpath.relpath(p, start), fmt_mode(est.mode), est.uid, est.gid])
        cmds = [["chmod", "--", m, *part] for m, paths in chmods.items() for part in chunks(paths)]
        if chowns:
            own = (str(owner) if owner is not None else "") + (f":{group}" if group is not None else "")
            cmds += [["chown", "-h", "--", own, *part] for part in chunks(chowns)]
        return entries, cmds

    def _create(
        self, path: str, args: dict[str, Any], ctx: StepContext, make: list[str], state: str
    ) -> StepGen:
        """Create a path that does not exist: snapshot 'did not exist', parents, ``make``, attributes."""
        created = yield from missing_parents(path, ctx)
        yield Snapshot({"path": path, "existed": False, "created_dirs": created})
        cmds = [["mkdir", "-p", "--", posixpath.dirname(path)]] if created else []
        cmds.append(make)
        gone = FileStat(path=path, exists=False)
        cmds += attr_commands(path, gone, args, is_dir=state == "directory", link=state == "link")
        failed = yield from self._run_all(cmds, ctx)
        return failed or Outcome.success(f"created {path}", changed=True, data={"path": path, "state": state})

    def _directory(self, path: str, st: FileStat, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if st.exists and (st.is_link or not st.is_dir):
            what = "a symlink" if st.is_link else "a file"
            return Outcome.failure(f"{path} exists and is {what}, not a directory; remove it first")
        if st.exists:
            return (yield from self._attrs(path, st, args, ctx, is_dir=True, state="directory"))
        return (yield from self._create(path, args, ctx, ["mkdir", "-p", "--", path], "directory"))

    def _touch(self, path: str, st: FileStat, args: dict[str, Any], ctx: StepContext) -> StepGen:
        if not st.exists:
            return (yield from self._create(path, args, ctx, ["touch", "--", path], "touch"))
        snap = yield from capture(path, st, ctx, attrs_only=True)
        yield Snapshot(snap)
        cmds = [["touch", "-c", "--", path], *attr_commands(path, st, args, is_dir=st.is_dir)]
        failed = yield from self._run_all(cmds, ctx)
        return failed or Outcome.success(
            f"touched {path}", changed=True, data={"path": path, "state": "touch"}
        )

    def _absent(self, path: str, st: FileStat, ctx: StepContext) -> StepGen:
        if not st.exists:
            return Outcome.success(f"{path} already absent", data={"path": path, "state": "absent"})
        if path == "/":
            return Outcome.failure("refusing to remove /")
        is_dir = st.is_dir and not st.is_link
        snap = yield from capture(path, st, ctx, archive=is_dir)
        yield Snapshot(snap)
        failed = yield from self._run_all([["rm", "-rf" if is_dir else "-f", "--", path]], ctx)
        msg = f"removed {path}" + (f" (archived to {snap['backup']})" if snap.get("backup") else "")
        return failed or Outcome.success(
            msg, changed=True, data={"path": path, "state": "absent", "backup": snap.get("backup")}
        )

    def _link(self, path: str, st: FileStat, args: dict[str, Any], ctx: StepContext) -> StepGen:
        src = str(args.get("src") or "")
        if not src:
            return Outcome.failure("state: link needs src (the link's target)")
        if st.is_link:
            res = yield Run(cmd(["readlink", "--", path], ctx), changes=False)
            if res.ok and res.stdout.rstrip("\n") == src:
                return (yield from self._attrs(path, st, args, ctx, is_dir=False, state="link"))
        elif st.exists and st.is_dir:
            return Outcome.failure(f"{path} is a directory; refusing to replace it with a link")
        elif st.exists and not args.get("force"):
            return Outcome.failure(
                f"{path} exists and is not a link; set force: true to replace it with a link"
            )
        if not st.exists:
            return (yield from self._create(path, args, ctx, ["ln", "-s", "--", src, path], "link"))
        snap = yield from capture(path, st, ctx)
        yield Snapshot(snap)
        cmds = [["ln", "-sfn", "--", src, path]]
        cmds += attr_commands(path, FileStat(path=path, exists=False), args, is_dir=False, link=True)
        failed = yield from self._run_all(cmds, ctx)
        return failed or Outcome.success(
            f"linked {path} -> {src}", changed=True, data={"path": path, "state": "link"}
        )
