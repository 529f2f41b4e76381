"""Host names, host ranges and host patterns, the way ansible-core 2.19 reads them.

Three jobs, all pure functions so the INI and YAML readers and `Inventory.select` share them:

* `parse_address` -- split ``host:port`` / ``[v6]:port`` and check that the rest is a host name,
  an IPv4 or an IPv6 address (ranges like ``web[01:03]`` allowed);
* `expand_hostname_range` -- ``db[01:10:3]-[a:c]`` -> list of names (numeric, zero padded,
  alphabetic, stepped, several ranges in one name);
* `split_host_pattern` / `select_hosts` -- ``web:&prod:!web[0]``, ``~re``, globs, subscripts.
"""

from __future__ import annotations

import fnmatch
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runbook.model.lazyre import lazy_re

# --- implicit localhost: the one home of the rule ---------------------------------------------
# ansible.constants.LOCALHOST: the names that mean "this machine". A host pattern term naming one of
# them selects Ansible's implicit localhost when the inventory has no such host (`select_hosts`), and
# a host so named is reached without SSH unless the inventory gives it an address (`connection_for`).

LOCALHOST_NAMES = ("127.0.0.1", "localhost", "::1")
IMPLICIT_LOCALHOST_VARS: Mapping[str, Any] = {"ansible_connection": "local"}


def is_localhost(name: str) -> bool:
    """Does a host name (or a single host pattern term) mean this machine?"""
    return isinstance(name, str) and name.strip() in LOCALHOST_NAMES


