"""coolify.deploy and coolify.status: Coolify v4's API (``<url>/api/v1``), from the host's point of view.

    coolify.deploy: {url: "https://coolify.example.com", token: "{{ coolify_token }}",
                     uuid: ok0s0cgw8ck0w8kgs8kk4kk8, timeout: 600, poll: 5}

deploy records what each application runs now (its newest finished deployment), POSTs /deploy
(``Authorization: Bearer <id|secret>``), then polls GET /deployments/{uuid} until finished | failed |
cancelled-by-user and checks the application's status (``finished`` does not mean running). It fails
with "Coolify did not answer", "deploy failed: <status>" or "deploy hung: still <status> after N s"
(a hung deployment is cancelled, so a ``fallback:`` over SSH does not race it).

Where the real server differs from its spec (shared/specs/coolify-notes.md): ``force`` is sent only
when true (PHP reads the text "false" as true); "Deployment already queued for this commit." comes with
a uuid that was never saved, so the newest deployment of the application is followed instead; GET
/deployments/applications/{uuid} answers {count, deployments} (the spec says a list): both are read;
429 waits for Retry-After; 5xx and dropped connections while polling are retried until
``unreachable_after`` polls in a row failed.

Undo: the API cannot redeploy an earlier deployment (/deploy takes no commit; rollback is in the UI),
so undo checks what is live: still the snapshot's deployment (or its commit) -> nothing to undo;
otherwise it fails and names the deployment and commit to roll back to in Coolify.
The token goes only into the Authorization header: never into a message, command or data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from runbook.actions import Action, Http, HttpResponse, Note, Sleep, Snapshot
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.http import connection_problem, parse_json_body, public_url

TERMINAL = ("finished", "failed", "cancelled-by-user")
GOOD_APP = ("running:healthy", "running:unknown")
Gen = Generator[Action, Any, Any]

_CONN = {
    "url": {
        "type": "string",
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
        "description": "Coolify's base URL (https://coolify.example.com; /api/v1 is added)",
    },
    "token": {"type": "string", "minLength": 1, "description": "API token id|secret (read + deploy)"},
    "validate_certs": {"type": "boolean", "description": "verify TLS certificates (default true)"},
    "request_timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 10)"},
}
_UUIDS = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
    "description": "resource uuid(s) to deploy (a list or a comma-separated string)",
}


@dataclass(frozen=True)
class Reply:
    status: int  # 0: no answer
    doc: Any = None
    text: str = ""
    error: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        m = self.doc.get("message") if isinstance(self.doc, dict) else None
        if isinstance(m, list):
            return "; ".join(str(x) for x in m)
        return str(m) if m else self.text.strip()[:200]


def problem(r: Reply) -> str:
    """What went wrong, in words an operator can act on (never the token)."""
    if r.status == 0:
        return f"Coolify did not answer ({r.error})"
    msg = r.message
    low = msg.lower()
    if r.status == 401:
        return f"401 {msg or 'Unauthenticated.'} - the API token is wrong, expired or revoked"
    if r.status == 400 and "token" in low:
        return f"400 {msg} - the token belongs to no team; create a new API token"
    if r.status == 403 and "disabled" in low:
        return f"403 {msg} - enable the API in Coolify (Settings > Advanced > API Access)"
    if r.status == 403 and "not allowed" in low:
        return f"403 {msg} - add this machine's address to Coolify's API allow list"
    if r.status == 403:
        return f"403 {msg} - the token needs the read and deploy permissions (or root)"
    return f"{r.status} {msg}".strip()


RATE_WAIT = 90.0  # seconds a read waits out Coolify's rate limit (a one-minute window) in all


class Api:
    """Builds the Http actions; holds the token so that nothing else has to."""

    def __init__(self, args: dict[str, Any]):
        url = str(args["url"]).rstrip("/")
        for suffix in ("/api/v1", "/api"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
                break
        self.root = url
        self.base = url + "/api/v1"
        self.shown = public_url(self.base)
        self._token = str(args["token"]).strip()
        self.timeout = float(args.get("request_timeout") or 10)
        self.validate = bool(args.get("validate_certs", True))

    def call(
        self, method: str, path: str, query: dict[str, Any] | None = None, *, changes: bool = False
    ) -> Gen:
        """One API call. A read that Coolify refuses for its rate limit (429, Retry-After) is sent
        again after the wait it asks for, up to RATE_WAIT seconds in all (the limit is 200 requests
        a minute per user: paging through a long history, polling, several runs on one token reach
        it): that is Coolify answering "later", not failing. A change (POST /deploy) retries its own
        way (its 429 may be "Deployment queue is full")."""
        waited = 0.0
        while True:
            r = yield from self._once(method, path, query, changes)
            if r.status != 429 or changes or waited >= RATE_WAIT:
                return r
            wait = min(max(r.retry_after if r.retry_after is not None else 1.0, 0.5), RATE_WAIT - waited)
            yield Note(f"Coolify: {r.message or 'too many requests'}; retrying in {wait:g}s")
            yield Sleep(wait)
            waited += wait

    def _once(self, method: str, path: str, query: dict[str, Any] | None, changes: bool) -> Gen:
        health = path == "/api/health"
        url = (self.root if health else self.base) + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if not health:
            headers["Authorization"] = f"Bearer {self._token}"
        resp: HttpResponse = yield Http(
            method, url, headers=headers, timeout=self.timeout, changes=changes, validate_certs=self.validate
        )
        if resp.status == 0:
            error = resp.error or "no response"
            if not error.startswith("dry-run"):
                error = connection_problem(error, self.timeout)
            return Reply(0, error=error)
        retry = resp.headers.get("retry-after")
        return Reply(
            resp.status,
            parse_json_body(resp),
            resp.text(),
            retry_after=float(retry) if retry and retry.strip().isdigit() else None,
        )


def _pick(dep: Any) -> dict[str, Any]:
    """The fields of a deployment worth keeping (never its logs)."""
    keys = ("deployment_uuid", "status", "commit", "commit_message", "created_at", "finished_at")
    return {k: dep.get(k) for k in keys if isinstance(dep, dict) and dep.get(k) is not None}


def history(api: Api, app: str, take: int = 10) -> Gen:
    """An application's deployments, newest first (None when Coolify cannot tell)."""
    r = yield from api.call("GET", f"/deployments/applications/{quote(app)}", {"skip": 0, "take": take})
    if not r.ok:
        return None
    items = r.doc.get("deployments") if isinstance(r.doc, dict) else r.doc  # code vs spec
    if not isinstance(items, list):
        return None
    deps = [d for d in items if isinstance(d, dict) and d.get("deployment_uuid")]
    return sorted(deps, key=lambda d: (str(d.get("created_at") or ""), d.get("id") or 0), reverse=True)


