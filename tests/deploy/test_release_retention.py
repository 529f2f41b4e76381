"""Compose release records: retention never drops the live release or one a rollback could still need,
and a rollback is "rolled back" only once the project runs the snapshot's images again (checked by
image ID). The retention rule itself is pure (runbook.facts.releases); the rest runs the real
CLI against the session's dockerd with the small demo images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from runbook.cli.main import cli
from runbook.execute import pins
from runbook.facts import releases as retention
from tests.fixtures.redis import free_port

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ the rule (fast)


def rel(name: str, t: float, *, undone: bool = False, complete: bool = True) -> retention.Release:
    return retention.Release(name, t, complete, undone)


def test_the_listing_is_parsed_into_releases() -> None:
    text = (
        "1\td\t100.5\tgood\n2\tf\t101.0\tgood/manifest.json\n1\tf\t300.0\tcurrent\n"
        "1\td\t200.0\tbad\n2\tf\t201.0\tbad/manifest.json\n2\tf\t250.0\tbad/undone\n"
        "1\td\t400.0\tpartial\n2\tf\t400.0\tpartial/compose.yml\n"
    )
    found = {r.name: r for r in retention.parse_listing(text)}
    assert found == {
        "good": rel("good", 101.0),
        "bad": rel("bad", 201.0, undone=True),
        "partial": rel("partial", 400.0, complete=False),
    }


def test_seven_failed_attempts_never_prune_the_good_release() -> None:
    """The reported failure: one good deploy, then failed attempts that each record a release and roll
    back. With keep 5 the fifth used to prune the good one (its rollback then exited 4)."""
    found = [rel("good", 0)]
    for n in range(1, 11):
        new = f"bad{n}"
        found.append(rel(new, n))
        keep = retention.protected(found, new, previous="good")
        doomed = retention.to_prune(found, keep, keep=5)
        assert "good" not in doomed and new not in doomed
        found = [r for r in found if r.name not in doomed]
        found = [rel(r.name, r.time, undone=r.name == new or r.undone) for r in found]  # rolled back
        assert len(found) <= 6  # the window of 5, and the good one outside it
    assert {r.name for r in found} == {"good", "bad6", "bad7", "bad8", "bad9", "bad10"}


def test_protected_are_the_new_the_previous_the_last_good_and_the_pinned() -> None:
    found = [rel("r0", 0), rel("r1", 1), rel("r2", 2, undone=True), rel("r3", 3), rel("r4", 4)]
    keep = retention.protected(found, "r4", previous="r2", pinned={"r0"})
    assert keep == {"r4", "r2", "r3", "r0"}  # r3: the newest no rollback undid
    assert retention.to_prune(found, keep, keep=2) == ["r1"]
    assert retention.last_successful([rel("a", 5, undone=True), rel("b", 1, complete=False)]) is None
    # the release the last successful one replaced: a later rollback of that run needs it
    assert "r1" in retention.protected(found, "r4", previous="r3", good_previous="r1")


def test_unfinished_runs_pin_the_releases_their_rollback_needs(tmp_path: Path) -> None:
    def state(run: str, status: str, entry_status: str, prev: str) -> None:
        d = tmp_path / "runs" / run
        d.mkdir(parents=True)
        entry = {"module": "compose.up", "status": entry_status, "snapshots": [{"previous_release": prev}]}
        doc = {"run_id": run, "hosts": {"h": {"status": status, "entries": [entry]}}}
        (d / "state.json").write_text(json.dumps(doc))

    state("killed", "pending", "changed", "p-killed")
    state("failed", "rollback_failed", "rollback_failed", "p-failed")
    state("ok", "ok", "changed", "p-ok")
    state("undone", "rolled_back", "rolled_back", "p-undone")
    state("half", "failed", "rolled_back", "p-half")  # its compose change is already undone
    (tmp_path / "runs" / "junk").mkdir()
    (tmp_path / "runs" / "junk" / "state.json").write_text("{not json previous_release")
    assert pins.Pinned(tmp_path)() == {"p-killed", "p-failed"}


# ------------------------------------------------------------------------------ real docker (slow)

COMPOSE = """\
services:
  app:
    image: {{ image }}
    network_mode: host
    environment: {APP_PORT: "{{ port }}", APP_ROLE: sidecar}
    stop_grace_period: 1s
"""

RUNBOOK = """\
hosts: localhost
lock: app
steps:
  - name: Prepare
    shell: "true"
    undo: {shell: "{{ tamper }}"}
  - name: Compose file
    template: {src: compose.yml.j2, dest: "{{ dir }}/compose.yml"}
  - name: Up
    compose.up: {file: "{{ dir }}/compose.yml", project: "{{ project }}", timeout: 60}
  - name: Hold
    shell: "touch {{ (dir ~ '/holding') | quote }}; sleep {{ hold | int }}"
    undo: {none: "a wait"}
  - name: Smoke
    shell: "test {{ image | quote }} = {{ good | quote }}"
    changes: false
