"""Ansible-Vault: the keyring (vault ids, password files, password scripts, prompts) and vault values.

The keyring is built exactly as ansible-core's CLI builds it (`CLI.setup_vault_secrets`): the
configured identity list (``ANSIBLE_VAULT_IDENTITY_LIST`` / ansible.cfg ``vault_identity_list``)
first, then each ``--vault-id label@source``, then each ``--vault-password-file``, then
``ANSIBLE_VAULT_PASSWORD_FILE`` (or ``RUNBOOK_VAULT_PASSWORD_FILE``, or ansible.cfg
``vault_password_file``), then ``--ask-vault-pass``. A source is ``prompt``, a file (its content,
stripped) or an executable: a password script (its stdout) -- a ``*-client`` script gets
``--vault-id LABEL`` as Ansible gives it. Decryption goes through ansible-core's own `VaultLib`,
which tries the secret whose label matches the ``$ANSIBLE_VAULT;1.2;AES256;label`` header first,
then the others in order.

Secrets are loaded lazily, on the first decryption (so nothing prompts unless a vault value is
used), once per process. Every plaintext is a secret by origin: callers mask it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from runbook.errors import Location, RenderError

DEFAULT_IDENTITY = "default"  # ansible.constants.DEFAULT_VAULT_IDENTITY
SCRIPT_TIMEOUT = 120.0  # seconds a password script may take (it may prompt on the terminal itself)
CLIENT_UNKNOWN_RC = 2  # a client script's "no secret for this vault id"
PASSWORD_FILE_ENV = ("RUNBOOK_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE")
IDENTITY_LIST_ENV = "ANSIBLE_VAULT_IDENTITY_LIST"


class VaultError(RenderError):
    """A vault secret cannot be loaded or a vault text cannot be decrypted."""


@dataclass(frozen=True)
class VaultOptions:
    """What the command line says about vault secrets (`configure`); ansible.cfg and the
    environment add theirs when the keyring is built."""

    vault_ids: tuple[str, ...] = ()  # --vault-id [label@]source, in order
    password_files: tuple[str, ...] = ()  # --vault-password-file, in order
    ask_vault_pass: bool = False
    prompt: Callable[[str], str] | None = field(default=None, compare=False)
    config_password_file: str | None = None  # ansible.cfg [defaults] vault_password_file
    config_identity_list: tuple[str, ...] = ()  # ansible.cfg [defaults] vault_identity_list


_OPTIONS = VaultOptions()
_KEYRINGS: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
_PLAIN: dict[tuple[str, tuple[str, ...]], str] = {}  # (ciphertext, slugs) -> plaintext


def configure(options: VaultOptions) -> None:
    """Set the run's vault options (the CLI calls this once, before anything is read)."""
    global _OPTIONS
    _OPTIONS = options


def forget() -> None:
    """Drop the loaded secrets and plaintexts (a command that ran in-process has ended: the next
    one reads its sources and asks its prompts again)."""
    _KEYRINGS.clear()
    _PLAIN.clear()


def split_vault_id(slug: str) -> tuple[str | None, str]:
    """``label@source`` -> (label, source); a bare source has no label (Ansible's split_vault_id)."""
    if "@" not in slug:
        return None, slug
    label, source = slug.split("@", 1)
    return label, source


def vault_id_slugs(options: VaultOptions | None = None) -> tuple[str, ...]:
    """The keyring's entries in Ansible's order, as ``label@source`` slugs."""
    o = options or _OPTIONS
    env_ids = os.environ.get(IDENTITY_LIST_ENV)
    identity_list = (
        tuple(s.strip() for s in env_ids.split(",") if s.strip()) if env_ids else o.config_identity_list
    )
    slugs = list(identity_list) + list(o.vault_ids)
    files = list(o.password_files)
    env_file = next((os.environ[e] for e in PASSWORD_FILE_ENV if os.environ.get(e)), None)
    if env_file or o.config_password_file:
        files.append(env_file or o.config_password_file)  # type: ignore[arg-type]
    slugs += [f"{DEFAULT_IDENTITY}@{f}" for f in files]
    if o.ask_vault_pass:
        slugs.append(f"{DEFAULT_IDENTITY}@prompt_ask_vault_pass")
    return tuple(slugs)


