"""Ansible's filters and tests that playbooks use beyond the basics (ansible.builtin and the
ansible.utils / community.general ones), written to return what ansible-core returns. ansible is
not imported: tests/render/test_ansible_parity.py compares them with ansible-core's own Templar.

- ``bool``: ansible-core 2.19's reading ('yes'/'on'/'true'/'1' true, 'no'/'off'/'false'/'0' false,
  anything else is ``value == 1``: 'maybe' is False, as Ansible reads it).
- ``split``, ``to_uuid``, ``product``, ``extract``.
- ``password_hash``: crypt(3) hashes (sha512/sha256/md5) as passlib computes them for Ansible.
- ``ipaddr``/``ipv4``/``ipv6`` (ansible.utils) on Python's ``ipaddress``.
- ``json_query`` (community.general) on ``jmespath``.
- the ``version`` test with ``version_type`` loose | strict | semver | semantic | pep440.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import operator
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2

from runbook.model.lazyre import lazy_re
from runbook.render.filters import FilterError

_BOOL_TRUE = {"yes", "on", "true", "1"}
_BOOL_FALSE = {"no", "off", "false", "0"}


def ansible_bool(value: Any) -> bool:
    """ansible-core's ``bool`` filter (plugins/filter/core.py to_bool)."""
    if isinstance(value, str):
        check: Any = value.lower()
    elif isinstance(value, int):
        check = str(value).lower()
    else:
        check = value
    try:
        if check in _BOOL_TRUE:
            return True
        if check in _BOOL_FALSE:
            return False
        return bool(check == 1)
    except TypeError:
        return False


