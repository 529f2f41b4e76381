"""End to end over real sshd, as an AWX job runs: the inventory is an executable script, the SSH user
and key come from ansible.cfg (remote_user, private_key_file), a host variable is an inline vault
value whose password comes from a vault-id client script. The CLI runs as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.sshd import ssh_lab  # noqa: F401 - fixture

pytest.importorskip("ansible", reason="ansible-core not installed")

from ansible.parsing.vault import VaultLib, VaultSecret

pytestmark = [pytest.mark.slow, pytest.mark.ssh]
ROOT = Path(__file__).resolve().parents[2]
SECRET = "awx-secret-3c9f71"


def test_script_inventory_cfg_defaults_and_vault_over_ssh(ssh_lab, tmp_path: Path) -> None:  # noqa: F811
    ciphertext = VaultLib([("prod", VaultSecret(b"pw-prod"))]).encrypt(SECRET.encode(), vault_id="prod").decode()
    hosts = ssh_lab.hosts[:2]
    data = {
        "web": {"hosts": [h.name for h in hosts]},
        "_meta": {"hostvars": {h.name: {"ansible_host": h.address, "ansible_port": h.port,
                                        "app_token": {"__ansible_vault": ciphertext}} for h in hosts}},
    }  # fmt: skip
    inv = tmp_path / "awx_inventory.py"
    inv.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({data!r}))\n")
    inv.chmod(0o755)
    client = tmp_path / "vault-client.py"
    client.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent("""
        import sys
        assert sys.argv[1:] == ["--vault-id", "prod"], sys.argv
        print("pw-prod")
        """)
    )
    client.chmod(0o755)
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\ninventory = {inv.name}\nremote_user = root\nprivate_key_file = {ssh_lab.key}\nforks = 2\n"
    )
    out = tmp_path / "out"
    (tmp_path / "r.yml").write_text(
        f"name: awx\nhosts: web\nsteps:\n"
        f"  - shell: 'mkdir -p {out} && printf %s {{{{ app_token | quote }}}} > {out}/{{{{ inventory_hostname }}}}; whoami'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runbook.cli.main", "exec", "r.yml", "--yes", "--output", "json",
         "--known-hosts", str(ssh_lab.known_hosts), "--audit-dir", str(tmp_path / "audit"),
         "--vault-id", f"prod@{client}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    for h in hosts:
        assert (out / h.name).read_text() == SECRET
        assert doc["hosts"][h.name]["steps"][0]["stdout"].strip() == "root"
    assert SECRET not in proc.stdout + proc.stderr
    audit = "".join(p.read_text() for p in (tmp_path / "audit").rglob("*") if p.is_file())
    assert SECRET not in audit
