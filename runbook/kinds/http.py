"""http.get and http.request: HTTP from the host's point of view, with expectations.

    http.get: {url: "http://127.0.0.1:8000/health", expect: {status: 200, json: {status: healthy}}}

``expect`` — status: an int, "2xx", or a list of them (default: any 2xx); json: {dotted.path:
value} (list items by index, "items.0.name"); body_regex: searched in the body; header: {name:
regex searched in that header}. A failure says what was expected and what came back.
http.get is read-only (runs in preflight and dry-run); http.request changes things unless its method
is GET/HEAD/OPTIONS or it says ``changes: false``. http.request sends ``multipart:`` forms (file
uploads, as ``curl -F``); http.download saves a response body to a file on the host (with ``checksum:``
checked before anything is written, and undo restoring the file it replaced).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mimetypes
import re
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runbook.actions import Http, HttpResponse, Stat
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.files import ATTRS, RestoresPath, write_file
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


MULTIPART_FILE_LIMIT = 64 * 1024 * 1024
_PART = {
    "oneOf": [
        {"type": ["string", "number", "boolean"]},
        {
            "type": "object",
            "properties": {
                "file": {"type": "string", "minLength": 1, "description": "a control-machine file (files/)"},
                "content": {"type": "string", "description": "inline content instead of file"},
                "filename": {"type": "string", "description": "the name sent (default: the file's name)"},
                "content_type": {"type": "string", "description": "default: guessed from the name"},
            },
            "oneOf": [{"required": ["file"]}, {"required": ["content"]}],
            "additionalProperties": False,
        },
    ]
}
MULTIPART_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": _PART,
    "description": "a multipart/form-data body, as curl -F: {field: text | {file|content, filename, content_type}}",
}


class FormError(ValueError):
    """A multipart field that cannot be sent (a missing or too large file)."""


def _header_value(text: str) -> str:
    """A quoted-string for Content-Disposition (no CR/LF/quote can break out of it)."""
    return (
        '"' + text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A") + '"'
    )


def multipart_body(fields: dict[str, Any], find_file: Any) -> tuple[bytes, str]:
    """Encode ``multipart:`` as multipart/form-data (RFC 7578): (body, content-type header)."""
    boundary = "runbook-" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        disposition = f"form-data; name={_header_value(str(name))}"
        ctype = None
        if isinstance(value, dict):
            if value.get("file") is not None:
                path = find_file(str(value["file"]), "files")
                if not path.is_file():
                    raise FormError(f"multipart {name}: file {value['file']!r} not found (looked at {path})")
                if path.stat().st_size > MULTIPART_FILE_LIMIT:
                    raise FormError(
                        f"multipart {name}: {path} is larger than {MULTIPART_FILE_LIMIT >> 20} MiB"
                    )
                data = path.read_bytes()
                filename = str(value.get("filename") or path.name)
            else:
                data = str(value["content"]).encode("utf-8")
                filename = str(value.get("filename") or name)
            disposition += f"; filename={_header_value(filename)}"
            ctype = (
                value.get("content_type") or mimetypes.guess_type(filename)[0] or "application/octet-stream"
            )
        else:
            data = _scalar(value).encode("utf-8")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def build_request(method: str, args: dict[str, Any], changes: bool, find_file: Any = None) -> Http:
    headers = {str(k): _scalar(v) for k, v in (args.get("headers") or {}).items()}
    body = None
    if args.get("multipart") is not None:
        body, ctype = multipart_body(args["multipart"], find_file)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = ctype
    elif args.get("json") is not None:
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


def request(method: str, args: dict[str, Any], changes: bool, ctx: StepContext | None = None) -> StepGen:
    try:
        action = build_request(method, args, changes, ctx.find_file if ctx is not None else None)
    except FormError as exc:
        return Outcome.failure(str(exc))
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
            "multipart": MULTIPART_SCHEMA,
            "changes": {"type": "boolean", "description": "false: a read-only request (runs in dry-run)"},
        },
        "required": ["url"],
        "not": {
            "anyOf": [
                {"required": ["body", "json"]},
                {"required": ["body", "multipart"]},
                {"required": ["json", "multipart"]},
            ]
        },
        "additionalProperties": False,
    }

    def mutates(self, args: dict[str, Any]) -> bool:
        """Whether this particular request changes anything (engine: preflight/dry-run decisions)."""
        if args.get("changes") is not None:
            return bool(args["changes"])
        return str(args.get("method") or "GET").upper() not in SAFE_METHODS

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        method = str(args.get("method") or "GET").upper()
        return (yield from request(method, args, changes=self.mutates(args), ctx=ctx))


DOWNLOAD_LIMIT = 256 * 1024 * 1024


def _checksum_problem(spec: str, body: bytes) -> str | None:
    """``checksum: sha256:HEX`` (or sha1/sha512/md5), as Ansible's get_url: None when it matches."""
    algo, _, want = spec.partition(":")
    if not want:
        algo, want = "sha256", algo
    algo = algo.strip().lower()
    if algo not in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"):
        return f"checksum: unknown algorithm {algo!r} (sha256, sha512, sha1, md5 …)"
    got = hashlib.new(algo, body).hexdigest()
    if got != want.strip().lower():
        return f"checksum mismatch: {algo} {got} != {want.strip().lower()} (nothing was written)"
    return None


