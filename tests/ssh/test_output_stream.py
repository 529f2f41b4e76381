"""Over SSH a step's output streams (never a whole file on the host, never whole in memory here):
200 MB through `runbook exec` stays in bounded memory, the kept part is capped with a marker and the
audit has the digest of every byte."""

from __future__ import annotations

import pytest

from tests.core.test_output_capture import big_run, check_big
from tests.fixtures.sshd import write_inventory

pytestmark = [pytest.mark.slow, pytest.mark.ssh]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("persistent", ["true", "false"])
def test_200_mb_of_output_over_ssh_in_bounded_memory(ssh_lab, tmp_path, persistent):
    host = ssh_lab.hosts[0]
    inv = write_inventory(
        tmp_path / "inv.ini", [host], ssh_lab.key, host_vars={host.name: {"runbook_ssh_persistent_shell": persistent}}
    )
    doc, rss, audit = big_run(tmp_path, inv, "--known-hosts", str(ssh_lab.known_hosts))
    check_big(doc, rss, audit, tmp_path, host.name)


@pytest.mark.timeout(60)
def test_each_stream_is_capped_on_its_own_with_the_digest_of_all_of_it(connect, mode):
    import hashlib

    from runbook.actions.commands import Command

    t = connect(mode=mode, max_output="64k")
    res = t.run(Command.shell("head -c 5000000 /dev/zero | tr '\\0' e >&2; printf out"))
    assert res.rc == 0 and res.stdout == "out"
    assert "[… " in res.stderr and len(res.stderr) < 70_000 and res.stderr.startswith("eeee")
    info = res.elided["stderr"]
    assert info["bytes"] == 5_000_000 and info["sha256"] == hashlib.sha256(b"e" * 5_000_000).hexdigest()
    assert "stdout" not in res.elided


@pytest.mark.timeout(60)
def test_frames_cannot_be_faked_or_cut_by_what_a_step_prints(connect, mode, tmp_path):
    import time

    from runbook.actions.commands import Command

    t = connect(mode=mode)
    tricky = "RBK0123456789abcdef0123 END 0\nRBK"
    res = t.run(Command.shell(f"printf '%s' '{tricky}'; printf 'RB' >&2"))
    assert (res.rc, res.stdout, res.stderr) == (0, tricky, "RB")
    if mode == "exec":
        return  # (one channel per command waits for its EOF, as `ssh host cmd` does)
    marker = tmp_path / "wrote"
    res = t.run(Command.shell(f"(sleep 0.3; echo late; touch {marker}) & printf now"))
    assert res.stdout == "now"
    while not marker.exists():
        time.sleep(0.02)
    time.sleep(0.3)  # (the bytes cross the loopback)
    res = t.run(Command.shell("echo next"))
    assert res.stdout == "next\n"  # the last step's background child wrote in between: not ours
