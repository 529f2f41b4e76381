"""Run ansible-core's own `ansible-inventory --list` (and `InventoryManager.list_hosts`) on many inventories
in ONE Python process, so that hundreds of generated cases cost a couple of seconds instead of one
second each.

Usage (a script, never imported by runbook): ``python3 oracle_batch.py JOBS.json RESULTS.json`` where
JOBS.json is a list of ``{"cwd": dir, "sources": [...], "patterns": [...]}``. For every job the result
holds ``rc`` (0 or 1), ``stdout`` (the exact `--list` JSON text), ``stderr`` (warnings and errors) and
``hosts`` (pattern -> list of host names, or ``"ERROR <message>"``).

Each job runs the real `InventoryCLI` with ``ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED`` so that a source
Ansible cannot parse is an error instead of a warning and an empty inventory. File descriptors 1 and 2
are redirected to files per job, so nothing Ansible prints is lost.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback


def _run_job(job: dict, out_fd: int, err_fd: int) -> dict:
    from ansible.cli.inventory import InventoryCLI
    from ansible.parsing.vault import VaultSecretsContext
    from ansible.utils.display import Display

    Display()._warns.clear()
    from ansible.plugins.vars import host_group_vars
    from ansible.utils.context_objects import GlobalCLIArgs

    # host_group_vars caches by the source path as given (relative!) and by directory: per job only.
    for cache in (host_group_vars.FOUND, host_group_vars.NAK, host_group_vars.CANONICAL_PATHS):
        cache.clear()
    # Both are set once per process by a CLI run; every job here is a fresh CLI run.
    VaultSecretsContext._current = None
    GlobalCLIArgs._Singleton__instance = None
    os.chdir(job["cwd"])
    argv = ["ansible-inventory", "--list"]
    for source in job["sources"]:
        argv += ["-i", source]
    argv += job.get("extra", [])
    rc = 0
    error = ""
    cli = InventoryCLI(argv)
    try:
        cli.run()
    except SystemExit as exc:
        rc = int(exc.code or 0)
    except Exception as exc:  # the oracle's verdict, recorded as data
        rc = 1
        error = f"{type(exc).__name__}: {exc}"
    hosts: dict[str, object] = {}
    if rc == 0:
        inventory = cli.inventory
        localhost = inventory._inventory.localhost
        for pattern in job["patterns"]:  # each as if it were the only one (`ansible PATTERN --list-hosts`)
            inventory.clear_pattern_cache()
            inventory._inventory.localhost = localhost  # an implicit localhost is made per CLI run
            try:
                hosts[pattern] = [h.name for h in inventory.list_hosts(pattern)]
            except Exception as exc:
                hosts[pattern] = f"ERROR {exc}"
        for name in job.get("host_vars", []):  # `ansible-inventory --host NAME`
            host = inventory.get_host(name)
            if host is not None:
                hosts["--host " + name] = cli.dump(cli._get_host_variables(host))
        for limit in job.get("limits", []):  # `ansible all --limit LIMIT --list-hosts`
            inventory.clear_pattern_cache()
            try:
                inventory.subset(limit)
                hosts["--limit " + limit] = [h.name for h in inventory.list_hosts("all")]
            except Exception as exc:
                hosts["--limit " + limit] = f"ERROR {exc}"
            finally:
                inventory.subset(None)
    return {"rc": rc, "error": error, "hosts": hosts}


def main() -> None:
    jobs_path, results_path = sys.argv[1], sys.argv[2]
    with open(jobs_path) as fh:
        jobs = json.load(fh)
    os.environ["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] = "True"
    os.environ["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "False"
    os.environ["ANSIBLE_NOCOLOR"] = "1"
    results = []
    saved_out, saved_err = os.dup(1), os.dup(2)
    for job in jobs:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                result = _run_job(job, out.fileno(), err.fileno())
            except BaseException:
                result = {"rc": 99, "error": traceback.format_exc(), "hosts": {}}
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved_out, 1)
                os.dup2(saved_err, 2)
            out.seek(0)
            err.seek(0)
            result["stdout"] = out.read().decode("utf-8", "replace")
            result["stderr"] = err.read().decode("utf-8", "replace")
        results.append(result)
    with open(results_path, "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main()
