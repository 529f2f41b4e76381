"""SSHTransport.run against real sshd: both the persistent remote shell and exec-per-command."""

from __future__ import annotations

import random
import threading
import time

import pytest

from runbook.actions.commands import Command
from runbook.errors import TransportError

pytestmark = [pytest.mark.slow, pytest.mark.ssh]


def test_exit_codes_and_separated_streams(connect, mode):
    t = connect(mode=mode)
    for rc in (0, 1, 3, 127):
        r = t.run(Command.shell(f"echo out{rc}; echo err{rc} >&2; exit {rc}"))
        assert (r.rc, r.stdout, r.stderr, r.timed_out) == (rc, f"out{rc}\n", f"err{rc}\n", False)
    r = t.run(Command.shell("no-such-command-xyz"))
    assert r.rc == 127 and "not found" in r.stderr and r.stdout == ""


def test_argv_commands_are_quoted(connect, mode):
    t = connect(mode=mode)
    r = t.run(Command.exec(["printf", "%s|", "a b", "it's", "$HOME", "*"]))
    assert r.rc == 0 and r.stdout == "a b|it's|$HOME|*|"


def test_binary_output_without_trailing_newline(connect, mode):
    t = connect(mode=mode)
    raw = t.run_raw(Command.shell(r"printf 'a\000b\377\001'; printf 'e\000' >&2"))
    assert (raw.rc, raw.stdout, raw.stderr) == (0, b"a\x00b\xff\x01", b"e\x00")
    # looks like our framing, must come through untouched
    r = t.run(Command.shell("echo RBK0000 END 0; printf 'x'"))
    assert r.stdout == "RBK0000 END 0\nx"


def test_large_output(connect, mode):
    t = connect(mode=mode)
    raw = t.run_raw(Command.shell("head -c 5000000 /dev/zero | tr '\\0' 'x'; head -c 300000 /dev/zero >&2"))
    assert raw.rc == 0 and raw.stdout == b"x" * 5_000_000 and raw.stderr == b"\0" * 300_000


@pytest.mark.parametrize("size", [0, 11, 300_000])
def test_stdin(connect, mode, size):
    t = connect(mode=mode)
    data = bytes(range(256)) * (size // 256) + b"\x00'%\\\n"[: size % 256 or 0]
    raw = t.run_raw(Command.shell("cat; echo done >&2", stdin=data))
    assert raw.rc == 0 and raw.stdout == data and raw.stderr == b"done\n"


def test_no_stdin_means_dev_null(connect, mode):
    """A command that reads stdin gets EOF at once (and cannot eat the protocol)."""
    t = connect(mode=mode)
    r = t.run(Command.shell("cat; read x || echo eof"), timeout=30)
    assert (r.rc, r.stdout) == (0, "eof\n")
    assert t.run(Command.shell("echo still-in-sync")).stdout == "still-in-sync\n"


def test_env_and_cwd_are_per_step(connect, mode):
    t = connect(mode=mode)
    r = t.run(
        Command.shell('echo "$A|$B"; pwd; export LEAK=1; cd /', env={"A": "x y", "B": "$'q"}, cwd="/tmp")
    )
    assert r.stdout == "x y|$'q\n/tmp\n"
    r = t.run(Command.shell('echo "${A-unset}|${LEAK-unset}"; pwd'))
    home = t.run(Command.shell('echo "$HOME"')).stdout.strip()
    assert r.stdout == f"unset|unset\n{home}\n"
    r = t.run(Command.shell("pwd", cwd="/nonexistent-dir-xyz"))
    assert r.rc != 0 and "nonexistent-dir-xyz" in r.stderr


def test_timeout_kills_the_whole_process_group(connect, mode):
    t = connect(mode=mode)
    n = f"61.{random.randrange(10**6):06d}"  # a duration no other process has
    r = t.run(Command.shell(f"echo started; sleep {n} & sleep {n}; echo never"), timeout=1)
    assert r.rc == 124 and r.timed_out
    if mode == "persistent":
        assert r.stdout == "started\n"  # what it printed before the timeout is kept
    # the background child died with its group
    probe = f"for i in 1 2 3 4 5 6 7 8 9 10; do ps -eo args | grep -qx 'sleep {n}' || exit 0; sleep 0.5; done; exit 1"
    assert t.run(Command.shell(probe)).rc == 0
    assert t.run(Command.shell("echo next")).stdout == "next\n"


def test_timeout_when_term_is_ignored(connect):
    t = connect()
    r = t.run(Command.shell("trap '' TERM; echo x; while :; do sleep 0.2 || :; done"), timeout=1)
    assert r.rc == 124 and r.timed_out
    assert t.run(Command.shell("echo alive")).stdout == "alive\n"


def test_cancel_from_another_thread(connect, mode):
    t = connect(mode=mode)
    threading.Timer(0.5, t.cancel).start()
    start = time.monotonic()
    r = t.run(Command.shell("sleep 600"))
    assert time.monotonic() - start < 60, "cancel did not stop the command"  # hang guard, not a benchmark
    assert r.rc != 0 and not r.timed_out
    assert t.run(Command.shell("echo after-cancel")).stdout == "after-cancel\n"


def test_connection_dropped_mid_command(connect, sshd_factory, ssh_lab, mode):
    from tests.ssh.conftest import spec_for

    host = sshd_factory("victim")
    kh = ssh_lab.dir / f"kh-victim-{mode}"
    kh.write_text(host.known_hosts_line())
    t = connect(spec=spec_for(host, ssh_lab), mode=mode, known_hosts=str(kh), keepalive=2)
    assert t.run(Command.shell("echo up")).stdout == "up\n"
    marker = ssh_lab.dir / f"victim-running-{mode}"

    def kill_when_running() -> None:  # kill only once the command is surely running on the host
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        host.kill()

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    start = time.monotonic()
    with pytest.raises(TransportError) as err:
        t.run(Command.shell(f"touch {marker}; sleep 300"))
    assert time.monotonic() - start < 60, "a dropped connection must not hang"
    msg = str(err.value)
    assert "victim" in msg and "lost while running" in msg and "sleep 300" in msg, msg
    # and, once sshd is surely gone (until then the kernel may still complete a TCP handshake into
    # its listen backlog, and the handshake is reset instead), the next operation says the host
    # is unreachable, not a traceback
    killer.join(60)
    with pytest.raises(TransportError, match=r"cannot connect|refused"):
        t.run(Command.shell("echo again"))


def test_one_connection_for_everything(connect, sshd_factory, ssh_lab, tmp_path):
    from tests.ssh.conftest import spec_for

    host = sshd_factory("reuse")
    kh = ssh_lab.dir / "kh-reuse"
    kh.write_text(host.known_hosts_line())
    t = connect(spec=spec_for(host, ssh_lab), known_hosts=str(kh))
    for i in range(10):
        assert t.run(Command.shell(f"echo {i}")).stdout == f"{i}\n"
    t.write_file(f"{tmp_path}/reuse-file", b"x")
    assert t.read_file(f"{tmp_path}/reuse-file") == b"x"
    assert t.stat(f"{tmp_path}/reuse-file").exists
    assert host.log().count("Accepted publickey") == 1


def test_persistent_shell_runs_rc_files_once(connect):
    """Steps run in subshells of one long-lived sh: the login shell (and its rc files) ran once."""
    t = connect()
    pids = {t.run(Command.shell("echo $$")).stdout for _ in range(3)}
    assert len(pids) == 3  # every step is a fresh process ...
    parents = {t.run(Command.shell("echo $PPID")).stdout for _ in range(3)}
    assert len(parents) == 1  # ... forked from the same persistent shell
