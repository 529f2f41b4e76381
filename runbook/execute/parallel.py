"""Hosts in parallel (bounded by forks) and stopping them all at once on Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from runbook.execute.driver import Cancelled
from runbook.execute.hostctx import HostRun
from runbook.execute.steprunner import StepRunner

if TYPE_CHECKING:
    from concurrent.futures import Future


def stop_active(runner: StepRunner, cancel: threading.Event) -> None:
    """Stop every step that is running now: its driver's cancel flag, and its transport's commands."""
    cancel.set()
    with runner._lock:
        active = list(runner.active.values())
    for drive, transport in active:
        drive.cancel.set()
        try:
            transport.cancel()
        except Exception:  # best effort while stopping
            pass


def run_parallel(
    hosts: Sequence[str],
    host_run: Callable[[str], HostRun],
    fn: Callable[[HostRun], Any],
    *,
    forks: int,
    runner: StepRunner,
    cancel: threading.Event,
) -> None:
    """Run ``fn`` for every host, at most ``forks`` at once. Ctrl-C stops every host's running step and
    is re-raised; a host's unexpected exception is re-raised; Cancelled when the run was interrupted."""
    if not hosts:
        return
    if len(hosts) == 1:
        fn(host_run(hosts[0]))
        return
    from concurrent.futures import ThreadPoolExecutor  # (and logging): only for several hosts

    workers = max(1, min(forks, len(hosts)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runbook-host")
    futures = [pool.submit(fn, host_run(h)) for h in hosts]
    try:
        _wait_all(futures)  # a bounded wait keeps the main thread responsive to Ctrl-C / SIGTERM
    except KeyboardInterrupt:
        stop_active(runner, cancel)
        for f in futures:
            f.cancel()
        try:
            _wait_all(futures)  # the running steps were told to stop; a second Ctrl-C cuts this short
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    except BaseException:  # Aborted (Ctrl-C twice): leave the workers, whatever they wait on
        stop_active(runner, cancel)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    for f in futures:
        exc = f.exception()
        if exc is not None and not isinstance(exc, Cancelled):
            raise exc
    if cancel.is_set():
        raise Cancelled("interrupted")


def _wait_all(futures: list[Future]) -> None:
    from concurrent.futures import FIRST_EXCEPTION, wait

    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
