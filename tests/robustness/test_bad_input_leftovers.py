"""Bad input that used to end in an internal error (exit 70), a hang or a poor message: integers past
Python's 4300-digit limit, numbers too large for a float, control characters in YAML inventories,
DSNs with spaces, a failed pre-flight that did not say why, a 2 MB inventory line.

Each is refused the way every other bad input is: exit 2, ``error: FILE:LINE[:COL]: what`` and what
to do, never a traceback; values only known at run time fail their step with a clear message."""

from __future__ import annotations

import json
import random
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from runbook.model import shellwords
from runbook.model.values import MAX_INT_DIGITS, number_problem
from tests.robustness.test_malformed_runbooks import run

HUGE = "9" * (MAX_INT_DIGITS + 700)  # more digits than Python converts
BIG = "1" + "0" * 400  # an integer no float holds
STEP = "steps:\n  - shell: echo hi\n"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for var, value in (("RUNBOOK_AUDIT", "0"), ("COLUMNS", "400"), ("NO_COLOR", "1")):
        monkeypatch.setenv(var, value)
    for var in ("RUNBOOK_PATH", "RUNBOOK_INVENTORY", "ANSIBLE_INVENTORY", "RUNBOOK_AUDIT_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inv").write_text("localhost ansible_connection=local\n")
    yield tmp_path


def output(result: Result) -> str:
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def refused(result: Result, where: str | None, says: str) -> None:
    """Exit 2, the message, the place (``path:line[:col]:``), no traceback or internal error."""
    out = output(result)
    assert result.exit_code == 2, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert says in out, out
    if where is not None:
        assert (where if where.endswith(":") else f"{where}:") in out, out


def playbook(root: Path, text: str, name: str = "bad") -> Path:
    path = root / "playbooks" / f"{name}.yml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------- integers past 4300 digits
RUNBOOK_HUGE = [
    ("var", f"hosts: localhost\nvars:\n  x: {HUGE}\n" + STEP, "3:6"),
    ("negative", f"hosts: localhost\nvars:\n  x: -{HUGE}\n" + STEP, "3:6"),
    ("underscores", f"hosts: localhost\nvars:\n  x: 1_{HUGE}\n" + STEP, "3:6"),
    ("in-list", f"hosts: localhost\nvars:\n  x: [1, {HUGE}]\n" + STEP, "3:10"),
    ("retries", f"hosts: localhost\nsteps:\n  - shell: echo\n    retries: {HUGE}\n", "4:14"),
    ("timeout", f"hosts: localhost\nsteps:\n  - shell: echo\n    timeout: {HUGE}\n", "4:14"),
    ("module-arg", f"hosts: localhost\nsteps:\n  - wait: {{seconds: {HUGE}}}\n", "3:21"),
    ("forks", f"hosts: localhost\nforks: {HUGE}\n" + STEP, "2:8"),
    ("defaults", f"hosts: localhost\ndefaults:\n  n: {HUGE}\n" + STEP, "3:6"),
]


@pytest.mark.parametrize(("text", "where"), [c[1:] for c in RUNBOOK_HUGE], ids=[c[0] for c in RUNBOOK_HUGE])
@pytest.mark.parametrize("command", ["validate", "plan", "exec", "show"])
def test_a_huge_integer_in_a_runbook_is_refused_where_it_is(root, text, where, command):
    path = playbook(root, text)
    args = (
        [command, "bad"]
        + ([] if command == "show" else ["-i", "inv"])
        + (["--yes"] if command == "exec" else [])
    )
    refused(run(*args), f"{path}:{where}", "digits is too large (at most 4300 digits are read)")


def test_a_huge_integer_in_a_vars_file_names_that_file(root):
    (root / "playbooks" / "more.yml").write_text(f"n: {HUGE}\n")
    playbook(root, "hosts: localhost\nvars_files: [more.yml]\n" + STEP)
    refused(run("validate", "bad", "-i", "inv"), f"{root / 'playbooks' / 'more.yml'}:1:4", "digits")