def is_configured() -> bool:
    """Is any vault secret configured (so vault values can be decrypted before their use)?"""
    return bool(vault_id_slugs())


def has_prompt() -> bool:
    return any(split_vault_id(s)[1] in ("prompt", "prompt_ask_vault_pass") for s in vault_id_slugs())


def keyring() -> list[tuple[str, bytes]]:
    """The loaded secrets, (label, password) in order; loaded once per set of slugs. A source that
    cannot be read is an error only when no other source gave a secret (as in Ansible)."""
    slugs = vault_id_slugs()
    if slugs not in _KEYRINGS:
        import getpass  # the terminal prompt's module: only once a vault value is decrypted

        _KEYRINGS[slugs] = _load(slugs, _OPTIONS.prompt or getpass.getpass)
    return _KEYRINGS[slugs]


def _load(slugs: tuple[str, ...], prompt: Callable[[str], str]) -> list[tuple[str, bytes]]:
    secrets: list[tuple[str, bytes]] = []
    errors: list[VaultError] = []
    for slug in slugs:
        label, source = split_vault_id(slug)
        name = label or DEFAULT_IDENTITY
        if source in ("prompt", "prompt_ask_vault_pass"):
            text = "Vault password: " if source == "prompt_ask_vault_pass" else f"Vault password ({name}): "
            try:
                value = prompt(text).strip()
            except (EOFError, OSError):
                raise VaultError(
                    f"no answer to the vault password prompt ({name})",
                    hint="run on a terminal, or give --vault-id LABEL@FILE / --vault-password-file",
                ) from None
            if not value:
                raise VaultError(f"the vault password given at the prompt ({name}) is empty")
            secrets.append((name, value.encode()))
            continue
        try:
            secrets.append((name, read_secret(source, label, known=secrets)))
        except VaultError as exc:
            errors.append(exc)
    if errors and not secrets:
        raise errors[0]
    return secrets


