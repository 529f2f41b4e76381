"""Callback plugin runbook.core.audit: runbook's signed, hash-chained audit trail from Ansible's events.

Each ``ansible-playbook`` run is one audit run (``runbook audit verify DIR`` checks it, chained to the
runs before it in the same directory): run.start, phase.start per play, step.start / step.end per
host and task (outcome ok | changed | failed | skipped | unreachable), host.end with the host's
stats, run.end with the outcome and Ansible's exit code; then the final seal (signed when a key is
configured). Task output is stored as SHA-256 digests only, never the text; no_log results arrive
censored, and credential-looking keys are masked by runbook's audit layer.
"""

from __future__ import annotations

import atexit
import getpass
import os
import socket
import time
from typing import Any

from ansible.plugins.callback import CallbackBase
from ansible_collections.runbook.core.plugins.plugin_utils.runid import derived_run_id

DOCUMENTATION = r"""
name: audit
type: notification
short_description: Write runbook's signed, hash-chained audit trail
description:
  - Appends every playbook, play, task and per-host result to a runbook audit run (one per
    ansible-playbook invocation) in a directory, sealed at the end; check it with
    C(runbook audit verify DIR).
requirements:
  - the runbook Python package on the controller
options:
  dir:
    description: The audit directory.
    default: audit
    env:
      - name: RUNBOOK_AUDIT_DIR
    ini:
      - section: runbook_audit
        key: dir
  key:
    description: Ed25519 private key that signs the seals (C(runbook audit keygen)); unset means unsigned.
    env:
      - name: RUNBOOK_AUDIT_KEY
    ini:
      - section: runbook_audit
        key: key
  run_id:
    description: The run's id (default C(-e runbook_run_id), else the one the collection's plugins
      derive from the ansible-playbook process, as C(run.id) in compiled playbooks).
    env:
      - name: RUNBOOK_RUN_ID
"""


def _extra_run_id(playbook: Any) -> str | None:
    """``-e runbook_run_id=...``: the run id the plugins use too."""
    try:
        from ansible.utils.vars import load_extra_vars

        value = load_extra_vars(playbook._loader).get("runbook_run_id")
    except Exception:
        return None
    return str(value) if value else None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "runbook.core.audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer: Any = None
        self._run_id = ""
        self._phase: str | None = None
        self._started: dict[tuple[str, str], float] = {}
        self._failed = False

    # ------------------------------------------------------------------------------------ plumbing
    def _open(self, playbook: str, loaded: Any = None) -> None:
        from runbook.audit.writer import AuditWriter

        key = self.get_option("key")
        self._run_id = str(self.get_option("run_id") or _extra_run_id(loaded) or derived_run_id())
        self._writer = AuditWriter(self.get_option("dir") or "audit", signing_key=key or None)
        atexit.register(self._close, "interrupted")
        self._emit(
            "run.start",
            data={
                "engine": "ansible",
                "runbook": os.path.splitext(os.path.basename(playbook))[0],
                "runbook_file": os.path.abspath(playbook),
                "operator": {"user": getpass.getuser(), "host": socket.gethostname()},
                "check_mode": bool(getattr(self, "_check_mode", False)),
            },
        )

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._writer is None:
            return
        from runbook.execute.events import Event

        self._writer(Event(kind=kind, run_id=self._run_id, **fields))
        self._writer.barrier()

    def _close(self, outcome: str | None = None) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close(outcome)

    @staticmethod
    def _parts(result: Any) -> tuple[str, Any, dict[str, Any]]:
        host = getattr(result, "host", None) or result._host
        task = getattr(result, "task", None) or result._task
        res = getattr(result, "result", None)
        if res is None:
            res = result._result
        return host.get_name(), task, dict(res)

    def _end(self, result: Any, outcome: str, **extra: Any) -> None:
        host, task, res = self._parts(result)
        started = self._started.pop((host, str(task._uuid)), None)
        data: dict[str, Any] = {"msg": str(res.get("msg", "")), "action": str(task.action), **extra}
        for k in ("stdout", "stderr"):
            if res.get(k):
                data[k] = str(res[k])
        cmd = res.get("cmd")
        if cmd:
            data["command"] = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
        if res.get("runbook_kind"):
            data["module"] = str(res["runbook_kind"])
        if res.get("runbook_snapshots"):
            data["snapshots"] = len(res["runbook_snapshots"])
        rc = res.get("rc")
        self._emit(
            "step.end",
            host=host,
            step=task.get_name(),
            phase=self._phase,
            outcome=outcome,
            rc=rc if isinstance(rc, int) else None,
            duration=(time.monotonic() - started) if started is not None else None,
            data=data,
        )

    # ------------------------------------------------------------------------------------- events
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._open(str(playbook._file_name), playbook)

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._phase = play.get_name().strip() or "play"
        self._check_mode = bool(play.check_mode)
        self._emit("phase.start", phase=self._phase)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        name = host.get_name()
        self._started[(name, str(task._uuid))] = time.monotonic()
        self._emit(
            "step.start",
            host=name,
            step=task.get_name(),
            phase=self._phase,
            data={"action": str(task.action)},
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        _, _, res = self._parts(result)
        self._end(result, "changed" if res.get("changed") else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._end(result, "failed", ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._end(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._end(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        failed = unreachable = False
        per_host: dict[str, dict[str, int]] = {}
        for host in sorted(stats.processed):
            s = stats.summarize(host)
            per_host[host] = {k: int(v) for k, v in s.items()}
            failed |= s.get("failures", 0) > 0
            unreachable |= s.get("unreachable", 0) > 0
            outcome = "failed" if s.get("failures") else "unreachable" if s.get("unreachable") else "ok"
            self._emit("host.end", host=host, outcome=outcome, data={"stats": per_host[host]})
        code = 4 if unreachable else 2 if failed else 0
        outcome = "success" if code == 0 else "failed"
        self._emit("run.end", outcome=outcome, data={"exit_code": code, "stats": per_host})
        self._close(outcome)