INVENTORY_HUGE = [
    ("yaml-host-var", "inv.yml", f"all:\n  hosts:\n    localhost:\n      x: {HUGE}\n", "inv.yml:4:10"),
    ("yaml-group-var", "inv.yml", f"all:\n  vars:\n    x: {HUGE}\n  hosts:\n    localhost:\n", "inv.yml:3:8"),
    (
        "json",
        "inv.json",
        json.dumps({"all": {"hosts": {"localhost": {}}}})[:-2] + f', "vars": {{"x": {HUGE}}}}}}}',
        "inv.json:1:",
    ),
    (
        "json-multiline",
        "inv.json",
        '{"all": {\n  "hosts": {"localhost": {\n    "x": ' + HUGE + "}}}}\n",
        "inv.json:3:10",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "where"), [c[1:] for c in INVENTORY_HUGE], ids=[c[0] for c in INVENTORY_HUGE]
)
@pytest.mark.parametrize("command", ["inventory", "validate", "plan"])
def test_a_huge_integer_in_an_inventory_is_refused_where_it_is(root, name, text, where, command):
    (root / name).write_text(text)
    playbook(root, "hosts: localhost\n" + STEP, "ok")
    args = ["inventory", "-i", name, "--list"] if command == "inventory" else [command, "ok", "-i", name]
    refused(run(*args), where, "digits")


def test_a_huge_integer_in_an_ini_inventory_stays_text_as_in_ansible(root):
    (root / "inv.ini").write_text(f"localhost ansible_connection=local x={HUGE}\n")
    result = run("inventory", "-i", "inv.ini", "--host", "localhost")
    assert result.exit_code == 0, output(result)
    assert json.loads(result.stdout)["x"] == HUGE


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (f'{{"x": {HUGE}}}', "digits"),
        (f'{{"x": [1, {{"y": -{HUGE}}}]}}', "digits"),
        (f"{{x: {HUGE}}}", "digits"),  # YAML flow style
        ("@huge.yml", "digits"),
        ("@huge.json", "digits"),
    ],
    ids=["json", "json-nested", "yaml-flow", "yaml-file", "json-file"],
)
@pytest.mark.parametrize("command", ["validate", "plan", "exec"])
def test_a_huge_integer_in_extra_vars_is_refused(root, extra, says, command):
    (root / "huge.yml").write_text(f"x: {HUGE}\n")
    (root / "huge.json").write_text(f'{{"x": {HUGE}}}')
    playbook(root, "hosts: localhost\n" + STEP, "ok")
    refused(
        run(command, "ok", "-i", "inv", "-e", extra, *(["--yes"] if command == "exec" else [])), None, says
    )


def test_a_huge_key_value_extra_var_is_a_string(root):
    playbook(root, "hosts: localhost\nsteps:\n  - shell: 'echo {{ x | length }}'\n", "ok")
    result = run("exec", "ok", "-i", "inv", "--yes", "--output", "json", "-e", f"x={HUGE}")
    assert result.exit_code == 0, output(result)
    assert json.loads(result.stdout)["hosts"]["localhost"]["steps"][0]["stdout"] == f"{len(HUGE)}\n"


