"""A Coolify v4 API stand-in: the subset in shared/specs/coolify-openapi-subset.json, with the server
code's behaviour where it differs from the spec (shared/specs/coolify-notes.md, marked "code").

    with CoolifyStandIn() as c:
        c.add_app("app1", "web")              # token: c.token (abilities root)
        c.behaviour.outcome = "failed"        # finished | failed | hang | queued
        c.behaviour.fault = "close"           # None | "500" | "close" | "silent" (after fault_after requests)

Deployments move queued -> in_progress -> outcome on the clock (queued_for, run_for seconds); a finished
deployment sets the application's status to ``app_status_after`` and its commit. By hand:
``python -m tests.standins.coolify --port 8000 --app ok0s0cgw8ck0w8kgs8kk4kk8:web``.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins.base import Handler, StandIn

ACTIVE = ("queued", "in_progress")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class App:
    uuid: str
    name: str
    kind: str = "application"  # application | service | database
    commit: str = "HEAD"  # what the next deployment builds (the repository's head)
    status: str = "running:healthy"
    tags: tuple[str, ...] = ()
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "uuid": self.uuid, "name": self.name, "description": None,
            "fqdn": f"https://{self.name}.example.test", "git_repository": "acme/app", "git_branch": "main",
            "git_commit_sha": "HEAD", "build_pack": "dockercompose", "status": self.status,
            "docker_compose_location": "/docker-compose-4gb.yml", "health_check_enabled": True,
            "health_check_path": "/health", "ports_exposes": "8000", "destination_type": "App\\Models\\StandaloneDocker",
            "destination_id": 1, "environment_id": 1, "created_at": _now(), "updated_at": _now(),
            "deleted_at": None, "compose_parsing_version": "3", "custom_healthcheck_found": False,
            "is_http_basic_auth_enabled": False, "settings": {"is_static": False, "is_auto_deploy_enabled": True},
        }  # fmt: skip


@dataclass
class Deployment:
    id: int
    uuid: str
    app: App
    commit: str
    force: bool
    outcome: str
    queued_for: float
    run_for: float
    created: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=_now)
    cancelled: bool = False
    finished_at: str | None = None

    def status(self, now: float) -> str:
        if self.cancelled:
            return "cancelled-by-user"
        if self.outcome == "queued" or now < self.created + self.queued_for:
            return "queued"
        if self.outcome == "hang" or now < self.created + self.queued_for + self.run_for:
            return "in_progress"
        return self.outcome

    def logs(self, status: str) -> str:
        lines = [("docker compose build", "Building app", False), ("git rev-parse HEAD", self.commit, True)]
        if status in ("finished", "failed"):
            lines.append(("docker compose up -d", "Container app started" if status == "finished" else
                          "Error response from daemon: container app is unhealthy", False))  # fmt: skip
        return json.dumps(
            [{"command": c, "output": o, "type": "stderr" if "Error" in o else "stdout", "timestamp": self.created_at,
              "hidden": h, "batch": 1, "order": i + 1} for i, (c, o, h) in enumerate(lines)]
        )  # fmt: skip

    def to_json(self, status: str, sensitive: bool) -> dict[str, Any]:
        out = {
            "id": self.id, "application_id": str(self.app.id), "deployment_uuid": self.uuid, "pull_request_id": 0,
            "force_rebuild": self.force, "commit": self.commit, "status": status, "is_webhook": False,
            "is_api": True, "created_at": self.created_at, "updated_at": _now(), "restart_only": False,
            "server_id": 0, "application_name": self.app.name, "server_name": "localhost",
            "deployment_url": f"/project/p/environment/e/application/{self.app.uuid}/deployment/{self.uuid}",
            "destination_id": "0", "only_this_server": False, "rollback": False,
            "commit_message": f"release {self.commit}", "finished_at": self.finished_at,
        }  # fmt: skip
        if sensitive:
            out["logs"] = self.logs(status)
        return out


@dataclass
class Behaviour:
    outcome: str = "finished"  # finished | failed | hang (in_progress forever) | queued (forever)
    queued_for: float = 0.05
    run_for: float = 0.1
    app_status_after: str = "running:healthy"
    fault: str | None = None  # None | "500" | "close" | "silent"
    fault_after: int = 0  # API requests answered normally before the fault starts
    fault_paths: str = "/api/"  # only requests under this path prefix are faulted
    api_enabled: bool = True
    rate_limit: int = 200  # requests per rate_window per token (Laravel throttle:api: 200 a minute)
    rate_window: float = 60.0
    queue_limit: int = 25  # queued + in_progress deployments per server


class CoolifyStandIn(StandIn):
    def __init__(self, port: int = 0, token: str | None = None):
        super().__init__(port)
        self.lock = threading.RLock()
        self.behaviour = Behaviour()
        self.token = token or f"1|{secrets.token_hex(20)}"
        self.tokens: dict[str, tuple[str, ...]] = {self.token: ("root",)}
        self.apps: dict[str, App] = {}
        self.deployments: dict[str, Deployment] = {}
        self.requests: list[dict[str, Any]] = []
        self._hits: dict[str, list[float]] = {}

    # ------------------------------------------------------------------------- test helpers
    def add_app(self, uuid: str, name: str, **kw: Any) -> App:
        with self.lock:
            app = App(uuid, name, id=len(self.apps) + 1, **kw)
            self.apps[uuid] = app
            return app

    def add_token(self, *abilities: str) -> str:
        token = f"{len(self.tokens) + 1}|{secrets.token_hex(20)}"
        self.tokens[token] = tuple(abilities)
        return token

    def add_finished(self, app_uuid: str, commit: str) -> Deployment:
        """A deployment that finished before the test (what the app runs now)."""
        with self.lock:
            app = self.apps[app_uuid]
            dep = self._queue(app, commit, False, outcome="finished", queued_for=0, run_for=0)
            dep.created -= 1
            self._settle(dep, time.monotonic())
            return dep

    def status_of(self, dep_uuid: str) -> str:
        with self.lock:
            return self._settle(self.deployments[dep_uuid], time.monotonic())

    # ------------------------------------------------------------------------------ serving
    def handle(self, req: Handler) -> None:
        parts = urlsplit(req.path)
        path, query = parts.path.rstrip("/") or "/", {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = req.body()
        auth = req.headers.get("Authorization") or ""
        with self.lock:
            self.requests.append({"method": req.command, "path": path, "query": query, "authorization": auth})
            n_api = sum(1 for r in self.requests if r["path"].startswith(self.behaviour.fault_paths))
            fault = self.behaviour.fault if path.startswith(self.behaviour.fault_paths) else None
        if fault and n_api > self.behaviour.fault_after:
            if fault == "close":
                req.close_connection = True
                return  # no status line at all: the client sees the connection dropped
            if fault == "silent":
                self.stopping.wait(60)
                req.close_connection = True
                return
            req.send(500, {"message": "Server Error"})
            return
        if path in ("/api/health", "/api/v1/health"):
            req.send(200, "OK")
            return
        if not path.startswith("/api/v1/"):
            req.send(404, {"message": "Not found."})
            return
        limited = self._throttle(auth)
        if limited:
            req.send(429, {"message": "Too Many Attempts."}, {"Retry-After": str(limited)})
            return
        abilities = self._authenticate(auth)
        if abilities is None:
            req.send(401, {"message": "Unauthenticated."})
            return
        if not self.behaviour.api_enabled:
            req.send(403, {"success": True, "message": "API is disabled."})
            return
        if body and "json" in (req.headers.get("Content-Type") or ""):
            try:
                query.update({k: v for k, v in json.loads(body).items()})
            except (ValueError, AttributeError):
                req.send(400, {"message": "Invalid JSON."})
                return
        with self.lock:
            status, payload, headers = self._route(req.command, path[len("/api/v1") :], query, abilities)
        req.send(status, payload, headers)

    def _throttle(self, auth: str) -> int:
        now = time.monotonic()
        with self.lock:
            window = self.behaviour.rate_window
            hits = [t for t in self._hits.get(auth, []) if now - t < window] + [now]
            self._hits[auth] = hits
            return int(window - (now - hits[0])) + 1 if len(hits) > self.behaviour.rate_limit else 0

    def _authenticate(self, auth: str) -> tuple[str, ...] | None:
        m = re.fullmatch(r"Bearer\s+(\S+)", auth.strip())
        return self.tokens.get(m.group(1)) if m else None

    @staticmethod
    def _can(abilities: tuple[str, ...], need: str) -> bool:
        return "root" in abilities or need in abilities or "*" in abilities

    def _route(self, method: str, path: str, q: dict[str, Any], abilities: tuple[str, ...]) -> tuple:
        routes = [
            ("GET", r"/applications/([^/]+)", "read", self._get_app),
            ("GET", r"/applications/([^/]+)/logs", "read", self._app_logs),
            ("GET|POST", r"/applications/([^/]+)/(start|restart|stop)", "deploy", self._app_action),
            ("GET", r"/deployments", "read", self._list_active),
            ("GET", r"/deployments/applications/([^/]+)", "read", self._app_deployments),
            ("GET", r"/deployments/([^/]+)", "read", self._get_deployment),
            ("POST", r"/deployments/([^/]+)/cancel", "deploy", self._cancel),
            ("POST", r"/deploy", "deploy", self._deploy),
        ]
        for methods, pattern, need, fn in routes:
            m = re.fullmatch(pattern, path)
            if not m:
                continue
            if method not in methods.split("|"):
                allowed = methods.replace("|", ", ")
                return 405, {"message": f"The {method} method is not supported for route api/v1{path}. "
                             f"Supported methods: {allowed}."}, None  # fmt: skip
            if not self._can(abilities, need):
                return 403, {"message": f"Missing required permissions: {need}"}, None
            return fn(q, abilities, *m.groups())
        return 404, {"message": "Not found."}, None

    # ------------------------------------------------------------------------------ endpoints
    def _settle(self, dep: Deployment, now: float) -> str:
        status = dep.status(now)
        if status in ("finished", "failed") and dep.finished_at is None:
            dep.finished_at = _now()
            if status == "finished":
                dep.app.status = self.behaviour.app_status_after
        return status

    def _app(self, uuid: str) -> App | None:
        app = self.apps.get(uuid)
        return app if app and app.kind == "application" else None

    def _get_app(self, q: dict, ab: tuple, uuid: str) -> tuple:
        app = self._app(uuid)
        if app is None:
            return 404, {"message": "Application not found."}, None
        return 200, app.to_json(), None

    def _app_logs(self, q: dict, ab: tuple, uuid: str) -> tuple:
        app = self._app(uuid)
        if app is None:
            return 404, {"message": "Application not found."}, None
        if not app.status.startswith("running"):
            return 400, {"message": "Application is not running."}, None
        return 200, {"logs": "app listening on :8000\n"}, None

    def _app_action(self, q: dict, ab: tuple, uuid: str, action: str) -> tuple:
        app = self._app(uuid)
        if app is None:
            return 404, {"message": "Application not found."}, None
        if action == "stop":
            app.status = "exited:unhealthy"
            return 200, {"message": "Application stopping request queued."}, None
        force = _php_bool(q.get("force"))
        if not force and self._active_for(app):
            return 200, {"message": "Deployment already queued for this commit."}, None
        dep = self._queue(app, app.commit, force)
        message = "Restart request queued." if action == "restart" else "Deployment request queued."
        return 200, {"message": message, "deployment_uuid": dep.uuid}, None

    def _list_active(self, q: dict, ab: tuple) -> tuple:
        now = time.monotonic()
        sens = self._can(ab, "read:sensitive")
        active = [(d, self._settle(d, now)) for d in self.deployments.values()]
        return 200, [d.to_json(s, sens) for d, s in active if s in ACTIVE], None

    def _app_deployments(self, q: dict, ab: tuple, uuid: str) -> tuple:
        app = self._app(uuid)
        if app is None:
            return 404, {"message": "Application not found."}, None
        skip, take = int(q.get("skip") or 0), int(q.get("take") or 10)
        now, sens = time.monotonic(), self._can(ab, "read:sensitive")
        deps = sorted((d for d in self.deployments.values() if d.app is app), key=lambda d: -d.id)
        page = [d.to_json(self._settle(d, now), sens) for d in deps[skip : skip + take]]
        return 200, {"count": len(deps), "deployments": page}, None  # code; the spec says an array

    def _get_deployment(self, q: dict, ab: tuple, uuid: str) -> tuple:
        dep = self.deployments.get(uuid)
        if dep is None:
            return 404, {"message": "Deployment not found."}, None
        return 200, dep.to_json(self._settle(dep, time.monotonic()), self._can(ab, "read:sensitive")), None

    def _cancel(self, q: dict, ab: tuple, uuid: str) -> tuple:
        dep = self.deployments.get(uuid)
        if dep is None:
            return 404, {"message": "Deployment not found."}, None
        status = self._settle(dep, time.monotonic())
        if status not in ACTIVE:
            return 400, {"message": f"Deployment cannot be cancelled. Current status: {status}"}, None
        dep.cancelled = True
        return 200, {"message": "Deployment cancelled successfully.", "deployment_uuid": uuid,
                     "status": "cancelled-by-user"}, None  # fmt: skip

    def _deploy(self, q: dict, ab: tuple) -> tuple:
        uuids, tags = q.get("uuid"), q.get("tag")
        pr = q.get("pr") or q.get("pull_request_id")
        if uuids and tags:
            return 400, {"message": "You can only use uuid or tag, not both."}, None
        if tags and pr:
            return 400, {"message": "You can only use tag or pr, not both."}, None
        if q.get("docker_tag") and not pr:
            return 400, {"message": "docker_tag requires pr or pull_request_id."}, None
        if not uuids and not tags:
            return 400, {"message": "You must provide uuid or tag."}, None
        now = time.monotonic()
        active = sum(1 for d in self.deployments.values() if self._settle(d, now) in ACTIVE)
        if active >= self.behaviour.queue_limit:
            return (
                429,
                {"message": "Deployment queue is full. Please try again later."},
                {"Retry-After": "60"},
            )
        force = _php_bool(q.get("force"))
        if tags:
            wanted = [t for t in str(tags).split(",") if t]
            apps = [a for a in self.apps.values() if set(a.tags) & set(wanted)]
            if not apps:
                return 404, {"message": "No resources found with this tag."}, None
            messages, details = [], []
            for app in apps:
                item = self._deploy_one(app, force)
                messages.append(item["message"])
                if item.get("deployment_uuid"):
                    details.append({"resource_uuid": app.uuid, "deployment_uuid": item["deployment_uuid"]})
            return 200, {"message": messages, **({"details": details} if details else {})}, None
        found = [self.apps[u] for u in str(uuids).split(",") if u in self.apps]
        if not found:
            return 404, {"message": "No resources found."}, None
        return (
            200,
            {"deployments": [{**self._deploy_one(a, force), "resource_uuid": a.uuid} for a in found]},
            None,
        )

    def _deploy_one(self, app: App, force: bool) -> dict[str, Any]:
        if app.kind == "service":
            return {"message": f"Service {app.name} started. It could take a while, be patient."}
        if app.kind == "database":
            return {"message": f"Database {app.name} started."}
        if not force and self._active_for(app):  # code: a fresh uuid that is never saved
            return {"message": "Deployment already queued for this commit.", "deployment_uuid": _cuid()}
        dep = self._queue(app, app.commit, force)
        return {"message": f"Application {app.name} deployment queued.", "deployment_uuid": dep.uuid}

    def _active_for(self, app: App) -> bool:
        """A deployment of the same commit is queued or running."""
        now = time.monotonic()
        return any(
            d.app is app and d.commit == app.commit and self._settle(d, now) in ACTIVE
            for d in self.deployments.values()
        )

    def _queue(self, app: App, commit: str, force: bool, **kw: Any) -> Deployment:
        b = self.behaviour
        opts = {"outcome": b.outcome, "queued_for": b.queued_for, "run_for": b.run_for, **kw}
        dep = Deployment(len(self.deployments) + 1, _cuid(), app, commit, force, **opts)
        self.deployments[dep.uuid] = dep
        return dep


def _php_bool(value: Any) -> bool:
    """How the server reads a query flag: any non-empty text but "0" is true (so "false" is true)."""
    if isinstance(value, bool):
        return value
    return value not in (None, "", "0")


def _cuid() -> str:
    return "c" + secrets.token_hex(12)[:24]


def main() -> None:
    p = argparse.ArgumentParser(description="Coolify v4 API stand-in on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", help="API token (default: generated and printed)")
    p.add_argument("--app", action="append", default=[], help="UUID[:NAME], repeatable")
    p.add_argument("--outcome", default="finished", choices=["finished", "failed", "hang", "queued"])
    p.add_argument("--queued-for", type=float, default=1.0)
    p.add_argument("--run-for", type=float, default=5.0)
    p.add_argument("--fault", choices=["500", "close", "silent"])
    a = p.parse_args()
    c = CoolifyStandIn(a.port, a.token)
    c.behaviour = Behaviour(outcome=a.outcome, queued_for=a.queued_for, run_for=a.run_for, fault=a.fault)
    for spec in a.app or ["ok0s0cgw8ck0w8kgs8kk4kk8:app"]:
        uuid, _, name = spec.partition(":")
        c.add_app(uuid, name or uuid)
    c.serve_until_signal(f"Coolify stand-in on {{url}} (token {c.token}; apps {', '.join(c.apps)})")


if __name__ == "__main__":
    main()
