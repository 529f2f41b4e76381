"""Hosts in parallel (bounded by forks) and stopping them all at once on Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from runbook.execute.driver import Cancelled
from runbook.execute.hostctx import HostRun
from runbook.execute.steprunner import StepRunner


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
    workers = max(1, min(forks, len(hosts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runbook-host") as pool:
        futures = [pool.submit(fn, host_run(h)) for h in hosts]
        try:
            pending = set(futures)
            while pending:  # a bounded wait keeps the main thread responsive to Ctrl-C / SIGTERM
                _, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt:
            stop_active(runner, cancel)
            for f in futures:
                f.cancel()
            raise
        for f in futures:
            exc = f.exception()
            if exc is not None and not isinstance(exc, Cancelled):
                raise exc
        if cancel.is_set():
            raise Cancelled("interrupted")
