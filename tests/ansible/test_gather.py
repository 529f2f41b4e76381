"""The batch rendezvous (runbook.execute.gather) on its own: real threads, no Ansible."""

from __future__ import annotations

import threading
from typing import Any

from runbook.execute.gather import Gather, Job


def _run(hosts: list[str], positions: dict[str, Any], arrive: dict[str, threading.Event]) -> tuple[list[list[str]], dict[str, Any]]:
    gather = Gather((3, -1, 1))
    calls: list[list[str]] = []
    results: dict[str, Any] = {}

    def peers() -> list[tuple[str, Any]]:
        return [(h, positions[h]) for h in hosts if positions[h] != "gone"]

    def run(jobs: list[Job], deliver: Any = None) -> dict[str, Any]:
        calls.append(sorted(j.host for j in jobs))
        return {j.host: f"result of {j.host}" for j in jobs}

    def host(h: str) -> None:
        arrive[h].wait(10)
        positions[h] = (3, -1, 1)
        results[h] = gather.join(Job(h, None), peers, run, threading.Event(), poll=0.005)

    threads = [threading.Thread(target=host, args=(h,)) for h in hosts if h in arrive]
    for t in threads:
        t.start()
    return calls, results, threads  # type: ignore[return-value]


def test_hosts_on_their_way_are_waited_for_and_run_once() -> None:
    hosts = ["a", "b", "c"]
    positions: dict[str, Any] = {"a": (2, -1, 0), "b": (1, -1, 0), "c": None}  # c: not started yet
    arrive = {h: threading.Event() for h in hosts}
    calls, results, threads = _run(hosts, positions, arrive)
    arrive["a"].set()
    arrive["c"].set()
    threading.Event().wait(0.1)
    assert calls == []  # b is still before the step
    arrive["b"].set()
    for t in threads:
        t.join(10)
    assert calls == [["a", "b", "c"]]
    assert results == {h: f"result of {h}" for h in hosts}


def test_a_host_past_the_step_or_gone_is_not_waited_for() -> None:
    hosts = ["a", "b", "c"]
    positions: dict[str, Any] = {"a": (3, -1, 0), "b": (4, -1, 0), "c": "gone"}  # b skipped it; c failed
    arrive = {"a": threading.Event()}
    calls, results, threads = _run(hosts, positions, arrive)
    arrive["a"].set()
    for t in threads:
        t.join(10)
    assert calls == [["a"]] and results == {"a": "result of a"}


def test_a_host_arriving_after_the_leader_started_gets_the_next_round() -> None:
    gather = Gather((0, -1, 1))
    started, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []
    positions: dict[str, Any] = {"a": (0, -1, 1), "b": (5, -1, 0)}  # b looks past it at first

    def run(jobs: list[Job], deliver: Any = None) -> dict[str, Any]:
        calls.append(sorted(j.host for j in jobs))
        n = len(calls)
        started.set()
        release.wait(10)
        return {j.host: n for j in jobs}

    def peers() -> list[tuple[str, Any]]:
        return list(positions.items())

    out: dict[str, Any] = {}
    ta = threading.Thread(target=lambda: out.update(a=gather.join(Job("a", None), peers, run, threading.Event(), 0.005)))
    ta.start()
    assert started.wait(10)
    tb = threading.Thread(target=lambda: out.update(b=gather.join(Job("b", None), peers, run, threading.Event(), 0.005)))
    tb.start()
    release.set()
    ta.join(10)
    tb.join(10)
    assert calls == [["a"], ["b"]] and out == {"a": 1, "b": 2} and gather.rounds == 2


def test_each_host_goes_on_with_its_own_result_before_the_run_ends() -> None:
    gather = Gather((0, -1, 1))
    release = threading.Event()
    positions: dict[str, Any] = {"a": (0, -1, 1), "b": (0, -1, 0)}  # b: on its way

    def run(jobs: list[Job], deliver: Any) -> dict[str, Any]:
        deliver("a", "fast")  # a's result is known; b's is not yet
        release.wait(10)
        return {"a": "fast", "b": "slow"}

    def peers() -> list[tuple[str, Any]]:
        return list(positions.items())

    out: dict[str, Any] = {}
    # a polls only when told (a long poll): were it to look between b's position moving and b
    # joining, it would find nobody left to wait for and lead the run itself (and so wait for its end)
    ta = threading.Thread(target=lambda: out.update(a=gather.join(Job("a", None), peers, run, threading.Event(), 30)))
    tb = threading.Thread(target=lambda: out.update(b=gather.join(Job("b", None), peers, run, threading.Event(), 0.005)))
    ta.start()
    threading.Event().wait(0.05)
    positions["b"] = (0, -1, 1)
    tb.start()  # b arrives last: it starts the run (and waits for its end)
    ta.join(10)
    assert out == {"a": "fast"} and tb.is_alive()  # a went on while the run still works for b
    release.set()
    tb.join(10)
    assert out == {"a": "fast", "b": "slow"}