def split(value: Any, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return str(value).split(sep, maxsplit)


UUID_NAMESPACE_ANSIBLE = uuid.UUID("361E6D51-FAEC-444A-9079-341386DA8E2E")


def to_uuid(value: Any, namespace: Any = UUID_NAMESPACE_ANSIBLE) -> str:
    ns = namespace if isinstance(namespace, uuid.UUID) else uuid.UUID(str(namespace))
    return str(uuid.uuid5(ns, str(value)))


def product(*iterables: Iterable, repeat: int = 1) -> list:
    return [list(t) for t in itertools.product(*iterables, repeat=repeat)]


def extract(item: Any, container: Any, morekeys: Any = None) -> Any:
    value = container[item]
    for key in [] if morekeys is None else morekeys if isinstance(morekeys, list) else [morekeys]:
        value = value[key]
    return value


# ------------------------------------------------------------------------------ password_hash
_CRYPT_IDS = {
    "md5": "1",
    "md5_crypt": "1",
    "sha256": "5",
    "sha256_crypt": "5",
    "sha512": "6",
    "sha512_crypt": "6",
}
_SALT_SIZE = {"1": 8, "5": 16, "6": 16}
_SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _crypt_hash(password: str, setting: str) -> str:
    """crypt(3) through the C library (Python's crypt module, deprecated but present up to 3.12)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt as _crypt  # type: ignore[import-not-found]
        except ImportError:  # pragma: no cover - Python 3.13+
            raise FilterError("password_hash needs Python's crypt module (Python <= 3.12)") from None
    result = _crypt.crypt(password, setting)
    if not result or result.startswith("*"):
        raise FilterError(f"password_hash: the C library refused the hash setting {setting.split('$')[1]!r}")
    return result


@jinja2.pass_context  # never folded at compile time: a new salt on every render
def _password_hash(_context: Any, value: Any, hashtype: str = "sha512", salt: str | None = None, salt_size: int | None = None,
                   rounds: int | None = None, ident: str | None = None) -> str:  # fmt: skip
    crypt_id = _CRYPT_IDS.get(str(hashtype))
    if crypt_id is None:
        raise FilterError(f"password_hash: {hashtype!r} is not supported (use sha512, sha256 or md5)")
    if salt is None:
        import secrets

        salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(salt_size or _SALT_SIZE[crypt_id]))
    salt = str(salt)
    if not re.fullmatch(r"[./0-9A-Za-z]+", salt):
        raise FilterError("password_hash: the salt may hold only the characters ./0-9A-Za-z")
    setting = f"${crypt_id}$"
    if rounds is not None and crypt_id != "1":
        setting += f"rounds={int(rounds)}$"
    return _crypt_hash(str(value), setting + salt[:16])


# ------------------------------------------------------------------------------ ipaddr
def _ip(value: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int):
            return ipaddress.ip_interface(value)
        return ipaddress.ip_interface(str(value).strip())
    except ValueError:
        return None


def ipaddr(value: Any, query: str = "", version: int | None = None) -> Any:
    """ansible.utils.ipaddr: the value if it is an address/network (a list: the ones that are),
    else False; with a query, that part of it."""
    if isinstance(value, list):
        out = [r for v in value if (r := ipaddr(v, query, version)) not in (False, None)]
        return out
    iface = _ip(value)
    if iface is None or (version is not None and iface.version != version):
        return False
    has_prefix = "/" in str(value)
    net = iface.network
    if query in ("", None):
        return value
    if query == "address":
        return str(iface.ip)
    if query == "net":
        return str(net) if has_prefix and iface.ip == net.network_address else False
    if query == "network":
        return str(net.network_address)
    if query == "netmask":
        return str(net.netmask)
    if query == "hostmask":
        return str(net.hostmask)
    if query == "prefix":
        return net.prefixlen
    if query == "broadcast":
        return str(net.broadcast_address) if iface.version == 4 else False
    if query in ("cidr", "subnet"):
        return str(net) if query == "subnet" else str(iface)
    if query == "host":
        return str(iface) if has_prefix else f"{iface.ip}/{net.max_prefixlen}"
    if query == "size":
        return net.num_addresses
    if query == "private":
        return value if iface.ip.is_private else False
    if query == "public":
        return value if iface.ip.is_global else False
    if query == "ipv4":
        return value if iface.version == 4 else False
    if query == "ipv6":
        return value if iface.version == 6 else False
    if query == "revdns":
        return iface.ip.reverse_pointer + "."
    if query == "int":
        return f"{int(iface.ip)}/{net.prefixlen}"
    raise FilterError(f"ipaddr: unknown query {query!r}")


# ------------------------------------------------------------------------------ json_query
def json_query(data: Any, expr: str) -> Any:
    try:
        import jmespath
    except ImportError:  # pragma: no cover - a dependency of runbook
        raise FilterError("json_query needs the jmespath library") from None
    try:
        return jmespath.search(expr, _plain(data))
    except jmespath.exceptions.JMESPathError as exc:
        raise FilterError(f"json_query: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------ version
@functools.total_ordering
class LooseVersion:
    """distutils' LooseVersion (Ansible's module_utils.compat.version)."""

    _re = lazy_re(r"(\d+ | [a-z]+ | \.)", re.VERBOSE)

    def __init__(self, text: str):
        self.parts: list[Any] = [int(x) if x.isdigit() else x for x in self._re.split(text) if x and x != "."]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LooseVersion) and self.parts == other.parts

    def __lt__(self, other: LooseVersion) -> bool:
        return self.parts < other.parts


@functools.total_ordering
class StrictVersion:
    _re = lazy_re(r"^(\d+) \. (\d+) (\. (\d+))? ([ab](\d+))?$", re.VERBOSE | re.ASCII)

    def __init__(self, text: str):
        m = self._re.match(text)
        if not m:
            raise ValueError(f"invalid version number '{text}'")
        major, minor, patch, pre, pre_num = m.group(1, 2, 4, 5, 6)
        self.version = (int(major), int(minor), int(patch or 0))
        self.pre = (pre[0], int(pre_num)) if pre else None

    def _key(self) -> tuple:
        return (self.version, (1,) if self.pre is None else (0, *self.pre))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StrictVersion) and self._key() == other._key()

    def __lt__(self, other: StrictVersion) -> bool:
        return self._key() < other._key()


@functools.total_ordering
class SemanticVersion:
    """Semantic Versioning 2.0.0 (build metadata ignored in comparisons, as Ansible's)."""

    _re = lazy_re(
        r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
        r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
        r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
    )

    def __init__(self, text: str):
        m = self._re.match(text)
        if not m:
            raise ValueError(f"invalid semantic version '{text}'")
        self.core = tuple(int(x) for x in m.group(1, 2, 3))
        self.pre = (
            tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m.group(4).split("."))
            if m.group(4)
            else ()
        )

    def _key(self) -> tuple:
        return (self.core, (1,) if not self.pre else (0, self.pre))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemanticVersion) and self._key() == other._key()

    def __lt__(self, other: SemanticVersion) -> bool:
        return self._key() < other._key()


