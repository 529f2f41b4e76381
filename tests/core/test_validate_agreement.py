"""Issue 13: validate tells the truth. For every shipped runbook and a corpus of varied runbooks
(tests/fixtures/agreement: set_fact, register, loops, nested vars, filters, when chains, fallback,
run.* magic variables, and a few that are really broken), validate's verdict agrees with what
really happens, and its output is the same on every invocation (three processes, three hash seeds).

A corpus runbook really runs on this machine (`runbook exec`, its audit read back): it is broken
when a step fails because a template cannot be rendered (the audit's step.end error "render").
A shipped runbook is planned (`runbook plan`: it needs services this machine may not run): it is
broken when the plan stops with exit 2. The agreement figure is printed (pytest -s)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.core.conftest import REPO

CORPUS = REPO / "tests" / "fixtures" / "agreement"
SHIPPED = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))


def _runbook(args: list[str], cwd: Path, seed: str = "0", **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed, "NO_COLOR": "1", "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "runbook", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _validate_thrice(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    runs = [_runbook(["validate", *args], cwd, seed=seed) for seed in ("0", "1", "2")]
    for r in runs[1:]:
        assert (r.returncode, r.stdout, r.stderr) == (runs[0].returncode, runs[0].stdout, runs[0].stderr), (
            "validate's output changed between invocations"
        )
    return runs[0]


def _broken_in_validate(output: str, path: Path) -> bool:
    return any(line.startswith(f"error: {path}") for line in output.splitlines())


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.split(": ", 1)[1].strip()


def _broken_in_run(name: str, cwd: Path) -> bool:
    audit = cwd / f"audit-{name}"
    res = _runbook(["exec", name, "-i", "inv", "-e", f"scratch={cwd / 'scratch' / name}", "--audit-dir",
                    str(audit), "--output", "json"], cwd, RUNBOOK_AUDIT="1")  # fmt: skip
    assert res.returncode in (0, 1, 2), res.stdout + res.stderr
    records = [json.loads(line) for f in audit.glob("*.jsonl") for line in f.read_text().splitlines() if line]
    ends = [r for r in records if r.get("event") == "step.end"]
    assert ends, (name, res.stdout, res.stderr)
    return res.returncode == 2 or any((r.get("data") or {}).get("error") == "render" for r in ends)


def test_validate_agrees_with_real_runs_on_a_varied_corpus(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    # several hosts: the same problem on each is reported once, whatever the order they are checked in
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n[more]\nh2 ansible_connection=local\nh3 ansible_connection=local\n")
    files = sorted(CORPUS.glob("*.yml"))
    assert len(files) >= 30
    for f in files:
        shutil.copy(f, tmp_path / "playbooks" / f.name)
    out = _validate_thrice(["-i", "inv", "-e", f"scratch={tmp_path / 'scratch'}"], tmp_path)
    agree, disagree = 0, []
    for f in files:
        said = _broken_in_validate(out.stdout + out.stderr, tmp_path / "playbooks" / f.name)
        really = _broken_in_run(f.stem, tmp_path)
        assert said == (_expected(f) == "invalid") or really != (_expected(f) == "invalid"), f.stem
        if said == really:
            agree += 1
        else:
            disagree.append((f.stem, "validate: " + ("broken" if said else "ok"), "run: " + ("broken" if really else "ok")))
    print(f"\nvalidate/run agreement on the corpus: {agree}/{len(files)}")
    assert not disagree, disagree


def test_every_shipped_runbook_validates_and_plans_with_the_local_inventory(tmp_path: Path) -> None:
    out = _validate_thrice(["-i", str(REPO / "inventories" / "local")], REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    agree = 0
    for name in SHIPPED:
        said = _broken_in_validate(out.stdout + out.stderr, REPO / "playbooks" / f"{name}.yml")
        plan = _runbook(["plan", name, "-i", str(REPO / "inventories" / "local"), "--output", "json"], tmp_path,
                        RUNBOOK_PATH=str(REPO / "playbooks"))  # fmt: skip
        assert plan.returncode in (0, 3), (name, plan.stdout[-2000:], plan.stderr[-2000:])  # 3: a service is not up
        agree += said == (plan.returncode == 2)
    print(f"\nvalidate/plan agreement on the shipped runbooks: {agree}/{len(SHIPPED)}")
    assert agree == len(SHIPPED)


def test_the_coolify_demo_falls_back_to_ssh_when_no_coolify_answers(tmp_path: Path) -> None:
    res = _runbook(["plan", "coolify-deploy", "-i", str(REPO / "inventories" / "local"), "-e",
                    "coolify_url=http://127.0.0.1:9"], tmp_path, RUNBOOK_PATH=str(REPO / "playbooks"))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Coolify did not answer" in res.stdout
    assert "Fallback: docker compose up over SSH" in res.stdout and "recovered by fallback" in res.stdout


def test_the_coolify_demo_takes_the_coolify_path_when_a_coolify_answers(tmp_path: Path) -> None:
    from tests.standins.coolify import CoolifyStandIn

    with CoolifyStandIn(token="local-demo|token") as coolify:  # the local inventory's token and app
        coolify.add_app("local-demo-app", "runbook-demo", commit="1111111aaaa")
        res = _runbook(["plan", "coolify-deploy", "-i", str(REPO / "inventories" / "local"), "-e",
                        f"coolify_url={coolify.url}"], tmp_path, RUNBOOK_PATH=str(REPO / "playbooks"))  # fmt: skip
        sent = [r for r in coolify.requests if r["method"] != "GET"]
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    status = next(i for i, line in enumerate(lines) if "Coolify answers, the token is valid" in line and "start" not in line)
    assert " ok " in lines[status], lines[status]  # the pre-flight reached the stand-in
    assert "Coolify did not answer" not in res.stdout
    assert "local-demo|token" not in res.stdout  # the token is never shown
    assert sent == [] and "would send" in res.stdout  # a plan starts no deployment
