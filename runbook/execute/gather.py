"""The batch rendezvous of steps that run as ONE process for all hosts (Ansible modules through
ansible-runner): every host of the batch runs its step in its own thread, as for any step; at the
step's batched action each host *joins* a round and waits until every other host that may still get
there has joined or gone past; the host that sees that first leads: it runs the action once for all
who joined and hands each one its own result.

Who may still get there (``peers``): the hosts of the batch still in the phase (not failed), each
with its position — (step index, loop item, attempt) of where it is now, or None when it has not
started the phase yet. A host whose position is before the round's key may still join (it is on its
way: rendering, a `when`, an earlier step); one past it (it skipped the step, or is retrying at a
later attempt) is not waited for. A host that joins after the leader has started gets the next
round (a second, later process). A host that has not started only counts while a worker is free
for it (``forks`` bounds the threads: the others wait for a worker, not for this step).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runbook.execute.driver import Cancelled

Position = tuple[int, int, int]  # (step index, loop item (-1: none), attempt (0: not yet))
Peers = Callable[[], list[tuple[str, Position | None]]]


@dataclass
class Job:
    """One host's part of a round: what it asked for and how to reach it (opaque here)."""

    host: str
    payload: Any


@dataclass
class Round:
    jobs: dict[str, Job] = field(default_factory=dict)
    running: bool = False
    leader: str = ""  # the host that started the run
    results: dict[str, Any] = field(default_factory=dict)  # filled as each host's result comes
    done: bool = False
    error: BaseException | None = None


Deliver = Callable[[str, Any], None]


@dataclass
class Gather:
    """One batched step (one loop item, one attempt) in one batch and phase."""

    key: Position
    cond: threading.Condition = field(default_factory=threading.Condition)
    current: Round = field(default_factory=Round)
    rounds: int = 0  # how many processes this step took (one, unless a host came late)

    def join(
        self,
        job: Job,
        peers: Peers,
        run: Callable[[list[Job], Deliver], dict[str, Any]],
        cancel: threading.Event,
        poll: float = 0.02,
    ) -> Any:
        """Wait for the batch, start the run (the first host to see nobody left to wait for), and
        return ``job.host``'s result as soon as it is known (``run`` hands results over one by
        one through its ``deliver`` argument, and returns them all). Cancelled when ``cancel`` is
        set while waiting (this host's timeout, the run stopping)."""
        with self.cond:
            rnd = self.current
            rnd.jobs[job.host] = job
            self.cond.notify_all()
            while True:
                # the host that started the run also waits for its end: the process and its
                # private directory are gone when the step of the last host to finish ends
                if job.host in rnd.results and (job.host != rnd.leader or rnd.done):
                    return rnd.results[job.host]
                if rnd.error is not None:
                    raise RuntimeError(f"the batched run failed: {rnd.error}") from rnd.error
                if rnd.done:
                    return None
                if cancel.is_set() and not (job.host == rnd.leader and job.host in rnd.results):
                    if not rnd.running:
                        rnd.jobs.pop(job.host, None)
                        self.cond.notify_all()
                    raise Cancelled("interrupted")
                if not rnd.running and not self._waiting_for(rnd, peers):
                    rnd.running, rnd.leader = True, job.host
                    self.current = Round()  # a late host starts the next round
                    self.rounds += 1
                    threading.Thread(target=self._run, args=(rnd, run), daemon=True, name="runbook-gather").start()
                self.cond.wait(poll)

    def _run(self, rnd: Round, run: Callable[[list[Job], Deliver], dict[str, Any]]) -> None:
        """The round's one call, in its own thread: each host goes on when its own result is in."""

        def deliver(host: str, result: Any) -> None:
            with self.cond:
                rnd.results[host] = result
                self.cond.notify_all()

        try:
            results = run(list(rnd.jobs.values()), deliver)
        except BaseException as exc:  # handed to every waiting host
            with self.cond:
                rnd.error, rnd.done = exc, True
                self.cond.notify_all()
            return
        with self.cond:
            for host, result in (results or {}).items():
                rnd.results.setdefault(host, result)
            rnd.done = True
            self.cond.notify_all()

    def _waiting_for(self, rnd: Round, peers: Peers) -> list[str]:
        return [h for h, pos in peers() if h not in rnd.jobs and (pos is None or pos < self.key)]