def _pep440(text: str) -> Any:
    from packaging.version import Version

    return Version(text)


_VERSION_TYPES: dict[str, Any] = {
    "loose": LooseVersion,
    "strict": StrictVersion,
    "semver": SemanticVersion,
    "semantic": SemanticVersion,
    "pep440": _pep440,
}
_OPS = {
    "==": "eq", "=": "eq", "eq": "eq", "<": "lt", "lt": "lt", "<=": "le", "le": "le",
    ">": "gt", "gt": "gt", ">=": "ge", "ge": "ge", "!=": "ne", "<>": "ne", "ne": "ne",
}  # fmt: skip


def version_compare(
    value: Any, version: Any, op: str = "eq", strict: bool | None = None, version_type: str | None = None
) -> bool:
    """Ansible's ``version`` test (plugins/test/core.py version_compare)."""
    if strict is not None and version_type is not None:
        raise FilterError("Cannot specify both 'strict' and 'version_type'")
    if not value:
        raise FilterError("Input version value cannot be empty")
    if not version:
        raise FilterError("Version parameter to compare against cannot be empty")
    cls: Any = LooseVersion
    if strict:
        cls = StrictVersion
    elif version_type:
        if version_type not in _VERSION_TYPES:
            raise FilterError(
                f"Invalid version type ({version_type}). Must be one of "
                + ", ".join(map(repr, _VERSION_TYPES))
            )
        cls = _VERSION_TYPES[version_type]
    if op not in _OPS:
        raise FilterError(f"Invalid operator type ({op}). Must be one of " + ", ".join(map(repr, _OPS)))
    try:
        return bool(getattr(operator, _OPS[op])(cls(str(value)), cls(str(version))))
    except Exception as exc:
        raise FilterError(f"Version comparison failed: {exc}") from None


ANSIBLE_FILTERS: dict[str, Any] = {
    "bool": ansible_bool,
    "split": split,
    "to_uuid": to_uuid,
    "product": product,
    "extract": extract,
    "password_hash": _password_hash,
    "ipaddr": ipaddr,
    "ipv4": lambda v, q="": ipaddr(v, q, 4),
    "ipv6": lambda v, q="": ipaddr(v, q, 6),
    "json_query": json_query,
}
# FQCN spellings: ansible.builtin.split, ansible.utils.ipaddr, community.general.json_query ...
ANSIBLE_FILTERS.update({f"ansible.builtin.{k}": v for k, v in list(ANSIBLE_FILTERS.items())
                        if k not in ("ipaddr", "ipv4", "ipv6", "json_query")})  # fmt: skip
ANSIBLE_FILTERS.update({f"ansible.utils.{k}": ANSIBLE_FILTERS[k] for k in ("ipaddr", "ipv4", "ipv6")})
ANSIBLE_FILTERS["community.general.json_query"] = json_query

ANSIBLE_TESTS: dict[str, Any] = {
    "version": version_compare,
    "version_compare": version_compare,
    "ansible.builtin.version": version_compare,
}