"""


class App:
    def __init__(self, root: Path, docker: Any, project: str):
        self.root = root
        self.dir = root / "app"
        self.dir.mkdir()
        (root / "playbooks").mkdir()
        (root / "templates").mkdir()
        # a lock of its own: /tmp/runbook-locks is shared with every other run on this machine
        (root / "playbooks" / "app.yml").write_text(RUNBOOK.replace("lock: app", f"lock: {project}"))
        (root / "templates" / "compose.yml.j2").write_text(COMPOSE)
        (root / "inv").write_text("localhost ansible_connection=local\n")
        self.docker = docker
        self.project = project
        self.port = free_port()

    def vars(self, image: str, good: str, tamper: str = "true", hold: int = 0) -> list[str]:
        values = {"dir": str(self.dir), "project": self.project, "port": self.port, "image": image,
                  "good": good, "tamper": tamper, "hold": hold}  # fmt: skip
        return ["-e", json.dumps(values)]

    def exec(self, *args: str) -> tuple[int, dict]:
        res = CliRunner().invoke(cli, ["exec", "app", "-i", "inv", "--yes", "--output", "json", *args])
        return res.exit_code, json.loads(res.stdout)

    def running_images(self) -> list[str]:
        ids = self.docker.docker(
            "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.project}"
        ).stdout.split()
        if not ids:
            return []
        return self.docker.docker("inspect", "--format", "{{.Image}}", *ids).stdout.split()

    def image_id(self, ref: str) -> str:
        return self.docker.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

    def releases(self) -> set[str]:
        store = self.dir / ".runbook-releases" / self.project
        return {p.name for p in store.iterdir() if p.is_dir()}

    def current(self) -> str:
        return (self.dir / ".runbook-releases" / self.project / "current").read_text().strip()


@pytest.fixture
def app(tmp_path: Path, dockerd, monkeypatch: pytest.MonkeyPatch, request) -> App:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    a = App(tmp_path, dockerd, f"ret{abs(hash(request.node.name)) % 10**6}")
    yield a
    dockerd.docker("compose", "-p", a.project, "-f", str(a.dir / "compose.yml"), "down", "-t", "1",
                   "--remove-orphans", check=False)  # fmt: skip


GOOD, BAD = "runbook-demo:v1", "runbook-demo:v2"


@pytest.mark.slow
@pytest.mark.docker
def test_ten_failed_attempts_in_a_row_then_a_killed_one_always_come_back_to_the_good_release(
    app: App,
) -> None:
    code, doc = app.exec(*app.vars(GOOD, GOOD))
    assert code == 0, doc["message"]
    first_run = doc["run_id"]  # the release the good one replaced: `runbook rollback` of it needs it
    code, doc = app.exec(*app.vars(GOOD, GOOD))
    assert code == 0, doc["message"]
    good_run, good_id = doc["run_id"], app.image_id(GOOD)
    assert app.running_images() == [good_id]
    for attempt in range(1, 11):
        code, doc = app.exec(*app.vars(BAD, GOOD))
        assert code == 1, f"attempt {attempt}: exit {code}: {doc['message']}"
        assert doc["status"] == "rolled_back", doc["message"]
        assert app.running_images() == [good_id], f"attempt {attempt}"
        assert app.current() == good_run
        undo = next(s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "undo: Up")
        assert f"release {good_run} restored and healthy" in undo["msg"]
        assert f"live again instead of {doc['run_id']}" in undo["msg"]
        assert f"checked: {app.project}: runs release {good_run}" in undo["msg"]
        kept = app.releases()
        assert {good_run, first_run} <= kept and len(kept) <= 7, (attempt, sorted(kept))  # pruned, not those
        if attempt in (7, 10):
            assert json.loads((app.dir / ".runbook-releases" / app.project / doc["run_id"] / "undone")
                              .read_text())["live_again"] == good_run  # fmt: skip
    # the good run itself can still be rolled back: the release it replaced was kept
    res = CliRunner().invoke(cli, ["rollback", "app", "--run", good_run, "--yes", "--output", "json"])
    assert res.exit_code == 0, res.output
    assert app.current() == first_run and app.running_images() == [good_id]
    # one more: a run killed after its compose.up (the bad image is live), then `runbook rollback`
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (app.dir / "holding").unlink()  # every attempt passed the Hold step (without holding)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook", "exec", "app", "-i", "inv", "--yes", *app.vars(BAD, GOOD, hold=120)],
        cwd=app.root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    for _ in range(2400):
        if (app.dir / "holding").exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert (app.dir / "holding").exists(), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert app.running_images() == [app.image_id(BAD)]
    killed = max(p.name for p in (app.root / ".runbook" / "runs").iterdir())
    # a new attempt meanwhile (the killed run's lock is stale): it rolls back to what ran before it,
    # the killed run's release, and its retention keeps the good one the killed run's rollback needs
    code, doc = app.exec(*app.vars(BAD, GOOD))
    assert code == 1, doc["message"]
    assert app.running_images() == [app.image_id(BAD)]
    assert first_run in app.releases()  # pinned by the killed run: its rollback needs it
    res = CliRunner().invoke(cli, ["rollback", "app", "--run", killed, "--yes", "--output", "json"])
    assert res.exit_code == 0, res.output
    assert app.running_images() == [good_id]
    assert app.current() == first_run


@pytest.mark.slow
@pytest.mark.docker
def test_an_image_retagged_after_the_undo_is_exit_4_naming_it(app: App) -> None:
    good_ref, bad_ref = f"{app.project}-app:good", f"{app.project}-app:bad"
    app.docker.docker("tag", GOOD, good_ref)
    app.docker.docker("tag", BAD, bad_ref)
    try:
        code, doc = app.exec(*app.vars(good_ref, good_ref))
        assert code == 0, doc["message"]
        tamper = f"docker tag {bad_ref} {good_ref}"  # an earlier step's undo: runs after compose.up's
        code, doc = app.exec(*app.vars(bad_ref, good_ref, tamper=tamper))
        assert code == 4, doc["message"]
        problems = doc["hosts"]["localhost"]["rollback_problems"]
        good_id, bad_id = app.image_id(GOOD), app.image_id(BAD)
        assert problems == [
            f"localhost: step 'Up' (compose.up) is not as before the run: {app.project}: image {good_ref}: "
            f"expected {good_id[:19]}, found {bad_id[:19]} (a later up would run it)"
        ]
        assert app.running_images() == [good_id]  # what runs is right; what would run next is not
        assert doc["status"] == "rollback_failed"
    finally:
        app.docker.docker("rmi", good_ref, bad_ref, check=False)


def test_the_runbook_in_this_file_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "playbooks" / "app.yml").write_text(RUNBOOK)
    (tmp_path / "templates" / "compose.yml.j2").write_text(textwrap.dedent(COMPOSE))
    res = CliRunner().invoke(cli, ["validate", "app", "-e", json.dumps(
        {"dir": "/x", "project": "p", "port": 1, "image": "i", "good": "i", "tamper": "true", "hold": 0})])  # fmt: skip
    # the only warning: the undo that runs a command given with -e, on purpose (the tamper hook)
    assert res.exit_code == 0 and res.output.count("warning") == 1 and "{{ tamper }}" in res.output, res.output


@pytest.mark.slow
@pytest.mark.docker
def test_two_ups_of_one_project_in_one_run_keep_two_records(app: App) -> None:
    """The second compose.up of a run must not overwrite the first one's record: undoing the second
    brings back the first, undoing the first what ran before the run."""
    from runbook.kinds import base as kinds
    from tests.deploy.conftest import Runner

    r = Runner(project_dir=app.root)
    ctx = r.ctx(run_id="R1")
    compose = app.dir / "compose.yml"
    args = {"file": str(compose), "project": app.project, "timeout": 60}
    snaps = []
    for image in (GOOD, BAD):
        compose.write_text(COMPOSE.replace("{{ image }}", image).replace("{{ port }}", str(app.port)))
        out = r.run("compose.up", args, ctx)
        assert out.ok, out.msg
        snaps.append(r.last.snapshots[0])
    assert [s["release"] for s in snaps] == ["R1", "R1.2"]
    assert snaps[1]["previous_release"] == "R1"
    assert app.releases() == {"R1", "R1.2"} and app.current() == "R1.2"
    kind = kinds.get("compose.up")
    out = r.undo("compose.up", args, snaps[1], ctx)
    assert out.ok and "release R1 restored and healthy (app); live again instead of R1.2" in out.msg, out.msg
    assert app.running_images() == [app.image_id(GOOD)]
    assert r.last.run(kind.verify_undo(args, snaps[1], ctx)).ok
    out = r.undo("compose.up", args, snaps[0], ctx)
    assert out.ok and "first release removed" in out.msg, out.msg
    assert app.running_images() == []
    check = r.last.run(kind.verify_undo(args, snaps[0], ctx))
    assert check.ok, check.msg
    assert not (app.dir / ".runbook-releases" / app.project / "current").exists()


@pytest.mark.slow
@pytest.mark.docker
def test_a_container_stopped_after_the_undo_is_exit_4_naming_the_service(app: App) -> None:
    code, doc = app.exec(*app.vars(GOOD, GOOD))
    assert code == 0, doc["message"]
    tamper = f"docker compose -p {app.project} -f {app.dir}/compose.yml stop -t 1"
    code, doc = app.exec(*app.vars(BAD, GOOD, tamper=tamper))
    assert code == 4, doc["message"]
    (problem,) = doc["hosts"]["localhost"]["rollback_problems"]
    good_id = app.image_id(GOOD)
    assert problem == (
        f"localhost: step 'Up' (compose.up) is not as before the run: {app.project}: service app: "
        f"expected a running container of {good_id[:19]}, found none"
    )
