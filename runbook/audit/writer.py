"""AuditWriter: an EventBus subscriber that appends every event to a hash-chained, sealed run file.

Usage (engine)::

    writer = AuditWriter("audit", signing_key=key_path_or_None, redact=redactor.redact,
                         sinks=[PostgresSink(dsn)] if dsn else [])
    bus.subscribe(writer)
    ...                           # run.start first; run.end writes the final seal
    writer.close(outcome)         # always (finally:); on SIGINT/SIGTERM: close("interrupted")

Seq is 1-based per run. ``run.end`` (or ``close``) writes the final seal; a periodic, non-final seal
is written every ``seal_every`` seconds or ``seal_records`` records (checked as records arrive).
Records reach the kernel at every write; fsync happens at step boundaries (``FSYNC_KINDS``), at
seals, and every ``fsync_records`` records otherwise. Boundary fsyncs are group commits: the record is
appended under the writer's lock, and the fsync waits for ``barrier()``, which the EventBus calls in
the emitting thread after it has released its own lock. The step does not go on before its record is
on disk, but ten hosts finishing steps together share one fsync instead of queueing for ten. Call ``close`` from normal code, not from
inside a signal handler (set a flag there): the writer's lock is re-entrant, not async-signal-safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbook.audit.chain import TS_FORMAT, ChainTail, chain_tail, list_runs, name_ts, run_filename, seal_line
from runbook.audit.head import Head, local_head_holds, local_head_path, save_local_head
from runbook.audit.keys import Signer, load_signing_key
from runbook.audit.records import FORMAT, GENESIS, EventLike, Scrubber, event_record, seal_payload, utc_ts
from runbook.audit.sinks import Sink
from runbook.audit.sinks.jsonl import DirectoryLock, JsonlFile
from runbook.errors import AuditError, Location

log = logging.getLogger("runbook.audit")

FSYNC_KINDS = frozenset(
    {
        "run.start",
        "step.end",
        "rollback.start",
        "rollback.step",
        "rollback.end",
        "host.end",
        "run.end",
        "seal",
    }
)


def _now() -> str:
    return utc_ts(datetime.now(UTC).isoformat(timespec="microseconds"))


class _Run:
    def __init__(self, run_id: str, path: Path, file: JsonlFile, prev: str):
        self.run_id = run_id
        self.path = path
        self.file = file
        self.prev = prev
        self.link = prev  # the run's first prev: the final hash of the run before it
        self.seq = 0  # seq of the last record written
        self.since_seal = 0
        self.since_sync = 0
        self.sealed_at = time.monotonic()
        self.synced = 0  # seq of the last record known to be on disk
        self.ended = False
        self.final = False


class AuditWriter:
    fault_name = "audit trail cannot be written"  # what the run says when this fails (disk full)

    def __init__(
        self,
        directory: str | os.PathLike[str] = "audit",
        signing_key: str | os.PathLike[str] | Signer | None = None,
        sinks: Iterable[Sink] = (),
        seal_every: float = 300.0,
        seal_records: int = 1000,
        redact: Callable[[str], str] | None = None,
        *,
        fsync: bool = True,
        fsync_records: int = 512,
        key_passphrase: str | None = None,
    ):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditError(
                f"cannot create audit directory: {exc.strerror}", location=Location(str(directory))
            )
        if signing_key is None or isinstance(signing_key, Signer):
            self.signer = signing_key
        else:
            self.signer = load_signing_key(signing_key, key_passphrase)
        self.sinks: list[Sink] = list(sinks)
        self.seal_every = float(seal_every)
        self.seal_records = max(1, int(seal_records))
        self.fsync_records = max(1, int(fsync_records))
        self._fsync = fsync
        self._scrub = Scrubber(redact)
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()  # one group-commit fsync at a time; never taken under _lock
        self._pending = threading.local()  # (run, seq) this thread must see on disk before going on
        self._run: _Run | None = None
        self._closed = False
        self._prev_run: ChainTail | None = None
        self._head_holds = True  # the directory still ends with its local head (``head``)
        self.paths: list[Path] = []  # run files written, in order
        self._dirlock = DirectoryLock(self.directory)
        self._dirlock.acquire()

    # -- subscriber --------------------------------------------------------------------------
    def __call__(self, event: EventLike) -> None:
        with self._lock:
            if self._closed:
                log.warning("audit writer closed; dropped %s event", event.kind)
                return
            run = self._run
            if run is None or run.run_id != str(event.run_id):
                if run is not None:
                    self._finish(run, None, None)
                run = self._run = self._open(str(event.run_id))
            elif run.final:
                log.warning("audit: %s event after run.end for run %s dropped", event.kind, run.run_id)
                return
            body = event_record(event, self._scrub)
            if run.seq == 0:
                body.update(self._header(run))
            self._append(run, body)
            kind = body["event"]
            if kind in FSYNC_KINDS or run.since_sync >= self.fsync_records:
                self._defer_sync(run)
            if kind == "run.end":
                run.ended = True
                self._seal(run, final=True)
                self._close_file(run)
            elif run.since_seal >= self.seal_records or time.monotonic() - run.sealed_at >= self.seal_every:
                self._seal(run, final=False)

    def barrier(self) -> None:
        """Make the records this thread wrote durable (group commit). Call it outside any lock
        that another emitting thread could hold: while one thread fsyncs, the others wait here and
        usually find their record already covered by that fsync."""
        pending = getattr(self._pending, "value", None)
        if pending is None:
            return
        self._pending.value = None
        run, seq = pending
        with self._sync_lock:
            if run.synced >= seq:
                return
            with self._lock:
                upto = run.seq
                fd = run.file.dup_fd()
            if fd is None:  # closed meanwhile: close() fsynced it
                return
            try:
                os.fsync(fd)
            except OSError as exc:
                raise AuditError(f"cannot fsync audit file: {exc.strerror}", location=Location(str(run.path)))
            finally:
                os.close(fd)
            run.synced = max(run.synced, upto)

    def close(self, outcome: str | None = None, *, reason: str | None = None) -> None:
        """End the stream: a run without ``run.end`` gets one (outcome, default "interrupted"), then the
        final seal; files, sinks and the directory lock are released. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._run is not None and not self._run.final:
                    self._finish(self._run, outcome, reason)
            finally:
                for sink in self.sinks:
                    try:
                        sink.close()
                    except Exception as exc:  # a broken sink must not hide the local audit
                        log.warning("audit sink %s failed to close: %s", type(sink).__name__, exc)
                self._dirlock.release()

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close("interrupted" if exc_type is not None else None)

    @property
    def path(self) -> Path | None:
        """The current (or last) run file."""
        return self.paths[-1] if self.paths else None

    # -- internals ---------------------------------------------------------------------------
    def _open(self, run_id: str) -> _Run:
        self._head_holds = local_head_holds(self.directory)
        tail = self._prev_run = chain_tail(self.directory)
        started = datetime.now(UTC)
        existing = list_runs(self.directory)
        last_ts = name_ts(existing[-1].name) if existing else None
        for _ in range(100):
            if last_ts is not None and started.strftime(TS_FORMAT) <= last_ts:
                started = datetime.strptime(last_ts, TS_FORMAT).replace(tzinfo=UTC) + timedelta(
                    microseconds=1
                )
            path = self.directory / run_filename(started, run_id)
            if not path.exists():
                break
            started += timedelta(microseconds=1)
        file = JsonlFile(path, fsync=self._fsync)
        self.paths.append(path)
        return _Run(run_id, path, file, tail.hash if tail else GENESIS)

    def _header(self, run: _Run) -> dict[str, Any]:
        head: dict[str, Any] = {"format": FORMAT}
        if self.signer is not None:
            head["key_id"] = self.signer.key_id
            head["public_key"] = self.signer.public_line
        tail = self._prev_run
        if tail is not None:
            head["prev_run"] = {"final_hash": tail.hash, "run_id": tail.run_id}
        return head

    def _append(self, run: _Run, body: dict[str, Any]) -> None:
        body["seq"] = run.seq + 1
        body["prev"] = run.prev
        digest, line = seal_line(body)
        body["hash"] = digest
        try:
            run.file.write(body, line)
        except OSError as exc:
            raise AuditError(
                f"cannot write audit record: {exc.strerror}",
                location=Location(str(run.path)),
                hint="the audit trail is incomplete; free disk space / fix permissions and re-run",
            )
        run.seq += 1
        run.prev = digest
        run.since_seal += 1
        run.since_sync += 1
        for sink in list(self.sinks):
            try:
                sink.write(body, line)
            except Exception as exc:
                self._drop_sink(run, sink, exc)

    def _drop_sink(self, run: _Run, sink: Sink, exc: Exception) -> None:
        self.sinks.remove(sink)
        log.warning("audit sink %s failed and was disabled: %s", type(sink).__name__, exc)
        body = {
            "event": "audit.sink_error",
            "run_id": run.run_id,
            "ts": _now(),
            "data": self._scrub.mapping({"sink": type(sink).__name__, "error": str(exc)[:500]}),
        }
        self._append(run, body)

    def _defer_sync(self, run: _Run) -> None:
        """A boundary: the file's fsync is left to ``barrier()`` (group commit); sinks sync now."""
        if not self._fsync:
            self._sync(run)
            return
        self._pending.value = (run, run.seq)
        run.since_sync = 0
        self._sync_sinks(run)

    def _sync(self, run: _Run) -> None:
        try:
            run.file.sync()
        except OSError as exc:
            raise AuditError(f"cannot fsync audit file: {exc.strerror}", location=Location(str(run.path)))
        run.synced = run.seq
        run.since_sync = 0
        self._sync_sinks(run)

    def _sync_sinks(self, run: _Run) -> None:
        for sink in list(self.sinks):
            try:
                sink.sync()
            except Exception as exc:
                self._drop_sink(run, sink, exc)

    def _seal(self, run: _Run, *, final: bool) -> None:
        seq = run.seq + 1
        body: dict[str, Any] = {
            "event": "seal",
            "run_id": run.run_id,
            "ts": _now(),
            "head": run.prev,
            "final": final,
        }
        if self.signer is not None:
            body["key_id"] = self.signer.key_id
            body["sig"] = self.signer.sign(seal_payload(run.run_id, seq, run.prev, final))
        self._append(run, body)
        run.since_seal = 0
        run.sealed_at = time.monotonic()
        if final:
            run.final = True
        self._sync(run)
        if final:
            self._move_head(run, body)

    def _move_head(self, run: _Run, seal: dict[str, Any]) -> None:
        """The run is sealed and on disk: it becomes the local head (``head``), unless the directory no
        longer held the previous head when the run started (then verify must keep failing)."""
        if not self._head_holds:
            log.warning(
                "audit: %s does not end with its local head %s (newest runs deleted or directory rolled "
                "back?); the local head was left as it was",
                self.directory,
                local_head_path(self.directory),
            )
            return
        head = Head(run.run_id, seal["seq"], seal["hash"], seal["head"], run.link,
                    self.signer.key_id if self.signer else None, seal.get("sig"))  # fmt: skip
        try:
            save_local_head(self.directory, head)
        except OSError as exc:
            log.warning("audit: cannot write the local head %s: %s", local_head_path(self.directory), exc)

    def _finish(self, run: _Run, outcome: str | None, reason: str | None) -> None:
        try:
            if run.seq and not run.ended:
                data = {"reason": reason or outcome or "stream closed without run.end", "written_by": "audit"}
                body = {
                    "event": "run.end",
                    "run_id": run.run_id,
                    "ts": _now(),
                    "outcome": self._scrub.text(outcome or reason or "interrupted"),
                    "data": self._scrub.mapping(data),
                }
                self._append(run, body)
                run.ended = True
            if run.seq and not run.final:
                self._seal(run, final=True)
        finally:
            self._close_file(run)
            if run.seq == 0:  # not one record could be written (disk full): leave no empty run file
                with contextlib.suppress(OSError):
                    run.path.unlink()
                if run.path in self.paths:
                    self.paths.remove(run.path)

    def _close_file(self, run: _Run) -> None:
        try:
            run.file.close()
        except OSError as exc:
            raise AuditError(f"cannot close audit file: {exc.strerror}", location=Location(str(run.path)))
