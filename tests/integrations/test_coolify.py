"""coolify.deploy / coolify.status through the real Driver against the Coolify stand-in."""

from __future__ import annotations

import pytest

from tests.fixtures.redis import free_port
from tests.integrations.conftest import Runner
from tests.standins.coolify import CoolifyStandIn

APP = "ok0s0cgw8ck0w8kgs8kk4kk8"
FAST = {"timeout": 3, "poll": 0.02}


def args(c: CoolifyStandIn, **kw: object) -> dict:
    return {"url": c.url, "token": c.token, "uuid": APP, **FAST, **kw}


def deploys(c: CoolifyStandIn) -> list[dict]:
    return [r for r in c.requests if r["path"] == "/api/v1/deploy"]


def test_deploy_success_follows_the_deployment_to_finished(runner: Runner, coolify: CoolifyStandIn) -> None:
    previous = next(iter(coolify.deployments.values()))
    out = runner.run("coolify.deploy", args(coolify))
    assert out.ok and out.changed, out.msg
    [dep] = out.data["deployments"]
    assert dep["status"] == "finished" and dep["info"]["commit"] == "2222222bbbb"
    assert f"deployment {dep['uuid']} (commit 2222222bbbb) finished" in out.msg
    assert "web running:healthy" in out.msg
    # the trigger: POST /api/v1/deploy?uuid=..., Bearer token, no force flag (PHP reads "false" as true)
    [trigger] = deploys(coolify)
    assert trigger["method"] == "POST" and trigger["query"] == {"uuid": APP}
    assert all(
        r["authorization"] == f"Bearer {coolify.token}" for r in coolify.requests if "/v1/" in r["path"]
    )
    # the snapshot names what ran before
    [snap] = runner.last.snapshots
    assert snap["apps"][APP]["previous"]["deployment_uuid"] == previous.uuid
    assert snap["apps"][APP]["previous"]["commit"] == "1111111aaaa"
    assert coolify.token not in runner.everything(out)


def test_force_is_sent_only_when_asked(runner: Runner, coolify: CoolifyStandIn) -> None:
    assert runner.run("coolify.deploy", args(coolify, force=True)).ok
    assert deploys(coolify)[0]["query"] == {"uuid": APP, "force": "true"}
    assert next(reversed(coolify.deployments.values())).force is True


def test_deploy_failure_names_the_deployment_and_shows_the_log_tail(
    runner: Runner, coolify: CoolifyStandIn
) -> None:
    coolify.behaviour.outcome = "failed"
    out = runner.run("coolify.deploy", args(coolify))
    dep = out.data["deployments"][0]["uuid"]
    assert not out.ok
    assert out.msg == f"deploy failed: failed (deployment {dep} of web)"
    assert "container app is unhealthy" in out.stderr
    assert "git rev-parse" not in out.stderr  # hidden log lines stay hidden


@pytest.mark.parametrize("outcome,shown", [("hang", "in_progress"), ("queued", "queued")])
def test_a_hung_deployment_times_out_and_is_cancelled(
    runner: Runner, coolify: CoolifyStandIn, outcome: str, shown: str
) -> None:
    coolify.behaviour.outcome = outcome
    out = runner.run("coolify.deploy", args(coolify, timeout=0.3))
    dep = out.data["deployments"][0]["uuid"]
    assert not out.ok
    assert out.msg.startswith(f"deploy hung: still {shown} after ")
    assert f"(deployment {dep}); cancelled it" in out.msg
    assert coolify.status_of(dep) == "cancelled-by-user"


def test_cancel_on_timeout_can_be_turned_off(runner: Runner, coolify: CoolifyStandIn) -> None:
    coolify.behaviour.outcome = "hang"
    out = runner.run("coolify.deploy", args(coolify, timeout=0.2, cancel_on_timeout=False))
    assert out.msg.startswith("deploy hung: still in_progress")
    assert coolify.status_of(out.data["deployments"][0]["uuid"]) == "in_progress"


