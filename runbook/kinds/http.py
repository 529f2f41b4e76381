"""http.get and http.request: HTTP from the host's point of view, with expectations.

    http.get: {url: "http://127.0.0.1:8000/health", expect: {status: 200, json: {status: healthy}}}

``expect`` — status: an int, "2xx", or a list of them (default: any 2xx); json: {dotted.path:
value} (list items by index, "items.0.name"); body_regex: searched in the body; header: {name:
regex searched in that header}. A failure says what was expected and what came back.
http.get is read-only (runs in preflight and dry-run); http.request changes things unless its method
is GET/HEAD/OPTIONS or it says ``changes: false``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runbook.actions import Http, HttpResponse
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.model.values import json_int

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_LIMIT = 64 * 1024
_STATUS = {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": r"^([1-5]xx|\d{3})$"}]}
STATUS_SCHEMA = {"oneOf": [_STATUS, {"type": "array", "items": _STATUS, "minItems": 1}]}
EXPECT_SCHEMA = {
    "type": "object",
    "properties": {
        "status": STATUS_SCHEMA,
        "json": {"type": "object", "description": "{dotted.path: expected value}"},
        "body_regex": {"type": "string"},
        "header": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_COMMON = {
    "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 10)"},
    "expect": EXPECT_SCHEMA,
    "validate_certs": {"type": "boolean", "description": "verify TLS certificates (default true)"},
}
_HAS_VALIDATE = "validate_certs" in {f.name for f in dataclasses.fields(Http)}


def public_url(url: str) -> str:
    """The URL without user:password@."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def status_ok(status: int, spec: Any) -> bool:
    """Does ``status`` match an expectation (int, "200", "2xx", or a list of them; None = any 2xx)?"""
    if spec is None:
        return 200 <= status < 300
    if isinstance(spec, list):
        return any(status_ok(status, s) for s in spec)
    s = str(spec).strip().lower()
    if len(s) == 3 and s.endswith("xx"):
        return str(status)[:1] == s[0]
    return s.isdigit() and status == int(s)


def _show_status(spec: Any) -> str:
    if spec is None:
        return "2xx"
    if isinstance(spec, list):
        return " or ".join(str(s) for s in spec)
    return str(spec)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def same(actual: Any, expected: Any) -> bool:
    """JSON value equality, lenient about scalars rendered as text ("200" == 200, "true" == true)."""
    if isinstance(actual, (dict, list)) or isinstance(expected, (dict, list)):
        return actual == expected
    return _scalar(actual) == _scalar(expected)