def implicit_host_vars(name: str, host_vars: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A host's variables, or those of Ansible's implicit localhost for a localhost name the
    inventory does not hold (it runs on this machine)."""
    if not host_vars and is_localhost(name):
        return dict(IMPLICIT_LOCALHOST_VARS)
    return host_vars or {}


def connection_for(name: str, host_vars: Mapping[str, Any]) -> str:
    """The connection of a host whose variables name none: local for a localhost name without an
    ``ansible_host`` address, else ssh."""
    return "local" if is_localhost(name) and "ansible_host" not in host_vars else "ssh"


def names_localhost(pattern: str) -> bool:
    """Does a host pattern hold a term (not a ``!``/``&`` one) that names localhost?"""
    try:
        terms = split_host_pattern(pattern)
    except (PatternError, ValueError):
        return False
    return any(is_localhost(t) for t in terms)


class RangeError(ValueError):
    """A ``[begin:end:step]`` host range that cannot be expanded."""


# --- addresses ---------------------------------------------------------------------------------

_NUM_RANGE = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_HEX_RANGE = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_V6 = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_V4 = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUM_RANGE})"
_LABEL = rf"(?:[\w]|{_ALNUM_RANGE})(?:[\w_-]|{_ALNUM_RANGE})*(?<![_-])"
_V4_ADDR = rf"(?:{_V4}\.){{3}}{_V4}"

_BRACKETED_HOSTPORT = lazy_re(r"^\[(.+)\]:([0-9]+)$")
_HOSTPORT = lazy_re(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
IPV4 = lazy_re(rf"^{_V4_ADDR}$", re.I)
_IPV6 = (
    "^("
    + "|".join(
        [
            rf"(?:{_V6}:){{7}}{_V6}",
            rf"(?:{_V6}:){{1,6}}:",
            rf"(?:{_V6}:)(?::{_V6}){{1,6}}",
            rf"(?:{_V6}:){{2}}(?::{_V6}){{1,5}}",
            rf"(?:{_V6}:){{3}}(?::{_V6}){{1,4}}",
            rf"(?:{_V6}:){{4}}(?::{_V6}){{1,3}}",
            rf"(?:{_V6}:){{5}}(?::{_V6}){{1,2}}",
            rf"(?:{_V6}:){{6}}(?::{_V6})",
            rf":(?::{_V6}){{1,6}}",
            rf"{_V6}?::",
            rf"(?:0:){{6}}(?:{_V6}\.){{3}}{_V6}",
            rf"::(?:ffff:)?(?:{_V6}\.){{3}}{_V6}",
            rf"(?:0:){{5}}ffff:(?:{_V6}\.){{3}}{_V6}",
        ]
    )
    + ")$"
)
_HOSTNAME = lazy_re(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I | re.UNICODE)


_IPV6_ADDRESS = lazy_re(_IPV6, re.I)  # ~10 ms to compile: most inventories never need it


def is_ipv6(address: str) -> bool:
    """An IPv6 address (every form of one has a ':'; the test of one that has none is free)."""
    return ":" in address and _IPV6_ADDRESS.match(address) is not None


def parse_address(address: str, allow_ranges: bool = False) -> tuple[str, int | None]:
    """Return ``(host, port)``; raise ValueError when `address` is not a host identifier."""
    port = None
    for rx in (_BRACKETED_HOSTPORT, _HOSTPORT):
        m = rx.match(address)
        if m:
            address, port = m.group(1), int(m.group(2))
    if not (IPV4.match(address) or is_ipv6(address) or _HOSTNAME.match(address)):
        raise ValueError(f"Not a valid network hostname: {address}")
    if not allow_ranges and "[" in address:
        raise ValueError("Detected range in host but was asked to ignore ranges")
    return address, port


def short_hostname(name: str) -> str:
    """`inventory_hostname_short`: IP addresses stay whole, names lose their domain."""
    if IPV4.match(name) or is_ipv6(name):
        return name
    return name.split(".")[0]


# --- ranges ------------------------------------------------------------------------------------


# One inventory line may name this many hosts through its ranges: more is a typo (web[1:1000000]),
# and would take minutes and gigabytes to expand.
MAX_RANGE_HOSTS = 100_000


def expand_hostname_range(line: str) -> list[str]:
    """Expand the first ``[a:b(:step)]`` of `line`, recursively (same quirks as Ansible)."""
    parts = line.replace("[", "|", 1).replace("]", "|", 1).split("|")
    if len(parts) != 3:
        raise RangeError(f"unbalanced or misplaced brackets in host range {line!r}")
    head, nrange, tail = parts
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise RangeError("host range must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise RangeError("host range must specify end value")
    fill: Callable[[object], str] = str
    if beg[0] == "0" and len(beg) > 1:
        width = len(beg)
        if width != len(end):
            raise RangeError("host range must specify equal-length begin and end formats")

        def fill(x: object) -> str:
            return str(x).zfill(width)

    seq: Sequence[object]
    try:
        try:
            i_beg = string.ascii_letters.index(beg)
            i_end = string.ascii_letters.index(end)
            if i_beg > i_end:
                raise RangeError("host range must have begin <= end")
            seq = list(string.ascii_letters[i_beg : i_end + 1 : int(step)])
        except RangeError:
            raise
        except ValueError:  # not an alphabetic range
            seq = range(int(beg), int(end) + 1, int(step))
    except RangeError:
        raise
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise RangeError(f"a number in host range [{nrange[:40]}...] has more than 4300 digits") from None
        raise RangeError(f"invalid host range [{nrange}]: {exc}") from None

    if len(seq) > MAX_RANGE_HOSTS:
        raise RangeError(f"the range [{nrange[:40]}] names {len(seq):,} hosts (at most {MAX_RANGE_HOSTS:,})")
    out: list[str] = []
    for item in seq:
        name = f"{head}{fill(item)}{tail}"
        if "[" in name:
            out.extend(expand_hostname_range(name))
        else:
            out.append(name)
        if len(out) > MAX_RANGE_HOSTS:
            raise RangeError(f"the ranges of {line[:60]!r} name more than {MAX_RANGE_HOSTS:,} hosts")
    return out


def expand_hostpattern(pattern: str) -> tuple[list[str], int | None]:
    """Host key of an inventory line -> (names, port), like BaseInventoryPlugin._expand_hostpattern."""
    if not isinstance(pattern, str):
        raise TypeError(f"Host pattern {pattern} must be a string.")
    try:
        host, port = parse_address(pattern, allow_ranges=True)
    except ValueError:
        host, port = pattern, None
    if "[" in host:
        return expand_hostname_range(host), port
    return [host], port


def parse_host_list(source: str) -> list[tuple[str, int | None]]:
    """``'h1,h2:2222,'`` -> [(host, port)] like the host_list plugin (no ranges; odd names kept whole)."""
    out: list[tuple[str, int | None]] = []
    for item in (i.strip() for i in source.split(",")):
        if item:
            try:
                out.append(parse_address(item, allow_ranges=False))
            except ValueError:
                out.append((item, None))
    return out


# --- host patterns -----------------------------------------------------------------------------

_PATTERN_WITH_SUBSCRIPT = lazy_re(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_PATTERN_WORDS = lazy_re(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


class PatternError(ValueError):
    """A host pattern Ansible itself would refuse (bad regex, subscript out of range)."""


def split_host_pattern(pattern: str | list[str]) -> list[str]:
    """``'a,b[1], c[2:3] , d'`` -> ``['a', 'b[1]', 'c[2:3]', 'd']``; ':' separates too."""
    if isinstance(pattern, list):
        return [p for item in pattern for p in split_host_pattern(item)]
    if "," in pattern:
        parts = pattern.split(",")
    else:
        try:
            parse_address(pattern, allow_ranges=True)
            parts = [pattern]
        except ValueError:
            parts = _PATTERN_WORDS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def _order_patterns(patterns: list[str]) -> list[str]:
    regular = [p for p in patterns if p and p[0] not in "!&"]
    inter = [p for p in patterns if p and p[0] == "&"]
    excl = [p for p in patterns if p and p[0] == "!"]
    return (regular or ["all"]) + inter + excl


def _match_list(items, pattern: str) -> list[str]:
    try:
        rx = re.compile(pattern[1:]) if pattern[0] == "~" else re.compile(fnmatch.translate(pattern))
    except re.error:
        raise PatternError(f"Invalid host list pattern: {pattern}") from None
    return [item for item in items if rx.match(item)]


def read_limit_files(pattern: str) -> list[str]:
    """A ``--limit`` value as Ansible's `InventoryManager.subset` reads it: its terms, each ``@file``
    replaced by the file's lines (one pattern per line, not split further)."""
    terms: list[str] = []
    for term in split_host_pattern(pattern):
        if not term.startswith("@"):
            terms.append(term)
            continue
        path = term[1:]
        if not os.path.exists(path):
            raise PatternError(f"Unable to find limit file {path}")
        if not os.path.isfile(path):
            raise PatternError(f'Limit starting with "@" must be a file, not a directory: {path}')
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                terms.extend(line.strip() for line in fh.read().split("\n"))
        except OSError as exc:
            raise PatternError(f"Unable to read limit file {path}: {exc.strerror}") from None
    return [t for t in terms if t]


def select_hosts(
    pattern: str | list[str],
    host_names: Sequence[str],
    group_names: Sequence[str],
    group_hosts: Callable[[str], list[str]],
    *,
    presplit: bool = False,
    localhost: str | None = None,
) -> list[str]:
    """Evaluate an Ansible host pattern.

    `host_names`/`group_names` are the inventory's hosts and groups in insertion order;
    `group_hosts(name)` returns the hosts of a group including its descendants, in Ansible order.
    With ``presplit=True`` `pattern` is a list of single patterns (e.g. from `read_limit_files`).
    A term naming localhost that matches nothing selects `localhost` (the inventory's first
    localhost-like host) or else Ansible's implicit localhost, named after the first such term.
    """
    hosts_set = set(host_names)
    cache: dict[str, list[str]] = {}
    implicit = [localhost] if localhost else []

    def enumerate_matches(expr: str) -> list[str]:
        results: list[str] = []
        groups = _match_list(group_names, expr)
        for g in groups:
            results.extend(group_hosts(g))
        if not groups or expr[0] == "~" or any(c in expr for c in ".?*["):
            results.extend(_match_list(host_names, expr))
        if not results and is_localhost(expr):
            implicit[:] = implicit or [expr]
            results = list(implicit)
        return results

    def match_one(p: str) -> list[str]:
        if p[0] in "&!":
            p = p[1:]
        if p in cache:
            return cache[p]
        expr, sub = p, None
        if p[0] != "~":
            m = _PATTERN_WITH_SUBSCRIPT.match(p)
            if m:
                expr, idx, start, _sep, end = m.groups()
                sub = (int(idx), None) if idx else (int(start), int(end) if end else -1)
        found = enumerate_matches(expr)
        if found and sub:
            first, last = sub
            try:
                if last:
                    found = found[first : (len(found) - 1 if last == -1 else last) + 1]
                else:
                    found = [found[first]]
            except IndexError:
                raise PatternError(f"No hosts matched the subscripted pattern '{p}'") from None
        cache[p] = found
        return found

    selected: list[str] = []
    terms = list(pattern) if presplit else split_host_pattern(pattern)
    for p in _order_patterns(terms):
        if p in hosts_set:
            selected.append(p)
            continue
        that = match_one(p)
        if p[0] == "!":
            drop = set(that)
            selected = [h for h in selected if h not in drop]
        elif p[0] == "&":
            keep = set(that)
            selected = [h for h in selected if h in keep]
        else:
            have = set(selected)
            selected.extend(h for h in that if h not in have)
    return list(dict.fromkeys(selected))
