from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runbook.audit.keys import AllowedSigners, generate_key, key_id, load_signing_key
from runbook.audit.verify import verify_directory
from runbook.errors import AuditError

from .helpers import write_run

needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")


def test_keygen_writes_0600_and_refuses_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "cfg" / "audit_ed25519"
    signer = generate_key(out, "ops@host")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    pub = Path(str(out) + ".pub").read_text()
    assert (
        pub == signer.public_line + "\n"
        and pub.startswith("ssh-ed25519 ")
        and pub.strip().endswith("ops@host")
    )
    assert signer.key_id.startswith("ed25519:SHA256:") and "=" not in signer.key_id
    before = out.read_bytes()
    with pytest.raises(AuditError, match="refusing to overwrite"):
        generate_key(out)
    assert out.read_bytes() == before
    Path(str(out) + ".pub").unlink()
    with pytest.raises(AuditError, match="refusing to overwrite"):
        generate_key(out)
    assert load_signing_key(out).key_id == signer.key_id


def test_refuses_group_readable_key(tmp_path: Path) -> None:
    out = tmp_path / "k"
    generate_key(out)
    out.chmod(0o640)
    with pytest.raises(AuditError, match="accessible by other users") as exc:
        load_signing_key(out)
    assert "chmod 600" in str(exc.value)


def test_pkcs8_pem_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "k.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    assert load_signing_key(path).key_id == key_id(key.public_key())


@pytest.mark.parametrize(
    "content, message",
    [(b"hello", "not a usable private key"), (b"", "not a usable private key")],
)
def test_bad_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(AuditError, match=message) as exc:
        load_signing_key(path)
    assert str(path) in str(exc.value)


@needs_ssh_keygen
def test_openssh_key_as_signer_and_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@ci", "-f", str(path)], check=True
    )
    signer = load_signing_key(path)
    fp = subprocess.run(
        ["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout
    assert signer.key_id == "ed25519:" + fp.split()[1]
    (tmp_path / "allowed").write_text(f"bob@ci {Path(f'{path}.pub').read_text()}")
    write_run(tmp_path / "audit", "r", signer)
    report = verify_directory(tmp_path / "audit", AllowedSigners.load(tmp_path / "allowed"))
    assert report.ok and report.runs[0].signer == "bob@ci"


@needs_ssh_keygen
def test_encrypted_openssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw-123456", "-f", str(path)], check=True)
    with pytest.raises(AuditError, match="encrypted"):
        load_signing_key(path)
    monkeypatch.setenv("RUNBOOK_AUDIT_KEY_PASSPHRASE", "pw-123456")
    assert load_signing_key(path).key_id.startswith("ed25519:")


@needs_ssh_keygen
def test_rsa_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "id_rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(path)], check=True)
    with pytest.raises(AuditError, match="must be ed25519"):
        load_signing_key(path)


def test_allowed_signers_format(tmp_path: Path) -> None:
    a, b = generate_key(tmp_path / "a", "a@x"), generate_key(tmp_path / "b", "b@x")
    text = (
        "# trusted audit signers\n\n"
        f"alice@example.com,ops@example.com {a.public_line}\n"
        f'namespaces="file" {b.public_line}\n'
        "bob ssh-rsa AAAAB3NzaC1yc2E= rsa keys are ignored\n"
    )
    trust = AllowedSigners.parse(text, "signers")
    assert set(trust.keys) == {a.key_id, b.key_id}
    assert trust.get(a.key_id).principals == ("alice@example.com", "ops@example.com")
    assert trust.get(b.key_id).principals == ()
    with pytest.raises(AuditError, match=r"signers:2: unreadable ssh-ed25519 public key"):
        AllowedSigners.parse("\nx ssh-ed25519 AAAAnotbase64!!\n", "signers")
    with pytest.raises(AuditError, match="cannot read allowed signers file"):
        AllowedSigners.load(tmp_path / "nope")
