"""deploy-4gb killed (SIGKILL, by the runbook process itself at a named point) at every step boundary
and inside every mutating step, then `runbook rollback --run ID` or `exec --resume ID`, on the
session's real dockerd, PostgreSQL and Redis: the host must be left exactly as it was before the
killed run (rollback) or as a run that was never killed leaves it (resume): the containers' image IDs,
the compose file's and .env's digests and modes, the applied migrations, schema, indexes and rows, the
health answer, and a free deploy lock.

Points come from the runbook (its steps, which of them are mutating) and a traced run of the same
deploy (runbook/execute/faultpoints.py): one test per step and recovery, trying that step's boundary or
every point inside it.

What runs (docs/fault-matrix.md): locally (the main job), every point with `rollback`; `--resume` at
every boundary and, inside each mutating step, right after each change it makes
(RUNBOOK_FAULT_MATRIX=full: `--resume` at every point too). Over SSH (the same points on another
transport), the boundaries before the migration and after the last step, and inside `Deploy the
stack` the CI sample (harness.sample): its snapshot, each kind of change it makes and its end, one of
each, the choice rotating daily (RUNBOOK_FAULT_MATRIX_ROTATION=N pins it; full: every point of every
step there too, both recoveries).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import (
    FULL,
    Matrix,
    boundary_cases,
    cases,
    inside_points,
    sample,
    steps_of,
    try_all,
)
from tests.faults.subjects import Deploy4gb

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]

STEPS = steps_of("deploy-4gb")
BOUNDARIES = [name for name, _, _ in STEPS] + ["(after the last step)"]
MUTATING = [name for name, _, mutating in STEPS if mutating]
KNOWN: dict[tuple[str, str], str] = {}  # (step, recovery) -> why it fails today
KNOWN_INSIDE: dict[tuple[str, str], str] = {}  # resumed after compose up: holds (issue 8 item 4)


@pytest.fixture(scope="module")
def local(dockerd, postgres_server, redis_server, tmp_path_factory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("fault4gb")
    target = Deploy4gb(
        root, postgres_server, redis_server, "matrix-local", "matrix-local ansible_connection=local"
    )
    yield Matrix(target, lambda st: st["health"]["version"] == "v2")
    target.down()


def test_the_points_cover_every_step_of_the_runbook(local: Matrix) -> None:
    """Every step had its boundary traced, every mutating step a snapshot or change inside it."""
    assert [k.step for k in local.points if k.where == "boundary"] == BOUNDARIES
    assert {k.step for k in local.points if k.where == "inside"} == set(MUTATING)


@pytest.mark.parametrize(("step", "recovery"), boundary_cases(BOUNDARIES, KNOWN))
def test_kill_at_the_boundary_before(local: Matrix, step: str, recovery: str) -> None:
    (kp,) = local.boundary(step)
    local.run(kp, recovery)


@pytest.mark.parametrize(("step", "recovery"), cases(MUTATING, ["rollback", "resume"], KNOWN_INSIDE))
def test_kill_inside(local: Matrix, step: str, recovery: str) -> None:
    try_all(local, sample(local.subject.runbook, inside_points(local, step, recovery, FULL)), recovery)


# ------------------------------------------------------------------------------------ over SSH

SSH_BOUNDARIES = BOUNDARIES if FULL else ["Migrate the database", "(after the last step)"]
SSH_INSIDE = MUTATING if FULL else ["Deploy the stack"]


@pytest.fixture(scope="module")
def over_ssh(dockerd, postgres_server, redis_server, ssh_lab, tmp_path_factory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("fault4gb-ssh")
    h = ssh_lab.hosts[0]
    line = (f"matrix-ssh ansible_host={h.address} ansible_port={h.port} ansible_user=root "
            f"ansible_ssh_private_key_file={ssh_lab.key}")  # fmt: skip
    target = Deploy4gb(root, postgres_server, redis_server, "matrix-ssh", line,
                       cli_args=["--known-hosts", str(ssh_lab.known_hosts)],
                       extra_vars={"docker_host": dockerd.host})  # fmt: skip
    yield Matrix(target, lambda st: st["health"]["version"] == "v2", transport="ssh")
    target.down()


@pytest.mark.ssh
@pytest.mark.parametrize(("step", "recovery"), boundary_cases(SSH_BOUNDARIES, KNOWN))
def test_over_ssh_kill_at_the_boundary_before(over_ssh: Matrix, step: str, recovery: str) -> None:
    (kp,) = over_ssh.boundary(step)
    over_ssh.run(kp, recovery)


@pytest.mark.ssh
@pytest.mark.parametrize(("step", "recovery"), cases(SSH_INSIDE, ["rollback", "resume"], KNOWN_INSIDE))
def test_over_ssh_kill_inside(over_ssh: Matrix, step: str, recovery: str) -> None:
    """Over SSH the points are those of the local matrix on another transport: the CI matrix takes
    a sample of them (harness.sample: every kind of point and of step, rotating; full: all)."""
    kps = inside_points(over_ssh, step, recovery, FULL)
    try_all(over_ssh, sample(over_ssh.subject.runbook, kps), recovery)
