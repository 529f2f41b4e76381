"""Output in constant memory: a stream is hashed whole and kept as head + marker + tail, cut where no
part of a secret is left (tests for runbook.execute.transports.capture, and the local transport)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from runbook.execute.transports.capture import Capture, JoinedCapture, marker, parse_size
from runbook.render.secrets import Redactor

SECRET = "s3cr3t-T0ken-value"


def feed(cap: Capture, data: bytes, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        cap.write(data[i : i + chunk])


def fragments(text: str, secret: str = SECRET, n: int = 4) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1) if secret[i : i + n] in text]


def test_small_output_is_kept_whole_and_exactly():
    data = bytes(range(256)) * 10
    cap = Capture(64 * 1024)
    feed(cap, data, 7)
    assert cap.value() == data and not cap.elided
    assert cap.total == len(data) and cap.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("chunk", [1 << 16, 4093, 1])
def test_long_output_keeps_head_and_tail_with_a_marker(chunk):
    limit = 8 * 1024
    data = b"".join(b"line %07d\n" % i for i in range(20000))  # 260 kB
    cap = Capture(limit)
    feed(cap, data, chunk if chunk > 1 else 97)
    text = cap.text()
    assert cap.elided and cap.total == len(data)
    assert cap.sha256 == hashlib.sha256(data).hexdigest()  # of every byte, not of what was kept
    head, _, tail = text.partition("\n[… ")
    assert data.decode().startswith(head) and data.decode().endswith(tail.split("…]\n", 1)[1])
    kept = len(text.encode()) - len(marker(0).encode())
    assert kept <= limit + 32
    assert f"[… {len(data) - len(head) - len(tail.split('…]' + chr(10), 1)[1])} bytes elided …]" in text


@pytest.mark.parametrize("offset", range(-len(SECRET) + 1, 1))
def test_a_secret_across_the_head_cut_is_never_left_in_part(offset):
    limit = 4096
    red = Redactor([SECRET])
    at = limit // 2 + offset  # the secret starts before the cut and ends after it
    data = b"a" * at + SECRET.encode() + b"b" * 50_000
    cap = Capture(limit)
    feed(cap, data, 1000)
    text = cap.text(red.redact)
    assert not fragments(text), text[limit // 2 - 40 : limit // 2 + 60]


@pytest.mark.parametrize("offset", range(0, len(SECRET)))
def test_a_secret_across_the_tail_cut_is_never_left_in_part(offset):
    limit = 4096
    red = Redactor([SECRET])
    tail_start = 60_000 - (limit - limit // 2)
    data = b"a" * (tail_start - offset) + SECRET.encode()
    data += b"b" * (60_000 - len(data))
    cap = Capture(limit)
    feed(cap, data, 333)
    assert cap.total == 60_000
    text = cap.text(red.redact)
    assert not fragments(text)


def test_url_credentials_across_a_cut_are_masked():
    limit = 4096
    url = "https://deploy:hunter2hunter2@repo.example/x"
    data = b"a" * (limit // 2 - 20) + url.encode() + b"b" * 20_000
    cap = Capture(limit)
    feed(cap, data, 512)
    assert not fragments(cap.text(Redactor().redact), "hunter2hunter2")


def test_memory_stays_bounded_whatever_the_size():
    cap = Capture(1 << 20)
    block = b"x" * (1 << 16)
    for _ in range(2000):  # 128 MiB
        cap.write(block)
    assert len(cap._head) + len(cap._tail) < 4 << 20
    assert cap.total == 2000 << 16


def test_sizes_parse():
    assert parse_size("1M") == 1 << 20 and parse_size("256k") == 256 << 10 and parse_size(4096) == 4096
    assert parse_size("2MiB") == 2 << 20
    for bad in ("", "x", "10", "-1M"):
        with pytest.raises((ValueError, IndexError)):
            parse_size(bad)


BIG = 200_000_000
BIG_RUNBOOK = """
hosts: all
steps:
  - name: Print a lot
    shell: "head -c {n} /dev/zero | tr '\\\\0' x; echo; echo {{{{ db_password }}}}"
    register: big
  - name: Use it
    debug: {{msg: "{{{{ big.stdout | length }}}}"}}
