"""notify.webhook: tell people (Slack-compatible incoming webhook, or any JSON endpoint).

    notify.webhook: {url: "{{ slack_webhook_secret }}", text: "deploy {{ run.status }} on {{ host }}"}

Sends ``{"text": ...}`` (or the ``json`` given) as a POST. A notification changes nothing on the hosts,
but it must not go out in a dry-run: the request is yielded as a change, so a dry-run lists it as
planned and sends nothing. A failed notification does not fail the deploy unless ``fail_on_error``:
it is reported as a warning. Webhook URLs carry their secret in the path (Slack's do), so only the
scheme and host are ever shown.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlsplit

from runbook.actions import Http, HttpResponse, Note
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.kinds.http import connection_problem, status_ok

# The display form of the request for dry-run plans (once Http has it): the URL's path is the secret.
_HAS_DISPLAY = "display" in {f.name for f in dataclasses.fields(Http)}


def shown_url(url: str) -> str:
    """scheme://host[:port]/… — never the path or query (where webhook secrets live)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}" + ("/…" if parts.path not in ("", "/") or parts.query else "")


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@register
class NotifyWebhook(StepKind):
    name = "notify.webhook"
    registers = {
        "delivered": "whether the receiver accepted it",
        "status": "HTTP status",
    }
    description = "POST a message to a webhook (Slack-compatible {text}); a failure is only a warning."
    mutating = True  # not sent in a dry-run (listed as planned); nothing to undo
    no_undo_needed = "a message sent cannot be unsent; nothing on a host changed"
    schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
            "text": {"type": "string", "description": 'sent as {"text": ...}'},
            "json": {"type": "object", "description": "the whole JSON payload (Slack blocks, Teams ...)"},
            "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 10)"},
            "fail_on_error": {"type": "boolean", "description": "fail the step if not delivered (false)"},
            "validate_certs": {"type": "boolean"},
        },
        "required": ["url"],
        "oneOf": [{"required": ["text"]}, {"required": ["json"]}],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        payload = {"text": args["text"]} if args.get("text") is not None else dict(args["json"])
        headers = {str(k): _text(v) for k, v in (args.get("headers") or {}).items()}
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        timeout = float(args.get("timeout") or 10)
        target = shown_url(str(args["url"]))
        shown = f"POST {target}"
        resp: HttpResponse = yield Http(
            "POST",
            str(args["url"]),
            headers=headers,
            body=json.dumps(payload).encode("utf-8"),
            timeout=timeout,
            changes=True,
            validate_certs=bool(args.get("validate_certs", True)),
            **({"display": shown} if _HAS_DISPLAY else {}),
        )
        if resp.status == 0 and (resp.error or "").startswith("dry-run"):
            return Outcome.success(f"would notify {target}", command=shown)
        if resp.status and status_ok(resp.status, None):
            return Outcome.success(
                f"notified {target} ({resp.status})",
                command=shown,
                data={"delivered": True, "status": resp.status},
            )
        if resp.status == 0:
            why = connection_problem(resp.error or "no response", timeout)
        else:
            why = f"{resp.status} {resp.text().strip()[:200]}".strip()
        data = {"delivered": False, "status": resp.status}
        msg = f"notification to {target} not delivered: {why}"
        if args.get("fail_on_error"):
            return Outcome.failure(msg, command=shown, data=data)
        yield Note(f"warning: {msg}")
        return Outcome.success(f"WARNING: {msg}", command=shown, data=data)
