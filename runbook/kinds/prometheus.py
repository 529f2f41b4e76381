"""prometheus.query: a metric gate (seed 000's canary checks) — read-only, so it runs in preflight too.

    prometheus.query:
      url: http://127.0.0.1:9090
      query: sum(rate(agent_errors_total[5m])) / sum(rate(agent_turns_total[5m]))
      expect: {max: 0.01}          # min <= value <= max (inclusive); equals; empty: true|false
      for: 10m                     # the condition must hold at every check for this long
      every: 30s                   # between checks (default: 10s, at most `for`)

GET <url>/api/v1/query?query=... and evaluate the instant result (Prometheus's documented format:
``{"status": "success", "data": {"resultType": "vector"|"scalar"|"string", "result": ...}}``). Every
series of a vector must meet the expectation; a query that matches nothing fails min/max/equals unless
``empty: true`` is what is expected (``ALERTS{alertstate="firing"}`` for example). NaN (0/0: no
traffic) never passes a bound. A range vector (``x[5m]`` without a function) is an error that says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import urlencode

from runbook.actions import Action, Http, HttpResponse, Note, Sleep
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.http import connection_problem, parse_json_body, public_url
from runbook.model.values import duration

_DURATION = {
    "type": ["number", "string"],
    "description": 'seconds, or a Prometheus duration: "30s", "5m", "1h30m"',
}
def series_name(metric: Any) -> str:
    if not isinstance(metric, dict) or not metric:
        return ""
    name = str(metric.get("__name__", ""))
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return name + (f"{{{labels}}}" if labels else "")


def samples(doc: Any) -> tuple[str, list[tuple[str, str]]]:
    """(resultType, [(series, value text)]) of an instant query's answer; ValueError if unusable."""
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise ValueError("the answer is not Prometheus's query API format")
    rtype, result = str(doc["data"].get("resultType")), doc["data"].get("result")
    if rtype in ("scalar", "string") and isinstance(result, list) and len(result) == 2:
        return rtype, [("", str(result[1]))]
    if rtype == "vector" and isinstance(result, list):
        return rtype, [(series_name(s.get("metric")), str((s.get("value") or [0, "NaN"])[1])) for s in result]
    if rtype == "matrix":
        raise ValueError(
            "the query returns a range vector (matrix); wrap the range selector in a function such as "
            "rate(...[5m]) or last_over_time(...[5m]) to get one value per series"
        )
    raise ValueError(f"unexpected resultType {rtype!r}")


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _finite(text: str) -> float | str:
    """A JSON-safe value: the number, or the text for NaN/Inf."""
    value = _num(text)
    return value if value is not None and math.isfinite(value) else text


def problems_of(items: list[tuple[str, str]], expect: dict[str, Any]) -> list[str]:
    """What breaks the expectation (empty list: it holds)."""
    if "empty" in expect:
        if expect["empty"] and items:
            return [f"expected no result, got {len(items)} series (" + _show(items) + ")"]
        if not expect["empty"] and not items:
            return ["expected data, the query matched no series"]
    bounds = {k: expect[k] for k in ("min", "max", "equals") if expect.get(k) is not None}
    if not bounds:
        return []
    if not items:
        return ["no data: the query matched no series"]
    out = []
    for name, text in items:
        who = f"{name} = {text}" if name else text
        value = _num(text)
        if "equals" in bounds:
            want = bounds["equals"]
            wnum = _num(str(want)) if not isinstance(want, bool) else None
            same = (value == wnum) if (value is not None and wnum is not None) else text == str(want)
            if not same:
                out.append(f"{who}, expected {want}")
            continue
        if value is None or math.isnan(value):
            out.append(f"{who} is not a number (no traffic to compute it from?)")
        elif "min" in bounds and value < float(bounds["min"]):
            out.append(f"{who} < min {bounds['min']}")
        elif "max" in bounds and value > float(bounds["max"]):
            out.append(f"{who} > max {bounds['max']}")
    return out


def _show(items: list[tuple[str, str]], limit: int = 3) -> str:
    shown = [f"{n} = {v}" if n else v for n, v in items[:limit]]
    return ", ".join(shown) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _expected(expect: dict[str, Any]) -> str:
    parts = [f"{k} {expect[k]}" for k in ("min", "max", "equals") if expect.get(k) is not None]
    if "empty" in expect:
        parts.append("empty" if expect["empty"] else "not empty")
    return ", ".join(parts)


