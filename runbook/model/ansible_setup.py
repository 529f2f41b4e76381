"""What an Ansible user's setup brings to a run: ansible.cfg / ANSIBLE_* settings, vault ids, and
the inventory sources -- the one model-level entry the CLI (or a session layer) calls.

    cfg = prepare(VaultOptions(vault_ids=("prod@~/.vault-prod",), ask_vault_pass=False))
    inv = load_inventory([])        # -i sources, else RUNBOOK_INVENTORY, ANSIBLE_INVENTORY,
                                    # ansible.cfg inventory, ./inventories/local; localhost if none

`load_inventory` also gives the inventory the settings' defaults: remote_user, private_key_file and
become* as the lowest-precedence connection variables, forks as the default parallelism.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from runbook.model import vault
from runbook.model.ansible_config import AnsibleConfig, load_config

_CONFIG: AnsibleConfig | None = None


def prepare(options: vault.VaultOptions | None = None) -> AnsibleConfig:
    """Read ansible.cfg and the environment once for this run, and configure the vault keyring
    (command-line vault options first, as Ansible orders them; the file's vault settings after)."""
    global _CONFIG
    cfg = load_config()
    _CONFIG = cfg
    o = options or vault.VaultOptions()
    vault.forget()  # this run reads its sources (and asks) afresh
    from_file = {k: v for k, v in cfg.values.items() if not cfg.origins.get(k, "").startswith("env:")}
    vault.configure(
        replace(
            o,
            ask_vault_pass=o.ask_vault_pass or bool(cfg.get("ask_vault_pass")),
            config_password_file=from_file.get("vault_password_file"),
            config_identity_list=tuple(from_file.get("vault_identity_list") or ()),
        )
    )
    return cfg


def config() -> AnsibleConfig:
    """The settings of this run (read afresh when `prepare` was not called)."""
    return _CONFIG if _CONFIG is not None else load_config()


def reset() -> None:
    """Forget the run's settings and vault options (a command ran in-process has ended)."""
    global _CONFIG
    _CONFIG = None
    vault.configure(vault.VaultOptions())
    vault.forget()


def host_key_refusal(cfg: AnsibleConfig | None = None) -> tuple[str, str] | None:
    """(message, hint) when ansible.cfg / ANSIBLE_HOST_KEY_CHECKING turns host key checking off."""
    cfg = cfg or config()
    if cfg.host_key_checking:
        return None
    where = cfg.origins.get("host_key_checking", "ansible.cfg")
    return (
        f"host_key_checking = False ({where}): runbook never connects without checking the host's "
        "SSH key (a man in the middle would get every command and secret of the run)",
        "remove the setting (or set ANSIBLE_HOST_KEY_CHECKING=True); to accept new hosts, record their "
        "keys: `ssh-keyscan HOST >> ~/.ssh/known_hosts` (check the fingerprint), --known-hosts FILE, or "
        "--trust-new-hosts (records unknown keys on first use; a changed key is still refused)",
    )


def default_sources(cfg: AnsibleConfig | None = None) -> list[str]:
    """Inventory sources when no -i is given: $RUNBOOK_INVENTORY (one source), else ANSIBLE_INVENTORY
    or ansible.cfg ``inventory`` (comma-separated paths, as Ansible reads them), else
    ./inventories/local. A value none of whose parts exists but holding a comma is a host list
    (``h1,h2,``), as runbook always read it."""
    env = os.environ.get("RUNBOOK_INVENTORY")
    if env:
        return [env]
    raw = os.environ.get("ANSIBLE_INVENTORY")
    if raw and "," in raw and not any(os.path.exists(p.strip()) for p in raw.split(",") if p.strip()):
        return [raw]
    paths = (cfg or config()).inventory
    if paths:
        return paths
    local = Path("inventories/local")
    return [str(local)] if local.exists() else []


def load_inventory(sources: Sequence[str], playbook_dir: str | None = None) -> Any:
    """The inventory of ``sources`` (default: `default_sources`; none at all: implicit localhost)
    with the settings' defaults applied."""
    from runbook.model.inventory import load_inventory as _load

    cfg = config()
    srcs = list(sources) or default_sources(cfg)
    inv = _load(srcs or ["localhost,"], playbook_dir=playbook_dir)
    inv.config_defaults = cfg.host_defaults()
    inv.default_forks = cfg.forks
    return inv
