"""Action plugin runbook.core.step: run a runbook step kind (or its undo) through Ansible's connection.

The kind's generator is driven by runbook's driver (runbook.execute.driver.Drive) over
``ConnectionTransport``, so the same step code, snapshots and undo as ``runbook exec`` run here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.runbook.core.plugins.plugin_utils.runid import run_id
from ansible_collections.runbook.core.plugins.plugin_utils.transport import ConnectionTransport
from ansible_collections.runbook.core.plugins.plugin_utils.variables import RenderedVars

display = Display()
VALID = frozenset({"kind", "args", "undo", "snapshot", "name", "read_only", "retry"})


def _plain(value: Any) -> Any:
    """A JSON-like copy of what Ansible handed over (its tagged str/dict/list subclasses)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def snapshot_keeper(
    task_vars: Mapping[str, Any], run_id: str, host: str, task: str
) -> Callable[[dict[str, Any]], None] | None:
    """Where snapshots are made durable on the controller before the change they guard:
    ``runbook_snapshot_dir`` (task var) or $RUNBOOK_SNAPSHOT_DIR, one 0600 JSON file per snapshot,
    fsynced with its directory. None: they live only in the task's result (registered)."""
    root = task_vars.get("runbook_snapshot_dir") or os.environ.get("RUNBOOK_SNAPSHOT_DIR")
    if not root:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
    directory = Path(str(root)) / run_id / safe
    count = [0]

    def keep(data: dict[str, Any]) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:  # the next free number: a loop's items (each its own action run) add theirs
            count[0] += 1
            path = directory / f"{task}-{count[0]}.json"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        try:
            os.write(fd, json.dumps(data, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    return keep


def project_dir(task_vars: Mapping[str, Any], basedir: Path) -> Path:
    """The runbook project (templates/, files/, migrations): ``runbook_project_dir`` (a variable) or
    $RUNBOOK_PROJECT_DIR, else the playbook's directory -- its parent when that is ``playbooks/``
    (a compiled playbook kept next to the runbook it was compiled from), as ``runbook exec``."""
    given = task_vars.get("runbook_project_dir") or os.environ.get("RUNBOOK_PROJECT_DIR")
    if given:
        return Path(str(given))
    return basedir.parent if basedir.name == "playbooks" else basedir


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = VALID
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        targs = _plain(self._task.args)
        unknown = sorted(set(targs) - VALID)
        if unknown:
            return {**result, "failed": True, "msg": f"unknown option(s): {', '.join(unknown)}"}
        retry = targs.get("retry")
        if retry is None:
            return {**result, **self._once(targs, task_vars)}
        try:
            retries, delay, backoff = (
                int(retry["retries"]),
                float(retry.get("delay", 1)),
                float(retry.get("backoff", 1)),
            )
        except (TypeError, KeyError, ValueError):
            return {**result, "failed": True, "msg": "retry needs {retries, delay, backoff} (numbers)"}
        attempt = 0
        while True:  # runbook exec's retries: until the step succeeds, the delay multiplied by backoff
            attempt += 1
            res = self._once(targs, task_vars)
            if not res.get("failed") or res.get("unreachable") or attempt > retries or self._task.check_mode:
                break
            why = "failed" if self._task.no_log else str(res.get("msg") or "failed")
            display.display(
                f"{task_vars.get('inventory_hostname')}: attempt {attempt}/{retries + 1} failed ({why}); "
                f"retrying in {delay:g}s"
            )
            time.sleep(max(0.0, delay))
            delay *= backoff
        return {**result, **res, "attempts": attempt}

    def _once(self, targs: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._step(targs, task_vars)
        except Exception as exc:  # anything that goes wrong is this task's failure, with a message
            from runbook.errors import RunbookError

            why = exc.message if isinstance(exc, RunbookError) else f"{type(exc).__name__}: {exc}"
            return {"failed": True, "changed": False, "msg": why}

    def _step(self, targs: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        from runbook.execute.transports.base import HostSpec
        from runbook.kinds.arguments import coerce
        from runbook.kinds.base import first_error, get

        name = targs.get("kind")
        if not isinstance(name, str) or not name:
            return {"failed": True, "msg": "kind is required (a runbook step kind, e.g. shell)"}
        kind = get(name)
        if kind is None:
            return {"failed": True, "msg": f"unknown runbook step kind {name!r} (see `runbook doc`)"}
        args = coerce(kind.normalize(targs.get("args")), kind.schema)  # "8080" -> 8080, as runbook exec
        error = first_error(kind.schema, args)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or name
            return {"failed": True, "msg": f"{name}: invalid argument {where}: {error.message}"}

        host = str(task_vars.get("inventory_hostname") or self._play_context.remote_addr or "localhost")
        if kind.asks_approval:  # a human gate: never run as a step (its run() would say "approved")
            return self._approval(host, args)
        variables = {k: v for k, v in task_vars.items() if not k.startswith("ansible_facts")}
        spec = HostSpec(name=host, address=str(self._play_context.remote_addr or host), vars=variables)
        transport = ConnectionTransport(self, spec)
        try:
            res = self._drive(name, kind, args, targs, task_vars, transport, host)
        except Exception:
            if not transport.unreachable:
                raise
            res = {}
        if transport.unreachable:  # Ansible's connection failed: the host is unreachable, not failed
            return {"unreachable": True, "changed": False, "msg": transport.unreachable}
        return res

    def _drive(
        self,
        name: str,
        kind: Any,
        args: dict[str, Any],
        targs: dict[str, Any],
        task_vars: dict[str, Any],
        transport: ConnectionTransport,
        host: str,
    ) -> dict[str, Any]:
        from runbook.execute.driver import Drive
        from runbook.kinds.base import StepContext
        from runbook.render.templar import Templar

        variables = RenderedVars(task_vars, self._templar)  # rendered by Ansible, as they are read
        basedir = Path(self._loader.get_basedir())
        templar = Templar()
        ctx = StepContext(
            host=host,
            vars=variables,
            project_dir=project_dir(variables, basedir),  # rendered: it may be a lookup
            run_id=run_id(task_vars),
            dry_run=bool(self._task.check_mode),
            become=bool(self._play_context.become),
            render_str=lambda text: templar.render_str(text, variables),
            loader_dirs=(basedir, basedir / "templates", basedir.parent / "templates"),
        )
        keep = snapshot_keeper(task_vars, ctx.run_id, host, str(self._task._uuid))
        read_only = bool(targs.get("read_only"))  # preflight: a mutating action fails the task
        drive = Drive(
            transport,
            dry_run=bool(self._task.check_mode) and not read_only,
            read_only=read_only,
            on_snapshot=keep,
        )
        if targs.get("undo"):
            snapshot = targs.get("snapshot")
            if not isinstance(snapshot, Mapping):
                return {"failed": True, "msg": "undo needs snapshot (a registered result's runbook_snapshot)"}
            out = drive.run(kind.undo(args, snapshot, ctx))
            shown = self._shown(name, out, drive)
            if out.ok and kind.can_verify_undo:
                check = Drive(transport, read_only=True).run(kind.verify_undo(args, snapshot, ctx))
                if not check.ok:
                    return {**shown, "failed": True, "msg": f"rollback incomplete: {check.msg}"}
            return shown
        out = drive.run(kind.run(args, ctx))
        return self._shown(name, out, drive)

    def _approval(self, host: str, args: dict[str, Any]) -> dict[str, Any]:
        """Ask runbook's console (``runbook exec --engine ansible``: its approval desk, a Unix socket
        named by $RUNBOOK_APPROVAL_SOCKET) and wait for its answer; anywhere else there is nobody to
        ask, and the step fails (an Ansible ``pause``/AWX approval node is the plain-Ansible gate)."""
        import socket

        prompt = str(args.get("prompt") or self._task.get_name())
        if self._task.check_mode:
            return {"changed": False, "msg": f"would ask for approval: {prompt}"}
        path = os.environ.get("RUNBOOK_APPROVAL_SOCKET")
        if not path:
            return {"failed": True, "changed": False, "runbook_refused": True,
                    "msg": "approval required but no way to ask: run it with `runbook exec --engine ansible`"}  # fmt: skip
        request = {
            "host": host,
            "task": self._task.get_name(),
            "path": self._task.get_path() or "",
            "args": args,
        }
        wait = float(os.environ.get("RUNBOOK_APPROVAL_WAIT") or 86400)  # bounded: a day at most
        data = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(wait)
                sock.connect(path)
                sock.sendall(json.dumps(request).encode() + b"\n")
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            reply = json.loads(data) if data.strip() else {}
        except (OSError, ValueError) as exc:
            reply = {"ok": False, "msg": f"not approved (no answer: {exc})"}
        ok = bool(reply.get("ok")) if isinstance(reply, dict) else False
        msg = str(reply.get("msg") or "") if isinstance(reply, dict) else ""
        if not ok:
            return {
                "failed": True,
                "changed": False,
                "runbook_refused": True,
                "msg": msg or "not approved (no answer)",
            }
        return {"changed": False, "msg": msg}

    @staticmethod
    def _shown(name: str, out: Any, drive: Any) -> dict[str, Any]:
        res: dict[str, Any] = {
            "changed": bool(out.changed),
            "failed": not out.ok,
            "msg": out.msg,
            "rc": out.rc,
            "stdout": out.stdout,
            "stderr": out.stderr,
            "stdout_lines": out.stdout.splitlines(),
            "stderr_lines": out.stderr.splitlines(),
            "runbook_snapshots": list(drive.snapshots),
            "runbook_commands": list(drive.commands),
            "runbook_kind": name,
        }
        if drive.planned:
            res["runbook_planned"] = [
                {"kind": p.kind, "summary": p.summary, "diff": p.diff} for p in drive.planned
            ]
        if drive.snapshots:
            res["runbook_snapshot"] = drive.snapshots[0]
        if out.command:
            res["cmd"] = out.command
        res.update({k: v for k, v in out.data.items() if k not in res})
        if out.skipped:  # only then: Ansible ignores changed_when/failed_when on a result with the key
            res["skipped"], res["changed"] = True, False
        return res
