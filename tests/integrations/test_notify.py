"""notify.webhook through the real Driver against the Slack-compatible webhook stand-in."""

from __future__ import annotations

import pytest

from runbook.kinds.notify import _HAS_DISPLAY
from tests.fixtures.redis import free_port
from tests.integrations.conftest import Runner
from tests.standins.webhook import WebhookStandIn

SECRET_PATH = "/services/T000/B000/XXXXsecretXXXX"


def test_text_payload_is_received(runner: Runner, webhook: WebhookStandIn) -> None:
    url = webhook.url + SECRET_PATH
    out = runner.run("notify.webhook", {"url": url, "text": "deploy-4gb success on app1"})
    assert out.ok and not out.changed
    assert out.msg == f"notified {webhook.url}/… (200)"
    [got] = webhook.received
    assert got["method"] == "POST" and got["path"] == SECRET_PATH
    assert got["json"] == {"text": "deploy-4gb success on app1"}
    assert got["headers"]["content-type"] == "application/json"
    assert "XXXXsecretXXXX" not in runner.everything(out)


def test_json_payload_and_headers(runner: Runner, webhook: WebhookStandIn) -> None:
    payload = {
        "text": "fallback",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*ok*"}}],
    }
    out = runner.run(
        "notify.webhook", {"url": webhook.url + "/hook", "json": payload, "headers": {"X-Run": 7}}
    )
    assert out.ok
    assert webhook.received[0]["json"] == payload
    assert webhook.received[0]["headers"]["x-run"] == "7"


def test_dry_run_sends_nothing(dry_runner: Runner, webhook: WebhookStandIn) -> None:
    out = dry_runner.run("notify.webhook", {"url": webhook.url + SECRET_PATH, "text": "hi"})
    assert out.ok and out.msg == f"would notify {webhook.url}/…"
    assert webhook.received == []
    [planned] = dry_runner.last.planned
    assert planned.kind == "request"
    if _HAS_DISPLAY:  # the driver shows the request's display form (engine change requested)
        assert "XXXXsecretXXXX" not in planned.summary


def test_a_notification_is_not_allowed_in_preflight(runner: Runner, webhook: WebhookStandIn) -> None:
    from runbook.execute.driver import NotReadOnly

    with pytest.raises(NotReadOnly):
        runner.run("notify.webhook", {"url": webhook.url, "text": "hi"}, read_only=True)
    assert webhook.received == []


@pytest.mark.parametrize("status,shown", [(500, "500 internal_error"), (404, "404 no_service")])
def test_delivery_failure_is_a_warning(
    runner: Runner, webhook: WebhookStandIn, status: int, shown: str
) -> None:
    webhook.status = status
    out = runner.run("notify.webhook", {"url": webhook.url + SECRET_PATH, "text": "hi"})
    assert out.ok
    assert out.msg == f"WARNING: notification to {webhook.url}/… not delivered: {shown}"
    assert out.data["delivered"] is False
    assert runner.notes == [f"warning: notification to {webhook.url}/… not delivered: {shown}"]
    failed = runner.run("notify.webhook", {"url": webhook.url, "text": "hi", "fail_on_error": True})
    assert not failed.ok and failed.msg.endswith(shown)


def test_unreachable_webhook(runner: Runner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = runner.run("notify.webhook", {"url": url + SECRET_PATH, "text": "hi", "timeout": 2})
    assert out.ok and out.msg == f"WARNING: notification to {url}/… not delivered: connection refused"
    dropped = WebhookStandIn()
    with dropped:
        dropped.fault = "close"
        out = runner.run("notify.webhook", {"url": dropped.url, "text": "hi", "fail_on_error": True})
    assert not out.ok and "RemoteDisconnected" in out.msg