def json_path(doc: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path ("a.b.0.c") into parsed JSON: (found, value)."""
    if isinstance(doc, dict) and path in doc:
        return True, doc[path]
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and re.fullmatch(r"-?\d+", part) and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


def parse_json_body(resp: HttpResponse) -> Any:
    ctype = str(resp.headers.get("content-type", "")).lower()
    text = resp.body.strip()
    if "json" in ctype or text[:1] in (b"{", b"["):
        try:
            return json.loads(resp.body.decode("utf-8"), parse_int=json_int)
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def check_response(resp: HttpResponse, expect: dict[str, Any], doc: Any) -> list[str]:
    """What differs from the expectations, one line each (empty: all met)."""
    problems: list[str] = []
    if not status_ok(resp.status, expect.get("status")):
        problems.append(f"status {resp.status} != {_show_status(expect.get('status'))}")
    for path, want in (expect.get("json") or {}).items():
        if doc is None:
            ctype = resp.headers.get("content-type", "no content-type")
            problems.append(f"json {path}: the body is not JSON ({ctype}): {resp.text()[:120]!r}")
            continue
        found, got = json_path(doc, str(path))
        if not found:
            problems.append(f"json {path}: missing")
        elif not same(got, want):
            problems.append(f"json {path}: {json.dumps(got)} != {json.dumps(want)}")
    if expect.get("body_regex") and not re.search(expect["body_regex"], resp.text(), re.MULTILINE):
        problems.append(f"body does not match /{expect['body_regex']}/")
    for name, pattern in (expect.get("header") or {}).items():
        value = resp.headers.get(str(name).lower())
        if value is None:
            problems.append(f"header {name}: missing")
        elif not re.search(str(pattern), value):
            problems.append(f"header {name}: {value!r} does not match /{pattern}/")
    return problems


def connection_problem(error: str, timeout: float) -> str:
    low = error.lower()
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return f"no answer within {timeout:g}s"
    if "name or service not known" in low or "getaddrinfo" in low or "nodename" in low:
        return f"cannot resolve the host name ({error})"
    return error


def build_request(method: str, args: dict[str, Any], changes: bool) -> Http:
    headers = {str(k): _scalar(v) for k, v in (args.get("headers") or {}).items()}
    body = None
    if args.get("json") is not None:
        body = json.dumps(args["json"]).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif args.get("body") is not None:
        body = str(args["body"]).encode("utf-8")
    kw: dict[str, Any] = {}
    if _HAS_VALIDATE:
        kw["validate_certs"] = bool(args.get("validate_certs", True))
    return Http(
        method=method,
        url=str(args["url"]),
        headers=headers,
        body=body,
        timeout=float(args.get("timeout") or 10),
        changes=changes,
        **kw,
    )


def request(method: str, args: dict[str, Any], changes: bool) -> StepGen:
    action = build_request(method, args, changes)
    shown = f"{method} {public_url(action.url)}"
    resp: HttpResponse = yield action
    if resp.status == 0 and (resp.error or "").startswith("dry-run"):
        return Outcome.success(f"would send {shown}", command=shown)
    if resp.status == 0:
        problem = connection_problem(resp.error or "no response", action.timeout)
        return Outcome.failure(f"{shown}: {problem}", command=shown, data={"status": 0, "error": resp.error})
    doc = parse_json_body(resp)
    text = resp.text()
    data = {
        "status": resp.status,
        "json": doc,
        "body": text[:BODY_LIMIT],
        "body_truncated": len(text) > BODY_LIMIT,
        "headers": dict(resp.headers),
        "elapsed": round(resp.elapsed, 3),
        "url": public_url(action.url),
    }
    problems = check_response(resp, args.get("expect") or {}, doc)
    if problems:
        return Outcome.failure(f"{shown}: " + "; ".join(problems), command=shown, data=data)
    return Outcome.success(
        f"{shown}: {resp.status} in {resp.elapsed:.2f}s", changed=changes, command=shown, data=data
    )


# what every http.* step registers (one home: runbook doc and the schema read it from the kinds)
RESPONSE_REGISTERS = {
    "status": "HTTP status (0: no response)",
    "json": "the body parsed as JSON (null if it is not)",
    "body": "the body (first 64 KiB)",
    "body_truncated": "whether it was cut",
    "headers": "response headers",
    "elapsed": "seconds",
    "url": "the URL (credentials masked)",
    "error": "why there was no response",
}


@register
class HttpGet(StepKind):
    name = "http.get"
    registers = RESPONSE_REGISTERS
    description = "GET a URL (as the host sees it) and check status, JSON fields, body and headers."
    free_form = "url"
    schema = {"type": "object", "properties": _COMMON, "required": ["url"], "additionalProperties": False}

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        return (yield from request("GET", args, changes=False))


@register
class HttpRequest(StepKind):
    name = "http.request"
    registers = RESPONSE_REGISTERS
    description = "Send any HTTP request (POST to a deploy API ...); changes things unless GET/HEAD/OPTIONS."
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            **_COMMON,
            "method": {"type": "string", "pattern": "^[A-Za-z]+$", "description": "default GET"},
            "body": {"type": "string"},
            "json": {"description": "a value sent as a JSON body"},
            "changes": {"type": "boolean", "description": "false: a read-only request (runs in dry-run)"},
        },
        "required": ["url"],
        "not": {"required": ["body", "json"]},
        "additionalProperties": False,
    }

    def mutates(self, args: dict[str, Any]) -> bool:
        """Whether this particular request changes anything (engine: preflight/dry-run decisions)."""
        if args.get("changes") is not None:
            return bool(args["changes"])
        return str(args.get("method") or "GET").upper() not in SAFE_METHODS

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        method = str(args.get("method") or "GET").upper()
        return (yield from request(method, args, changes=self.mutates(args)))