def _live(deps: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return next((_pick(d) for d in deps or [] if d.get("status") == "finished"), None)


LIVE_PAGES, LIVE_PAGE = 10, 20  # how far back live() looks for the newest finished deployment


def live(api: Api, app: str) -> Gen:
    """(why it cannot tell, the application's live deployment: its newest finished one, or None).
    Pages back through its history: failed or cancelled deployments since the live one (ten failed
    deploys in a row) do not hide it. The first is None when Coolify told; else what went wrong
    ("Coolify did not answer (...)" only when it did not)."""
    for page in range(LIVE_PAGES):
        r = yield from api.call(
            "GET", f"/deployments/applications/{quote(app)}", {"skip": page * LIVE_PAGE, "take": LIVE_PAGE}
        )
        if not r.ok:
            return problem(r), None
        items = r.doc.get("deployments") if isinstance(r.doc, dict) else r.doc  # code vs spec
        if not isinstance(items, list):
            return f"{r.status}: no deployments list in the answer", None
        found = _live([d for d in items if isinstance(d, dict) and d.get("deployment_uuid")])
        if found is not None or len(items) < LIVE_PAGE:
            return None, found
    return None, None


def _same(prev: dict[str, Any] | None, live: dict[str, Any] | None) -> bool:
    """Is the live deployment the one from before (or a rebuild of the same commit)?"""
    if not prev or not live:
        return prev == live
    if prev.get("deployment_uuid") == live.get("deployment_uuid"):
        return True
    return prev.get("commit") not in (None, "HEAD") and prev.get("commit") == live.get("commit")


def _log_tail(logs: Any, lines: int = 12) -> str:
    """The last visible lines of a deployment's ``logs`` (a JSON-encoded string of entries)."""
    try:
        entries = json.loads(logs) if isinstance(logs, str) else []
    except ValueError:
        return str(logs)[-2000:]
    out = [str(e.get("output", "")) for e in entries if isinstance(e, dict) and not e.get("hidden")]
    return "\n".join("\n".join(out).splitlines()[-lines:])


def _uuids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(u).strip() for u in items if str(u).strip()]


