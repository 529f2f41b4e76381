"""Fixtures for the SSH transport tests: real sshd servers (tests/fixtures/sshd.py) and transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runbook.execute.transports.base import HostSpec
from tests.fixtures.sshd import SshdHost, SshLab, ssh_lab, sshd_factory  # noqa: F401 - fixtures


def spec_for(host: SshdHost, lab: SshLab, **kw: Any) -> HostSpec:
    hv = kw.pop("vars", None)
    return HostSpec(
        name=kw.pop("name", host.name),
        address=kw.pop("address", host.address),
        port=kw.pop("port", host.port),
        user=kw.pop("user", "root"),
        private_key_file=kw.pop("private_key_file", str(lab.key)),
        vars=hv,
        **kw,
    )


@pytest.fixture(params=["persistent", "exec"])
def mode(request: pytest.FixtureRequest) -> str:
    """Every command-level test runs in both modes: persistent remote shell and exec per command."""
    return request.param


@pytest.fixture
def connect(ssh_lab: SshLab) -> Iterator[Callable[..., Any]]:  # noqa: F811 - the fixture above
    """``connect(host, mode="persistent", spec=..., **options) -> SSHTransport`` (connected, closed
    after the test)."""
    from runbook.execute.transports.ssh import SSHTransport

    made: list[SSHTransport] = []

    def make(host: SshdHost | None = None, mode: str = "persistent", spec: HostSpec | None = None, **opts):
        spec = spec or spec_for(host or ssh_lab.hosts[0], ssh_lab)
        opts.setdefault("known_hosts", str(ssh_lab.known_hosts))
        opts.setdefault("ssh_config", "/dev/null")
        t = SSHTransport(spec, persistent_shell=(mode == "persistent"), **opts)
        made.append(t)
        t.connect()
        assert t.mode == mode, t._shell_failed
        return t

    try:
        yield make
    finally:
        for t in made:
            t.close()
