"""The signed, tamper-evident audit trail.

One hash-chained JSON Lines file per run (``writer.AuditWriter``, an EventBus subscriber), sealed
with Ed25519 signatures (``keys``), verified offline (``verify``), shown (``show``), exported as
self-contained bundles (``export``), optionally mirrored to an append-only PostgreSQL table
(``sinks.postgres.PostgresSink``). Record format: ``records``; hashing: ``chain``, ``canonical``.
"""

from typing import Any

_EXPORTS = {
    "AllowedSigners": "runbook.audit.keys",
    "Signer": "runbook.audit.keys",
    "generate_key": "runbook.audit.keys",
    "load_signing_key": "runbook.audit.keys",
    "Report": "runbook.audit.verify",
    "RunReport": "runbook.audit.verify",
    "verify_directory": "runbook.audit.verify",
    "verify_file": "runbook.audit.verify",
    "AuditWriter": "runbook.audit.writer",
}


def __getattr__(name: str) -> Any:
    """Import on first use: writing a run must not pay for the verifier, and vice versa."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)


__all__ = sorted(_EXPORTS)
