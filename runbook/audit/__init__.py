"""The signed, tamper-evident audit trail.

One hash-chained JSON Lines file per run (``writer.AuditWriter``, an EventBus subscriber), sealed
with Ed25519 signatures (``keys``), verified offline (``verify``), shown (``show``), exported as
self-contained bundles (``export``), optionally mirrored to an append-only PostgreSQL table
(``sinks.postgres.PostgresSink``). Record format: ``records``; hashing: ``chain``, ``canonical``.
"""

from runbook.audit.keys import AllowedSigners, Signer, generate_key, load_signing_key
from runbook.audit.verify import Report, RunReport, verify_directory, verify_file
from runbook.audit.writer import AuditWriter

__all__ = [
    "AllowedSigners",
    "AuditWriter",
    "Report",
    "RunReport",
    "Signer",
    "generate_key",
    "load_signing_key",
    "verify_directory",
    "verify_file",
]
