"""Vault as Ansible users run it: --vault-id label@source (file, script, *-client script, prompt),
--vault-password-file, --ask-vault-pass, ANSIBLE_VAULT_PASSWORD_FILE / ANSIBLE_VAULT_IDENTITY_LIST,
ansible.cfg's vault settings; labels matched from the ``$ANSIBLE_VAULT;1.2;AES256;label`` header.
Ciphertexts come from ansible-core's own VaultLib (and the ansible-vault CLI); decrypted values are
secrets: never in the output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.core.conftest import Project

pytest.importorskip("ansible", reason="ansible-core not installed")

from ansible.parsing.vault import VaultLib, VaultSecret

PROD_PW, DEV_PW = "prod-pass-7f3a", "dev-pass-19bc"
PROD_VALUE, DEV_VALUE = "prod-secret-4d2e91", "dev-secret-88ac07"


def encrypt(text: str, password: str, label: str | None = None) -> str:
    return VaultLib([(label or "default", VaultSecret(password.encode()))]).encrypt(
        text.encode(), vault_id=label
    ).decode()


def inline(text: str, password: str, label: str | None = None, indent: int = 4) -> str:
    pad = " " * indent
    return "!vault |\n" + "".join(f"{pad}{line}\n" for line in encrypt(text, password, label).splitlines())


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("RUNBOOK_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST", "ANSIBLE_ASK_VAULT_PASS",
                "ANSIBLE_CONFIG", "ANSIBLE_VAULT_ID_MATCH"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def two_secret_runbook(project: Project) -> Path:
    """A runbook with a prod- and a dev-labelled inline vault value, writing both to files."""
    return project.runbook(
        "r",
        "hosts: localhost\nvars:\n"
        f"  prod_value: {inline(PROD_VALUE, PROD_PW, 'prod')}"
        f"  dev_value: {inline(DEV_VALUE, DEV_PW, 'dev')}"
        "steps:\n"
        "  - shell: \"printf %s {{ prod_value | quote }} > prod.out; printf %s {{ dev_value | quote }} > dev.out;"
        " echo [{{ prod_value }}]\"\n",
    )


def assert_decrypted(project: Project, res) -> None:
    assert res.exit_code == 0, res.stdout + res.stderr
    assert (project.root / "prod.out").read_text() == PROD_VALUE
    assert (project.root / "dev.out").read_text() == DEV_VALUE
    assert PROD_VALUE not in res.stdout + res.stderr  # a vault value is a secret by origin


def test_several_vault_ids_files_and_password_scripts(project: Project, tmp_path: Path) -> None:
    two_secret_runbook(project)
    (tmp_path / "dev.pw").write_text(DEV_PW + "\n")
    script(tmp_path / "prod-pw.py", f"print({PROD_PW!r})\n")  # a plain password script: its stdout
    ids = ["--vault-id", f"dev@{tmp_path / 'dev.pw'}", "--vault-id", f"prod@{tmp_path / 'prod-pw.py'}"]
    res, doc = project.exec_json("r", *ids)
    assert_decrypted(project, res)
    out = doc["hosts"]["localhost"]["steps"][0]["stdout"]
    assert out.startswith("[") and PROD_VALUE not in out


def test_client_script_gets_vault_id_label(project: Project, tmp_path: Path) -> None:
    """A script named *-client is asked `--vault-id LABEL`, once per label, as Ansible asks it."""
    two_secret_runbook(project)
    log = tmp_path / "calls.log"
    client = script(
        tmp_path / "keyring-client.py",
        f"""
        import sys
        open({str(log)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
        label = sys.argv[sys.argv.index("--vault-id") + 1]
        pw = {{"prod": {PROD_PW!r}, "dev": {DEV_PW!r}}}.get(label)
        if pw is None:
            sys.stderr.write("no such vault id\\n")
            sys.exit(2)
        print(pw)
        """,
    )
    res = project.exec("r", "--vault-id", f"prod@{client}", "--vault-id", f"dev@{client}")
    assert_decrypted(project, res)
    assert log.read_text().splitlines() == ["--vault-id prod", "--vault-id dev"]


def test_client_script_that_knows_no_such_id_is_a_clear_error(project: Project, tmp_path: Path) -> None:
    project.runbook("r", f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW, 'prod').rstrip()}\nsteps:\n  - shell: 'echo {{{{ v }}}}'\n")
    client = script(tmp_path / "kr-client", "import sys\nsys.stderr.write('unknown id\\n')\nsys.exit(2)\n")
    res = project.exec("r", "--vault-id", f"staging@{client}")
    assert res.exit_code == 2
    assert "did not find a secret for vault-id=staging" in res.stderr and "unknown id" in res.stderr


def test_password_script_via_password_file_option_decrypts_inline_values(project: Project, tmp_path: Path) -> None:
    """The case that used to fail with "cannot decrypt vault value": an executable password file."""
    project.runbook(
        "r",
        f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW).rstrip()}\nsteps:\n"
        "  - shell: \"printf %s {{ v | quote }} > prod.out\"\n",
    )
    pw = script(tmp_path / "get-pw.sh", f"print({PROD_PW!r})\n")
    res = project.exec("r", "--vault-password-file", str(pw))
    assert res.exit_code == 0, res.stderr
    assert (project.root / "prod.out").read_text() == PROD_VALUE


def test_identity_list_and_password_file_from_environment(project: Project, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    two_secret_runbook(project)
    (tmp_path / "dev.pw").write_text(DEV_PW)
    script(tmp_path / "prod.sh", f"print({PROD_PW!r})\n")
    monkeypatch.setenv("ANSIBLE_VAULT_IDENTITY_LIST", f"dev@{tmp_path / 'dev.pw'}")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "prod.sh"))
    assert_decrypted(project, project.exec("r"))


def test_label_in_header_is_tried_first_then_the_others_in_order(project: Project, tmp_path: Path) -> None:
    """Encrypted under label 'prod' but the matching password is given as 'other': Ansible (with
    the default vault_id_match=False) still tries every secret, so it decrypts."""
    project.runbook(
        "r",
        f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW, 'prod').rstrip()}\nsteps:\n"
        "  - shell: \"printf %s {{ v | quote }} > prod.out\"\n",
    )
    (tmp_path / "wrong.pw").write_text("not-it")
    (tmp_path / "right.pw").write_text(PROD_PW)
    res = project.exec("r", "--vault-id", f"prod@{tmp_path / 'wrong.pw'}", "--vault-id", f"other@{tmp_path / 'right.pw'}")
    assert res.exit_code == 0, res.stderr
    assert (project.root / "prod.out").read_text() == PROD_VALUE


def test_no_matching_secret_names_the_ids_tried(project: Project, tmp_path: Path) -> None:
    project.runbook("r", f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW, 'prod').rstrip()}\nsteps:\n  - shell: 'echo {{{{ v }}}}'\n")
    (tmp_path / "dev.pw").write_text(DEV_PW)
    res = project.exec("r", "--vault-id", f"dev@{tmp_path / 'dev.pw'}")
    assert res.exit_code != 0
    assert "tried vault ids: dev" in res.stdout + res.stderr and "$ANSIBLE_VAULT;1.2;AES256;prod" in res.stdout + res.stderr
    assert DEV_PW not in res.stdout + res.stderr


def test_ask_vault_pass_and_prompt_source(project: Project, tmp_path: Path) -> None:
    two_secret_runbook(project)
    (tmp_path / "dev.pw").write_text(DEV_PW)
    res = project.cli("exec", "r", "-i", str(project.root / "inv"), "--ask-vault-pass",
                      "--vault-id", f"dev@{tmp_path / 'dev.pw'}", input=PROD_PW + "\n")  # fmt: skip
    assert_decrypted(project, res)
    assert "Vault password" in res.stderr
    (project.root / "prod.out").unlink()
    res = project.cli("exec", "r", "-i", str(project.root / "inv"), "--vault-id", "prod@prompt",
                      "--vault-id", f"dev@{tmp_path / 'dev.pw'}", input=PROD_PW + "\n")  # fmt: skip
    assert_decrypted(project, res)
    assert "Vault password (prod)" in res.stderr


def test_ansible_cfg_ask_vault_pass(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.runbook(
        "r",
        f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW).rstrip()}\nsteps:\n"
        "  - shell: \"printf %s {{ v | quote }} > prod.out\"\n",
    )
    (project.root / "ansible.cfg").write_text("[defaults]\nask_vault_pass = True\n")
    res = project.cli("exec", "r", "-i", str(project.root / "inv"), input=PROD_PW + "\n")
    assert res.exit_code == 0, res.stderr
    assert "Vault password" in res.stderr and (project.root / "prod.out").read_text() == PROD_VALUE


def test_ansible_cfg_vault_settings(project: Project, tmp_path: Path) -> None:
    two_secret_runbook(project)
    (project.root / "secrets").mkdir()
    (project.root / "secrets" / "dev.pw").write_text(DEV_PW)
    (project.root / "secrets" / "prod.pw").write_text(PROD_PW)
    (project.root / "ansible.cfg").write_text(
        "[defaults]\nvault_identity_list = dev@secrets/dev.pw\nvault_password_file = secrets/prod.pw\n"
    )
    assert_decrypted(project, project.exec("r"))


def test_missing_password_file_is_an_error_only_if_no_other_secret(project: Project, tmp_path: Path) -> None:
    project.runbook(
        "r",
        f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW, 'prod').rstrip()}\nsteps:\n"
        "  - shell: \"printf %s {{ v | quote }} > prod.out\"\n",
    )
    (tmp_path / "prod.pw").write_text(PROD_PW)
    res = project.exec("r", "--vault-id", f"gone@{tmp_path / 'nope'}", "--vault-id", f"prod@{tmp_path / 'prod.pw'}")
    assert res.exit_code == 0, res.stderr
    (project.root / "prod.out").unlink()
    res = project.exec("r", "--vault-id", f"gone@{tmp_path / 'nope'}")
    assert res.exit_code == 2 and "was not found" in res.stderr
    assert not (project.root / "prod.out").exists()


@pytest.mark.slow
def test_vault_ids_on_an_inventory_match_ansible_inventory(project: Project, tmp_path: Path) -> None:
    """A whole-file vault group_vars (label prod, via ansible-vault itself) and an inline dev value:
    `runbook inventory --vault-id ...` decrypts what `ansible-inventory --vault-id ...` decrypts."""
    if not shutil.which("ansible-vault"):
        pytest.skip("ansible-vault not on PATH")
    inv = project.root / "site"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts").write_text("[web]\nw1 ansible_connection=local\n")
    gv = inv / "group_vars" / "web.yml"
    gv.write_text(f"db_password: {PROD_VALUE}\n")
    (tmp_path / "prod.pw").write_text(PROD_PW)
    (tmp_path / "dev.pw").write_text(DEV_PW)
    subprocess.run(["ansible-vault", "encrypt", "--vault-id", f"prod@{tmp_path / 'prod.pw'}", str(gv)],
                   check=True, capture_output=True)  # fmt: skip
    assert gv.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;prod")
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "w1.yml").write_text(f"api_token: {inline(DEV_VALUE, DEV_PW, 'dev', indent=2)}")
    ids = ["--vault-id", f"dev@{tmp_path / 'dev.pw'}", "--vault-id", f"prod@{tmp_path / 'prod.pw'}"]
    ours = project.cli("inventory", "-i", str(inv / "hosts"), "--host", "w1", *ids)
    assert ours.exit_code == 0, ours.stderr
    theirs = subprocess.run(["ansible-inventory", "-i", str(inv / "hosts"), "--host", "w1", *ids],
                            check=True, capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})  # fmt: skip
    got, want = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert got["db_password"] == want["db_password"] == PROD_VALUE
    assert set(got) == set(want)


@pytest.mark.slow
def test_vault_ids_reach_ansible_playbook_steps(project: Project, tmp_path: Path) -> None:
    """The run's vault ids go on to ansible-runner (answered at Ansible's own prompts, no password
    file): a playbook with values under two labels decrypts both."""
    pb = project.root / "playbooks" / "site.yml"
    pb.write_text(
        "- hosts: all\n  gather_facts: false\n  vars:\n"
        f"    prod_value: {inline(PROD_VALUE, PROD_PW, 'prod', indent=6)}"
        f"    dev_value: {inline(DEV_VALUE, DEV_PW, 'dev', indent=6)}"
        "  tasks:\n"
        f"    - copy: {{content: '{{{{ prod_value }}}}', dest: '{project.root / 'prod.out'}'}}\n"
        f"    - copy: {{content: '{{{{ dev_value }}}}', dest: '{project.root / 'dev.out'}'}}\n"
    )
    project.runbook("r", "hosts: all\nsteps:\n  - ansible.playbook: {playbook: site.yml}\n")
    project.inventory("localhost ansible_connection=local ansible_python_interpreter=python3\n")
    (tmp_path / "dev.pw").write_text(DEV_PW)
    client = script(tmp_path / "prod-client.py", f"print({PROD_PW!r})\n")
    res = project.exec("r", "--vault-id", f"prod@{client}", "--vault-id", f"dev@{tmp_path / 'dev.pw'}")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert (project.root / "prod.out").read_text() == PROD_VALUE
    assert (project.root / "dev.out").read_text() == DEV_VALUE
    assert PROD_PW not in res.stdout + res.stderr and DEV_PW not in res.stdout + res.stderr


def test_ask_vault_pass_without_an_answer_is_a_clear_error(project: Project) -> None:
    project.runbook("r", f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW).rstrip()}\nsteps:\n  - shell: 'true'\n")
    res = project.cli("exec", "r", "-i", str(project.root / "inv"), "--ask-vault-pass", input="")
    assert res.exit_code == 2, res.stdout + res.stderr
    assert "no answer to the vault password prompt" in res.stderr


def test_a_vault_encrypted_password_file_is_opened_with_the_earlier_secrets(project: Project, tmp_path: Path) -> None:
    """As Ansible: --vault-id dev@plain --vault-id prod@encrypted-with-dev."""
    project.runbook(
        "r",
        f"hosts: localhost\nvars:\n  v: {inline(PROD_VALUE, PROD_PW, 'prod').rstrip()}\nsteps:\n"
        "  - shell: \"printf %s {{ v | quote }} > prod.out\"\n",
    )
    (tmp_path / "dev.pw").write_text(DEV_PW)
    (tmp_path / "prod.pw.vault").write_text(encrypt(PROD_PW + "\n", DEV_PW, "dev"))
    res = project.exec("r", "--vault-id", f"dev@{tmp_path / 'dev.pw'}", "--vault-id", f"prod@{tmp_path / 'prod.pw.vault'}")
    assert res.exit_code == 0, res.stderr
    assert (project.root / "prod.out").read_text() == PROD_VALUE
