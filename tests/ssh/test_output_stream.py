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
