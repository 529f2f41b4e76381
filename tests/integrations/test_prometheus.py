"""prometheus.query through the real Driver against a real Prometheus (the session's own process)."""

from __future__ import annotations

import pytest

from runbook.kinds.prometheus import duration, problems_of
from tests.fixtures.redis import free_port
from tests.integrations.conftest import Runner
from tests.integrations.prometheus_server import PrometheusServer

pytestmark = pytest.mark.slow


def q(prometheus: PrometheusServer, query: str, **kw: object) -> dict:
    return {"url": prometheus.url, "query": query, **kw}


def test_value_within_bounds_passes(runner: Runner, prometheus: PrometheusServer) -> None:
    out = runner.run("prometheus.query", q(prometheus, "vector(0.002)", expect={"max": 0.01}), read_only=True)
    assert out.ok, out.msg
    assert out.msg == "vector(0.002) = 0.002 (max 0.01)"
    assert out.data["value"] == 0.002 and out.data["result_type"] == "vector"


def test_value_out_of_bounds_fails(runner: Runner, prometheus: PrometheusServer) -> None:
    out = runner.run("prometheus.query", q(prometheus, "vector(0.5)", expect={"max": 0.01}))
    assert not out.ok and out.msg == "vector(0.5): 0.5 > max 0.01"
    low = runner.run("prometheus.query", q(prometheus, "scalar(vector(3))", expect={"min": 5}))
    assert not low.ok and low.msg == "scalar(vector(3)): 3 < min 5"


def test_real_scraped_series(runner: Runner, prometheus: PrometheusServer) -> None:
    out = runner.run("prometheus.query", q(prometheus, 'up{job="prometheus"}', expect={"equals": 1}))
    assert out.ok, out.msg
    assert out.data["values"][0]["series"].startswith('up{instance="127.0.0.1:')
    several = runner.run(
        "prometheus.query", q(prometheus, "prometheus_build_info or up", expect={"equals": 1, "empty": False})
    )
    assert several.ok and len(several.data["values"]) == 2


def test_empty_results(runner: Runner, prometheus: PrometheusServer) -> None:
    firing = 'ALERTS{alertstate="firing"}'
    assert runner.run("prometheus.query", q(prometheus, firing, expect={"empty": True})).ok
    nodata = runner.run("prometheus.query", q(prometheus, 'up{job="nope"}', expect={"min": 1}))
    assert not nodata.ok and nodata.msg == 'up{job="nope"}: no data: the query matched no series'
    some = runner.run("prometheus.query", q(prometheus, "up", expect={"empty": True}))
    assert not some.ok and "expected no result, got 1 series" in some.msg


def test_nan_never_passes_a_bound(runner: Runner, prometheus: PrometheusServer) -> None:
    out = runner.run("prometheus.query", q(prometheus, "0/0", expect={"max": 0.01}))
    assert not out.ok and out.msg == "0/0: NaN is not a number (no traffic to compute it from?)"
    assert out.data["value"] == "NaN"


def test_bad_queries_say_why(runner: Runner, prometheus: PrometheusServer) -> None:
    out = runner.run("prometheus.query", q(prometheus, "rate(up[1m]"))
    assert not out.ok and out.msg.startswith("Prometheus rejected 'rate(up[1m]': bad_data: ")
    matrix = runner.run("prometheus.query", q(prometheus, "up[1m]", expect={"max": 1}))
    assert not matrix.ok and "range vector (matrix)" in matrix.msg


def test_condition_must_hold_for_a_while(runner: Runner, prometheus: PrometheusServer) -> None:
    out = runner.run(
        "prometheus.query", q(prometheus, "vector(1)", expect={"max": 2}, every=0.05, **{"for": "250ms"})
    )
    assert out.ok, out.msg
    assert out.data["checks"] >= 2 and "held for 0.25s" in out.msg


def test_prometheus_down(runner: Runner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = runner.run("prometheus.query", {"url": url, "query": "up", "timeout": 2})
    assert not out.ok and out.msg == f"Prometheus at {url} did not answer: connection refused"


def test_durations_and_expectations() -> None:
    assert (
        duration("1h30m") == 5400 and duration("500ms") == 0.5 and duration(12) == 12 and duration("7") == 7
    )
    with pytest.raises(ValueError, match="not a duration"):
        duration("5 minutes")
    assert problems_of([("", "abc")], {"equals": "abc"}) == []
    assert problems_of([("x", "1")], {"equals": 2}) == ["x = 1, expected 2"]
    assert problems_of([("", "+Inf")], {"max": 5}) == ["+Inf > max 5"]
