"""deploy-4gb killed mid-deploy, on real dockerd, PostgreSQL and Redis: nothing is lost.

Each test starts from the v1 baseline, starts a v2 deploy in the background and stops it at a point
it detects from the run's own audit file (never by sleeping): right after the migrations, when
`Deploy the stack` (compose.up) starts, or inside a migration held on a PostgreSQL advisory lock.

- SIGKILL: the run's saved state is enough for `runbook rollback deploy-4gb --run ID --yes` to bring
  v1 back healthy with the schema, rows, compose file, .env and images as before; `runbook audit
  verify` reports the killed run as truncated after its last record, while the rollback run that
  follows still verifies and chains to it.
- SIGTERM with --yes: the run rolls back by itself, exits 130 and seals its audit run.
- --resume after a SIGKILL finishes v2 (README: "a crashed run can still be rolled back or resumed").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook.audit.keys import generate_key
from runbook.audit.records import digest_text
from runbook.execute.lock import lock_dir
from tests.deploy.conftest import REPO
from tests.deploy.helpers import (
    V2_MIGRATIONS,
    Deploy,
    ensure_baseline,
    health,
    make_deploy,
    migrations_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]

MIGRATE, UP = "Migrate the database", "Deploy the stack"
GATE_KEY = 7_004_004  # the advisory lock a gated migration waits on while the test holds it


@pytest.fixture(scope="module")
def deploy(dockerd, postgres_server, redis_server, tmp_path_factory) -> Deploy:
    root = tmp_path_factory.mktemp("deploycrash")
    key = root / "keys" / "audit_ed25519"
    signer = generate_key(key, "deployer@crash-test")
    (root / "allowed_signers").write_text(f"deployer@crash-test {signer.public_line}\n")
    d = make_deploy(root, postgres_server, redis_server, cli_args=["--audit-key", str(key)])
    yield d
    d.down()


@pytest.fixture
def baseline(deploy: Deploy) -> dict[str, Any]:
    return ensure_baseline(deploy)


def v2(deploy: Deploy, files: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "app_version": "v2",
        "migrations_dir": migrations_dir(deploy.root, "m-v2", files or V2_MIGRATIONS),
    }


class Background:
    """`runbook exec deploy-4gb` (as Deploy.cli runs it) in the background, watched through the
    records of its audit run file as they are written."""

    def __init__(self, deploy: Deploy, overrides: dict[str, Any], *extra: str):
        self.deploy = deploy
        self.audit_dir = deploy.root / "audit"
        self.before = set(self.audit_dir.glob("*.jsonl"))
        (deploy.root / "vars.json").write_text(json.dumps(deploy.vars))
        argv = [sys.executable, "-m", "runbook.cli.main", "exec", "deploy-4gb", "-i", str(deploy.inventory),
                "-e", f"@{deploy.root / 'vars.json'}", "-e", json.dumps(overrides), *extra, *deploy.cli_args,
                "--output", "json", "--audit-dir", str(self.audit_dir), "--yes"]  # fmt: skip
        env = {**os.environ, "RUNBOOK_PATH": str(REPO / "playbooks"), "PYTHONPATH": str(REPO)}
        self.out, self.err = deploy.root / "bg.stdout", deploy.root / "bg.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(argv, cwd=deploy.root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)  # fmt: skip
        self.path: Path | None = None

    def records(self) -> list[dict[str, Any]]:
        """The run's complete records so far (a line still being written is left for the next look)."""
        if self.path is None:
            new = sorted(set(self.audit_dir.glob("*.jsonl")) - self.before)
            if not new:
                return []
            self.path = new[0]
        data = self.path.read_bytes()
        return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]

    @property
    def run_id(self) -> str:
        return self.records()[0]["run_id"]

    def wait_for(self, what: str, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll the audit file until a record matches; fails if the run ends first."""
        for _ in range(60_000):  # a safety net of ~5 min, not a timing assumption
            match = next((r for r in self.records() if found(r)), None)
            if match is not None:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the run ended (rc {self.proc.returncode}) before {what}:\n{self.output()}"
                )
            time.sleep(0.005)
        self.proc.kill()
        raise AssertionError(f"never saw {what}")

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"runbook did not stop after signal {sig}:\n{self.output()}") from None

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def state(self) -> dict[str, Any]:
        return json.loads((self.deploy.root / ".runbook" / "runs" / self.run_id / "state.json").read_text())


def applied(deploy: Deploy) -> list[str]:
    return [v for (v,) in deploy.sql("SELECT version FROM schema_migrations ORDER BY 1")]


def step_start(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["event"] == "step.start" and r.get("step") == name


def verify(deploy: Deploy) -> tuple[int, dict[str, Any], str]:
    res = subprocess.run(
        [sys.executable, "-m", "runbook.cli.main", "audit", "verify", str(deploy.root / "audit"),
         "--allowed-signers", str(deploy.root / "allowed_signers"), "--json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=deploy.root,
    )  # fmt: skip
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout), res.stderr


def run_report(report: dict[str, Any], run_id: str) -> dict[str, Any]:
    return next(r for r in report["runs"] if r["run_id"] == run_id)


def assert_killed_run_truncated_and_rollback_chains(deploy: Deploy, killed: str, last_seq: int) -> None:
    rc, report, _ = verify(deploy)
    assert rc == 1, report  # a truncated run is never silently accepted
    dead = run_report(report, killed)
    assert dead["problems"] == [f"run {killed} truncated after record {last_seq} (no final seal)"]
    back = run_report(report, f"{killed}-rollback")
    assert back["ok"] and back["final"] and back["signer"] == "deployer@crash-test", back
    assert back["prev_run_id"] == killed and back["first_prev"] == dead["final_hash"]
    assert back["outcome"] == "rolled_back"
    # the killed run is the only thing wrong with the directory: no chain problem, nothing corrupt
    assert [p for p in report["problems"] if killed in p] == dead["problems"], report["problems"]


def assert_v1_back(deploy: Deploy, baseline: dict[str, Any]) -> None:
    assert health(deploy.port) == baseline["health"]
    assert deploy.state() == baseline


def lock_holder(deploy: Deploy) -> str | None:
    """The run holding deploy-4gb's lock on the host (None: not held)."""
    details = Path(lock_dir("deploy-4gb", deploy.host)) / "details.json"
    return json.loads(details.read_text())["run_id"] if details.exists() else None


# ------------------------------------------------------------------------------------ SIGKILL


def test_sigkill_as_compose_up_starts_then_rollback_restores_v1(deploy: Deploy, baseline: dict) -> None:
    run = Background(deploy, v2(deploy))
    run.wait_for(f"step.start of '{UP}'", step_start(UP))
    assert run.signal(signal.SIGKILL) == -signal.SIGKILL
    records = run.records()
    migrated = next(r for r in records if r["event"] == "step.end" and r.get("step") == MIGRATE)
    assert migrated["outcome"] == "changed"
    assert applied(deploy) == ["001", "002", "003"]
    saved = {e["name"]: e for e in run.state()["hosts"][deploy.host]["entries"]}
    assert saved[MIGRATE]["snapshots"] and saved["Render the compose file"]["snapshots"]

    rc, back = deploy.cli("rollback", "--run", run.run_id)
    assert rc == 0, back["message"]
    assert back["status"] == "rolled_back" and back["hosts"][deploy.host]["rollback"] == "ok"
    assert_v1_back(deploy, baseline)
    assert_killed_run_truncated_and_rollback_chains(deploy, run.run_id, records[-1]["seq"])
    # the killed run could not release its deploy lock; its holder is dead, so the rollback (which
    # takes the lock as a deploy does) broke it, and released its own at the end
    notes = [r["data"]["line_sha256"] for r in deploy.audit(back) if r["event"] == "step.output"]
    assert digest_text(f"broke a stale lock held by run {run.run_id}") in notes
    assert lock_holder(deploy) is None
    rc, again = deploy.cli("exec")
    assert rc == 0, again["message"]
    assert lock_holder(deploy) is None
    assert deploy.state() == baseline


def test_sigkill_while_compose_up_replaces_containers_then_rollback_restores_v1(
    deploy: Deploy, baseline: dict
) -> None:
    run = Background(deploy, v2(deploy))
    run.wait_for(
        "compose.up's snapshot (taken before `docker compose up`)",
        lambda r: r["event"] == "snapshot" and r.get("step") == UP,
    )
    assert run.signal(signal.SIGKILL) == -signal.SIGKILL
    records = run.records()
    saved = {e["name"]: e for e in run.state()["hosts"][deploy.host]["entries"]}
    assert saved[UP]["snapshots"][0]["previous_release"], "the release to go back to was not saved first"
    # A `docker compose up` the killed run had started runs on in its own session (nothing kills it):
    # let it finish, as an operator would have to today, so that the rollback does not race it.
    _wait_for_orphans(str(deploy.app_dir / "docker-compose-4gb.yml"))
    rc, back = deploy.cli("rollback", "--run", run.run_id)
    assert rc == 0, back["message"]
    assert_v1_back(deploy, baseline)
    assert_killed_run_truncated_and_rollback_chains(deploy, run.run_id, records[-1]["seq"])


def _wait_for_orphans(compose_file: str) -> None:
    """Until no process left by a killed run still runs `docker compose -f FILE up`."""
    for _ in range(60_000):
        running = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if compose_file.encode() in argv and b"up" in argv:
                running.append(proc.name)
        if not running:
            return
        time.sleep(0.01)
    raise AssertionError(f"docker compose up left by the killed run never ended: pids {running}")


def test_sigkill_inside_a_migration_then_rollback_restores_v1(deploy: Deploy, baseline: dict) -> None:
    gated = {**V2_MIGRATIONS, "004_gated.sql": f"SELECT pg_advisory_xact_lock({GATE_KEY});\n"
                                               "ALTER TABLE messages ADD COLUMN gated int;\n"}  # fmt: skip
    with psycopg.connect(deploy.dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        run = Background(deploy, v2(deploy, gated))
        run.wait_for("the migrate step", step_start(MIGRATE))
        waiting = _wait_for_backend(deploy, f"pg_advisory_xact_lock({GATE_KEY})", run)
        assert run.signal(signal.SIGKILL) == -signal.SIGKILL
        # 003 committed in its own transaction; 004 is still open on a backend whose client is gone
        assert applied(deploy) == ["001", "002", "003"]
        gate.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
    _wait_until_gone(deploy, waiting)
    records = run.records()
    assert not any(r["event"] == "step.end" and r.get("step") == MIGRATE for r in records)
    rc, back = deploy.cli("rollback", "--run", run.run_id)
    assert rc == 0, back["message"]
    assert_v1_back(deploy, baseline)
    assert_killed_run_truncated_and_rollback_chains(deploy, run.run_id, records[-1]["seq"])


def _wait_for_backend(deploy: Deploy, query: str, run: Background) -> int:
    for _ in range(60_000):
        rows = deploy.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            f"AND query LIKE '%{query}%' AND pid <> pg_backend_pid()"
        )
        if rows:
            return int(rows[0][0])
        if run.proc.poll() is not None:
            raise AssertionError(f"the run ended before its migration blocked:\n{run.output()}")
        time.sleep(0.005)
    raise AssertionError("the gated migration never blocked")


def _wait_until_gone(deploy: Deploy, pid: int) -> None:
    for _ in range(60_000):
        if not deploy.sql(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"):
            return
        time.sleep(0.005)
    raise AssertionError(f"backend {pid} of the killed run never ended")


# ------------------------------------------------------------------------------------ SIGTERM


def test_sigterm_as_compose_up_starts_rolls_back_by_itself_and_exits_130(
    deploy: Deploy, baseline: dict
) -> None:
    run = Background(deploy, v2(deploy))
    run.wait_for(f"step.start of '{UP}'", step_start(UP))
    assert run.signal(signal.SIGTERM) == 130, run.output()
    assert "Traceback" not in run.output()
    doc = json.loads(run.out.read_text())
    assert doc["status"] == "interrupted" and doc["message"] == "interrupted; rolled back localhost"
    assert_v1_back(deploy, baseline)
    assert lock_holder(deploy) is None
    _, report, _ = verify(deploy)
    mine = run_report(report, run.run_id)
    assert mine["ok"] and mine["final"] and mine["outcome"] == "interrupted", mine
    assert not [p for p in report["problems"] if run.run_id in p], report["problems"]
    events = [r["event"] for r in run.records()]
    assert "rollback.start" in events and "rollback.end" in events and events[-1] == "seal"


# ------------------------------------------------------------------------------------ --resume


def test_resume_after_sigkill_completes_v2_and_can_then_be_rolled_back(
    deploy: Deploy, baseline: dict
) -> None:
    overrides = v2(deploy)
    run = Background(deploy, overrides)
    run.wait_for(f"step.start of '{UP}'", step_start(UP))
    assert run.signal(signal.SIGKILL) == -signal.SIGKILL
    killed = run.run_id

    rc, doc = deploy.cli("exec", "--resume", killed, overrides=overrides)
    assert rc == 0, doc["message"]
    assert health(deploy.port)["version"] == "v2"
    assert applied(deploy) == ["001", "002", "003"]
    ran = [s["name"] for s in doc["hosts"][deploy.host]["steps"] if s["phase"] == "steps"]
    assert "Back up the database" not in ran and UP in ran

    # the id the resumed run printed is the one an operator rolls back
    assert doc["run_id"] == f"{killed}-resume"
    rc, back = deploy.cli("rollback", "--run", doc["run_id"])
    assert rc == 0, back["message"]
    assert_v1_back(deploy, baseline)
