"""The secret canary over real SSH (tests/fixtures/sshd.py): every origin's value is used by a step
that runs for a while on the host, whose process list (every process's command line, what
``ps -eo args`` shows) is read meanwhile; then the console, JSON, audit, state and the host's
/tmp/.runbook-* directories are searched. Both the persistent remote shell and one exec channel per
command (``runbook_ssh_persistent_shell=false``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fixtures.sshd import SshLab, ssh_lab  # noqa: F401 - fixture
from tests.security.canary import (
    echo_server,
    files_text,
    leaks,
    make_project,
    new_canaries,
    watch_command_lines,
)

pytest.importorskip("ansible", reason="ansible-core not installed")
pytestmark = [pytest.mark.slow, pytest.mark.ssh]


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent-shell", "exec-per-command"])
def test_no_secret_on_the_remote_command_lines_or_in_any_artefact(
    ssh_lab: SshLab,  # noqa: F811
    tmp_path: Path,
    persistent: bool,
) -> None:
    host = ssh_lab.hosts[0]
    line = (
        f"{host.name} ansible_host={host.address} ansible_port={host.port} ansible_user=root "
        f"ansible_ssh_private_key_file={ssh_lab.key} runbook_ssh_persistent_shell={str(persistent).lower()}"
    )
    before = {str(p) for p in Path("/tmp").glob(".runbook-*")}
    with echo_server() as (port, seen):
        p = make_project(tmp_path / "project", new_canaries(), port, host_line=line, host=host.name)
        p.extra_args = ["--known-hosts", str(ssh_lab.known_hosts)]
        t = tmp_path / "remote"
        proc = p.start("exec", "canary", "-v", "--output", "json", "-e", f"t={t}", "-e", "linger=2.5")
        running, on_command_lines = watch_command_lines(proc, p.canary, "sleep 2.5")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        assert running, "the step that uses every secret was never seen running"
        assert on_command_lines == []
        doc = json.loads(out)
        assert doc["status"] == "success"
        conf = (t / "app.conf").read_text()  # the host used them (the host is this machine)
        assert p.canary["vault_group_vars"] in conf and p.canary["cli_secret"] in conf
        assert seen[0]["Authorization"] == "Basic " + p.canary["url_userinfo_basic"]  # through the tunnel

        res = p.run("exec", "canary", "-e", f"t={tmp_path / 'failed'}", "-e", "fail=true")
        assert res.returncode == 1, res.stdout + res.stderr

    remote_tmp = [Path(d) for d in {str(p) for p in Path("/tmp").glob(".runbook-*")} - before]
    artefacts = {"exec console": out + err, "failed exec console": res.stdout + res.stderr}
    artefacts |= files_text(p.root / "audit", p.root / ".runbook", p.tmpdir, *remote_tmp)
    assert leaks(p.canary, artefacts) == []



TRICKY = r"""set -e
printf '%s|' "$0" "a b" '$HOME' "\`x\`" 'it''s'
cat <<'END'
heredoc in the script: RBKEND0000 $(not run)
END
echo "stdin: $(cat)"
f() { return 3; }
f || echo "rc $?"
exit 7
"""


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent-shell", "exec-per-command"])
def test_a_private_script_runs_exactly_as_a_plain_one(ssh_lab: SshLab, persistent: bool) -> None:  # noqa: F811
    """The handoff changes where the script travels, not what it does: same output, stdin, exit code."""
    from runbook.actions.commands import Command
    from runbook.execute.transports.base import HostSpec
    from runbook.execute.transports.ssh import SSHTransport

    host = ssh_lab.hosts[0]
    spec = HostSpec(host.name, host.address, port=host.port, user="root", private_key_file=str(ssh_lab.key))
    t = SSHTransport(spec, known_hosts=str(ssh_lab.known_hosts), ssh_config="/dev/null", persistent_shell=persistent)
    try:
        t.connect()
        assert t.mode == ("persistent" if persistent else "exec")
        results = [
            t.run(Command.shell(TRICKY, stdin=b"line one\nline two\n", env={"X": "1"}, private=private))
            for private in (False, True)
        ]
        big = t.run(Command.shell("x=" + "y" * 300_000 + "; echo ${#x}", private=True))
        bash = [
            t.run(Command.exec(["/bin/bash", "-c", 'echo "$0 $1 ${BASH_VERSION%%.*}"; cat', "zero", "one"],
                               stdin=b"in\n", private=private))
            for private in (False, True)
        ]  # fmt: skip
    finally:
        t.close()
    plain, private = results
    assert private.rc == plain.rc == 7, (plain, private)
    assert private.stdout == plain.stdout
    assert "stdin: line one\nline two" in private.stdout and "rc 3" in private.stdout
    assert "heredoc in the script: RBKEND0000 $(not run)" in private.stdout
    assert big.rc == 0 and big.stdout == "300000\n"
    assert bash[0].stdout == bash[1].stdout == "zero one 5\nin\n"


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent-shell", "exec-per-command"])
def test_under_become_the_script_is_off_the_command_lines_too(ssh_lab: SshLab, persistent: bool) -> None:  # noqa: F811
    """sudo closes every inherited descriptor but stdin: the script comes first on the stdin of the
    shell sudo starts, so neither sudo's argv nor its shell's holds the secret."""
    import secrets
    import threading

    from runbook.actions.commands import Command
    from runbook.execute.transports.base import HostSpec
    from runbook.execute.transports.ssh import SSHTransport
    from tests.security.canary import command_lines

    canary = f"CANARY{secrets.token_hex(6)}"
    host = ssh_lab.hosts[0]
    spec = HostSpec(host.name, host.address, port=host.port, user="root", private_key_file=str(ssh_lab.key))
    t = SSHTransport(spec, known_hosts=str(ssh_lab.known_hosts), ssh_config="/dev/null", persistent_shell=persistent)
    results = []
    command = Command.shell(f"echo {canary} | wc -c; id -un; cat; sleep 2.2", become=True, become_user="nobody",
                            stdin=b"in\n", private=True)  # fmt: skip
    try:
        t.connect()
        runner = threading.Thread(target=lambda: results.append(t.run(command)))
        runner.start()
        seen, leaked = False, []
        while runner.is_alive():
            for _pid, line in command_lines(set()):
                seen = seen or "sleep 2.2" in line
                if canary in line:
                    leaked.append(line)
            time.sleep(0.05)
        runner.join()
    finally:
        t.close()
    assert seen and leaked == []
    [res] = results
    assert res.rc == 0 and res.stdout == f"{len(canary) + 1}\nnobody\nin\n"