"""


def big_run(root: Path, inventory: Path, *extra: str) -> tuple[dict, int, Path]:
    """`runbook exec` of BIG_RUNBOOK as a subprocess; (JSON document, peak RSS, audit dir)."""
    from tests.core.conftest import PYTHON, REPO
    from tests.fixtures.procs import run_measured

    (root / "playbooks").mkdir(exist_ok=True)
    (root / "playbooks" / "big.yml").write_text(BIG_RUNBOOK.format(n=BIG))
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "RUNBOOK_AUDIT": "1"}
    audit = root / "audit"
    code, out, err, rss = run_measured(
        [PYTHON, "-m", "runbook", "exec", "big", "-i", str(inventory), "--output", "json", "--yes",
         "--audit-dir", str(audit), "-e", f"db_password={SECRET}", *extra],
        cwd=str(root), env=env,
    )  # fmt: skip
    assert code == 0, out[-2000:] + err[-2000:]
    return json.loads(out), rss, audit


def check_big(doc: dict, rss: int, audit: Path, root: Path, host: str) -> None:
    steps = {s["name"]: s for s in doc["hosts"][host]["steps"]}
    stdout = steps["Print a lot"]["stdout"]
    assert len(stdout) < 1_100_000 and "bytes elided …]" in stdout
    assert stdout.startswith("xxxx") and stdout.rstrip().endswith("***")  # the secret, redacted
    assert not fragments(stdout) and SECRET not in json.dumps(doc)
    assert rss < 150 * 1024 * 1024, f"peak RSS {rss / 1e6:.0f} MB"
    states = list((root / ".runbook").rglob("*.json"))
    assert states and all(p.stat().st_size < 5_000_000 for p in states)
    (trail,) = [p for p in audit.rglob("*") if p.is_file() and p.stat().st_size]
    text = trail.read_text()
    assert trail.stat().st_size < 5_000_000 and SECRET not in text
    h = hashlib.sha256()
    for _ in range(BIG // 1_000_000):
        h.update(b"x" * 1_000_000)
    h.update(b"\n" + SECRET.encode() + b"\n")
    full = h.hexdigest()
    assert full in text  # the audit's digest is of the whole stream, computed while it streamed


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_200_mb_of_output_locally_in_bounded_memory(tmp_path):
    inv = tmp_path / "inv"
    inv.write_text("localhost ansible_connection=local\n")
    doc, rss, audit = big_run(tmp_path, inv)
    check_big(doc, rss, audit, tmp_path, "localhost")


# ------------------------------------------------------------------ a loop's outputs, as a whole


def joined(items: list[str], limit: int, redact=None) -> tuple[JoinedCapture, list[str]]:
    cap = JoinedCapture(limit, redact)
    seen: dict[int, str] = {}
    for i, text in enumerate(items):
        cap.add(text)
        seen[i] = text
        for n in cap.changed():
            seen[n] = cap.item(n)
    for n in cap.changed(final=True):
        seen[n] = cap.item(n)
    return cap, [seen[i] for i in range(len(items))]


@pytest.mark.parametrize("sizes", [[3000] * 40, [10, 70_000, 5, 0, 2000, 40_000, 0, 9], [100] * 2000])
def test_a_loops_outputs_are_capped_as_a_whole(sizes):
    limit = 16 * 1024
    items = [f"[{i}:" + "x" * max(0, s - 10) + f":{i}]\n" for i, s in enumerate(sizes)]
    whole = "".join(items)
    cap, kept = joined(items, limit)
    assert cap.total == len(whole.encode()) and cap.sha256 == hashlib.sha256(whole.encode()).hexdigest()
    assert cap.elided and cap.summary() == {"bytes": cap.total, "kept": limit, "sha256": cap.sha256}
    text = cap.text()
    head, _, rest = text.partition("\n[… ")
    tail = rest.split(" bytes elided …]\n", 1)[1]
    assert whole.startswith(head) and whole.endswith(tail) and "[…" not in tail  # one marker
    assert len(head.encode()) + len(tail.encode()) <= limit
    assert f"[… {len(whole) - len(head) - len(tail)} bytes elided …]" in text
    # what each item registers: itself where kept, else its kept ends around a marker of the rest
    assert sum(len(k.encode()) for k in kept) <= limit + len(items) * 40
    for item, k in zip(items, kept, strict=True):
        if k != item:
            a, _, b = k.partition("[… ")
            b = b.split(" bytes elided …]", 1)[1]
            assert item.startswith(a) and item.endswith(b) and len(a) + len(b) < len(item)
    assert kept[0].startswith("[0:") and kept[-1].endswith(f":{len(items) - 1}]\n")


def test_a_loop_under_the_limit_is_kept_exactly():
    items = ["a\n", "", "bb\n" * 100]
    cap, kept = joined(items, 64 * 1024)
    assert not cap.elided and kept == items and cap.text() == "".join(items) and cap.summary() is None


def test_a_loops_joined_memory_is_bounded():
    cap = JoinedCapture(1 << 20)
    item = "y" * (1 << 20)
    for _ in range(200):  # 200 items of 1 MiB each
        cap.add(item)
        cap.changed()
    assert sum(len(h) + len(t) for h, t, _ in cap._items) < 4 << 20


@pytest.mark.parametrize("offset", range(-len(SECRET) + 1, 1, 3))
def test_a_secret_across_a_loops_cut_is_never_left_in_part(offset):
    limit = 4096
    red = Redactor([SECRET])
    at = limit // 2 + offset
    items = ["a" * 1000, "a" * (at - 1000) + SECRET + "b" * 3000, "c" * 20_000]
    cap, kept = joined(items, limit, red.redact)
    assert not fragments(cap.text()) and not any(fragments(k) for k in kept)


def test_a_loop_step_registers_and_reports_its_output_capped_as_a_whole(project, tmp_path, monkeypatch):
    """20 items printing 40 KiB each, 64 KiB kept: the step's output and what it registers hold
    the head and the tail of the whole (a marker for the rest), the audit its size and digest."""
    project.runbook(
        "loopy",
        "hosts: localhost\nsteps:\n"
        "  - name: Print per item\n"
        "    shell: \"printf '<%s>' {{ item }}; head -c 40960 /dev/zero | tr '\\\\0' z; echo\"\n"
        "    loop: \"{{ range(20) | list }}\"\n"
        "    changed_when: false\n"
        "    register: out\n"
        "  - name: Sizes\n"
        "    copy: {content: \"{{ out.results | map(attribute='stdout') | map('length') | list | to_json }}\","
        " dest: \"{{ dest }}\"}\n",
    )
    monkeypatch.setenv("RUNBOOK_AUDIT", "1")
    res = project.exec("loopy", "--max-output", "64k", "-e", f"dest={tmp_path / 'sizes'}", "--output", "json",
                       "--audit-dir", str(tmp_path / "audit"))  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (step,) = [s for s in doc["hosts"]["localhost"]["steps"] if s["name"] == "Print per item"]
    assert step["stdout"].startswith("<0>zzz") and step["stdout"].rstrip().endswith("zzz")
    assert step["stdout"].count("bytes elided …]") == 1 and len(step["stdout"]) < 64 * 1024 + 100
    sizes = json.loads((tmp_path / "sizes").read_text())
    assert len(sizes) == 20 and sum(sizes) < 64 * 1024 + 20 * 40 and sizes[0] > 30_000 and sizes[10] < 40
    whole = "".join(f"<{i}>" + "z" * 40960 + "\n" for i in range(20))
    digest = hashlib.sha256(whole.encode()).hexdigest()
    trail = "".join(p.read_text() for p in (tmp_path / "audit").glob("*.jsonl"))
    assert digest in trail and "loop of 20 items, joined" in trail