def _too_large(resp: HttpResponse, limit: int) -> str:
    if resp.too_large is None:
        return f"the body is {len(resp.body):,} bytes, more than max_size {limit:,} (nothing was written)"
    if resp.headers.get("content-length", "").strip() == str(resp.too_large):
        return (f"the body is {resp.too_large:,} bytes (Content-Length), more than max_size {limit:,}: "
                "not downloaded, nothing was written")  # fmt: skip
    return (f"the body is more than max_size {limit:,} bytes: reading stopped there, nothing was "
            "written")  # fmt: skip


@register
class HttpDownload(RestoresPath):
    name = "http.download"
    registers = {
        **{k: RESPONSE_REGISTERS[k] for k in ("status", "headers", "elapsed", "url")},
        "dest": "path written on the host",
        "checksum": "SHA-1 of the content",
        "sha256": "SHA-256 of the content",
        "size": "bytes",
        "mode": "final mode (e.g. 0644)",
    }
    description = (
        "Download a URL (as the host sees it) to a file on the host, as Ansible's get_url; undo restores "
        "the file it replaced."
    )
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            **_COMMON,
            "dest": {
                "type": "string",
                "minLength": 1,
                "description": "path on the host (a directory: the URL's file name)",
            },
            "checksum": {
                "type": "string",
                "description": "ALGO:HEX (sha256:…); checked before anything is written",
            },
            "max_size": {
                "type": "integer",
                "minimum": 1,
                "description": f"refuse bodies larger than this many bytes (default {DOWNLOAD_LIMIT >> 20} MiB): "
                "reading stops there and nothing is written",
            },
            "force": {"type": "boolean", "description": "false: only download when dest does not exist"},
            **ATTRS,
        },
        "required": ["url", "dest"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        limit = int(args.get("max_size") or DOWNLOAD_LIMIT)
        # the client stops reading past max_size: a larger body is never held whole, nor written
        action = dataclasses.replace(build_request("GET", args, changes=False), max_body=limit)
        shown = f"GET {public_url(action.url)}"
        if args.get("force") is False:
            st = yield Stat(str(args["dest"]), become=ctx.become)
            if st.exists and not st.is_dir:
                return Outcome.success(
                    f"{args['dest']} exists (force: false)", data={"dest": str(args["dest"])}
                )
        resp: HttpResponse = yield action
        if resp.status == 0:
            problem = connection_problem(resp.error or "no response", action.timeout)
            return Outcome.failure(
                f"{shown}: {problem}", command=shown, data={"status": 0, "error": resp.error}
            )
        info = {
            "status": resp.status,
            "headers": dict(resp.headers),
            "elapsed": round(resp.elapsed, 3),
            "url": public_url(action.url),
        }
        expect = args.get("expect") or {}
        if resp.too_large is not None or len(resp.body) > limit:
            problems = [_too_large(resp, limit)]  # its body was not read: nothing else to check
        else:
            problems = check_response(resp, expect, parse_json_body(resp) if expect.get("json") else None)
        if not problems and args.get("checksum"):
            bad = _checksum_problem(str(args["checksum"]), resp.body)
            if bad:
                problems.append(bad)
        if problems:
            return Outcome.failure(f"{shown}: " + "; ".join(problems), command=shown, data=info)
        name = urlsplit(action.url).path.rstrip("/").rsplit("/", 1)[-1] or None
        out = yield from write_file(resp.body, args, ctx, name)
        if not out.ok:
            return out
        data = {**out.data, **info, "sha256": hashlib.sha256(resp.body).hexdigest()}
        return dataclasses.replace(out, data=data)
