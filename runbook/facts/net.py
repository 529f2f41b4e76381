"""Listening TCP sockets from /proc/net/tcp{,6} or ``ss -ltnH``, and matching them to host:port."""

from __future__ import annotations

import ipaddress

LISTEN = "0A"
WILDCARDS = {"0.0.0.0", "::", "*", ""}


def _addr_v4(hexaddr: str) -> str:
    return str(ipaddress.IPv4Address(bytes.fromhex(hexaddr)[::-1]))


def _addr_v6(hexaddr: str) -> str:
    raw = b"".join(bytes.fromhex(hexaddr[i : i + 8])[::-1] for i in range(0, 32, 8))
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def parse_proc_net_tcp(text: str, ipv6: bool = False) -> list[tuple[str, int]]:
    """LISTEN sockets in /proc/net/tcp (or tcp6 with ipv6=True) as (address, port)."""
    out: list[tuple[str, int]] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != LISTEN:
            continue
        addr, _, port = parts[1].partition(":")
        try:
            ip = _addr_v6(addr) if ipv6 else _addr_v4(addr)
            out.append((ip, int(port, 16)))
        except ValueError:
            continue
    return out


def parse_ss(text: str) -> list[tuple[str, int]]:
    """``ss -ltnH`` lines ("LISTEN 0 4096 127.0.0.1:8000 0.0.0.0:*") as (address, port)."""
    out: list[tuple[str, int]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0].upper() == "STATE":
            continue
        local = parts[3] if parts[0].upper() == "LISTEN" else parts[2]
        host, _, port = local.rpartition(":")
        host = host.strip("[]").split("%", 1)[0]
        if port.isdigit():
            out.append((host, int(port)))
    return out


def normalize_host(host: str) -> list[str]:
    """The addresses a host argument stands for (``localhost`` is both loopbacks)."""
    host = host.strip().strip("[]")
    if host in ("localhost", "localhost.localdomain"):
        return ["127.0.0.1", "::1"]
    if host in WILDCARDS:
        return ["*"]
    return [str(ipaddress.ip_address(host))]  # ValueError for names: the caller says so clearly


def matching(listeners: list[tuple[str, int]], host: str, port: int) -> list[str]:
    """Listeners that accept connections to host:port (wildcard binds included), as "addr:port"."""
    wanted = normalize_host(host)
    hits: list[str] = []
    for addr, lport in listeners:
        if lport != port:
            continue
        for w in wanted:
            if w == "*" or addr == w or addr == "::" or addr == "*" or (addr == "0.0.0.0" and ":" not in w):
                shown = f"[{addr}]:{lport}" if ":" in addr else f"{addr}:{lport}"
                if shown not in hits:
                    hits.append(shown)
                break
    return hits
