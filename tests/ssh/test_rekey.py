"""paramiko re-keys on its own (every 512 MiB); a channel the server closes while that exchange is
under way must not stall the connection (paramiko answers the close from its own reader thread, which
waited for an exchange only it could carry on: "Key-exchange timed out", the connection lost).

The tests make paramiko re-key after every packet it receives, so channels close, and channel
requests ask for replies, in the middle of exchanges all the time."""

from __future__ import annotations

import pytest

from runbook.actions.commands import Command

pytestmark = [pytest.mark.ssh]


def rekey_always(t) -> dict[str, int]:
    """Make the connection re-key after every packet, with a short wait for a stalled exchange (so a
    regression fails in seconds, not 30 s); returns a counter of finished exchanges."""
    tr = t._conn.transport
    tr.packetizer.REKEY_BYTES = tr.packetizer.REKEY_PACKETS = 1
    tr.clear_to_send_timeout = 5.0
    done = {"exchanges": 0}
    activate = tr._activate_outbound

    def counted() -> None:
        activate()
        done["exchanges"] += 1

    tr._activate_outbound = counted
    return done


@pytest.mark.timeout(120)
def test_channels_closed_during_a_key_exchange_keep_the_connection(connect, mode):
    t = connect(mode=mode)
    done = rekey_always(t)
    for i in range(15):
        res = t.run(Command.shell(f"echo step {i}; echo err {i} >&2; exit {i % 3}"))
        assert (res.rc, res.stdout, res.stderr) == (i % 3, f"step {i}\n", f"err {i}\n")
    assert done["exchanges"] >= 15
    assert t._conn.active


@pytest.mark.timeout(120)
def test_files_move_while_the_keys_are_exchanged_again_and_again(connect, mode, tmp_path):
    t = connect(mode=mode)
    done = rekey_always(t)
    for i in range(5):
        target = f"/tmp/runbook-rekey-{tmp_path.name}-{i}"
        t.write_file(target, f"content {i}\n" * 1000, mode=0o600)
        res = t.run(Command.shell(f"wc -l < {target}; stat -c %a {target}; rm -f {target}"))
        assert (res.rc, res.stdout) == (0, "1000\n600\n")
    assert done["exchanges"] >= 5 and t._conn.active
