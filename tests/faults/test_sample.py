"""The CI matrix's sample of the points inside a step (tests/faults/harness.py ``sample``): what it
keeps of a step's traced points, by the runbook's model; RUNBOOK_FAULT_MATRIX=full keeps them all."""

from __future__ import annotations

from tests.faults import harness
from tests.faults.harness import KillPoint, point_kind, point_module, sample

# the points traced inside coolify-deploy's Coolify step: its API call, then its fallback steps
COOLIFY = [
    "steps|snapshot|Deploy through Coolify|1",
    "steps|action.Client|Deploy through Coolify|1",
    "steps|snapshot|Fallback: render the app environment|1",
    "steps|action.WriteFile|Fallback: render the app environment|1",
    "steps|step.end|Fallback: render the app environment|1",
    "steps|snapshot|Fallback: render the compose file|1",
    "steps|action.WriteFile|Fallback: render the compose file|1",
    "steps|step.end|Fallback: render the compose file|1",
    "steps|snapshot|Fallback: docker compose up over SSH|1",
    "steps|action.Run|Fallback: docker compose up over SSH|1",
    "steps|action.Run|Fallback: docker compose up over SSH|2",
    "steps|step.end|Fallback: docker compose up over SSH|1",
    "steps|step.end|Fallback: health check|1",
    "steps|step.end|Deploy through Coolify|1",
]
# canary-rollout's deploy, on the canary (N=1) and on the second batch's host (N=2)
CANARY = [
    f"steps|{kind}|Deploy the release|{n}" for n in (1, 2) for kind in ("snapshot", "action.Run", "step.end")
]


def points(names: list[str], step: str) -> list[KillPoint]:
    return [KillPoint(p, "inside", step, True) for p in names]


def test_every_kind_of_point_and_of_step_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(harness, "FULL", False)
    kps = points(COOLIFY, "Deploy through Coolify")
    for turn in range(6):
        kept = sample("coolify-deploy", kps, turn)
        assert {point_kind(k) for k in kept} == {point_kind(k) for k in kps}
        assert {point_module("coolify-deploy", k) for k in kept} == {
            "coolify.deploy", "template", "compose.up", "http.get"
        }  # fmt: skip
        assert kept == [k for k in kps if k in kept]  # in the traced order
        assert len(kept) <= len(kps) / 2


def test_every_pass_is_kept_the_canary_and_the_second_batch(monkeypatch) -> None:
    monkeypatch.setattr(harness, "FULL", False)
    kps = points(CANARY, "Deploy the release")
    for turn in range(4):
        kept = sample("canary-rollout", kps, turn)
        assert {k.point.rsplit("|", 1)[1] for k in kept} == {"1", "2"}
        assert {point_kind(k) for k in kept} == {"snapshot", "action.Run", "step.end"}


def test_the_choice_is_the_same_for_a_turn_and_rotates_through_every_point(monkeypatch) -> None:
    monkeypatch.setattr(harness, "FULL", False)
    kps = points(COOLIFY, "Deploy through Coolify")
    assert sample("coolify-deploy", kps, 3) == sample("coolify-deploy", kps, 3)
    seen = {k for turn in range(12) for k in sample("coolify-deploy", kps, turn)}
    assert seen == set(kps)


def test_the_full_matrix_keeps_every_point(monkeypatch) -> None:
    monkeypatch.setattr(harness, "FULL", True)
    kps = points(COOLIFY, "Deploy through Coolify")
    assert sample("coolify-deploy", kps, 0) == kps


def test_the_rotation_is_the_day_unless_set(monkeypatch) -> None:
    monkeypatch.setenv(harness.ROTATION_ENV, "17")
    assert harness.rotation() == 17
    monkeypatch.delenv(harness.ROTATION_ENV)
    monkeypatch.setattr(harness.time, "time", lambda: 86400 * 20_000 + 5)
    assert harness.rotation() == 20_000


def _pairs(params: list) -> list[tuple[str, str]]:
    return [tuple(p.values) for p in params]


def test_ci_tries_every_boundary_once_both_recoveries_on_the_runbook_and_all_pairs_in_two_days(
    monkeypatch,
) -> None:
    monkeypatch.setattr(harness, "FULL", False)
    steps = ["Back up", "Migrate", "Deploy", "(after the last step)"]
    days = []
    for day in (20000, 20001):
        monkeypatch.setattr(harness, "ROTATION", day)
        pairs = _pairs(harness.boundary_cases(steps, {}))
        assert [s for s, _ in pairs] == steps  # every boundary, once, in the runbook's order
        assert {r for _, r in pairs} == {"rollback", "resume"}
        days.append(set(pairs))
    assert days[0] | days[1] == {(s, r) for s in steps for r in ("rollback", "resume")}


def test_the_full_matrix_tries_every_boundary_with_both_and_keeps_known_failures_marked(monkeypatch) -> None:
    monkeypatch.setattr(harness, "FULL", True)
    params = harness.boundary_cases(["Deploy", "(after the last step)"], {("Deploy", "resume"): "issue 8"})
    assert _pairs(params) == [("Deploy", "rollback"), ("Deploy", "resume"),
                              ("(after the last step)", "rollback"), ("(after the last step)", "resume")]  # fmt: skip
    assert [m.name for m in params[1].marks] == ["xfail"]
