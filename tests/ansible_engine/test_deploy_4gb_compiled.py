"""The compiled deploy-4gb (`runbook compile deploy-4gb`) run by plain ansible-playbook on the real
stack of tests/deploy (the session's dockerd, PostgreSQL 15 and Redis, the demo images): the same end
state as `runbook exec` for v1 and then v2, the same injected failures rolled back to the same state
(and each undo checked by runbook's verification), over the sshd fixture with host keys checked, and
as an AWX job (ansible-runner, private data dir, an executable inventory script, the collection
installed from its built artefact); every trail the audit callback wrote verifies.

The native and the compiled deploys each have their own database, app directory, port and compose
project (make_deploy); their states are compared with those names replaced by placeholders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from runbook.ansible_collection import collection_dir, collections_path
from runbook.audit.keys import generate_key
from runbook.cli.main import cli
from tests.deploy.helpers import (
    BROKEN,
    MIGRATIONS,
    V2_MIGRATIONS,
    Deploy,
    ensure_baseline,
    health,
    make_deploy,
    migrations_dir,
)
from tests.fixtures.dockerd import dockerd  # noqa: F401 - session fixture
from tests.fixtures.postgres import PG_BIN, postgres_server  # noqa: F401 - session fixture
from tests.fixtures.redis import redis_server  # noqa: F401 - session fixture

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
NAMES = ("app_name", "app_dir", "backup_dir", "app_port", "db_name")  # what differs between deploys


@dataclass
class Compiled:
    """deploy-4gb as a compiled playbook, run by ansible-playbook against one Deploy's settings."""

    deploy: Deploy
    playbook: Path
    env: dict[str, str]
    audit: Path

    def run(self, overrides: dict[str, Any] | None = None, *extra: str) -> subprocess.CompletedProcess:
        d = self.deploy
        (d.root / "vars.json").write_text(json.dumps(d.vars))
        argv = [
            "ansible-playbook",
            "-i",
            str(d.inventory),
            str(self.playbook),
            "-e",
            f"@{d.root / 'vars.json'}",
        ]
        argv += ["-e", json.dumps(overrides or {}), *extra]
        res = subprocess.run(argv, cwd=d.root, env=self.env, capture_output=True, text=True, timeout=600)
        d.outputs += [res.stdout, res.stderr]
        return res

    def records(self) -> list[dict[str, Any]]:
        newest = max(self.audit.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        return [json.loads(line) for line in newest.read_text().splitlines() if line.strip()]


def ansible_env(root: Path, audit: Path, key: Path, collections: Path | None = None) -> dict[str, str]:
    home = root / "ansible-home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # the plugins import runbook
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections or collections_path()),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_CALLBACKS_ENABLED": "runbook.core.audit",
        "RUNBOOK_AUDIT_DIR": str(audit),
        "RUNBOOK_AUDIT_KEY": str(key),
        "RUNBOOK_PROJECT_DIR": str(ROOT),  # templates/ (the playbook is not kept in playbooks/)
    }


def compile_to(path: Path) -> Path:
    res = CliRunner().invoke(
        cli, ["compile", "deploy-4gb", "-o", str(path)], env={"RUNBOOK_PATH": str(ROOT / "playbooks")}
    )
    assert res.exit_code == 0, res.output
    return path


def normalized(state: dict[str, Any], deploy: Deploy) -> str:
    """The state as text, this deploy's own names (project, dirs, port, database) as placeholders."""
    text = json.dumps(state, sort_keys=True, default=str)
    for key in sorted(NAMES, key=lambda k: -len(str(deploy.vars[k]))):
        text = text.replace(str(deploy.vars[key]), f"<{key}>")
    return text


