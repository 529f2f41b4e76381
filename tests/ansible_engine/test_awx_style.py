"""The compiled runbook run the way an AWX job runs it: ansible-runner with a private data dir, the
inventory as an executable script, the collection installed from the built artefact, the audit
callback on; the end state equals `runbook exec`'s and the trail verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.ansible_collection import collection_dir
from runbook.audit.keys import generate_key
from runbook.cli.main import cli
from tests.ansible_engine.test_compile import RUNBOOK, _fresh, _tree

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

INVENTORY_SCRIPT = """\
#!{python}
import json, sys
if "--host" in sys.argv:
    print("{{}}")
else:
    print(json.dumps({{"all": {{"hosts": ["localhost"]}},
                      "_meta": {{"hostvars": {{"localhost": {{"ansible_connection": "local",
                                                          "ansible_python_interpreter": "{python}"}}}}}}}}))
"""


def test_ansible_runner_job_with_script_inventory_and_artefact(tmp_path: Path, monkeypatch, ansible) -> None:
    ansible_runner = pytest.importorskip("ansible_runner", reason="ansible-runner not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "small-deploy.yml").write_text(RUNBOOK)
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")

    pdd = tmp_path / "job"
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "env").mkdir()
    res = CliRunner().invoke(cli, ["compile", "small-deploy", "-o", str(pdd / "project" / "deploy.yml")])
    assert res.exit_code == 0, res.output
    script = pdd / "inventory" / "hosts.py"
    script.write_text(INVENTORY_SCRIPT.format(python=sys.executable))
    script.chmod(0o755)

    env = ansible().env
    build = tmp_path / "build"
    subprocess.run(
        ["ansible-galaxy", "collection", "build", str(collection_dir()), "--output-path", str(build)],
        check=True, capture_output=True, env=env, timeout=300,
    )  # fmt: skip
    (artefact,) = build.glob("*.tar.gz")
    collections = pdd / "project" / "collections"
    subprocess.run(
        ["ansible-galaxy", "collection", "install", str(artefact), "-p", str(collections)],
        check=True, capture_output=True, env={**env, "ANSIBLE_COLLECTIONS_PATH": str(collections)}, timeout=300,
    )  # fmt: skip

    key = tmp_path / "audit_key"
    generate_key(key, "awx@job")
    audit = tmp_path / "audit"
    native = _fresh(tmp_path / "native")
    assert (
        CliRunner().invoke(cli, ["exec", "small-deploy", "-i", "inv", "-e", f"target={native}"]).exit_code
        == 0
    )

    def job(target: Path, **extra: str):
        envvars = {
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_CALLBACKS_ENABLED": "runbook.core.audit",
            "RUNBOOK_AUDIT_DIR": str(audit),
            "RUNBOOK_AUDIT_KEY": str(key),
            "PYTHONPATH": str(ROOT),
            "ANSIBLE_HOME": env["ANSIBLE_HOME"],
            "ANSIBLE_LOCAL_TEMP": env["ANSIBLE_LOCAL_TEMP"],
        }
        (pdd / "env" / "envvars").write_text(json.dumps(envvars))
        return ansible_runner.run(
            private_data_dir=str(pdd),
            playbook="deploy.yml",
            extravars={"target": str(target), **extra},
            quiet=True,
            # without a cancel callback ansible_runner.run() installs SIGINT/SIGTERM handlers of its
            # own in the main thread and never restores them (AWX runs it in a process of its own):
            # here, in pytest's process, that would swallow every later test's Ctrl-C
            cancel_callback=lambda: False,
        )

    remote = _fresh(tmp_path / "job-ok")
    r = job(remote)
    assert (r.status, r.rc) == ("successful", 0)
    assert _tree(remote) == _tree(native)
    events = [e for e in r.events if e.get("event") == "runner_on_ok"]
    assert any(e["event_data"]["task_action"] == "runbook.core.step" for e in events)

    failed = _fresh(tmp_path / "job-fail")
    r = job(failed, fail_at="verify")
    assert (r.status, r.rc) == ("failed", 2)
    assert set(_tree(failed)) == {"always.log", "keep.txt"} and _tree(failed)["keep.txt"] == ("old\n", 0o600)

    res = CliRunner().invoke(
        cli, ["audit", "verify", str(audit), "--allowed-signers", f"{key}.pub", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert [run["outcome"] for run in json.loads(res.output)["runs"]] == ["success", "failed"]
    assert os.listdir(pdd / "artifacts")  # the job's artifacts, as AWX keeps them
