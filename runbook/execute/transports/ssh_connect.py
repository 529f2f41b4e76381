"""Open an authenticated paramiko Transport to an Endpoint: TCP (with TCP_NODELAY and keepalives),
ProxyJump hops as direct-tcpip channels, ProxyCommand, strict host-key checking, key/agent/password
authentication. Errors are TransportError/HostKeyError with a reason and what to do."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from runbook.errors import HostKeyError, TransportError
from runbook.execute.transports import liveness
from runbook.execute.transports.hostkeys import KnownHosts, host_pattern
from runbook.execute.transports.paramiko_import import load_paramiko
from runbook.execute.transports.rekey import transport_class
from runbook.execute.transports.ssh_config import Endpoint

DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


@dataclass
class ConnectOptions:
    known_hosts: str | None = None  # None: ssh_config UserKnownHostsFile, else ~/.ssh/known_hosts
    trust_new_hosts: bool = False
    connect_timeout: float = 10.0
    keepalive: float = 15.0  # ServerAliveInterval (0: no dead-peer detection), unless ssh_config says
    keepalive_count: int = 3  # ServerAliveCountMax
    allow_agent: bool = True
    look_for_keys: bool = True
    host: str = ""  # inventory name, for messages
    extra: dict[str, Any] = field(default_factory=dict)
    abort: Abort | None = None  # ends a connect in progress from another thread (Abort.fire)
    dialed: Dial | None = None  # a TCP connect begun before paramiko was imported (used once)


class Abort:
    """Ends a connect that is under way, from any thread: what it has opened so far (the socket, the
    SSH transports of its hops) is closed at once, and what it opens afterwards is closed as soon
    as it is made; the connect then fails with TransportError. Fired once, it stays fired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: list[Any] = []
        self.fired = False

    def track(self, thing: Any, label: str) -> None:
        with self._lock:
            if not self.fired:
                self._opened.append(thing)
                return
        _close_quietly(thing)
        raise TransportError(f"{label}: connection abandoned (the run stopped before using it)")

    def check(self, label: str) -> None:
        """Before opening anything: TransportError once fired."""
        if self.fired:
            raise TransportError(f"{label}: connection abandoned (the run stopped before using it)")

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            opened, self._opened = self._opened, []
        for thing in opened:
            _close_quietly(thing)


def _close_quietly(thing: Any) -> None:
    try:
        thing.close()
    except Exception:
        pass


def tune_socket(sock: socket.socket, keepalive: float) -> None:
    """TCP_NODELAY (paramiko leaves Nagle on: ~40 ms per command with delayed ACKs) and kernel keepalive
    plus TCP_USER_TIMEOUT so a silently dead peer is noticed instead of hanging for minutes."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(keepalive or 15))
    for opt, val in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle // 3)), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(idle * 4 * 1000))


class Connection:
    """The target's Transport plus the jump-host Transports it rides on (closed together)."""

    def __init__(self, transport: Any, hops: list[Any], endpoint: Endpoint):
        self.transport = transport
        self.hops = hops
        self.endpoint = endpoint
        self.forced: str | None = None  # declared dead by the caller (a timeout nothing answered)

    def declare_dead(self, why: str) -> None:
        """Close the connection from any thread, so every wait on it ends now (never blocks)."""
        if self.active:
            self.forced = why
            threading.Thread(target=self.close, daemon=True, name="runbook-ssh-dead").start()

    @property
    def active(self) -> bool:
        return bool(self.transport.is_active()) and all(h.is_active() for h in self.hops)

    @property
    def dead_reason(self) -> str | None:
        """Why the connection was declared dead (the server stopped answering), if it was."""
        if self.forced:
            return self.forced
        for t in [self.transport, *self.hops]:
            why = liveness.reason(t)
            if why:
                return why if t is self.transport else f"jump host: {why}"
        return None

    def close(self) -> None:
        for t in [self.transport, *reversed(self.hops)]:
            try:
                t.close()
            except Exception:
                pass


