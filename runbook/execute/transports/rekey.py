"""paramiko's Transport, with a key re-exchange that cannot deadlock on a message the server sent.

paramiko re-keys on its own after 512 MiB (or 2**29 packets) in either direction. From the moment it
sends its KEXINIT, every "user" message (``Transport._send_user_message``) waits until the exchange
is over (RFC 4253 §7.1 allows only key-exchange messages then). The messages the server sent before
it read our KEXINIT still arrive in that window, and paramiko answers some of them from its own
reader thread: a CHANNEL_CLOSE (the end of an exec channel, an sftp session, a tunnel) is answered
with our CHANNEL_CLOSE, a channel request asking for a reply (``keepalive@openssh.com``) with
CHANNEL_SUCCESS/FAILURE. That thread then waits for the end of an exchange only it can carry on:
after 30 s "Key-exchange timed out waiting for key negotiation" and the connection is lost (paramiko
issue #822, open). Seen here: a step printing 1 GiB over an exec channel ends right at paramiko's
second re-key, and failed in 5 of 8 runs.

Here a message paramiko's own thread sends during an exchange is held and sent right after our
NEWKEYS (the first moment the protocol allows it, and before any other thread may send again, so
the order of messages is kept). paramiko's re-keying itself is unchanged (its limits stay).
"""

from __future__ import annotations

import threading
from typing import Any

from runbook.execute.transports.paramiko_import import load_paramiko

_LOCK = threading.Lock()
_CLASS: type | None = None


def transport_class() -> type:
    """paramiko.Transport with the held-messages fix (built once, after paramiko's import)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    with _LOCK:
        if _CLASS is None:
            _CLASS = _build(load_paramiko().Transport)
    return _CLASS


def _build(base: type) -> type:
    required = ("_send_user_message", "_activate_outbound", "_send_message")
    if not all(hasattr(base, name) for name in required):  # a paramiko that changed its internals
        return base

    class RekeySafeTransport(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._rb_held: list[Any] = []

        def _send_user_message(self, data: Any) -> None:
            if threading.current_thread() is self:  # paramiko's reader thread answering the peer
                with self.clear_to_send_lock:
                    if not self.clear_to_send.is_set():  # an exchange is under way: hold it
                        self._rb_held.append(data)
                        return
            super()._send_user_message(data)

        def _activate_outbound(self) -> None:
            super()._activate_outbound()  # our NEWKEYS is sent: other messages may follow it
            held, self._rb_held = self._rb_held, []
            for data in held:
                self._send_message(data)

    return RekeySafeTransport