@register
class PrometheusQuery(StepKind):
    name = "prometheus.query"
    registers = {
        "value": "the first series' value",
        "values": "every series: {series, value}",
        "result_type": "vector, scalar or string",
        "checks": "how many times it was evaluated (for:)",
    }
    description = "Evaluate a PromQL instant query against bounds, optionally holding for a while."
    schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "description": "Prometheus"},
            "query": {"type": "string", "minLength": 1},
            "expect": {
                "type": "object",
                "properties": {
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    "equals": {"type": ["number", "string"]},
                    "empty": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
            "for": _DURATION,
            "every": _DURATION,
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "per request, seconds (10)"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "validate_certs": {"type": "boolean"},
        },
        "required": ["url", "query"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        try:
            hold, every = duration(args.get("for")), duration(args.get("every"))
        except ValueError as exc:
            return Outcome.failure(f"prometheus.query: {exc}")
        every = every or min(10.0, hold) or 10.0
        expect = dict(args.get("expect") or {})
        start, checks = time.monotonic(), 0
        while True:
            checks += 1
            ok, msg, data = yield from self._once(args, expect)
            elapsed = time.monotonic() - start
            data = {**data, "checks": checks}
            if not ok:
                if checks > 1:
                    msg += f" (after holding {elapsed:.0f}s of {hold:g}s, check {checks})"
                return Outcome.failure(msg, command=self._shown(args), data=data)
            if elapsed >= hold or ctx.dry_run:
                break
            yield Sleep(max(0.0, min(every, hold - elapsed)))
        if hold and not ctx.dry_run:
            msg += f"; held for {hold:g}s ({checks} checks)"
        return Outcome.success(msg, command=self._shown(args), data=data)

    @staticmethod
    def _url(args: dict[str, Any]) -> str:
        base = str(args["url"]).rstrip("/")
        for suffix in ("/api/v1/query", "/api/v1"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return f"{base}/api/v1/query"

    def _shown(self, args: dict[str, Any]) -> str:
        return f"GET {public_url(self._url(args))}?{urlencode({'query': args['query']})}"

    def _once(self, args: dict[str, Any], expect: dict[str, Any]) -> Generator[Action, Any, Any]:
        query, timeout = str(args["query"]), float(args.get("timeout") or 10)
        url = f"{self._url(args)}?{urlencode({'query': query})}"
        headers = {
            "Accept": "application/json",
            **{str(k): str(v) for k, v in (args.get("headers") or {}).items()},
        }
        resp: HttpResponse = yield Http(
            "GET",
            url,
            headers=headers,
            timeout=timeout,
            validate_certs=bool(args.get("validate_certs", True)),
        )
        where = public_url(self._url(args).rsplit("/api/v1/query", 1)[0])
        if resp.status == 0:
            return (
                False,
                f"Prometheus at {where} did not answer: {connection_problem(resp.error or '', timeout)}",
                {},
            )
        doc = parse_json_body(resp)
        if not isinstance(doc, dict) or doc.get("status") != "success":
            if isinstance(doc, dict) and doc.get("status") == "error":
                why = f"{doc.get('errorType', 'error')}: {doc.get('error', '')}"
                return False, f"Prometheus rejected {query!r}: {why}", {"status": resp.status}
            return False, f"{where}: {resp.status} {resp.text().strip()[:200]} (is this Prometheus?)", {}
        for warning in doc.get("warnings") or []:
            yield Note(f"Prometheus warning: {warning}")
        try:
            rtype, items = samples(doc)
        except ValueError as exc:
            return False, f"{query}: {exc}", {}
        values = [{"series": n, "value": _finite(v)} for n, v in items]
        first = values[0]["value"] if values else None
        data = {"value": first, "values": values, "result_type": rtype}
        problems = problems_of(items, expect)
        if problems:
            return False, f"{query}: " + "; ".join(problems), data
        got = _show(items) if items else "no series"
        want = _expected(expect)
        return True, f"{query} = {got}" + (f" ({want})" if want else ""), data
