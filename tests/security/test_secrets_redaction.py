"""Redaction and credential detection are linear in the text's length: no regular expression that
can backtrack over long runs (the old URL and key=value patterns took seconds on 10k letters and
never finished on 2 MB). The guards below are hang guards, not benchmarks: a quadratic scan of these
2 MB inputs takes hours."""

from __future__ import annotations

import time

import pytest

from runbook.render.secrets import (
    MASK,
    Redactor,
    collect_secrets,
    is_secret_header,
    is_secret_name,
    mask_credentials,
    url_passwords,
)

MB2 = 2_000_000
ADVERSARIAL = {
    "letters": "a" * MB2,
    "scheme-like runs": "a://" * (MB2 // 4),
    "userinfo without @": "http://u:" + "p" * MB2,
    "user without colon": "http://" + "u" * MB2,
    "keyword runs": "password" * (MB2 // 8),
    "keyword= runs": "password=" * (MB2 // 9),
    "keyword and spaces": "password" + " " * MB2,
    "colons": ":" * MB2,
    "ats": "@" * MB2,
    "://:": "://:" * (MB2 // 4),
    "words": "token secret api_key pwd " * (MB2 // 25),
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_every_scan_of_a_2mb_value_finishes(text: str) -> None:
    redactor = Redactor(["a" * 1000 + "b", "ab" * 500 + "c", "secret-value"])
    start = time.monotonic()
    redactor.redact(text)
    mask_credentials(text)
    url_passwords(text)
    collect_secrets({"big_token": text, "plain": text})
    assert time.monotonic() - start < 60, "a scan backtracked (hang guard, not a benchmark)"


def test_a_2mb_value_is_planned(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from runbook.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNBOOK_AUDIT", "0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    (tmp_path / "big.yml").write_text("api_token: " + "ab" * (MB2 // 2) + "\nnote: " + "x" * MB2 + "\n")
    (tmp_path / "playbooks" / "p.yml").write_text(
        'hosts: localhost\nsteps:\n  - shell: "echo {{ api_token }} {{ note | length }}"\n'
    )
    start = time.monotonic()
    res = CliRunner().invoke(cli, ["plan", "p", "-i", "inv", "-e", "@big.yml"])
    assert res.exit_code == 0, res.output
    assert f"would run echo {MASK} 2000000" in res.output
    assert time.monotonic() - start < 120, "plan of a 2 MB value hung (hang guard)"


def test_every_occurrence_of_every_secret_is_masked_and_overlaps_merge() -> None:
    r = Redactor(["hunter22", "er22xyz", "s3cr3t"])
    assert r.redact("a hunter22 b s3cr3ts3cr3t c hunter22xyz") == f"a {MASK} b {MASK} c {MASK}"
    assert r.redact("https://deploy:pa55@git.example.com/x") == f"https://deploy:{MASK}@git.example.com/x"
    assert r.redact("") == "" and r.redact("nothing here") == "nothing here"


def test_a_text_redacted_before_a_secret_was_learnt_is_masked_after_it() -> None:
    """Short texts' results are remembered (the same host and step names at every event): a secret
    added later (a registered no_log value, a password= seen in output) masks them from then on."""
    r = Redactor(["first-secret"])
    text = "deploy s3cr3t-token-9 to web1 with first-secret"
    assert r.redact(text) == r.redact(text) == f"deploy s3cr3t-token-9 to web1 with {MASK}"
    r.add(["s3cr3t-token-9"])
    assert r.redact(text) == f"deploy {MASK} to web1 with {MASK}"
    assert r.redact("web1") == "web1"  # shorter than every secret: not even scanned
    r.add(["web1"])
    assert r.redact("web1") == MASK and r.redact(text) == f"deploy {MASK} to {MASK} with {MASK}"


def test_credentials_in_free_text_are_masked() -> None:
    text = "PGPASSWORD=abc psql; api_key: \"q w\" https://u:p@h/?access_token=zz&x=1 password = 'a b'"
    assert mask_credentials(text) == (
        f"PGPASSWORD={MASK} psql; api_key: \"{MASK}\" https://u:{MASK}@h/?access_token={MASK}&x=1 "
        f"password = '{MASK}'"
    )
    assert mask_credentials("see https://example.com:8443/x, tokens=") == "see https://example.com:8443/x, tokens="
    assert url_passwords("postgres://app:pw1@h/db password='x y' pwd=zz token=t") == ["pw1", "x y", "zz"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [("db_password", True), ("API_TOKEN", True), ("github_pat", True), ("db_pwd", True),
     ("bearer", True), ("session_cookie", True), ("ssh_private_key_file", False),
     ("public_key", False), ("key_id", False), ("compose_path", False), ("pattern", False),
     ("app_name", False)],
)  # fmt: skip
def test_credential_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("header", "secret"),
    [("Authorization", True), ("proxy-authorization", True), ("Cookie", True), ("X-API-Key", True),
     ("X-Deploy-Token", True), ("Private-Token", True), ("X-Auth-Email", True), ("Content-Type", False),
     ("Accept", False), ("X-Request-Id", False)],
)  # fmt: skip
def test_credential_headers(header: str, secret: bool) -> None:
    assert is_secret_header(header) is secret