def connect(ep: Endpoint, opts: ConnectOptions) -> Connection:
    """Connect through every hop to ``ep``; raises TransportError/HostKeyError."""
    hops: list[Any] = []
    try:
        sock: Any = None
        chain = [*ep.jumps, ep]
        for i, hop in enumerate(chain):
            via = chain[i - 1] if i else None
            if opts.abort is not None:
                opts.abort.check(_label(opts, hop, hop is ep))
            if via is None:
                sock = _first_socket(hop, opts)
            else:
                sock = _channel_to(hops[-1], hop, via, opts)
            if opts.abort is not None:
                opts.abort.track(sock, _label(opts, hop, hop is ep))
            jump = ",".join(f"{h.user}@{h.hostname}:{h.port}" for h in chain[:i]) or None
            t = _handshake(sock, hop, opts, jump=jump, is_target=hop is ep)
            if hop is not ep:
                hops.append(t)
            else:
                return Connection(t, hops, ep)
    except BaseException:
        for t in reversed(hops):
            t.close()
        raise
    raise AssertionError("unreachable")


def _label(opts: ConnectOptions, ep: Endpoint, is_target: bool = True) -> str:
    name = opts.host or ep.alias
    return f"host {name}" if is_target else f"host {name} (jump host {ep.display})"


def _first_socket(ep: Endpoint, opts: ConnectOptions) -> Any:
    timeout = ep.connect_timeout or opts.connect_timeout
    if ep.proxy_command:
        paramiko = load_paramiko()

        try:
            return paramiko.ProxyCommand(ep.proxy_command)
        except Exception as exc:
            raise TransportError(f"{_label(opts, ep)}: ProxyCommand failed: {exc}") from None
    dialed, opts.dialed = opts.dialed, None
    if dialed is not None:
        sock = dialed.take(ep.hostname, ep.port)
        if sock is not None:
            return sock
    return dial(ep.hostname, ep.port, timeout, _label(opts, ep), opts.keepalive)


def dial(hostname: str, port: int, timeout: float, label: str, keepalive: float) -> socket.socket:
    """The TCP connection to an SSH server (tuned), or TransportError saying why not."""
    try:
        sock = socket.create_connection((hostname, port), timeout=timeout)
    except socket.gaierror as exc:
        raise TransportError(
            f"{label}: cannot resolve {hostname!r}: {exc.strerror}",
            hint="check ansible_host in the inventory (or HostName in ~/.ssh/config)",
        ) from None
    except TimeoutError:
        raise TransportError(
            f"{label}: no answer from {hostname}:{port} within {timeout:g}s",
            hint="is the host up and the port right (ansible_port)? a firewall dropping packets?",
        ) from None
    except OSError as exc:
        raise TransportError(
            f"{label}: cannot connect to {hostname}:{port}: {exc.strerror or exc}",
            hint="is sshd running there and is ansible_port right?",
        ) from None
    tune_socket(sock, keepalive)
    return sock


class Dial:
    """A TCP connect begun early, in its own thread (SSHTransport.dial_early: before paramiko is
    imported, so the handshake's round trip overlaps the import). ``take`` hands its socket over
    (or raises what the connect raised) when the endpoint turned out to be the one it dialled;
    otherwise, or when nobody takes it, the socket is closed. Each wait is bounded by the connect
    timeout, as a connect made at that point would be."""

    def __init__(self, hostname: str, port: int, timeout: float, label: str, keepalive: float):
        self.key = (hostname, port)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self._dropped = False
        threading.Thread(
            target=self._run, args=(label, keepalive), daemon=True, name="runbook-dial"
        ).start()

    def _run(self, label: str, keepalive: float) -> None:
        try:
            sock: socket.socket | None = dial(*self.key, self.timeout, label, keepalive)
        except BaseException as exc:
            sock, self._error = None, exc
        with self._lock:
            self._sock = sock
            self._done.set()
            dropped = self._dropped
        if dropped and sock is not None:
            _close_quietly(sock)

    def take(self, hostname: str, port: int) -> socket.socket | None:
        """The socket, if this is the endpoint it dialled (None otherwise: the caller dials)."""
        if (hostname, port) != self.key:
            self.drop()
            return None
        if not self._done.wait(self.timeout + 5.0):  # create_connection's own timeout ends it first
            self.drop()
            return None
        with self._lock:
            sock, self._sock = self._sock, None
        if self._error is not None:
            raise self._error
        return sock

    def drop(self) -> None:
        """Nobody will use it: close the socket now, or as soon as the connect ends."""
        with self._lock:
            self._dropped = True
            sock, self._sock = self._sock, None
        if sock is not None:
            _close_quietly(sock)