@pytest.mark.parametrize(
    "value",
    ["abc", HUGE, "99999999", "0", "-1", "1e400", "22.5", "'{{ p }}' p=x", "''"],
    ids=["word", "huge", "too-big", "zero", "negative", "inf", "float", "template", "empty-quoted"],
)
@pytest.mark.parametrize("command", ["validate", "plan", "exec"])
def test_a_port_that_is_not_a_port_is_refused_naming_the_host(root, value, command):
    (root / "inv").write_text(f"h1 ansible_host=127.0.0.1 ansible_port={value}\n")
    playbook(root, "hosts: all\n" + STEP, "ok")
    result = run(command, "ok", "-i", "inv", *(["--yes"] if command == "exec" else []))
    if value == "''":  # empty: no port given, ssh's default (nothing listens in this test)
        assert result.exit_code != 70 and "internal error" not in output(result), output(result)
        return
    refused(result, None, "ansible_port must be a port number from 1 to 65535")
    assert "h1" in output(result)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (f"h[1:{HUGE}]", "more than 4300 digits"),
        ("h[1:100000000]", "names 100,000,000 hosts (at most 100,000)"),
        ("h[1:1000][1:1000]", "name more than 100,000 hosts"),
        (f"h[1:3:{HUGE}]", "more than 4300 digits"),
        ("h[0:9:0]", "must not be zero"),
    ],
    ids=["huge-end", "hundred-million", "product", "huge-step", "zero-step"],
)
@pytest.mark.parametrize("fmt", ["ini", "yaml"])
@pytest.mark.timeout(30)
def test_a_host_range_too_large_is_refused_quickly(root, pattern, says, fmt):
    if fmt == "ini":
        (root / "inv.ini").write_text(pattern + "\n")
    else:
        (root / "inv.ini").write_text(f"all:\n  hosts:\n    ? {pattern}\n    :\n")  # explicit: keys > 1024
        (root / "inv.ini").rename(root / "inv.yml")
    name = "inv.ini" if fmt == "ini" else "inv.yml"
    refused(run("inventory", "-i", name, "--list"), f"{name}:{1 if fmt == 'ini' else 3}", says)


# ------------------------------------------------------------------- numbers too large for a float
LITERAL_TOO_LARGE = [
    ("retries-1e400", "retries: 1e400", "4:5", "retries must be a finite number"),
    ("timeout-10e400-int", f"timeout: {BIG}", "4:5", "timeout must be at most 1,000,000,000"),
    ("delay-huge-int", f"delay: {BIG}", "4:5", "delay must be at most"),
    ("backoff-huge-string", f"backoff: '{BIG}'", "4:5", "backoff must be at most"),
    ("retries-too-many", "retries: 10000000000", "4:5", "retries must be at most"),
    ("timeout-negative-huge", f"timeout: -{BIG}", "4:5", "greater than 0"),
]


@pytest.mark.parametrize(
    ("keyword", "where", "says"), [c[1:] for c in LITERAL_TOO_LARGE], ids=[c[0] for c in LITERAL_TOO_LARGE]
)
@pytest.mark.parametrize("command", ["validate", "plan", "exec"])
def test_a_count_or_duration_too_large_is_refused_where_it_is(root, keyword, where, says, command):
    path = playbook(root, f"hosts: localhost\nsteps:\n  - shell: echo\n    {keyword}\n")
    refused(
        run(command, "bad", "-i", "inv", *(["--yes"] if command == "exec" else [])), f"{path}:{where}", says
    )


def test_a_runbook_timeout_too_large_is_refused(root):
    path = playbook(root, f"hosts: localhost\ntimeout: {BIG}\n" + STEP)
    refused(run("validate", "bad", "-i", "inv"), f"{path}:2:1", "timeout must be at most")


@pytest.mark.parametrize(
    "arg", [f"seconds: {BIG}", "seconds: 1e400", "seconds: .inf"], ids=["huge-int", "1e400", "inf"]
)
def test_a_module_number_no_float_holds_is_an_invalid_argument(root, arg):
    path = playbook(root, f"hosts: localhost\nsteps:\n  - wait: {{{arg}}}\n")
    refused(run("validate", "bad", "-i", "inv"), f"{path}:3:", "is not a finite number")


def test_a_duration_past_what_the_clock_takes_does_not_crash(root):
    """1e12 seconds is a number, but Event.wait() refuses it: the step's own timeout ends it."""
    playbook(root, "hosts: localhost\nsteps:\n  - wait: {seconds: 1e12}\n    timeout: 1\n", "long")
    result = run("exec", "long", "-i", "inv", "--yes", "--output", "json")
    assert result.exit_code == 1, output(result)
    assert "internal error" not in output(result)
    assert json.loads(result.stdout)["hosts"]["localhost"]["steps"][0]["msg"] == "timed out after 1s"


