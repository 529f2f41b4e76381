"""File state on a host, for the file step kinds: modes, snapshots taken before a change, and undo.

The generators here yield actions like step kinds do (``snap = yield from capture(...)``); nothing
here touches a file itself.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import secrets
from collections.abc import Generator, Iterable, Mapping
from typing import Any

from runbook.actions import Action, FileStat, ReadFile, Run, Stat, WriteFile
from runbook.actions.commands import Command
from runbook.kinds.base import Outcome, StepContext
from runbook.model.lazyre import lazy_re

INLINE_MAX = 16 * 1024 * 1024  # larger previous contents are copied to a backup file on the host
DEFAULT_BACKUP_DIR = "/var/tmp/runbook-backup"
Gen = Generator[Action, Any, Any]


class StepFailed(Exception):
    """A file step cannot go on; the message is for the operator."""


# ------------------------------------------------------------------------------------------ modes
_SYMBOLIC = lazy_re(r"([ugoa]*)([-+=])([rwxXst]*)")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}


def parse_mode(spec: Any, current: int = 0, is_dir: bool = False) -> int:
    """A mode as users write it: 0o644 (YAML 0644), "0644", "644", "0o644", or symbolic
    "u=rw,g=r,o=" / "u+x" / "a-w" / "u=rwX" (applied to ``current``). Raises ValueError."""
    if isinstance(spec, bool):
        raise ValueError(f"mode {spec!r} is not a file mode")
    if isinstance(spec, int):
        if not 0 <= spec <= 0o7777:
            raise ValueError(f'mode {spec} is out of range (write it as a string, e.g. "0644")')
        return spec
    text = str(spec).strip()
    if re.fullmatch(r"(0o|0)?[0-7]{1,4}", text):
        return int(text[2:] if text.startswith("0o") else text, 8)
    mode = current & 0o7777
    for clause in text.split(","):
        m = _SYMBOLIC.fullmatch(clause.strip())
        if m is None:
            raise ValueError(f'mode {text!r} is neither octal ("0644") nor symbolic ("u=rw,g=r,o=")')
        who, op, perms = m.groups()
        mask = 0
        for w in who or "a":
            mask |= 0o7777 if w == "a" else _WHO[w]
        bits = 0
        for p in perms:
            if p == "r":
                bits |= 0o444
            elif p == "w":
                bits |= 0o222
            elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                bits |= 0o111
            elif p == "s":
                bits |= 0o6000
            elif p == "t":
                bits |= 0o1000
        bits &= mask
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~(mask & 0o7777)) | bits
    return mode


def fmt_mode(mode: int) -> str:
    return f"{mode:04o}"


def owner_matches(st: FileStat, owner: Any) -> bool:
    if owner is None:
        return True
    owner = str(owner)
    return (owner.isdigit() and int(owner) == st.uid) or owner == st.owner


def group_matches(st: FileStat, group: Any) -> bool:
    if group is None:
        return True
    group = str(group)
    return (group.isdigit() and int(group) == st.gid) or group == st.group


def cmd(argv: Iterable[str], ctx: StepContext) -> Command:
    """A file command, no shell. Every path operand follows ``--`` (find: ``operand``)."""
    return Command.exec([str(a) for a in argv], become=ctx.become)


def _root(path: str) -> str:
    """The directory a parent-less path lives in: / for /x, the working directory for x."""
    return "/" if path.startswith("/") else "."


def attr_commands(
    path: str, st: FileStat, args: Mapping[str, Any], *, is_dir: bool, link: bool = False
) -> list[list[str]]:
    """chmod/chown argv lists that bring ``path`` to the mode/owner/group in ``args`` (pure)."""
    out: list[list[str]] = []
    if args.get("mode") is not None and not link:
        want = parse_mode(args["mode"], st.mode if st.exists else 0, is_dir)
        if not st.exists or st.mode != want:
            out.append(["chmod", "--", fmt_mode(want), path])
    owner, group = args.get("owner"), args.get("group")
    if (owner is not None or group is not None) and (
        not st.exists or not owner_matches(st, owner) or not group_matches(st, group)
    ):
        spec = (str(owner) if owner is not None else "") + (f":{group}" if group is not None else "")
        out.append(["chown", *(["-h"] if link else []), "--", spec, path])
    return out


def chunks(items: list[str], size: int = 200) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -------------------------------------------------------------------------------------- snapshots
def backup_path(ctx: StepContext, path: str, suffix: str) -> str:
    directory = str(ctx.vars.get("runbook_backup_dir") or DEFAULT_BACKUP_DIR)
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    return posixpath.join(directory, f"{ctx.run_id}-{digest}-{secrets.token_hex(3)}{suffix}")


def missing_parents(path: str, ctx: StepContext) -> Gen:
    """The ancestors of ``path`` that do not exist yet, outermost first (they will be created)."""
    out: list[str] = []
    d = posixpath.dirname(path.rstrip("/"))
    while d and d != "/":
        st = yield Stat(d, become=ctx.become)
        if st.exists:
            break
        out.insert(0, d)
        d = posixpath.dirname(d)
    return out


def capture(
    path: str,
    st: FileStat,
    ctx: StepContext,
    *,
    content: bytes | None = None,
    attrs_only: bool = False,
    archive: bool = False,
) -> Gen:
    """What ``path`` is now, enough to put it back: a JSON-able dict (the Snapshot's data).

    Files keep their bytes inline (base64) up to 16 MiB, else a copy on the host; links keep their
    target; directories are archived with tar on the host when ``archive`` (they are about to go)."""
    snap: dict[str, Any] = {"path": path, "existed": st.exists}
    if not st.exists:
        return snap
    kind = "link" if st.is_link else "directory" if st.is_dir else "file"
    snap.update(type=kind, mode=fmt_mode(st.mode), owner=st.owner, group=st.group, uid=st.uid, gid=st.gid)
    if attrs_only:
        snap["attrs_only"] = True
        return snap
    if kind == "link":
        res = yield Run(cmd(["readlink", "--", path], ctx), changes=False)
        if not res.ok:
            raise StepFailed(f"cannot read the link {path}: {res.stderr.strip()}")
        snap["link_target"] = res.stdout.rstrip("\n")
    elif kind == "directory":
        if archive:
            backup = backup_path(ctx, path, ".tgz")
            parent, name = posixpath.split(path.rstrip("/"))
            yield Run(cmd(["mkdir", "-p", "-m", "0700", "--", posixpath.dirname(backup)], ctx))
            res = yield Run(cmd(["tar", "-C", parent or _root(path), "-czpf", backup, f"./{name}"], ctx))
            if not res.ok:
                raise StepFailed(
                    f"could not archive {path} to {backup} before removing it: {res.stderr.strip()}"
                )
            snap["backup"] = backup
    else:
        if content is None:
            content = yield ReadFile(path, become=ctx.become)
        if (
            content is not None
            and len(content) <= INLINE_MAX
            and not ctx.holds_secret(content.decode("utf-8", "replace"))
        ):
            snap["content_b64"] = base64.b64encode(content).decode("ascii")
        # else (large, or holding a secret: never copied into the run state): a copy on the host
        else:
            backup = backup_path(ctx, path, ".bak")
            yield Run(cmd(["mkdir", "-p", "-m", "0700", "--", posixpath.dirname(backup)], ctx))
            res = yield Run(cmd(["cp", "-p", "--", path, backup], ctx))
            if not res.ok:
                raise StepFailed(f"could not back up {path} to {backup}: {res.stderr.strip()}")
            snap["backup"] = backup
    return snap


# ------------------------------------------------------------------------------------------- undo
def _fail(msg: str, res: Any = None) -> Outcome:
    return Outcome.failure(msg, rc=getattr(res, "rc", None), stderr=getattr(res, "stderr", ""))


def restore(snap: Mapping[str, Any], ctx: StepContext) -> Gen:
    """Put a path back the way ``capture`` saw it. Returns an Outcome."""
    path = str(snap["path"])
    st: FileStat = yield Stat(path, become=ctx.become)
    if not snap.get("existed"):
        return (yield from _remove_created(path, st, snap, ctx))
    kind = snap.get("type", "file")
    changed = False
    if not snap.get("attrs_only"):
        if kind == "directory":
            if st.exists and not (st.is_dir and not st.is_link):
                yield Run(cmd(["rm", "-f", "--", path], ctx))
                st = FileStat(path=path, exists=False)
            if snap.get("backup"):
                if st.exists:
                    return Outcome.success(
                        f"{path} exists again; its archive {snap['backup']} was not unpacked"
                    )
                parent = posixpath.dirname(path.rstrip("/")) or _root(path)
                yield Run(cmd(["mkdir", "-p", "--", parent], ctx))
                res = yield Run(cmd(["tar", "-C", parent, "-xzpf", snap["backup"]], ctx))
                if not res.ok:
                    return _fail(f"could not restore {path} from {snap['backup']}: {res.stderr.strip()}", res)
                changed = True
            elif not st.exists:
                yield Run(cmd(["mkdir", "-p", "--", path], ctx))
                changed = True
        elif st.exists and st.is_dir and not st.is_link:
            return _fail(f"cannot restore {path}: a directory is there now; move it away and roll back again")
        elif kind == "link":
            target = str(snap.get("link_target", ""))
            current = None
            if st.is_link:
                res = yield Run(cmd(["readlink", "--", path], ctx), changes=False)
                current = res.stdout.rstrip("\n") if res.ok else None
            if current != target:
                res = yield Run(cmd(["ln", "-sfn", "--", target, path], ctx))
                if not res.ok:
                    return _fail(f"could not restore the link {path} -> {target}: {res.stderr.strip()}", res)
                changed = True
        else:
            if st.is_link:
                yield Run(cmd(["rm", "-f", "--", path], ctx))
                st = FileStat(path=path, exists=False)
            if "content_b64" in snap:
                want = base64.b64decode(snap["content_b64"])
                mode = int(snap["mode"], 8)
                cur = (yield ReadFile(path, become=ctx.become)) if st.exists else None
                if cur != want or st.mode != mode:
                    yield WriteFile(path, want, mode=mode, become=ctx.become)
                    changed = True
            elif snap.get("backup"):
                res = yield Run(cmd(["cp", "-p", "--", snap["backup"], path], ctx))
                if not res.ok:
                    return _fail(f"could not restore {path} from {snap['backup']}: {res.stderr.strip()}", res)
                changed = True
            else:
                return _fail(
                    f"the snapshot of {path} holds neither its content nor a backup; restore it by hand"
                )
    changed |= yield from _restore_attrs(path, snap, ctx, link=kind == "link")
    entries = snap.get("entries") or []
    if entries:
        changed |= yield from _restore_entries(path, entries, ctx)
    return Outcome.success(f"restored {path}" if changed else f"{path} already as before", changed=changed)


def _remove_created(path: str, st: FileStat, snap: Mapping[str, Any], ctx: StepContext) -> Gen:
    changed = False
    if st.exists:
        if st.is_dir and not st.is_link:
            res = yield Run(cmd(["rmdir", "--", path], ctx))
            if not res.ok:
                return _fail(
                    f"cannot remove {path}: this run created it, but it is not empty now "
                    "(it holds files this rollback did not create); remove it by hand",
                    res,
                )
        else:
            res = yield Run(cmd(["rm", "-f", "--", path], ctx))
            if not res.ok:
                return _fail(f"could not remove {path}: {res.stderr.strip()}", res)
        changed = True
    for d in reversed(snap.get("created_dirs") or []):
        res = yield Run(cmd(["rmdir", "--", d], ctx))  # only while empty; a failure leaves it be
        changed = changed or res.ok
    return Outcome.success(
        f"removed {path} (it did not exist before)" if changed else f"{path} already absent", changed=changed
    )


def _restore_attrs(path: str, snap: Mapping[str, Any], ctx: StepContext, *, link: bool) -> Gen:
    st: FileStat = yield Stat(path, become=ctx.become)
    if not st.exists:
        return False
    changed = False
    if not link and snap.get("mode") is not None and st.mode != int(snap["mode"], 8):
        yield Run(cmd(["chmod", "--", snap["mode"], path], ctx))
        changed = True
    uid, gid = snap.get("uid", -1), snap.get("gid", -1)
    if uid is not None and gid is not None and uid >= 0 and (st.uid != uid or st.gid != gid):
        yield Run(cmd(["chown", *(["-h"] if link else []), "--", f"{uid}:{gid}", path], ctx))
        changed = True
    return changed


def _restore_entries(root: str, entries: list[list[Any]], ctx: StepContext) -> Gen:
    by_mode: dict[str, list[str]] = {}
    by_owner: dict[str, list[str]] = {}
    for rel, mode, uid, gid in entries:
        full = posixpath.join(root, rel)
        by_mode.setdefault(mode, []).append(full)
        by_owner.setdefault(f"{uid}:{gid}", []).append(full)
    for mode, paths in by_mode.items():
        for part in chunks(paths):
            yield Run(cmd(["chmod", "--", mode, *part], ctx))
    for spec, paths in by_owner.items():
        for part in chunks(paths):
            yield Run(cmd(["chown", "-h", "--", spec, *part], ctx))
    return True


# ----------------------------------------------------------------------------- verify after undo
def _kind_of(st: FileStat) -> str:
    return "link" if st.is_link else "directory" if st.is_dir else "file"


def _digest_of(path: str, ctx: StepContext) -> Gen:
    """sha256 of a file on the host (None when it cannot be read)."""
    res = yield Run(cmd(["sha256sum", "--", path], ctx), changes=False)
    return res.stdout.split()[0] if res.ok and res.stdout.split() else None


def verify(snap: Mapping[str, Any], ctx: StepContext) -> Gen:
    """Is ``path`` what ``capture`` saw (type, sha256 of the content, link target, mode, owner)?
    An Outcome: failed naming each difference, expected vs found. Changes nothing."""
    path = str(snap["path"])
    st: FileStat = yield Stat(path, become=ctx.become)
    if not snap.get("existed"):
        if st.exists:
            return Outcome.failure(
                f"{path}: expected absent (it did not exist before), found a {_kind_of(st)}"
            )
        return Outcome.success(f"{path} absent, as before")
    want_kind = str(snap.get("type", "file"))
    if not st.exists:
        return Outcome.failure(f"{path}: expected a {want_kind}, found nothing")
    if _kind_of(st) != want_kind:
        return Outcome.failure(f"{path}: expected a {want_kind}, found a {_kind_of(st)}")
    diffs: list[str] = []
    if not snap.get("attrs_only"):
        if want_kind == "file":
            if "content_b64" in snap:
                want = hashlib.sha256(base64.b64decode(snap["content_b64"])).hexdigest()
            elif snap.get("backup"):
                want = yield from _digest_of(str(snap["backup"]), ctx)
            else:
                want = None
            if want is not None:
                found = yield from _digest_of(path, ctx)
                if found != want:
                    diffs.append(f"sha256 expected {want[:16]}…, found {(found or 'unreadable')[:16]}…")
        elif want_kind == "link":
            res = yield Run(cmd(["readlink", "--", path], ctx), changes=False)
            found_target = res.stdout.rstrip("\n") if res.ok else None
            if found_target != snap.get("link_target"):
                diffs.append(f"link target expected {snap.get('link_target')!r}, found {found_target!r}")
    if want_kind != "link" and snap.get("mode") is not None and st.mode != int(str(snap["mode"]), 8):
        diffs.append(f"mode expected {snap['mode']}, found {fmt_mode(st.mode)}")
    uid, gid = snap.get("uid", -1), snap.get("gid", -1)
    if isinstance(uid, int) and isinstance(gid, int) and uid >= 0 and (st.uid, st.gid) != (uid, gid):
        diffs.append(f"owner expected {uid}:{gid}, found {st.uid}:{st.gid}")
    entries = snap.get("entries") or []
    if entries:
        argv = ["find", path, "-mindepth", "1", "!", "-type", "l", "-printf", r"%m %U %G %P\0"]
        res = yield Run(cmd(argv, ctx), changes=False)
        now = {}
        for rec in res.stdout.split("\0") if res.ok else []:
            if rec.strip():
                mode, u, g, rel = rec.lstrip("\n").split(" ", 3)
                now[rel] = (f"{int(mode, 8):04o}", int(u), int(g))
        for rel, mode, u, g in entries:
            found_attrs = now.get(rel)
            if found_attrs != (mode, u, g):
                shown = f"{found_attrs[0]} {found_attrs[1]}:{found_attrs[2]}" if found_attrs else "nothing"
                diffs.append(f"{rel}: expected {mode} {u}:{g}, found {shown}")
                if len(diffs) > 20:
                    break
    if diffs:
        return Outcome.failure(f"{path}: " + "; ".join(diffs))
    return Outcome.success(f"{path} as before")