def _channel_to(prev: Any, ep: Endpoint, via: Endpoint, opts: ConnectOptions) -> Any:
    paramiko = load_paramiko()

    timeout = ep.connect_timeout or opts.connect_timeout
    try:
        return prev.open_channel("direct-tcpip", (ep.hostname, ep.port), ("127.0.0.1", 0), timeout=timeout)
    except paramiko.ChannelException as exc:
        raise TransportError(
            f"{_label(opts, ep)}: jump host {via.display} could not connect to {ep.hostname}:{ep.port}: "
            f"{exc.text or exc}",
            hint="check that the target's address/port are right as seen from the jump host and that "
            "the jump host allows TCP forwarding (AllowTcpForwarding)",
        ) from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"{_label(opts, ep)}: through jump host {via.display}: {exc}") from None


def _handshake(sock: Any, ep: Endpoint, opts: ConnectOptions, *, jump: str | None, is_target: bool) -> Any:
    paramiko = load_paramiko()

    label = _label(opts, ep, is_target)
    timeout = ep.connect_timeout or opts.connect_timeout
    t = transport_class()(sock)
    if opts.abort is not None:
        try:
            opts.abort.track(t, label)
        except TransportError:
            t.close()
            raise
    t.banner_timeout = t.handshake_timeout = t.auth_timeout = timeout  # every wait of the handshake
    t.channel_timeout = timeout
    try:
        names = [ep.host_key_alias] if ep.host_key_alias else [host_pattern(ep.hostname, ep.port)]
        files = (
            [opts.known_hosts] if opts.known_hosts else list(ep.known_hosts_files) or ["~/.ssh/known_hosts"]
        )
        kh = KnownHosts(files + list(ep.global_known_hosts_files), record_to=files[0])
        sec = t.get_security_options()
        sec.key_types = kh.preferred_algorithms(names, tuple(sec.key_types))
        # AES-GCM first: paramiko's CTR ciphers pay for a separate HMAC per packet in Python (1 GB of
        # output: ~12 s with aes128-ctr + hmac-sha2-256, ~8 s with aes128-gcm); the rest stay as fallbacks
        gcm = tuple(c for c in sec.ciphers if c.endswith("-gcm@openssh.com"))
        sec.ciphers = gcm + tuple(c for c in sec.ciphers if c not in gcm)
        try:
            t.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(
                f"{label}: SSH handshake with {ep.hostname}:{ep.port} failed: {exc or type(exc).__name__}",
                hint="is it an SSH server on that port? (ssh -v shows the same handshake)",
            ) from None
        if not t.is_active() or not t.initial_kex_done:  # e.g. the banner never came (banner_timeout)
            why = t.get_exception() or f"no answer within {timeout:g}s"
            raise TransportError(
                f"{label}: SSH handshake with {ep.hostname}:{ep.port} failed: {why}",
                hint="is the host (or its sshd) hung, or a firewall dropping packets?",
            )
        key = t.get_remote_server_key()
        strict = (ep.strict_host_key_checking or "").lower()
        trust_new = opts.trust_new_hosts or strict in ("accept-new", "no", "off")
        kh.verify(
            host=f"{opts.host or ep.alias}" + ("" if is_target else f" (jump host {ep.display})"),
            names=names,
            key_type=key.get_name(),
            blob=key.asbytes(),
            trust_new=trust_new,
            hostname=ep.hostname,
            port=ep.port,
            jump=jump,
        )
        _authenticate(t, ep, opts, label)
        interval = ep.server_alive_interval if ep.server_alive_interval is not None else opts.keepalive
        count = ep.server_alive_count_max if ep.server_alive_count_max is not None else opts.keepalive_count
        liveness.MONITOR.watch(t, interval, count, label)
        return t
    except (TransportError, HostKeyError):
        t.close()
        raise
    except BaseException as exc:
        t.close()
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise TransportError(f"{label}: {type(exc).__name__}: {exc}") from None


