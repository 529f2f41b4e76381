"""The Coolify stand-in answers what shared/specs/coolify-openapi-subset.json says (response bodies
validated with jsonschema), except where the server's code differs (coolify-notes.md, "code")."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.standins.coolify import CoolifyStandIn
from tests.standins.webhook import WebhookStandIn

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "coolify-openapi-subset.json"
APP = "ok0s0cgw8ck0w8kgs8kk4kk8"
STATUSES = {"queued", "in_progress", "finished", "failed", "cancelled-by-user"}


def _inline(node: Any, root: dict) -> Any:
    """Resolve $refs and turn OpenAPI's `nullable: true` into JSON Schema's type [T, "null"]."""
    if isinstance(node, list):
        return [_inline(n, root) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _inline(target, root)
    out = {k: _inline(v, root) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@pytest.fixture(scope="module")
def spec() -> dict:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} not found (shared/ beside the work tree)")
    return json.loads(SPEC.read_text())


def schema_of(spec: dict, path: str, method: str, status: int) -> dict:
    resp = spec["paths"][path][method]["responses"][str(status)]
    resp = _inline(resp, spec)
    return resp["content"]["application/json"]["schema"]


def call(c: CoolifyStandIn, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(c.url + path, method=method, data=b"" if method == "POST" else None)
    req.add_header("Accept", "application/json")
    if token is not False:
        req.add_header("Authorization", f"Bearer {token or c.token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def check(
    spec: dict, c: CoolifyStandIn, method: str, path: str, spec_path: str, status: int, **kw: Any
) -> Any:
    got, body = call(c, method, path, **kw)
    assert got == status, (path, body)
    jsonschema.validate(body, schema_of(spec, spec_path, method.lower(), status))
    return body


def test_responses_match_the_spec(spec: dict) -> None:
    with CoolifyStandIn() as c:
        c.add_app(APP, "web")
        c.add_finished(APP, "abc123")
        c.behaviour.outcome = "hang"
        check(spec, c, "GET", f"/api/v1/applications/{APP}", "/applications/{uuid}", 200)
        check(spec, c, "GET", "/api/v1/applications/nope", "/applications/{uuid}", 404)
        body = check(spec, c, "GET", f"/api/v1/applications/{APP}", "/applications/{uuid}", 401, token="1|x")
        assert body == {"message": "Unauthenticated."}
        check(spec, c, "GET", f"/api/v1/applications/{APP}/logs", "/applications/{uuid}/logs", 200)
        deployed = check(spec, c, "POST", f"/api/v1/deploy?uuid={APP}", "/deploy", 200)
        dep = deployed["deployments"][0]["deployment_uuid"]
        assert deployed["deployments"][0]["message"] == "Application web deployment queued."
        check(spec, c, "POST", f"/api/v1/applications/{APP}/restart", "/applications/{uuid}/restart", 200)
        forced = check(
            spec, c, "POST", f"/api/v1/applications/{APP}/start?force=true", "/applications/{uuid}/start", 200
        )
        assert forced["message"] == "Deployment request queued." and forced["deployment_uuid"]
        check(spec, c, "POST", "/api/v1/deploy", "/deploy", 400)
        active = check(spec, c, "GET", "/api/v1/deployments", "/deployments", 200)
        assert {d["status"] for d in active} <= {"queued", "in_progress"}
        one = check(spec, c, "GET", f"/api/v1/deployments/{dep}", "/deployments/{uuid}", 200)
        assert one["status"] in STATUSES and isinstance(one["logs"], str)  # root token: logs included
        assert isinstance(json.loads(one["logs"]), list)
        check(spec, c, "GET", "/api/v1/deployments/nope", "/deployments/{uuid}", 404)
        cancelled = check(
            spec, c, "POST", f"/api/v1/deployments/{dep}/cancel", "/deployments/{uuid}/cancel", 200
        )
        assert cancelled["status"] == "cancelled-by-user"
        again = check(spec, c, "POST", f"/api/v1/deployments/{dep}/cancel", "/deployments/{uuid}/cancel", 400)
        assert again["message"] == "Deployment cannot be cancelled. Current status: cancelled-by-user"
        check(spec, c, "POST", f"/api/v1/applications/{APP}/stop", "/applications/{uuid}/stop", 200)
        # (code) the application's deployments come as {count, deployments}, newest first
        status, listing = call(c, "GET", f"/api/v1/deployments/applications/{APP}?take=2")
        assert status == 200 and listing["count"] == 3 and len(listing["deployments"]) == 2
        item = _inline(spec["components"]["schemas"]["ApplicationDeploymentQueue"], spec)
        for d in listing["deployments"]:
            jsonschema.validate(d, item)
        assert listing["deployments"][0]["id"] > listing["deployments"][1]["id"]


def test_server_quirks_from_the_code() -> None:
    with CoolifyStandIn() as c:
        c.add_app(APP, "web")
        assert call(c, "GET", "/api/health", token=False) == (200, "OK")
        assert call(c, "GET", "/api/v1/deploy")[0] == 405  # GET /deploy: 405 since v4.2.0
        assert call(c, "POST", f"/api/v1/deploy?uuid={APP}&tag=x") == (
            400,
            {"message": "You can only use uuid or tag, not both."},
        )
        assert call(c, "POST", "/api/v1/deploy?uuid=nope") == (404, {"message": "No resources found."})
        c.behaviour.outcome = "hang"
        first = call(c, "POST", f"/api/v1/deploy?uuid={APP}")[1]["deployments"][0]
        dup = call(c, "POST", f"/api/v1/deploy?uuid={APP}")[1]["deployments"][0]
        assert dup["message"] == "Deployment already queued for this commit."
        assert call(c, "GET", f"/api/v1/deployments/{dup['deployment_uuid']}")[0] == 404  # never saved
        assert call(c, "GET", f"/api/v1/deployments/{first['deployment_uuid']}")[0] == 200
        # "false" in the query string is true to PHP
        forced = call(c, "POST", f"/api/v1/deploy?uuid={APP}&force=false")[1]["deployments"][0]
        assert c.deployments[forced["deployment_uuid"]].force is True
        reader = c.add_token("read")
        assert call(c, "POST", f"/api/v1/deploy?uuid={APP}", token=reader) == (
            403,
            {"message": "Missing required permissions: deploy"},
        )
        status, dep = call(c, "GET", f"/api/v1/deployments/{first['deployment_uuid']}", token=reader)
        assert status == 200 and "logs" not in dep  # logs need read:sensitive
        c.behaviour.queue_limit = 1
        assert call(c, "POST", f"/api/v1/deploy?uuid={APP}")[0] == 429
        c.behaviour.api_enabled = False
        assert call(c, "GET", f"/api/v1/applications/{APP}") == (
            403,
            {"success": True, "message": "API is disabled."},
        )


def test_rate_limit_answers_429_with_retry_after() -> None:
    with CoolifyStandIn() as c:
        c.add_app(APP, "web")
        c.behaviour.rate_limit = 3
        statuses = [call(c, "GET", f"/api/v1/applications/{APP}")[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]


def test_webhook_standin_answers_like_slack() -> None:
    with WebhookStandIn() as w:

        def post(body: bytes) -> tuple[int, str]:
            req = urllib.request.Request(w.url + "/services/T/B/x", data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        assert post(b'{"text": "hi"}') == (200, "ok")
        assert post(b"not json") == (400, "invalid_payload")
        assert post(b'{"username": "x"}') == (400, "no_text")
        assert w.received[0]["json"] == {"text": "hi"}
