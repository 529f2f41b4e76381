"""Self-contained audit bundles an auditor can verify offline.

``.tar.gz`` (default) holds ``runbook-audit/`` with README.txt, manifest.json, allowed_signers and
runs/<run file>.jsonl (byte-for-byte copies). A ``.json`` bundle is one object
``{"format": "runbook-audit-bundle/1", "readme", "manifest", "allowed_signers": [lines],
"runs": [{"name", "content"}]}``. Reading never extracts anything to disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from runbook.audit.chain import list_runs, parse_line
from runbook.audit.keys import AllowedSigners, parse_public_line
from runbook.audit.safeio import MAX_RUN_FILE, UnsafeFile, bounded_lines, open_regular, read_regular
from runbook.errors import AuditError, Location

BUNDLE_FORMAT = "runbook-audit-bundle/1"
_ROOT = "runbook-audit"

README = """Runbook audit bundle
====================

runs/*.jsonl    the audit records of the run(s), exactly as written (one canonical JSON record a line)
allowed_signers the public key(s) that signed the seals: {signers}
manifest.json   run ids, record counts, SHA-256 of each run file

Verify offline (no access to the machine that wrote it is needed):

    runbook audit verify THIS_BUNDLE --allowed-signers YOUR_TRUSTED_SIGNERS

Without --allowed-signers the keys shipped in the bundle are used and a warning is printed: then
compare their key ids with the operator's published key (`ssh-keygen -lf key.pub` prints the same
SHA256 fingerprint).

By hand: every record's "hash" is SHA-256 over the record's canonical JSON without its "hash"
member (sorted keys, no whitespace, UTF-8); "prev" is the previous record's hash; "seal" records
carry an Ed25519 signature ("sig", base64) over the canonical JSON of
{{"final": <bool>, "head": <prev hash>, "run_id": <run id>, "seq": <seal's seq>,
"type": "runbook-audit-seal/1"}}. A run is complete when its last record is a seal with
"final": true.
"""


@dataclass
class Bundle:
    runs: list[tuple[str, bytes]] = field(default_factory=list)
    signers: AllowedSigners | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what is wrong with the bundle itself

    def check_manifest(self) -> None:
        """Runs the manifest lists must be in the bundle, unchanged, and nothing else."""
        listed = self.manifest.get("runs") if isinstance(self.manifest, dict) else None
        if not isinstance(listed, list):
            self.problems.append("the bundle's manifest lists no runs (manifest.json missing or damaged)")
            return
        have = dict(self.runs)
        names = set()
        for item in listed:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                self.problems.append("the bundle's manifest has a malformed run entry")
                continue
            name = item["name"]
            names.add(name)
            if name not in have:
                self.problems.append(
                    f"run file {name} is listed in the bundle's manifest but missing from it"
                )
            elif item.get("sha256") != hashlib.sha256(have[name]).hexdigest():
                self.problems.append(
                    f"run file {name} differs from the manifest's SHA-256 (changed after export)"
                )
        for name in have:
            if name not in names:
                self.problems.append(f"run file {name} is not in the bundle's manifest (added after export)")


def check_run_file(data: bytes, where: str) -> None:
    """Refuse (AuditError) a run file that is not a sequence of JSON audit records, one a line."""
    hint = f"`runbook audit verify {where}` tells what is wrong with it"
    if not data:
        raise AuditError("the run file is empty (no records)", location=Location(where), hint=hint)
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # what follows the final newline
    for lineno, line in enumerate(lines, 1):
        rec = parse_line(line) if line and line.strip() == line else None
        if rec is None or type(rec.get("seq")) is not int:
            raise AuditError(
                "the run file is corrupt: this line is not an audit record",
                location=Location(where, lineno),
                hint=hint,
            )


def _first_record(data: bytes) -> dict[str, Any]:
    line = data.split(b"\n", 1)[0]
    return parse_line(line.strip()) or {}


def add_embedded_key(first: dict[str, Any], signers: AllowedSigners) -> None:
    """Add the public key a run's first record carries (``public_key``), if it is a readable one."""
    if isinstance(first.get("public_key"), str):
        try:
            signers.add(parse_public_line(first["public_key"]), ("from-run-record",))
        except (ValueError, UnsupportedAlgorithm):
            pass


def embedded_signers(paths: list[Path]) -> AllowedSigners:
    """The keys the runs themselves name (first line of each run file, read bounded): what a trail
    can be checked against for self-consistency when no allowed signers are given."""
    signers = AllowedSigners(source="the runs' own public_key records")
    for p in paths:
        try:
            with open_regular(p, "run file", MAX_RUN_FILE) as fh:
                first = next(bounded_lines(fh), b"")
        except (OSError, UnsafeFile):
            continue
        add_embedded_key(parse_line(first.strip()) or {}, signers)
    return signers


def export_runs(paths: list[Path], out: str | os.PathLike[str], trust: AllowedSigners | None = None) -> Path:
    """Write a bundle of run files; signer keys come from ``trust`` or, failing that, the runs."""
    dest = Path(out)
    signers = AllowedSigners(source="bundle")
    runs: list[tuple[str, bytes]] = []
    manifest: dict[str, Any] = {"format": BUNDLE_FORMAT, "created": datetime.now(UTC).isoformat(), "runs": []}
    for p in paths:
        try:
            data = read_regular(p, "run file", MAX_RUN_FILE)
        except OSError as exc:
            raise AuditError(f"cannot read run file: {exc.strerror}", location=Location(str(p)))
        check_run_file(data, str(p))
        first = _first_record(data)
        kid = first.get("key_id")
        if isinstance(kid, str) and kid not in signers:
            known = trust.get(kid) if trust is not None else None
            if known is not None:
                signers.add(known.public_key, known.principals)
            else:
                add_embedded_key(first, signers)
        runs.append((p.name, data))
        manifest["runs"].append(
            {
                "name": p.name,
                "run_id": first.get("run_id"),
                "key_id": kid,
                "sha256": hashlib.sha256(data).hexdigest(),
                "records": data.count(b"\n"),
                "prev_run": first.get("prev_run"),
            }
        )
    manifest["signers"] = list(signers.keys)
    readme = README.format(signers=", ".join(signers.keys) or "(none: unsigned runs)")
    signer_text = "".join(line + "\n" for line in signers.lines())
    try:
        if dest.suffix == ".json":
            doc = {
                "format": BUNDLE_FORMAT,
                "readme": readme,
                "manifest": manifest,
                "allowed_signers": signers.lines(),
                "runs": [{"name": n, "content": d.decode("utf-8", "replace")} for n, d in runs],
            }
            dest.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            with tarfile.open(dest, "w:gz") as tar:
                _add(tar, "README.txt", readme.encode())
                _add(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
                _add(tar, "allowed_signers", signer_text.encode())
                for name, data in runs:
                    _add(tar, f"runs/{name}", data)
    except OSError as exc:
        raise AuditError(f"cannot write bundle: {exc.strerror}", location=Location(str(dest)))
    return dest


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(f"{_ROOT}/{name}")
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def is_bundle(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    if p.suffix == ".json":
        return p.is_file()
    try:
        with open_regular(p, "bundle", MAX_RUN_FILE) as fh:
            return tarfile.is_tarfile(fh)
    except (OSError, UnsafeFile):
        return False


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read a bundle into memory; AuditError (with the file) when it is not a readable bundle."""
    p = Path(path)
    loc = Location(str(p))
    hint = "expected a bundle written by `runbook audit export`"
    if p.suffix == ".json":
        try:
            doc = json.loads(read_regular(p, "audit bundle", MAX_RUN_FILE).decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise AuditError(f"not a readable audit bundle ({exc})", location=loc, hint=hint)
        if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
            raise AuditError("not a runbook audit bundle (format field missing)", location=loc, hint=hint)
        manifest = doc.get("manifest")
        b = Bundle(manifest=manifest if isinstance(manifest, dict) else {})
        runs = doc.get("runs") if isinstance(doc.get("runs"), list) else []
        for n, item in enumerate(runs, 1):
            if isinstance(item, dict) and isinstance(item.get("content"), str):
                # surrogatepass: a lone surrogate stays visible as bytes that are not UTF-8 (-> corrupt line)
                b.runs.append((str(item.get("name", "?")), item["content"].encode("utf-8", "surrogatepass")))
            else:
                b.problems.append(f"run entry {n} of the bundle is not a run (name and content)")
        lines = doc.get("allowed_signers")
        if isinstance(lines, list):
            b.signers = AllowedSigners.parse("\n".join(str(x) for x in lines), f"{p}:allowed_signers")
        b.check_manifest()
        return b
    b = Bundle()
    total = 0
    try:
        with (
            open_regular(p, "audit bundle", MAX_RUN_FILE) as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tar,
        ):
            for member in tar:
                if not member.isfile():
                    continue
                if member.size > MAX_RUN_FILE or total + member.size > 4 * MAX_RUN_FILE:
                    b.problems.append(f"bundle member {member.name} is too large to be a run file; not read")
                    continue
                total += member.size
                name = member.name.split("/", 1)[1] if "/" in member.name else member.name
                fh = tar.extractfile(member)
                data = fh.read() if fh is not None else b""
                if name.startswith("runs/") and name.endswith(".jsonl"):
                    b.runs.append((name[5:], data))
                elif name == "allowed_signers":
                    b.signers = AllowedSigners.parse(data.decode("utf-8", "replace"), f"{p}:allowed_signers")
                elif name == "manifest.json":
                    try:
                        b.manifest = json.loads(data)
                    except ValueError:
                        b.manifest = {}
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise AuditError(f"not a readable audit bundle ({exc})", location=loc, hint=hint)
    b.runs.sort(key=lambda item: item[0])
    b.check_manifest()
    return b


def resolve_run(directory: str | os.PathLike[str], ref: str) -> Path:
    """A run file from a path, a run id, a unique prefix of either, or "latest"."""
    p = Path(ref)
    if p.is_file() or (os.sep in ref and (p.exists() or p.is_symlink())):
        return p  # a path: whatever it is, the reader refuses what is not a regular file
    files = list_runs(directory)
    if not files and not Path(directory).is_dir():
        raise AuditError(
            "audit directory not found",
            location=Location(str(directory)),
            hint="pass --dir DIR (default ./audit)",
        )
    if ref == "latest" and files:
        return files[-1]
    exact = [f for f in files if f.stem.split("_", 1)[-1] == ref or f.stem == ref]
    matches = exact or [
        f for f in files if f.stem.split("_", 1)[-1].startswith(ref) or f.name.startswith(ref)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AuditError(
            f"no run matching {ref!r} in {directory}",
            hint="give a run id, a unique prefix, or the run file's path (`ls` the audit directory)",
        )
    names = ", ".join(f.name for f in matches[:5])
    raise AuditError(f"{ref!r} matches {len(matches)} runs ({names}...)", hint="give a longer prefix")