def _load_key(path: str, tried: list[str]) -> Any:
    paramiko = load_paramiko()

    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        return None
    except paramiko.PasswordRequiredException:
        tried.append(f"{path} (encrypted: add it to ssh-agent)")
    except (paramiko.SSHException, OSError, ValueError) as exc:
        tried.append(f"{path} (unreadable: {exc})")
    return None


def _candidate_keys(ep: Endpoint, opts: ConnectOptions, tried: list[str]) -> list[tuple[str, Any]]:
    paramiko = load_paramiko()

    out: list[tuple[str, Any]] = []
    for path in ep.identity_files:
        key = _load_key(path, tried)
        if key is not None:
            out.append((path, key))
        elif not os.path.exists(path):
            tried.append(f"{path} (no such file)")
    if opts.allow_agent and os.environ.get("SSH_AUTH_SOCK") and not ep.identities_only:
        try:
            agent_keys = paramiko.Agent().get_keys()
        except Exception:
            agent_keys = ()
        out.extend((f"agent key {k.fingerprint}", k) for k in agent_keys)
    if opts.look_for_keys and not ep.identity_files:
        for p in DEFAULT_KEYS:
            path = os.path.expanduser(p)
            if os.path.exists(path):
                key = _load_key(path, tried)
                if key is not None:
                    out.append((path, key))
    return out


def _auth_publickey_pipelined(t: Any, username: str, key: Any) -> list[str]:
    """paramiko's Transport.auth_publickey, with the signed USERAUTH_REQUEST sent right behind the
    SERVICE_REQUEST instead of after the server's SERVICE_ACCEPT: one round trip less (the server
    handles its messages in order; OpenSSH's sshd does). Not for RSA keys: their signature algorithm
    depends on the server's EXT_INFO (server-sig-algs), which may not have been read yet."""
    paramiko = load_paramiko()
    from paramiko.auth_handler import AuthHandler

    class Pipelined(AuthHandler):
        def _request_auth(self) -> None:
            super()._request_auth()
            accept = paramiko.Message()
            accept.add_string("ssh-userauth")
            accept.rewind()
            super()._parse_service_accept(accept)  # builds, signs and sends the USERAUTH_REQUEST now

        def _parse_service_accept(self, m: Any) -> None:  # the request is already on its way
            pass

    if not t.is_active() or not t.initial_kex_done:
        raise paramiko.SSHException("No existing session")
    done = threading.Event()
    t.auth_handler = Pipelined(t)
    t.auth_handler.auth_publickey(username, key, done)
    return t.auth_handler.wait_for_response(done)


def _authenticate(t: Any, ep: Endpoint, opts: ConnectOptions, label: str) -> None:
    paramiko = load_paramiko()

    tried: list[str] = []
    allowed: list[str] | None = None
    for what, key in _candidate_keys(ep, opts, tried):
        if allowed is not None and "publickey" not in allowed:
            break
        try:
            if allowed is None and key.get_name() != "ssh-rsa":
                _auth_publickey_pipelined(t, ep.user, key)
            else:
                t.auth_publickey(ep.user, key)
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
            tried.append(f"{what} (server does not accept public keys)")
            continue
        except paramiko.AuthenticationException:
            tried.append(f"{what} (rejected)")
            continue
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{label}: connection lost while authenticating: {exc}") from None
        if t.is_authenticated():
            return
        tried.append(f"{what} (partial success: more factors needed)")
    if ep.password is not None:
        try:
            t.auth_password(ep.user, ep.password)
            if t.is_authenticated():
                return
        except paramiko.AuthenticationException:
            tried.append("password (rejected)")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{label}: connection lost while authenticating: {exc}") from None
    if not tried:
        tried.append("no key, agent or password available")
    raise TransportError(
        f"{label}: authentication failed for {ep.display}; tried: {'; '.join(tried)}",
        hint="set ansible_user / ansible_ssh_private_key_file (or IdentityFile in ~/.ssh/config), "
        "load the key into ssh-agent, or set ansible_password",
    )