RUNTIME = [
    ("float-filter", "shell: 'echo {{ big | float }}'", "a number is too large"),
    ("times-float", "shell: 'echo {{ big * 1.0 }}'", "a number is too large"),
    ("divide", "shell: 'echo {{ big / 3 }}'", "a number is too large"),
    ("int-of-inf", "shell: \"echo {{ 'inf' | float | int }}\"", "template error"),
    ("to-text", "shell: 'echo {{ big ** 12 }}'", "more than 4300 digits"),
    ("retries", "shell: echo\n    retries: '{{ big }}'", "retries must be at most 1,000,000,000"),
    ("timeout", "shell: echo\n    timeout: '{{ big }}'", "timeout must be at most"),
    ("delay-neg", "shell: echo\n    delay: '{{ -big }}'", "delay must be at least 0"),
    ("module-arg", "wait: {seconds: '{{ big }}'}", "is not a finite number"),
]


@pytest.mark.parametrize(("step", "says"), [c[1:] for c in RUNTIME], ids=[c[0] for c in RUNTIME])
def test_numbers_too_large_at_run_time_fail_their_step_with_a_clear_message(root, step, says):
    path = playbook(root, f"hosts: localhost\nsteps:\n  - name: odd\n    {step}\n", "late")
    result = run("exec", "late", "-i", "inv", "--yes", "--output", "json", "-e", f'{{"big": {BIG}}}')
    out = output(result)
    assert result.exit_code in (1, 2), out
    assert "internal error" not in out and "Traceback" not in out, out
    odd = next(s for s in json.loads(result.stdout)["hosts"]["localhost"]["steps"] if s["name"] == "odd")
    assert odd["outcome"] == "failed" and says in odd["msg"], odd
    assert f"{path}:4:" in odd["msg"], odd


@pytest.mark.parametrize(
    ("value", "kw", "problem"),
    [
        (10**400, {}, "at most"),
        (-(10**400), {}, "at least 0"),
        (float("inf"), {}, "finite"),
        (float("nan"), {}, "finite"),
        ("1e400", {}, "finite"),
        (BIG, {}, "at most"),
        (1.5, {"integer": True}, "whole number"),
        (10**9, {}, None),
        (0, {"positive": True}, "greater than 0"),
        ("{{ x }}", {}, None),
    ],
)
def test_number_problem_never_converts_a_huge_integer_to_float(value, kw, problem):
    got = number_problem(value, **kw)
    assert (got is None) if problem is None else (problem in got), got


FACTS = [
    ("set-fact-product", "set_fact: {y: '{{ mid * mid }}'}", "more than the 4300 digits"),
    ("set-fact-in-list", "set_fact: {y: '{{ [1, mid * mid] }}'}", "more than the 4300 digits"),
    (
        "register-from-json",
        "set_fact: {y: \"{{ ('{\\\"n\\\": 1' ~ '0' * 5000 ~ '}') | from_json }}\"}",
        "5001 digits",
    ),
]


@pytest.mark.parametrize(("step", "says"), [c[1:] for c in FACTS if c[2]], ids=[c[0] for c in FACTS if c[2]])
@pytest.mark.parametrize("output_format", ["text", "json"])
def test_a_fact_too_large_to_store_fails_its_step(root, step, says, output_format):
    """A set_fact or registered value no state file, audit or JSON could hold is the step's failure."""
    path = playbook(
        root, f"hosts: localhost\nsteps:\n  - name: odd\n    {step}\n  - shell: echo next\n", "facts"
    )
    mid = "1" + "0" * 3000  # fine on its own; its square is not
    result = run("exec", "facts", "-i", "inv", "--yes", "--output", output_format, "-e", f'{{"mid": {mid}}}')
    text = output(result)
    assert result.exit_code == 1, text
    assert "internal error" not in text and "Traceback" not in text, text
    assert says in text and f"{path}:4:" in text, text


def test_a_constant_too_large_is_a_template_error_where_it_is(root):
    path = playbook(root, "hosts: localhost\nsteps:\n  - set_fact: {x: '{{ 10 ** 5000 }}'}\n")
    refused(run("validate", "bad", "-i", "inv"), f"{path}:3:", "4300 digits")


