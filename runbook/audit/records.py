"""Turn engine events into audit records (everything except ``seq``, ``prev`` and ``hash``).

Record fields (absent when empty; canonical types only, see ``canonical``):

  seq, ts, run_id, event            always (``ts`` is the event's UTC time, ISO 8601 with ``Z``)
  host, step, phase, outcome, rc    from the event
  duration                          seconds as a fixed 6-decimal string (``"1.250000"``)
  command                           from ``data["command"]`` (already redacted by the engine)
  stdout_sha256, stderr_sha256      SHA-256 of ``data["stdout"]``/``data["stderr"]`` (the raw text is
                                    dropped); a ``step.output`` line becomes ``data.line_sha256``
  data                              every other ``data`` key of the event, passed through
  prev, hash                        the chain (see ``chain``)
First record of a run only: format ("runbook-audit/1"), key_id and public_key of the signer (absent
when unsigned), prev_run {run_id, final_hash} (absent for the first run of a directory).
Seal records (event "seal"): head, final, key_id, sig (see ``seal_payload``).

Secrets, defence in depth (the engine redacts before emitting; this layer checks again): the
``redact`` callable runs over every string value; any value whose key looks like a credential
(PASSWORD, TOKEN, SECRET, KEY except key_id/public_key, DSN, PASS, CREDENTIAL; case-insensitive
substring) becomes ``"***"``; in any string, ``scheme://user:password@`` gets its password masked and
``password=value``-like pairs (password/passwd/pwd/passphrase/token/secret/api_key in the name) their
value.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Protocol

from runbook.audit.canonical import canonical_bytes, fix_surrogates
from runbook.render.secrets import MASK, mask_credentials

FORMAT = "runbook-audit/1"
SEAL_TYPE = "runbook-audit-seal/1"
GENESIS = "0" * 64
_SAFE_INT = 2**53

_SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "DSN", "PASS", "CREDENTIAL")
_NOT_SECRET = frozenset({"key_id", "public_key"})
_OUTPUT_KEYS = ("stdout", "stderr")


class EventLike(Protocol):
    """What the writer reads from an event (``runbook.execute.events.Event`` fits)."""

    kind: str
    run_id: str
    host: str | None
    step: str | None
    phase: str | None
    outcome: str | None
    rc: int | None
    duration: float | None
    data: Mapping[str, Any]
    ts: str


@lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    if name.lower() in _NOT_SECRET:
        return False
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


@lru_cache(maxsize=4096)
def _key(k: Any) -> str:
    return fix_surrogates(str(k))


class Scrubber:
    """Redacts, masks and normalises values in one walk (the hot path of the writer)."""

    def __init__(self, redact: Callable[[str], str] | None = None):
        self._redact = redact

    def text(self, value: str) -> str:
        if self._redact is not None:
            value = self._redact(value)
            if not isinstance(value, str):
                value = str(value)
        return mask_credentials(value)

    def value(self, value: Any) -> Any:
        t = type(value)
        if t is str:
            return self.text(value)
        if value is None or t is bool:
            return value
        if t is int:
            return value if -_SAFE_INT <= value <= _SAFE_INT else str(value)
        if t is float:
            return f"{value:.6f}" if math.isfinite(value) else None
        if isinstance(value, Mapping):
            return self.mapping(value)
        if t is list or t is tuple:
            return [self.value(v) for v in value]
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self.value(int(value))
        if isinstance(value, float):
            return self.value(float(value))
        if isinstance(value, (set, frozenset)):
            items = [self.value(v) for v in value]
            return sorted(items, key=canonical_bytes)
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).hex()
        return self.text(str(value))  # Secret-like objects render themselves masked

    def mapping(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = _key(k)
            out[key] = MASK if (v is not None and is_secret_key(key)) else self.value(v)
        return out


def digest_text(text: Any) -> str:
    if not isinstance(text, (bytes, bytearray)):
        text = fix_surrogates(str(text)).encode("utf-8")
    return hashlib.sha256(text).hexdigest()


def utc_ts(ts: Any) -> str:
    s = str(ts)
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def event_record(event: EventLike, scrub: Scrubber) -> dict[str, Any]:
    """The record body for one event (without seq/prev/hash)."""
    text = scrub.text
    rec: dict[str, Any] = {"event": str(event.kind), "run_id": str(event.run_id), "ts": utc_ts(event.ts)}
    if event.host is not None:
        rec["host"] = text(str(event.host))
    if event.step is not None:
        rec["step"] = text(str(event.step))
    if event.phase is not None:
        rec["phase"] = text(str(event.phase))
    if event.outcome is not None:
        rec["outcome"] = text(str(event.outcome))
    if event.rc is not None:
        rec["rc"] = scrub.value(event.rc)
    if event.duration is not None:
        rec["duration"] = scrub.value(float(event.duration))
    raw = event.data
    if not raw:
        return rec
    data = dict(raw) if isinstance(raw, Mapping) else {"value": raw}
    for stream in _OUTPUT_KEYS:
        if stream in data or f"{stream}_sha256" in data:
            out = data.pop(stream, None)
            given = data.pop(f"{stream}_sha256", None)
            if out is not None:
                rec[f"{stream}_sha256"] = digest_text(scrub.value(out) if isinstance(out, str) else out)
            elif isinstance(given, str):
                rec[f"{stream}_sha256"] = text(given)
    if isinstance(data.get("diffs"), list):  # --diff: what a file was and became is kept as digests
        data["diffs"] = [
            {k: v for k, v in d.items() if k != "diff"} | {"diff_sha256": digest_text(scrub.value(str(d.get("diff") or "")))}
            if isinstance(d, Mapping) else d
            for d in data["diffs"]
        ]
    if "line" in data and rec["event"] == "step.output":
        data["line_sha256"] = digest_text(scrub.value(data.pop("line")))
    command = data.pop("command", None)
    if command is not None:
        rec["command"] = scrub.value(command)
    if data:
        rec["data"] = scrub.mapping(data)
    return rec


def seal_payload(run_id: str, seq: int, head: str, final: bool) -> bytes:
    """The exact bytes an Ed25519 seal signature covers.

    Canonical JSON of ``{"final": <bool>, "head": <hash of record seq-1>, "run_id": <run id>,
    "seq": <seq of the seal record itself>, "type": "runbook-audit-seal/1"}``, e.g.
    ``{"final":true,"head":"ab..","run_id":"r1","seq":42,"type":"runbook-audit-seal/1"}``.
    """
    return canonical_bytes(
        {"final": bool(final), "head": head, "run_id": run_id, "seq": seq, "type": SEAL_TYPE}
    )
