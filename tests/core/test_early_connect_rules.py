"""Which hosts a run connects to before its checks, engine and audit writer are ready
(runbook.execute.early): only those its first step reaches whatever the run's variables say, with
the spec the engine itself makes for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook.execute.early import connection_spec, hosts_reached_first
from runbook.execute.engine import Engine, RunOptions
from runbook.execute.events import EventBus
from runbook.execute.magic import SPEC_MAGIC
from runbook.execute.transports.pool import Connections
from runbook.session.project import load_inventory
from runbook.session.run import load_unchecked

HOSTS = ["web1", "web2", "web3"]
PLAIN = "  - name: plain\n    shell: echo plain\n"


def _runbook(tmp_path: Path, body: str, head: str = "") -> object:
    path = tmp_path / "rb.yml"
    path.write_text(f"name: early\nhosts: web\n{head}{body}")
    return load_unchecked(path)


@pytest.mark.parametrize(
    ("first", "reached"),
    [
        ("  - shell: echo one\n", HOSTS),
        ("  - shell: echo one\n    when: ready\n", []),
        ("  - shell: echo one\n    loop: [a, b]\n", []),
        ("  - shell: echo one\n    delegate_to: localhost\n", []),
        ("  - shell: echo one\n    run_once: true\n", []),
        ("  - shell: echo one\n    check_mode: true\n", []),
        ("  - approve: go on?\n", []),
        ("  - block:\n      - shell: echo one\n", []),
    ],
    ids=["plain", "when", "loop", "delegate_to", "run_once", "check_mode", "approve", "block"],
)
def test_only_a_first_step_that_reaches_its_host_whatever_the_variables_connects_early(tmp_path, first, reached):
    rb = _runbook(tmp_path, "steps:\n" + first + PLAIN)
    assert hosts_reached_first(rb, HOSTS) == reached


def test_preflight_decides_for_every_host_and_the_lock_for_the_first_batch(tmp_path):
    guarded = "  - shell: echo one\n    when: ready\n"
    assert hosts_reached_first(_runbook(tmp_path, "preflight:\n" + guarded + "steps:\n" + PLAIN), HOSTS) == []
    assert hosts_reached_first(_runbook(tmp_path, "preflight:\n  - shell: true\nsteps:\n" + guarded), HOSTS) == HOSTS
    assert hosts_reached_first(_runbook(tmp_path, "steps:\n" + guarded, head="serial: 2\nlock: true\n"), HOSTS) == HOSTS[:2]
    assert hosts_reached_first(_runbook(tmp_path, "steps:\n" + PLAIN, head="serial: 1\n"), HOSTS) == HOSTS[:1]


def test_the_first_step_is_the_first_one_that_tags_and_start_at_let_run(tmp_path):
    rb = _runbook(tmp_path, "steps:\n  - name: guarded\n    shell: echo one\n    when: ready\n    tags: [slow]\n" + PLAIN)
    assert hosts_reached_first(rb, HOSTS) == []
    assert hosts_reached_first(rb, HOSTS, skip_tags={"slow"}) == HOSTS
    assert hosts_reached_first(rb, HOSTS, start_at="plain") == HOSTS
    with pytest.raises(Exception, match="--start-at"):  # the run's own usage error, said by the run
        hosts_reached_first(rb, HOSTS, start_at="nonesuch")


def test_the_early_spec_is_the_one_the_engine_makes_and_templated_variables_have_none(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text(
        "[web]\nweb1 ansible_host=10.0.0.1 ansible_user=deploy ansible_ssh_private_key_file=/k\n"
        "web2 ansible_host='{{ inventory_hostname }}.example' ansible_port=2222\n"
        "[web:vars]\nansible_ssh_common_args='-o ServerAliveInterval=5'\n"
    )
    inventory = load_inventory([str(inv)])
    rb = _runbook(tmp_path, "vars: {ansible_port: 2200}\nsteps:\n" + PLAIN)
    extra = {"ansible_user": "ops"}
    engine = Engine(rb, inventory, ["web1", "web2"], RunOptions(extra_vars=extra, state_root=tmp_path / "s"), EventBus())
    early = connection_spec("web1", inventory, rb, extra)
    assert (early.address, early.port, early.user) == ("10.0.0.1", 2200, "ops")  # -e > vars: > inventory
    assert Connections(ignore_vars=SPEC_MAGIC).same(early, engine.host_run("web1").spec)
    assert connection_spec("web2", inventory, rb, extra) is None  # the engine renders its ansible_host