# ------------------------------------------------------------------- control characters in YAML inventories
CONTROL = [
    ("in-value", "all:\n  hosts:\n    localhost:\n      x: a\x07b\n", "inv.yml:4:11", "U+0007"),
    ("in-quoted", 'all:\n  hosts:\n    localhost:\n      x: "a\x01b"\n', "inv.yml:4:12", "U+0001"),
    ("in-key", "all:\n  hosts:\n    local\x1bhost:\n", "inv.yml:3:10", "U+001B"),
    ("nul", "all:\n  hosts:\n\x00", "inv.yml:3:1", "U+0000"),
    ("after-unicode", "all:\n  vars:\n    name: héllo wörld\x02\n", "inv.yml:3:22", "U+0002"),
    ("del-is-fine-elsewhere", "all:\n  hosts:\n    h:\n      x: \x0c\n", "inv.yml:4:10", "U+000C"),
]


@pytest.mark.parametrize(("text", "where", "says"), [c[1:] for c in CONTROL], ids=[c[0] for c in CONTROL])
@pytest.mark.parametrize("command", ["inventory", "validate", "plan"])
def test_a_control_character_in_a_yaml_inventory_gets_line_and_column(root, text, where, says, command):
    (root / "inv.yml").write_text(text)
    playbook(root, "hosts: localhost\n" + STEP, "ok")
    args = (
        ["inventory", "-i", "inv.yml", "--list"]
        if command == "inventory"
        else [command, "ok", "-i", "inv.yml"]
    )
    refused(run(*args), where, f"control character {says}")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"all:\n  hosts:\n    h:\n      x: caf\xe9\n", "inv.yml:4:13"),
        (b'all:\n  vars: {x: "\x85"}\n', "inv.yml:2:14"),
    ],
    ids=["latin1", "nel-byte"],
)
def test_a_yaml_inventory_that_is_not_utf8_gets_line_and_column(root, data, where):
    (root / "inv.yml").write_bytes(data)
    refused(run("inventory", "-i", "inv.yml", "--list"), where, "not UTF-8 text")


def test_a_control_character_in_group_vars_names_that_file(root):
    (root / "inv").unlink()
    (root / "inv").mkdir()
    (root / "inv" / "hosts").write_text("localhost ansible_connection=local\n")
    (root / "inv" / "group_vars").mkdir()
    (root / "inv" / "group_vars" / "all.yml").write_text("a: 1\nb: x\x03y\n")
    refused(run("inventory", "-i", "inv", "--list"), "all.yml:2:5", "U+0003")


# ------------------------------------------------------------------- DSNs with spaces in plan
DSNS = [
    ("uri-options", "postgresql://u:Sec-ret1@127.0.0.1:1/db?options=-c search_path=x", "Sec-ret1"),
    ("uri-space-in-password", "postgresql://u:Sec ret2@127.0.0.1:1/db", "Sec ret2"),
    ("keyword-quoted", "host=127.0.0.1 port=1 dbname=db user=u password='Sec ret3'", "Sec ret3"),
    ("keyword-escaped", "host=127.0.0.1 port=1 password='Sec\\' ret4' dbname=db", "ret4"),
    ("keyword-unterminated", "host=127.0.0.1 port=1 password='Sec ret5", "ret5"),
]


@pytest.mark.parametrize(("dsn", "secret"), [c[1:] for c in DSNS], ids=[c[0] for c in DSNS])
@pytest.mark.parametrize("verbose", [[], ["-v"], ["--output", "json"]], ids=["text", "verbose", "json"])
def test_a_dsn_with_spaces_is_planned_without_its_password(root, dsn, secret, verbose):
    psql = f'psql "{dsn}" -c x'  # as a runbook author writes it: the DSN in double quotes
    playbook(
        root,
        "hosts: localhost\nsteps:\n"
        f"  - postgres.query: {{dsn: {json.dumps(dsn)}, sql: select 1}}\n"
        f"  - postgres.backup: {{dsn: {json.dumps(dsn)}, dest: {root}/x.dump}}\n"
        f"  - shell: {json.dumps(psql)}\n",
        "dsn",
    )
    result = run("plan", "dsn", "-i", "inv", *verbose)
    out = output(result)
    assert result.exit_code in (0, 1), out
    assert "internal error" not in out and "Traceback" not in out, out
    assert secret not in out, out