def services(deploy: Deploy) -> dict[str, tuple[str, str]]:
    """The compose project's containers: service -> (state, health)."""
    res = subprocess.run(
        ["docker", "compose", "-p", deploy.vars["app_name"], "ps", "--all", "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):
        rows = rows[0]
    return {r["Service"]: (r["State"], r.get("Health") or "") for r in rows}


def backups(deploy: Deploy) -> list[Path]:
    return sorted(Path(deploy.vars["backup_dir"]).glob("*.dump"))


def backup_listing(path: Path) -> str:
    """pg_restore's table of contents of a backup (a valid custom-format dump), checked 0600."""
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    listed = subprocess.run([str(PG_BIN / "pg_restore"), "--list", str(path)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def assert_healthy_release(deploy: Deploy, version: str, migrations: list[str]) -> None:
    assert health(deploy.port) == {"status": "healthy", "version": version, "role": "api"}
    assert services(deploy) == {
        "api": ("running", "healthy"), "prometheus": ("running", ""), "grafana": ("running", ""),
    }  # fmt: skip
    assert [v for (v,) in deploy.sql("SELECT version FROM schema_migrations ORDER BY 1")] == migrations
    assert oct((deploy.app_dir / "app.env").stat().st_mode & 0o777) == "0o600"
    listing = backup_listing(backups(deploy)[-1])  # this run's: the database before it migrated
    assert f"dbname: {deploy.vars['db_name']}" in listing
    first = len(backups(deploy)) == 1  # the first deploy's backup is of an empty database
    assert ("TABLE DATA public schema_migrations" in listing) != first


def assert_no_secret(deploy: Deploy, audit: Path) -> None:
    trails = "".join(p.read_text() for p in audit.glob("*.jsonl"))
    for secret in deploy.secrets:
        assert all(secret not in out for out in deploy.outputs), "a secret reached ansible-playbook's output"
        assert secret not in trails, "a secret reached the audit trail"


def verify_audit(audit: Path, key: Path) -> list[str]:
    res = CliRunner().invoke(
        cli, ["audit", "verify", str(audit), "--allowed-signers", f"{key}.pub", "--json"]
    )
    assert res.exit_code == 0, res.output
    return [run["outcome"] for run in json.loads(res.output)["runs"]]


def v2(deploy: Deploy) -> dict[str, Any]:
    return {"app_version": "v2", "migrations_dir": migrations_dir(deploy.root, "m-v2", V2_MIGRATIONS)}


def seed_rows(deploy: Deploy) -> None:
    deploy.sql(
        "INSERT INTO conversations (user_id) VALUES ('alice'), ('bob');"
        "INSERT INTO messages (conversation_id, role, content) VALUES "
        "(1, 'user', 'How big is a 4 GB host?'), (2, 'user', 'Roll it back!')"
    )


def assert_rolled_back(
    c: Compiled, res: subprocess.CompletedProcess, baseline: dict, failed_step: str
) -> None:
    """The play failed, the rescue undid the steps (each undo verified by runbook), the host is at
    the baseline again and always: recorded the run as rolled back."""
    d = c.deploy
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f"step '{failed_step}' failed:" in out and "; rolled back" in out, out
    assert "rollback incomplete" not in out
    assert d.state() == baseline
    records = c.records()
    failed = [r for r in records if r["event"] == "step.end" and r.get("outcome") == "failed"]
    assert [r["step"] for r in failed] == [failed_step, "the run failed: rolled back"], failed
    undo = [r for r in records if r["event"] == "step.end" and r["step"].startswith("undo: ")]
    assert undo and all(r["outcome"] in ("ok", "changed", "skipped") for r in undo), undo
    assert any(r["outcome"] == "changed" for r in undo)
    assert records[-2]["event"] == "run.end" and records[-2]["outcome"] == "failed"
    history = (d.app_dir / "deploy-history.log").read_text().splitlines()
    assert "status=rolled_back" in history[-1], history[-1]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def lab(dockerd, postgres_server, redis_server, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    root = tmp_path_factory.mktemp("deploy4gb-compiled")
    key = root / "audit_key"
    generate_key(key, "ops@ansible")
    return {"root": root, "key": key, "pg": postgres_server, "redis": redis_server, "dockerd": dockerd,
            "playbook": compile_to(root / "deploy-4gb.ansible.yml")}  # fmt: skip


@pytest.fixture(scope="module")
def native(lab) -> Any:
    """The native deploy's states: v1 (rows seeded) and then v2."""
    (lab["root"] / "native").mkdir()
    d = make_deploy(lab["root"] / "native", lab["pg"], lab["redis"])
    states = {"v1": ensure_baseline(d)}
    rc, doc = d.cli("exec", overrides=v2(d))
    assert rc == 0, doc["message"]
    states["v2"] = d.state()
    d.down()  # its containers are not needed any more
    yield d, states


@pytest.fixture(scope="module")
def compiled(lab) -> Any:
    root = lab["root"] / "ansible"
    root.mkdir()
    d = make_deploy(root, lab["pg"], lab["redis"])
    audit = lab["root"] / "audit-local"
    c = Compiled(d, lab["playbook"], ansible_env(root, audit, lab["key"]), audit)
    yield c
    d.down()


@pytest.fixture(scope="module")
def v1(compiled: Compiled, native) -> dict[str, Any]:
    """v1 deployed by ansible-playbook (rows seeded, as the native baseline): its state."""
    nd, _ = native
    d = compiled.deploy
    d.vars["openai_api_key"] = nd.vars["openai_api_key"]  # the same settings but for the names
    res = compiled.run()
    assert res.returncode == 0, res.stdout + res.stderr
    seed_rows(d)
    return d.state()


# ------------------------------------------------------------------------------------ locally


def test_v1_by_ansible_playbook_reaches_the_native_end_state(compiled: Compiled, native, v1) -> None:
    nd, states = native
    d = compiled.deploy
    assert normalized(v1, d) == normalized(states["v1"], nd)
    assert_healthy_release(d, "v1", ["001", "002"])
    assert "status=success" in (d.app_dir / "deploy-history.log").read_text()


FAILURES = {
    "pull": ("Pull images", {"app_image": "127.0.0.1:9/runbook-demo:v2"}),
    "migration": ("Migrate the database", {"migrations": "broken"}),
    "up --wait": ("Deploy the stack", {"app_image": "runbook-demo:broken"}),
    "health check": ("Health check", {"app_image": "runbook-demo:unhealthy"}),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_an_injected_failure_is_rolled_back_to_v1(compiled: Compiled, v1, case: str) -> None:
    d = compiled.deploy
    step, overrides = FAILURES[case]
    overrides = {**v2(d), **overrides}
    if overrides.pop("migrations", None):  # 003 has no down file: undoing it restores the backup
        files = {f.name: f for f in sorted(MIGRATIONS.glob("00[123]_*.sql")) if ".down." not in f.name}
        overrides["migrations_dir"] = migrations_dir(d.root, "m-broken", {**files, "004_broken.sql": BROKEN})
    res = compiled.run(overrides)
    assert_rolled_back(compiled, res, v1, step)
    assert_healthy_release(d, "v1", ["001", "002"])
    if case == "migration":
        assert "004_broken.sql:3: syntax error" in res.stdout
        undo = next(
            r
            for r in compiled.records()
            if r["event"] == "step.end" and r.get("step") == "undo: Migrate the database"
        )
        assert "restored backup" in undo["data"]["msg"], undo
    if case == "health check":
        end = next(
            r for r in compiled.records() if r["event"] == "step.end" and r.get("step") == "Health check"
        )
        assert end["outcome"] == "failed"
        assert res.stdout.count("retrying in") == 3  # backoff: 1 s, 2 s, 4 s (as runbook exec)
        assert (
            "retrying in 1s" in res.stdout
            and "retrying in 2s" in res.stdout
            and "retrying in 4s" in res.stdout
        )


def test_v2_by_ansible_playbook_reaches_the_native_end_state(compiled: Compiled, native, v1, lab) -> None:
    nd, states = native
    d = compiled.deploy
    before = backups(d)
    res = compiled.run(v2(d))
    assert res.returncode == 0, res.stdout + res.stderr
    assert normalized(d.state(), d) == normalized(states["v2"], nd)
    assert_healthy_release(d, "v2", ["001", "002", "003"])
    assert len(backups(d)) == len(before) + 1  # taken by this run, named after its run id
    run_id = (d.app_dir / "deploy-history.log").read_text().splitlines()[-1].split(" run=")[1].split()[0]
    assert run_id in backups(d)[-1].name and compiled.records()[0]["run_id"] == run_id
    assert_no_secret(d, compiled.audit)
    assert verify_audit(compiled.audit, lab["key"]) == ["success", *["failed"] * len(FAILURES), "success"]


# ------------------------------------------------------------------------------------ over sshd


@pytest.mark.ssh
def test_over_sshd_with_host_keys_checked(lab, native, ssh_lab) -> None:
    """The same playbook on a host reached through a real sshd (a loopback address of this machine,
    strict host key checking against a known_hosts file): docker, pg_dump and the file writes run
    on the far side of Ansible's ssh connection. v1 reaches the native state; a container that exits
    fails `up --wait` and is rolled back to it."""
    nd, states = native
    root = lab["root"] / "ssh"
    h = ssh_lab.hosts[0]
    inv = root / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    shutil.copy(ROOT / "inventories/local/group_vars/all.yml", inv / "group_vars/all.yml")
    (inv / "hosts").write_text(
        f"[app]\n{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user=root "
        f"ansible_ssh_private_key_file={ssh_lab.key} ansible_python_interpreter=python3 "
        f"ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile={ssh_lab.known_hosts} "
        "-o StrictHostKeyChecking=yes'\n"
    )
    d = make_deploy(root, lab["pg"], lab["redis"], inventory=inv, host=h.name)
    d.vars["openai_api_key"] = nd.vars["openai_api_key"]
    d.vars["docker_host"] = lab["dockerd"].host  # the login shell on the far side has no DOCKER_HOST
    audit = root / "audit"
    ssh_log = root / "ssh.log"
    wrapper = root / "ssh"  # Ansible's ssh, every command line recorded
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {ssh_log}\nexec ssh "$@"\n')
    wrapper.chmod(0o755)
    c = Compiled(
        d,
        lab["playbook"],
        {**ansible_env(root, audit, lab["key"]), "ANSIBLE_SSH_EXECUTABLE": str(wrapper)},
        audit,
    )
    try:
        res = c.run()
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"ok: [{h.name}]" in res.stdout
        # PostgreSQL, Redis and /health reached as the target sees them: through Ansible's ssh
        # connection (ssh -W, the connection's own options: its known_hosts, strict checking)
        forwards = [line for line in ssh_log.read_text().splitlines() if " -W " in line]
        for port in (d.vars["db_port"], d.vars["redis_port"], d.port):
            assert any(f"-W 127.0.0.1:{port} " in line for line in forwards), (port, forwards)
        assert all(f"UserKnownHostsFile={ssh_lab.known_hosts}" in line and "StrictHostKeyChecking=yes" in line
                   for line in forwards)  # fmt: skip
        seed_rows(d)
        baseline = d.state()
        shown = normalized(baseline, d).replace(h.name, "<host>")  # (files name their host)
        assert shown == normalized(states["v1"], nd).replace("localhost", "<host>")
        assert_healthy_release(d, "v1", ["001", "002"])

        res = c.run({**v2(d), "app_image": "runbook-demo:broken"})
        assert_rolled_back(c, res, baseline, "Deploy the stack")
        assert_healthy_release(d, "v1", ["001", "002"])
        assert all(r["host"] == h.name for r in c.records() if r["event"] == "step.end")
        assert_no_secret(d, audit)
        assert verify_audit(audit, lab["key"]) == ["success", "failed"]
    finally:
        d.down()


# ------------------------------------------------------------------------------------ as an AWX job

INVENTORY_SCRIPT = """\
#!{python}
import json, sys
if "--host" in sys.argv:
    print("{{}}")
else:
    print(json.dumps({inventory}))
"""


def test_as_an_awx_job(lab, native, tmp_path: Path) -> None:
    """ansible-runner with a private data dir: project/ (the compiled playbook in playbooks/, the
    templates), inventory/ an executable script (the group's settings in it, as AWX's inventory
    sources), the collection installed from the artefact ansible-galaxy built, the settings as the
    job's extra vars; v1 reaches the native state, a failed pull is rolled back, the trail verifies."""
    ansible_runner = pytest.importorskip("ansible_runner", reason="ansible-runner not installed")
    nd, states = native
    root = lab["root"] / "awx"
    root.mkdir()
    d = make_deploy(root, lab["pg"], lab["redis"])
    d.vars["openai_api_key"] = nd.vars["openai_api_key"]
    pdd = root / "job"
    (pdd / "project" / "playbooks").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "env").mkdir()
    compile_to(pdd / "project" / "playbooks" / "deploy-4gb.ansible.yml")
    shutil.copytree(ROOT / "templates", pdd / "project" / "templates")  # a project checkout's files

    settings = yaml.safe_load((ROOT / "inventories/local/group_vars/all.yml").read_text())
    inventory = {
        "app": {"hosts": ["localhost"]},
        "all": {"vars": settings},
        "_meta": {"hostvars": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
    }  # fmt: skip
    script = pdd / "inventory" / "hosts.py"
    script.write_text(INVENTORY_SCRIPT.format(python=sys.executable, inventory=repr(inventory)))
    script.chmod(0o755)

    audit = root / "audit"
    env = ansible_env(root, audit, lab["key"], collections=pdd / "collections")
    build = root / "build"
    subprocess.run(["ansible-galaxy", "collection", "build", str(collection_dir()), "--output-path", str(build)],
                   check=True, capture_output=True, env=env, timeout=300)  # fmt: skip
    (artefact,) = build.glob("runbook-core-*.tar.gz")
    subprocess.run(["ansible-galaxy", "collection", "install", str(artefact), "-p", str(pdd / "collections")],
                   check=True, capture_output=True, env=env, timeout=300)  # fmt: skip
    assert (pdd / "collections/ansible_collections/runbook/core/plugins/lookup/run.py").is_file()

    keep = ("PYTHONPATH", "ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_COLLECTIONS_PATH", "DOCKER_HOST",
            "DOCKER_CONFIG", "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH", "ANSIBLE_CALLBACKS_ENABLED", "RUNBOOK_AUDIT_DIR",
            "RUNBOOK_AUDIT_KEY")  # fmt: skip
    (pdd / "env" / "envvars").write_text(json.dumps({k: env[k] for k in keep if k in env}))

    def job(**overrides: Any) -> Any:
        return ansible_runner.run(
            private_data_dir=str(pdd), playbook="playbooks/deploy-4gb.ansible.yml",
            extravars={**d.vars, **overrides}, quiet=True,
            cancel_callback=lambda: False,  # else it installs SIGINT/SIGTERM handlers it never restores
        )  # fmt: skip

    try:
        r = job()
        out = r.stdout.read()
        d.outputs.append(out)
        assert (r.status, r.rc) == ("successful", 0), out
        seed_rows(d)
        baseline = d.state()
        assert normalized(baseline, d) == normalized(states["v1"], nd)
        assert_healthy_release(d, "v1", ["001", "002"])

        r = job(**v2(d), app_image="127.0.0.1:9/runbook-demo:v2")
        out = r.stdout.read()
        d.outputs.append(out)
        assert (r.status, r.rc) == ("failed", 2), out
        assert "step 'Pull images' failed:" in out and "; rolled back" in out
        assert d.state() == baseline
        assert_healthy_release(d, "v1", ["001", "002"])
        assert_no_secret(d, audit)
        assert verify_audit(audit, lab["key"]) == ["success", "failed"]
        assert os.listdir(pdd / "artifacts")  # the job's artifacts, as AWX keeps them
    finally:
        d.down()
