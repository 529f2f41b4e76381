"""A Slack-compatible incoming-webhook stand-in that records what it receives.

Answers like Slack's: 200 ``ok``; 400 ``invalid_payload`` (not JSON) or ``no_text`` (no text, blocks or
attachments); ``status``/``fault`` inject failures (``fault="close"`` drops the connection).

    with WebhookStandIn() as hook:
        ...notify.webhook url=hook.url + "/services/T0/B0/secret"...
        hook.received[0]["json"] == {"text": "..."}

By hand: ``python -m tests.standins.webhook --port 9000`` prints each payload.
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from tests.standins.base import Handler, StandIn


class WebhookStandIn(StandIn):
    def __init__(self, port: int = 0, status: int = 200, echo: bool = False):
        super().__init__(port)
        self.status = status  # answer with this status (a non-2xx one to inject a failure)
        self.fault: str | None = None  # "close": drop the connection without an answer
        self.echo = echo
        self.received: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def handle(self, req: Handler) -> None:
        body = req.body()
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        record = {
            "method": req.command,
            "path": req.path,
            "headers": {k.lower(): v for k, v in req.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "json": doc,
        }
        with self._cond:
            self.received.append(record)
            self._cond.notify_all()
        if self.echo:
            print(json.dumps(record), flush=True)
        if self.fault == "close":
            req.close_connection = True
            return
        if req.command != "POST":
            req.send(405, "invalid_method")
        elif not isinstance(doc, dict):
            req.send(400, "invalid_payload")
        elif not any(doc.get(k) for k in ("text", "blocks", "attachments")):
            req.send(400, "no_text")
        elif self.status != 200:
            req.send(self.status, "no_service" if self.status == 404 else "internal_error")
        else:
            req.send(200, "ok")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


def main() -> None:
    p = argparse.ArgumentParser(description="Slack-compatible webhook stand-in on 127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--status", type=int, default=200)
    a = p.parse_args()
    WebhookStandIn(a.port, a.status, echo=True).serve_until_signal("webhook stand-in on {url}")


if __name__ == "__main__":
    main()