@register
class CoolifyDeploy(StepKind):
    name = "coolify.deploy"
    registers = {
        "deployments": "per resource: uuid, deployment uuid, final status, message",
    }
    description = "Deploy through Coolify's API and watch it until finished, failed or hung."
    mutating = True
    schema = {
        "type": "object",
        "properties": {
            **_CONN,
            "uuid": _UUIDS,
            "tag": {"type": "string", "minLength": 1, "description": "deploy every resource with this tag"},
            "force": {"type": "boolean", "description": "rebuild without cache (default false)"},
            "wait": {"type": "boolean", "description": "watch the deployment until done (default true)"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 600)"},
            "poll": {"type": "number", "exclusiveMinimum": 0, "description": "seconds between polls (5)"},
            "check_app": {"type": "boolean", "description": "require running:healthy|unknown (default)"},
            "cancel_on_timeout": {"type": "boolean", "description": "cancel a hung deployment (default)"},
            "unreachable_after": {"type": "integer", "minimum": 1, "description": "failed polls (3)"},
        },
        "oneOf": [{"required": ["url", "token", "uuid"]}, {"required": ["url", "token", "tag"]}],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        api = Api(args)
        uuids, tag = _uuids(args.get("uuid")), args.get("tag")
        query = {"uuid": ",".join(uuids)} if uuids else {"tag": str(tag)}
        if args.get("force"):
            query["force"] = "true"  # never "false": PHP reads that text as true
        shown = f"POST {api.shown}/deploy?{urlencode(query)}"
        timeout, poll = float(args.get("timeout") or 600), float(args.get("poll") or 5)
        before: dict[str, Any] = {}
        for u in uuids:
            r = yield from api.call("GET", f"/applications/{quote(u)}")
            if r.status == 404:
                before[u] = {"application": False}  # a service or database (or unknown: /deploy says)
                continue
            if not r.ok or not isinstance(r.doc, dict):
                return Outcome.failure(f"{api.shown}: {problem(r)}", command=shown)
            unknown, previous = yield from live(api, u)
            if unknown:
                # a snapshot without what ran before would make the undo wrong: deploy nothing
                return Outcome.failure(
                    f"{api.shown}: cannot tell which deployment of {u} is live ({unknown}); nothing deployed",
                    command=shown,
                )
            before[u] = {"application": True, "name": r.doc.get("name") or u, "status": r.doc.get("status")}
            before[u]["previous"] = previous
        yield Snapshot({"coolify": api.shown, "uuids": uuids, "tag": tag, "apps": before})
        start = time.monotonic()
        while True:
            r = yield from api.call("POST", "/deploy", query, changes=True)
            left = timeout - (time.monotonic() - start)
            if r.status != 429 or left <= 0:
                break
            wait = min(r.retry_after or poll, left)
            yield Note(f"Coolify: {r.message or 'too many requests'}; retrying in {wait:g}s")
            yield Sleep(wait)
        if r.status == 0 and r.error.startswith("dry-run"):
            names = ", ".join(str(b.get("name", u)) for u, b in before.items()) or f"tag {tag}"
            return Outcome.success(f"would deploy {names} through Coolify", changed=True, command=shown)
        if not r.ok:
            return Outcome.failure(f"deploy not started: {problem(r)}", command=shown)
        watch = self._queued(r.doc)
        if not watch:
            return Outcome.failure(
                f"Coolify queued no deployment: {r.message or r.text[:200]}", command=shown
            )
        if not args.get("wait", True) or not any(w["uuid"] for w in watch):
            msg = "; ".join(w["message"] for w in watch if w["message"]) or "deployment queued"
            return Outcome.success(msg, changed=True, command=shown, data={"deployments": watch})
        out = yield from self._watch(api, args, [w for w in watch if w["uuid"]], before, start, timeout, poll)
        return Outcome(**{**out, "command": shown})

    @staticmethod
    def _queued(doc: Any) -> list[dict[str, Any]]:
        """Deployments from the answer: {deployments: [...]} (uuid) or {message, details} (tag)."""
        if not isinstance(doc, dict):
            return []
        items = doc.get("deployments") or doc.get("details") or []
        if not items and doc.get("deployment_uuid"):
            items = [doc]
        return [
            {"resource_uuid": it.get("resource_uuid"), "uuid": it.get("deployment_uuid"), "status": "queued",
             "message": str(it.get("message") or ""), "misses": 0,
             "unsaved": "already queued" in str(it.get("message") or "").lower()}
            for it in (items if isinstance(items, list) else []) if isinstance(it, dict)
        ]  # fmt: skip

    def _adopt(self, api: Api, w: dict[str, Any], before: dict[str, Any]) -> Gen:
        """Follow the application's newest deployment instead of a uuid Coolify never saved."""
        deps = yield from history(api, str(w["resource_uuid"] or ""), take=1)
        newest = _pick(deps[0]) if deps else None
        prev = (before.get(w["resource_uuid"]) or {}).get("previous") or {}
        if not newest or newest.get("deployment_uuid") == prev.get("deployment_uuid"):
            return False
        if newest["deployment_uuid"] != w["uuid"]:
            yield Note(f"Coolify did not save deployment {w['uuid']}; following {newest['deployment_uuid']}")
        w.update(uuid=newest["deployment_uuid"], status=newest.get("status", "queued"), unsaved=False)
        return True

    def _watch(self, api: Api, args: dict, watch: list[dict], before: dict, start: float, timeout: float,
               poll: float) -> Gen:  # fmt: skip
        errors, limit = 0, int(args.get("unreachable_after") or 3)
        previous = {u: b.get("previous") for u, b in before.items()}

        def data() -> dict[str, Any]:
            keep = ("resource_uuid", "uuid", "message", "status", "info")
            return {"deployments": [{k: w.get(k) for k in keep} for w in watch], "previous": previous}

        def fail(msg: str, **kw: Any) -> dict[str, Any]:
            return {"ok": False, "msg": msg, "data": data(), **kw}

        for w in watch:
            if w["unsaved"]:
                yield from self._adopt(api, w, before)
        while True:
            pause = poll
            for w in [w for w in watch if w["status"] not in TERMINAL]:
                r = yield from api.call("GET", f"/deployments/{quote(str(w['uuid']))}")
                if r.ok and isinstance(r.doc, dict):
                    errors = 0
                    w.update(status=str(r.doc.get("status") or "unknown"), info=_pick(r.doc))
                    w["log_tail"] = _log_tail(r.doc.get("logs"))
                elif r.status == 404:
                    errors = 0
                    adopted = yield from self._adopt(api, w, before)
                    w["misses"] = 0 if adopted else w["misses"] + 1
                    if w["misses"] >= 3:
                        return fail(f"deployment {w['uuid']} is unknown to Coolify (404: {r.message})")
                elif r.status == 429:
                    pause = max(pause, r.retry_after or poll)
                elif r.status == 0 or r.status >= 500:
                    errors += 1
                    if errors >= limit:
                        last = w["status"]
                        note = yield from self._cancel(api, args, w)
                        return fail(
                            f"{problem(r) if r.status == 0 else f'Coolify did not answer ({problem(r)})'} "
                            f"{errors} times in a row; deployment {w['uuid']} was last {last}{note}"
                        )
                else:
                    return fail(f"watching deployment {w['uuid']}: {problem(r)}")
            elapsed = time.monotonic() - start
            if all(w["status"] in TERMINAL for w in watch):
                break
            if elapsed >= timeout:
                w = next(w for w in watch if w["status"] not in TERMINAL)
                last = w["status"]
                note = yield from self._cancel(api, args, w)
                return fail(f"deploy hung: still {last} after {elapsed:.0f} s (deployment {w['uuid']}){note}")
            yield Sleep(max(0.0, min(pause, timeout - elapsed)))
        for w in watch:
            if w["status"] != "finished":
                name = (before.get(w["resource_uuid"]) or {}).get("name") or w["resource_uuid"]
                return fail(
                    f"deploy failed: {w['status']} (deployment {w['uuid']} of {name})",
                    stderr=w.get("log_tail", ""),
                )
        states = []
        apps = [
            w["resource_uuid"] for w in watch if (before.get(w["resource_uuid"]) or {}).get("application")
        ]
        for app in apps if args.get("check_app", True) else []:
            while True:
                r = yield from api.call("GET", f"/applications/{quote(str(app))}")
                status = str(r.doc.get("status")) if r.ok and isinstance(r.doc, dict) else problem(r)
                elapsed = time.monotonic() - start
                if status in GOOD_APP:
                    break
                if elapsed >= timeout:
                    return fail(
                        f"deploy finished but {before[app]['name']} is {status} after {elapsed:.0f} s"
                    )
                yield Sleep(max(0.0, min(poll, timeout - elapsed)))
            states.append(f"{before[app]['name']} {status}")
        elapsed = time.monotonic() - start
        done = ", ".join(
            f"{w['uuid']} (commit {str((w.get('info') or {}).get('commit', '?'))[:12]})" for w in watch
        )
        msg = f"deployment {done} finished in {elapsed:.0f} s" + (f"; {', '.join(states)}" if states else "")
        return {"ok": True, "changed": True, "msg": msg, "data": data()}

    def _cancel(self, api: Api, args: dict[str, Any], w: dict[str, Any]) -> Gen:
        if not args.get("cancel_on_timeout", True) or not w.get("uuid"):
            return ""
        r = yield from api.call("POST", f"/deployments/{quote(str(w['uuid']))}/cancel", changes=True)
        if r.ok:
            w["status"] = "cancelled-by-user"
            return "; cancelled it"
        return f"; cancelling it failed: {problem(r)}"

    def undo(self, args: dict[str, Any], snapshot: Any, ctx: StepContext) -> StepGen:
        api = Api(args)
        apps = {u: s for u, s in (snapshot.get("apps") or {}).items() if s.get("application")}
        if not apps:
            return Outcome.failure(
                "cannot undo a Coolify deploy by tag or of services/databases: Coolify's API cannot "
                "redeploy an earlier deployment; roll back in Coolify, or give the step an undo:"
            )
        problems, same = [], []
        for u, s in apps.items():
            prev = s.get("previous")
            unknown, now = yield from live(api, u)
            name = s.get("name") or u
            if unknown:
                problems.append(f"{name}: cannot tell which deployment is live ({unknown})")
            elif _same(prev, now):
                same.append(name)
            elif prev is None:
                problems.append(
                    f"{name} had no finished deployment before; stop it in Coolify if it must not run"
                )
            else:
                problems.append(
                    f"{name} now runs deployment {(now or {}).get('deployment_uuid', '?')} (commit "
                    f"{str((now or {}).get('commit', '?'))[:12]}); roll back to deployment {prev['deployment_uuid']} "
                    f"(commit {str(prev.get('commit', '?'))[:12]}) in Coolify (application > Rollback)"
                )
        if problems:
            return Outcome.failure(
                "Coolify's API cannot redeploy an earlier deployment: " + "; ".join(problems)
                + " (or give the step an undo: that restores the previous release)"
            )  # fmt: skip
        return Outcome.success("nothing to undo: Coolify still runs what it ran before: " + ", ".join(same))


@register
class CoolifyStatus(StepKind):
    name = "coolify.status"
    registers = {
        "name": "the application",
        "status": "its status (running:healthy ...)",
        "fqdn": "its domain(s)",
        "last_deployment": "the newest deployment",
        "git_branch": "the branch it deploys",
    }
    description = "Read-only: Coolify answers, the token is valid, the application exists (and its status)."
    schema = {
        "type": "object",
        "properties": {
            **_CONN,
            "uuid": {"type": "string", "minLength": 1, "description": "application uuid"},
            "expect_status": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": 'accepted status(es): "running" (any health) or "running:healthy"',
            },
        },
        "required": ["url", "token", "uuid"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        api, uuid = Api(args), str(args["uuid"])
        shown = f"GET {api.shown}/applications/{uuid}"
        h = yield from api.call("GET", "/api/health")
        if h.status == 0:
            return Outcome.failure(f"{api.root}: {problem(h)}", command=shown)
        r = yield from api.call("GET", f"/applications/{quote(uuid)}")
        if r.status == 404:
            return Outcome.failure(
                f"application {uuid} not found in Coolify ({r.message}); check the uuid in its Coolify URL",
                command=shown,
            )
        if not r.ok or not isinstance(r.doc, dict):
            return Outcome.failure(f"{api.shown}: {problem(r)}", command=shown)
        status, name = str(r.doc.get("status") or "unknown"), str(r.doc.get("name") or uuid)
        deps = yield from history(api, uuid, take=1)
        last = _pick(deps[0]) if deps else None
        data = {"name": name, "status": status, "fqdn": r.doc.get("fqdn"), "last_deployment": last}
        data["git_branch"] = r.doc.get("git_branch")
        msg = f"{name}: {status}" + (
            f"; last deployment {last.get('deployment_uuid')} {last.get('status')}" if last else ""
        )
        want = args.get("expect_status")
        wants = [want] if isinstance(want, str) else list(want or [])
        if wants and not any(status == w or status.split(":")[0] == w for w in wants):
            return Outcome.failure(
                f"{name} is {status}, expected {' or '.join(wants)}", command=shown, data=data
            )
        return Outcome.success(msg, command=shown, data=data)