# ------------------------------------------------------------------- a failed pre-flight says why
PREFLIGHT = [
    ("undefined", "shell: 'echo {{ nope }}'", "3:5", "undefined variable"),
    ("bad-number", "shell: echo\n    retries: '{{ 10 ** 400 }}'", "3:5", "retries must be at most"),
    (
        "bad-method",
        "shell: id\n    become: true\n    become_method: '{{ m }}'",
        "5:5",
        "become_method 'pbrun'",
    ),
]


@pytest.mark.parametrize(("step", "where", "says"), [c[1:] for c in PREFLIGHT], ids=[c[0] for c in PREFLIGHT])
def test_a_failed_preflight_says_why_with_file_and_line(root, step, where, says):
    path = playbook(root, f"hosts: localhost\npreflight:\n  - {step}\nsteps:\n  - shell: echo hi\n", "pf")
    result = run("exec", "pf", "-i", "inv", "--yes", "--output", "json", "-e", "m=pbrun")
    doc = json.loads(result.stdout)
    assert result.exit_code == 3, output(result)
    assert "nothing was changed" in doc["message"]
    assert f"{path}:{where}:" in doc["message"] and says in doc["message"], doc["message"]


# ------------------------------------------------------------------- a 2 MB inventory line
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("line", "check"),
    [
        ("h x=" + "a" * 2_000_000, lambda hv: len(hv["x"]) == 2_000_000),
        ("h x='" + "a b " * 500_000 + "'", lambda hv: hv["x"] == "a b " * 500_000),
        ('h x="' + 'a\\"b' * 400_000 + '"', lambda hv: hv["x"] == 'a"b' * 400_000),
        ("h " + " ".join(f"v{i}={i}" for i in range(200_000)), lambda hv: hv["v199999"] == 199999),
        ("h x=" + "a" * 2_000_000 + " # a comment", lambda hv: len(hv["x"]) == 2_000_000),
    ],
    ids=["one-word", "quoted-spaces", "escaped-quotes", "many-vars", "with-comment"],
)
def test_a_two_megabyte_inventory_line_is_read_in_linear_time(root, line, check):
    (root / "big.ini").write_text(line + "\n")
    result = run("inventory", "-i", "big.ini", "--host", "h")
    assert result.exit_code == 0, output(result)[:500]
    assert check(json.loads(result.stdout))


@pytest.mark.timeout(30)
def test_a_two_megabyte_unbalanced_line_is_refused_quickly(root):
    (root / "big.ini").write_text("h x='" + "a" * 2_000_000 + "\n")
    refused(run("inventory", "-i", "big.ini", "--list"), "big.ini:1", "No closing quotation")


@pytest.mark.timeout(30)
def test_a_two_megabyte_extra_var_is_split_in_linear_time(root):
    playbook(root, "hosts: localhost\nsteps:\n  - shell: 'echo {{ x | length }}'\n", "ok")
    result = run("exec", "ok", "-i", "inv", "--yes", "--output", "json", "-e", "x='" + "a " * 1_000_000 + "'")
    assert result.exit_code == 0, output(result)[:500]
    assert json.loads(result.stdout)["hosts"]["localhost"]["steps"][0]["stdout"] == "2000000\n"


def test_shellwords_split_is_shlex_split():
    """Same words and same errors as shlex.split (POSIX, comments on and off) on random lines."""
    rng = random.Random(9)
    alphabet = ["a", "b", " ", "\t", '"', "'", "\\", "#", "=", "\r", "x y", "é"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for comments in (True, False):
            try:
                want: object = shlex.split(text, comments=comments)
            except ValueError as exc:
                want = ("error", str(exc))
            try:
                got: object = shellwords.split(text, comments=comments)
            except ValueError as exc:
                got = ("error", str(exc))
            assert got == want, (text, comments)