def test_coolify_down_is_a_clear_error(runner: Runner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = runner.run("coolify.deploy", {"url": url, "token": "7|s3cr3t-token-value", "uuid": APP})
    assert not out.ok
    assert out.msg == f"{url}/api/v1: Coolify did not answer (connection refused)"
    assert "s3cr3t-token-value" not in runner.everything(out)


@pytest.mark.parametrize(
    "fault,expect",
    [
        ("500", "Coolify did not answer (500 Server Error) 3 times in a row"),
        ("close", "Coolify did not answer (RemoteDisconnected"),
        ("silent", "Coolify did not answer (no answer within 0.3s) 3 times in a row"),
    ],
)
def test_coolify_failing_while_polling(
    runner: Runner, coolify: CoolifyStandIn, fault: str, expect: str
) -> None:
    coolify.behaviour.outcome = "hang"
    coolify.behaviour.fault = fault
    coolify.behaviour.fault_paths = "/api/v1/deployments/c"  # polling only: the trigger goes through
    out = runner.run("coolify.deploy", args(coolify, request_timeout=0.3, timeout=30))
    assert not out.ok
    assert expect in out.msg
    assert "was last queued" in out.msg or "was last in_progress" in out.msg


def test_errors_that_pass_are_ridden_out(runner: Runner, coolify: CoolifyStandIn) -> None:
    coolify.behaviour.fault = "500"
    coolify.behaviour.fault_paths = "/api/v1/deployments/c"
    coolify.behaviour.fault_after = 10**6  # the fault never starts ...
    coolify.behaviour.run_for = 0.2
    out = runner.run("coolify.deploy", args(coolify, unreachable_after=50))
    assert out.ok, out.msg


@pytest.mark.parametrize(
    "setup,expect",
    [
        ("bad_token", "401 Unauthenticated. - the API token is wrong, expired or revoked"),
        ("disabled", "403 API is disabled. - enable the API in Coolify"),
        ("deploy_only", "403 Missing required permissions: read - the token needs the read and deploy"),
    ],
)
def test_auth_problems_say_what_to_do(
    runner: Runner, coolify: CoolifyStandIn, setup: str, expect: str
) -> None:
    token = coolify.token
    if setup == "bad_token":
        token = "1|not-the-right-secret"
    elif setup == "disabled":
        coolify.behaviour.api_enabled = False
    else:
        token = coolify.add_token("deploy")
    out = runner.run("coolify.deploy", {**args(coolify), "token": token})
    assert not out.ok
    assert expect in out.msg
    assert not deploys(coolify)  # found out before anything changed
    assert token not in runner.everything(out)


def test_unknown_uuid(runner: Runner, coolify: CoolifyStandIn) -> None:
    out = runner.run("coolify.deploy", args(coolify, uuid="nope"))
    assert not out.ok and out.msg == "deploy not started: 404 No resources found."


def test_finished_but_not_running_fails(runner: Runner, coolify: CoolifyStandIn) -> None:
    coolify.behaviour.app_status_after = "exited:unhealthy"
    out = runner.run("coolify.deploy", args(coolify, timeout=0.4))
    assert not out.ok
    assert out.msg.startswith("deploy finished but web is exited:unhealthy after ")
    assert runner.run("coolify.deploy", args(coolify, check_app=False, timeout=0.4)).ok


def test_already_queued_for_this_commit_follows_the_real_deployment(
    runner: Runner, coolify: CoolifyStandIn
) -> None:
    coolify.behaviour.run_for = 0.3
    app = coolify.apps[APP]
    running = coolify._queue(app, app.commit, False)  # someone else's deploy of the same commit
    out = runner.run("coolify.deploy", args(coolify))
    assert out.ok, out.msg
    assert out.data["deployments"][0]["uuid"] == running.uuid
    assert any("did not save deployment" in n and running.uuid in n for n in runner.notes)


def test_queue_full_waits_for_retry_after_then_gives_up(runner: Runner, coolify: CoolifyStandIn) -> None:
    coolify.behaviour.queue_limit = 0
    out = runner.run("coolify.deploy", args(coolify, timeout=0.2))
    assert not out.ok
    assert out.msg == "deploy not started: 429 Deployment queue is full. Please try again later."
    assert any("retrying in" in n for n in runner.notes)


def test_deploy_by_tag_watches_every_application(runner: Runner, coolify: CoolifyStandIn) -> None:
    coolify.apps[APP].tags = ("prod",)
    coolify.add_app("second", "worker", tags=("prod",))
    coolify.add_app("svc", "cache", kind="service", tags=("prod",))
    out = runner.run("coolify.deploy", {"url": coolify.url, "token": coolify.token, "tag": "prod", **FAST})
    assert out.ok, out.msg
    assert sorted(d["resource_uuid"] for d in out.data["deployments"]) == [APP, "second"]
    assert all(d["status"] == "finished" for d in out.data["deployments"])


def test_dry_run_probes_but_sends_no_deploy(dry_runner: Runner, coolify: CoolifyStandIn) -> None:
    out = dry_runner.run("coolify.deploy", args(coolify))
    assert out.ok and out.msg == "would deploy web through Coolify"
    assert not deploys(coolify)
    [planned] = dry_runner.last.planned
    assert planned.kind == "request" and planned.summary == f"POST {coolify.url}/api/v1/deploy?uuid={APP}"
    assert coolify.token not in dry_runner.everything(out)


def test_undo_is_honest(runner: Runner, coolify: CoolifyStandIn) -> None:
    previous = next(iter(coolify.deployments.values()))
    out = runner.run("coolify.deploy", args(coolify))
    snap = runner.last.snapshots[0]
    undo = runner.undo("coolify.deploy", args(coolify), snap)
    assert not undo.ok
    assert "Coolify's API cannot redeploy an earlier deployment" in undo.msg
    assert f"roll back to deployment {previous.uuid} (commit 1111111aaaa)" in undo.msg
    assert out.data["deployments"][0]["uuid"] in undo.msg
    # a deploy that failed changed nothing: the previous deployment is still live
    coolify.behaviour.outcome = "failed"
    assert not runner.run("coolify.deploy", args(coolify)).ok
    again = runner.undo("coolify.deploy", args(coolify), runner.last.snapshots[0])
    assert again.ok and again.msg.startswith("nothing to undo")


def test_the_live_deployment_is_found_behind_many_failed_ones(
    runner: Runner, coolify: CoolifyStandIn
) -> None:
    """Failed deploys in a row (more than a page of history) do not hide what is live: the snapshot
    still names it, and the undo of one more failed deploy finds nothing to undo."""
    previous = next(iter(coolify.deployments.values()))
    coolify.behaviour.outcome = "failed"
    for _ in range(25):  # deploys that failed since (through Coolify's UI, other runs ...)
        coolify._queue(coolify.apps[APP], "3333333", False, outcome="failed", queued_for=0, run_for=0)
    assert not runner.run("coolify.deploy", args(coolify)).ok
    snap = runner.last.snapshots[0]
    assert snap["apps"][APP]["previous"]["deployment_uuid"] == previous.uuid
    again = runner.undo("coolify.deploy", args(coolify), snap)
    assert again.ok and again.msg.startswith("nothing to undo"), again.msg


def test_a_rate_limited_coolify_is_waited_for_not_taken_for_down(
    runner: Runner, coolify: CoolifyStandIn
) -> None:
    """Past its rate limit (200 requests a minute per token) Coolify answers 429 with Retry-After:
    the snapshot and the undo, paging back through a long history, wait it out (saying so) and find
    what is live; a rate limit is not "Coolify did not answer"."""
    previous = next(iter(coolify.deployments.values()))
    coolify.behaviour.outcome = "failed"
    for _ in range(45):  # three pages of history to go through
        coolify._queue(coolify.apps[APP], "3333333", False, outcome="failed", queued_for=0, run_for=0)
    coolify.behaviour.rate_limit, coolify.behaviour.rate_window = 2, 1.0
    assert not runner.run("coolify.deploy", args(coolify, timeout=30)).ok
    snap = runner.last.snapshots[0]
    assert snap["apps"][APP]["previous"]["deployment_uuid"] == previous.uuid
    again = runner.undo("coolify.deploy", args(coolify), snap)
    assert again.ok and again.msg.startswith("nothing to undo"), again.msg
    assert any("Too Many Attempts." in n and "retrying in" in n for n in runner.notes), runner.notes


def test_status_reports_the_application(runner: Runner, coolify: CoolifyStandIn) -> None:
    out = runner.run(
        "coolify.status", {"url": coolify.url, "token": coolify.token, "uuid": APP}, read_only=True
    )
    assert out.ok and out.msg.startswith("web: running:healthy; last deployment ")
    assert out.data["last_deployment"]["commit"] == "1111111aaaa"
    assert coolify.token not in runner.everything(out)
    base = {"url": coolify.url, "token": coolify.token, "uuid": APP}
    ok = runner.run("coolify.status", {**base, "expect_status": "running"}, read_only=True)
    assert ok.ok
    coolify.apps[APP].status = "exited:unhealthy"
    bad = runner.run("coolify.status", {**base, "expect_status": ["running:healthy"]}, read_only=True)
    assert not bad.ok and bad.msg == "web is exited:unhealthy, expected running:healthy"


def test_status_problems(runner: Runner, coolify: CoolifyStandIn) -> None:
    missing = runner.run("coolify.status", {"url": coolify.url, "token": coolify.token, "uuid": "x"})
    assert missing.msg.startswith("application x not found in Coolify (Application not found.)")
    wrong = runner.run("coolify.status", {"url": coolify.url + "/api/v1/", "token": "1|bad", "uuid": APP})
    assert "401 Unauthenticated." in wrong.msg
    url = f"http://127.0.0.1:{free_port()}"
    down = runner.run("coolify.status", {"url": url, "token": "1|bad", "uuid": APP})
    assert down.msg == f"{url}: Coolify did not answer (connection refused)"


def test_wait_false_returns_once_queued(runner: Runner, coolify: CoolifyStandIn) -> None:
    coolify.behaviour.outcome = "hang"
    out = runner.run("coolify.deploy", args(coolify, wait=False))
    assert out.ok and out.changed and out.msg == "Application web deployment queued."
    assert [r["path"] for r in coolify.requests].count(
        f"/api/v1/deployments/{out.data['deployments'][0]['uuid']}"
    ) == 0