def read_secret(source: str, label: str | None = None, known: list[tuple[str, bytes]] | None = None) -> bytes:
    """One password from a file, or from an executable's stdout (``*-client`` scripts get
    ``--vault-id LABEL``), as Ansible's get_file_vault_secret reads it; bounded in time. A password
    file that is itself vault-encrypted is decrypted with the secrets ``known`` so far (as Ansible)."""
    path = os.path.abspath(os.path.expanduser(os.path.expandvars(source)))
    if not os.path.exists(path):
        raise VaultError(
            f"The vault password file {path} was not found",
            location=Location(source),
            hint="check the path after --vault-id LABEL@ / --vault-password-file / ANSIBLE_VAULT_PASSWORD_FILE",
        )
    if os.path.isdir(path):
        raise VaultError(f"The vault password file provided '{path}' can not be a directory")
    if os.access(path, os.X_OK):
        client = os.path.splitext(source)[0].endswith("-client")
        argv = [path, "--vault-id", label] if client and label else [path]
        what = "vault password client script" if client else "vault password script"
        import subprocess  # a password script runs only on the first decryption (not in a static check)

        try:
            proc = subprocess.run(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if client else None,  # a plain script may prompt on stderr
                timeout=SCRIPT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise VaultError(
                f"{what} {path} did not answer within {SCRIPT_TIMEOUT:.0f}s",
                hint="the script must print the password on stdout and exit",
            ) from None
        except OSError as exc:
            raise VaultError(
                f"Problem running {what} {path} ({exc.strerror or exc})",
                hint="if this is not a script, remove the executable bit from the file",
            ) from None
        stderr = (proc.stderr or b"").decode(errors="replace").strip()
        if client and proc.returncode == CLIENT_UNKNOWN_RC:
            raise VaultError(
                f"Vault password client script {path} did not find a secret for vault-id={label}: {stderr}"
            )
        if proc.returncode != 0:
            raise VaultError(
                f"{what.capitalize()} {path} returned non-zero ({proc.returncode})"
                + (f" for vault-id={label}" if client else "")
                + (f": {stderr}" if stderr else ""),
            )
        value = proc.stdout.strip(b"\r\n")
        if not value:
            raise VaultError(f"Invalid vault password was provided from script ({path})")
        return value
    try:
        with open(path, "rb") as fh:
            value = fh.read().strip()
    except OSError as exc:
        raise VaultError(f"Could not read vault password file {path!r}: {exc.strerror or exc}") from None
    if value.startswith(b"$ANSIBLE_VAULT") and known:
        value = _decrypt_with(value, known, Location(source)).strip(b"\r\n")
    if not value:
        raise VaultError(f"Invalid vault password was provided from file ({path})")
    return value


def runner_vault() -> tuple[list[str], dict[str, str]]:
    """The run's vault secrets for an ansible-runner process, as AWX hands them over: one
    ``--vault-id LABEL@prompt`` argument per secret and the answer to each prompt (ansible-runner's
    ``passwords``, typed into Ansible's prompt through its pty) -- no password file, no password in
    argv. ([], {}) when no vault secret is configured."""
    import re

    if not is_configured():
        return [], {}
    args: list[str] = []
    answers: dict[str, str] = {}
    for label, password in keyring():
        pattern = rf"Vault password \({re.escape(label)}\):\s*?$"
        if pattern in answers:  # the same label twice: Ansible would prompt once per --vault-id
            continue
        args += ["--vault-id", f"{label}@prompt"]
        answers[pattern] = password.decode("utf-8", "surrogateescape")
    return args, answers


def decrypt_bytes(ciphertext: str | bytes, location: Location | None = None) -> bytes:
    """Decrypt one vault text with the keyring (VaultError when no secret is configured or none fits)."""
    secrets = keyring() if is_configured() else []
    if not secrets:
        raise VaultError(
            "an Ansible-Vault value is used but no vault password is configured",
            location=location,
            hint="give --vault-id LABEL@SOURCE, --vault-password-file FILE or --ask-vault-pass "
            "(or set ANSIBLE_VAULT_PASSWORD_FILE / RUNBOOK_VAULT_PASSWORD_FILE / ANSIBLE_VAULT_IDENTITY_LIST)",
        )
    return _decrypt_with(ciphertext, secrets, location)


def _decrypt_with(ciphertext: str | bytes, secrets: list[tuple[str, bytes]], location: Location | None) -> bytes:
    try:
        from ansible.parsing.vault import VaultLib, VaultSecret
    except ImportError:
        raise VaultError(
            "decrypting Ansible-Vault values needs ansible-core", hint="pip install 'runbook[ansible]'"
        ) from None
    lib = VaultLib([(label, VaultSecret(pw)) for label, pw in secrets])
    data = ciphertext.encode() if isinstance(ciphertext, str) else ciphertext
    try:
        return bytes(lib.decrypt(data))
    except Exception as exc:  # AnsibleError subclasses
        header = data.lstrip().split(b"\n", 1)[0].decode(errors="replace").strip()
        labels = ", ".join(label for label, _ in secrets)
        raise VaultError(
            f"cannot decrypt vault value: {str(exc).splitlines()[0]} (tried vault ids: {labels}; "
            f"header {header[:80]})",
            location=location,
            hint="give the vault id this value was encrypted with (--vault-id LABEL@SOURCE)",
        ) from None


@dataclass(frozen=True)
class VaultValue:
    ciphertext: str
    location: Location | None = None

    def __repr__(self) -> str:
        return "VaultValue(***)"

    def decrypt(self) -> str:
        key = (self.ciphertext, vault_id_slugs())
        if key not in _PLAIN:
            _PLAIN[key] = decrypt_bytes(self.ciphertext, self.location).decode("utf-8")
        return _PLAIN[key]

    def plaintext(self) -> str | None:
        """The plaintext when it can be decrypted without asking anyone (a password file or script is
        configured), else None: what the redactor learns before a run, so a value is masked even
        where it shows before its use."""
        if not is_configured() or (has_prompt() and vault_id_slugs() not in _KEYRINGS):
            return None
        try:
            return self.decrypt()
        except (RenderError, OSError, UnicodeDecodeError):
            return None
