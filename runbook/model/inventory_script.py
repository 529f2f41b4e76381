"""Executable inventory scripts, run as ansible-core 2.19's `script` inventory plugin runs them.

``SCRIPT --list`` prints JSON: groups (``{"hosts": [...], "vars": {...}, "children": [...]}``, or a
bare list of hosts), and ``_meta.hostvars``; without ``_meta.hostvars`` the script is asked
``SCRIPT --host NAME`` for each host. This is how AWX/AAP hands a job its inventory. Every run is
bounded in time ($RUNBOOK_INVENTORY_TIMEOUT seconds, default 120); a non-zero exit, output that is
not UTF-8 or not JSON, or a malformed structure is an InventoryError naming the script and quoting
its stderr.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from runbook.errors import InventoryError, Location
from runbook.model.values import NumberTooLarge, json_int

DEFAULT_TIMEOUT = 120.0


def timeout() -> float:
    try:
        return float(os.environ.get("RUNBOOK_INVENTORY_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT


def is_script(path: str) -> bool:
    """An executable file starting with ``#!`` (an executable without one is parsed as a static
    file, as Ansible does once running it fails)."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return False
    with open(path, "rb") as fh:
        return fh.read(2) == b"#!"


def run_script(path: str, args: list[str], shown: str) -> str:
    """The script's stdout for ``args`` (InventoryError on failure, with its stderr)."""
    import subprocess  # only when an inventory is a script: a static check of an INI/YAML one runs none

    cmd = [path, *args]
    limit = timeout()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InventoryError(
            f"Inventory script {shlex.join([shown, *args])!r} did not finish within {limit:g}s",
            location=Location(shown),
            hint="make the script faster, or raise RUNBOOK_INVENTORY_TIMEOUT (seconds)"
            + _stderr_hint(exc.stderr or b""),
        ) from None
    except OSError as exc:
        raise InventoryError(
            f"Failed to execute inventory script command {shlex.join([shown, *args])!r}: {exc.strerror or exc}",
            location=Location(shown),
            hint="check the script's #! line and that its interpreter is installed",
        ) from None
    if proc.returncode != 0:
        raise InventoryError(
            f"Inventory script {shlex.join([shown, *args])!r} returned non-zero exit code {proc.returncode}",
            location=Location(shown),
            hint="run it by hand to see why" + _stderr_hint(proc.stderr),
        )
    try:
        return proc.stdout.decode()
    except UnicodeDecodeError:
        raise InventoryError(
            "Inventory script result contained characters that cannot be interpreted as UTF-8",
            location=Location(shown),
            hint="the script must print UTF-8 JSON" + _stderr_hint(proc.stderr),
        ) from None


def _stderr_hint(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    if not text:
        return ""
    if len(text) > 2000:
        text = text[:2000] + " ..."
    return f"; its standard error:\n{text}"


def _loads(text: str, shown: str, what: str) -> Any:
    from runbook.model.inventory_yaml import _json_hook

    try:
        return json.loads(text, object_hook=lambda o: _json_hook(o, shown), parse_int=json_int)
    except NumberTooLarge as exc:
        raise InventoryError(f"{what}: {exc}", location=Location(shown)) from None
    except (ValueError, TypeError) as exc:
        raise InventoryError(
            f"{what} could not be parsed as JSON: {exc}",
            location=Location(shown),
            hint="an inventory script prints one JSON object: groups and _meta.hostvars",
        ) from None


def _type(value: Any) -> str:
    return {dict: "dict", list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(value), type(value).__name__
    ) if value is not None else "NoneType"


def parse_script_inventory(inv: Any, path: str, shown: str) -> None:
    """Run ``path --list`` (and ``--host`` per host without _meta.hostvars) and add what it prints."""
    data = _loads(run_script(path, ["--list"], shown), shown, "Inventory script result")

    def bad(message: str) -> InventoryError:
        return InventoryError(
            f"Failed to parse {shown} with script plugin: {message}",
            location=Location(shown),
            hint="an inventory script prints {\"GROUP\": {\"hosts\": [...], \"vars\": {...}, "
            "\"children\": [...]}, \"_meta\": {\"hostvars\": {HOST: {...}}}}",
        )

    if not isinstance(data, dict):
        raise bad(f"Value is {_type(data)!r} instead of 'dict'.")
    meta = data.get("_meta", ...)
    if meta is not ... and not isinstance(meta, dict):
        raise bad(f"Value contains '_meta' which is {_type(meta)!r} instead of 'dict'.")
    if isinstance(meta, dict) and "profile" in meta:
        profile = meta["profile"]
        if not isinstance(profile, str) or not profile.startswith("inventory_"):
            raise bad(f"Non-inventory profile {profile!r} is not allowed.")
    hostvars: dict | None = None
    hosts: list[str] = []
    for group, gdata in data.items():
        if group == "_meta":
            hostvars = gdata.get("hostvars")
            if not isinstance(hostvars, dict):
                raise bad(f"Value contains '_meta.hostvars' which is {_type(hostvars)!r} instead of 'dict'.")
            continue
        name = inv.add_group(group)
        if not isinstance(gdata, dict):
            gdata = {"hosts": gdata}
        elif not any(k in gdata for k in ("hosts", "vars", "children")):
            gdata = {"hosts": [name], "vars": gdata}
        if "hosts" in gdata:
            if not isinstance(gdata["hosts"], list):
                raise bad(f"Value contains '{name}.hosts' which is {_type(gdata['hosts'])!r} instead of 'list'.")
            for host in gdata["hosts"]:
                if not isinstance(host, str):
                    raise bad(f"host name {host!r} in group '{name}' is not a string")
                if host not in hosts:
                    hosts.append(host)
                inv.add_host(host, name)
        if "vars" in gdata:
            if not isinstance(gdata["vars"], dict):
                raise bad(f"Value contains '{name}.vars' which is {_type(gdata['vars'])!r} instead of 'dict'.")
            for k, v in gdata["vars"].items():
                inv.set_variable(name, k, v)
        for child in gdata.get("children") or ():
            inv.add_child(name, inv.add_group(child))
    for host in hosts:
        if hostvars is None:
            text = run_script(path, ["--host", host], shown)
            got = _loads(text, shown, f"Inventory script result for host {host!r}") if text.strip() else {}
        else:
            got = hostvars.get(host, {})
        if not isinstance(got, dict):
            raise bad(f"the variables of host {host!r} are {_type(got)!r} instead of 'dict'.")
        for k, v in got.items():
            inv.set_variable(host, k, v)
