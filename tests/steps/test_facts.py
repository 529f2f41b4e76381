"""Pure parsers: memory with cgroup v1/v2 fixture texts, df, versions, dotenv, sockets, modes."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from runbook.facts.disk import parse_df
from runbook.facts.dotenv import parse_dotenv
from runbook.facts.memory import (
    CgroupMount,
    MemoryFacts,
    cgroup_dirs,
    memory_probe,
    parse_meminfo,
    parse_mountinfo,
    parse_proc_cgroup,
)
from runbook.facts.net import matching, parse_proc_net_tcp, parse_ss
from runbook.facts.versions import extract_version, parse_version
from runbook.kinds.filestate import parse_mode

GIB = 1024**3
MEMINFO_16G = "MemTotal:       16777216 kB\nMemFree:         1000000 kB\nMemAvailable:   12582912 kB\n"
MOUNTINFO_V2 = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n"
MOUNTINFO_V1 = (
    "30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n"
    "32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct\n"
    "33 30 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:14 - cgroup2 cgroup2 rw\n"
)


def run_probe(files: Mapping[str, str]) -> tuple[MemoryFacts, list[str]]:
    """Drive memory_probe against a dict standing for the host's files."""
    probe = memory_probe()
    asked: list[str] = []
    path = next(probe)
    while True:
        asked.append(path)
        try:
            path = probe.send(files.get(path))
        except StopIteration as stop:
            return stop.value, asked


def test_meminfo_is_parsed_to_bytes() -> None:
    info = parse_meminfo(MEMINFO_16G + "HugePages_Total:       0\ngarbage line\n")
    assert info["MemTotal"] == 16 * GIB
    assert info["MemAvailable"] == 12 * GIB
    assert info["HugePages_Total"] == 0


def test_no_cgroup_limit_uses_meminfo() -> None:
    facts, _ = run_probe(
        {
            "/proc/meminfo": MEMINFO_16G,
            "/proc/self/cgroup": "0::/user.slice/user-0.slice/session-3.scope\n",
            "/proc/self/mountinfo": MOUNTINFO_V2,
            "/sys/fs/cgroup/user.slice/user-0.slice/session-3.scope/memory.max": "max\n",
            "/sys/fs/cgroup/user.slice/user-0.slice/memory.max": "max\n",
            "/sys/fs/cgroup/user.slice/memory.max": "max\n",
        }
    )
    assert (facts.total_mb, facts.available_mb, facts.limit_source) == (16384, 12288, "meminfo")


def test_cgroup_v2_parent_limit_is_found_walking_up() -> None:
    facts, asked = run_probe(
        {
            "/proc/meminfo": MEMINFO_16G,
            "/proc/self/cgroup": "0::/system.slice/docker-abc.scope\n",
            "/proc/self/mountinfo": MOUNTINFO_V2,
            "/sys/fs/cgroup/system.slice/docker-abc.scope/memory.max": "max\n",
            "/sys/fs/cgroup/system.slice/memory.max": f"{4 * GIB}\n",
            "/sys/fs/cgroup/system.slice/memory.current": f"{3 * GIB}\n",
            "/sys/fs/cgroup/system.slice/memory.stat": f"anon 100\nfile 200\ninactive_file {GIB // 2}\n",
        }
    )
    assert facts.total_mb == 4096
    assert facts.available_mb == 1536  # 4 GiB - (3 GiB used - 0.5 GiB reclaimable cache)
    assert facts.limit_source == "cgroup v2 /sys/fs/cgroup/system.slice/memory.max"
    assert asked.index("/sys/fs/cgroup/system.slice/docker-abc.scope/memory.max") < asked.index(
        "/sys/fs/cgroup/system.slice/memory.max"
    )


def test_cgroup_v2_inside_a_container_namespace() -> None:
    facts, _ = run_probe(
        {
            "/proc/meminfo": MEMINFO_16G,
            "/proc/self/cgroup": "0::/\n",
            "/proc/self/mountinfo": MOUNTINFO_V2,
            "/sys/fs/cgroup/memory.max": f"{2 * GIB}\n",
            "/sys/fs/cgroup/memory.current": f"{GIB}\n",
            "/sys/fs/cgroup/memory.stat": "inactive_file 0\n",
        }
    )
    assert (facts.total_mb, facts.available_mb) == (2048, 1024)
    assert facts.used_percent == 50.0


def test_cgroup_v1_limit_and_unlimited_huge_value() -> None:
    base = {
        "/proc/meminfo": MEMINFO_16G,
        "/proc/self/cgroup": "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
        "/proc/self/mountinfo": MOUNTINFO_V1,
        "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{3 * GIB}\n",
        "/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": f"{GIB}\n",
        "/sys/fs/cgroup/memory/docker/abc/memory.stat": "cache 5\ntotal_inactive_file 0\n",
        "/sys/fs/cgroup/memory/docker/memory.limit_in_bytes": "9223372036854771712\n",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
    }
    facts, _ = run_probe(base)
    assert (facts.total_mb, facts.available_mb) == (3072, 2048)
    assert facts.limit_source == "cgroup v1 /sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"
    unlimited = {**base, "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n"}
    facts, _ = run_probe(unlimited)
    assert (facts.total_mb, facts.limit_source) == (16384, "meminfo")


def test_limit_above_memtotal_does_not_count_as_the_limit() -> None:
    facts, _ = run_probe(
        {
            "/proc/meminfo": MEMINFO_16G,
            "/proc/self/cgroup": "0::/big\n",
            "/proc/self/mountinfo": MOUNTINFO_V2,
            "/sys/fs/cgroup/big/memory.max": f"{64 * GIB}\n",
            "/sys/fs/cgroup/big/memory.current": f"{GIB}\n",
        }
    )
    assert (facts.total_mb, facts.limit_source, facts.available_mb) == (16384, "meminfo", 12288)


def test_without_mountinfo_the_standard_mount_points_are_tried() -> None:
    facts, _ = run_probe(
        {
            "/proc/meminfo": MEMINFO_16G,
            "/proc/self/cgroup": "0::/\n",
            "/sys/fs/cgroup/memory.max": f"{GIB}\n",
        }
    )
    assert facts.total_mb == 1024


def test_proc_cgroup_and_mountinfo_parsing() -> None:
    assert parse_proc_cgroup("4:memory:/process_api/x\n0::/\n") == ("/", "/process_api/x")
    assert parse_proc_cgroup("0::/a/b\n") == ("/a/b", None)
    mounts = parse_mountinfo(MOUNTINFO_V1)
    assert CgroupMount(1, "/sys/fs/cgroup/memory", "/") in mounts
    assert CgroupMount(2, "/sys/fs/cgroup/unified", "/") in mounts
    assert len(mounts) == 2
    # A container without a cgroup namespace: the mount's root is the container's own cgroup.
    m = CgroupMount(1, "/sys/fs/cgroup/memory", "/docker/abc")
    assert cgroup_dirs(m, "/docker/abc") == ["/sys/fs/cgroup/memory"]
    assert cgroup_dirs(CgroupMount(2, "/sys/fs/cgroup", "/"), "/a/b") == [
        "/sys/fs/cgroup/a/b",
        "/sys/fs/cgroup/a",
        "/sys/fs/cgroup",
    ]
    spaced = parse_mountinfo("40 24 0:30 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n")
    assert spaced == [CgroupMount(2, "/mnt/with space", "/")]


# --------------------------------------------------------------------------------------------- df
def test_df_rows() -> None:
    out = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/vda         264212084 23206036  83184876      22% /\n"
    )
    row = parse_df(out)
    assert row is not None
    assert (row.filesystem, row.size, row.used, row.avail, row.use_percent, row.mount) == (
        "/dev/vda",
        264212084,
        23206036,
        83184876,
        22,
        "/",
    )
    odd = "Filesystem 1024-blocks Used Available Capacity Mounted on\nmy fs 100 40 60 40% /mnt/my disk\n"
    row = parse_df(odd)
    assert row is not None and (row.filesystem, row.avail, row.mount) == ("my fs", 60, "/mnt/my disk")
    inodes = "Filesystem Inodes IUsed IFree IUse% Mounted on\n/dev/sdb1 0 0 0 - /data\n"
    row = parse_df(inodes)
    assert row is not None and (row.size, row.use_percent) == (0, None)
    assert parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n") is None


# --------------------------------------------------------------------------------------- versions
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Docker version 20.10.24+dfsg1, build 297e128", "20.10.24"),
        ("28.2.2\n", "28.2.2"),
        ("v2.0.0", "2.0.0"),
        ("Docker Compose version v2.40.3", "2.40.3"),
        ("docker-compose version 1.29.2, build 5becea4c", "1.29.2"),
        ("psql (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)", "15.18"),
        ("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64", "7.0.15"),
        ("Python 3.11.7", "3.11.7"),
        ("OpenSSH_9.2p1 Debian-2+deb12u3", "9.2"),
        ("2.0.0-rc1", "2.0.0-rc1"),
        ("version 5", "5"),
    ],
)
def test_extract_version(text: str, expected: str) -> None:
    v = extract_version(text)
    assert v is not None and str(v) == expected


def test_version_comparison() -> None:
    def v(s: str):
        out = parse_version(s)
        assert out is not None
        return out

    assert v("19.03") < v("20.10") < v("20.10.24") < v("28.2")
    assert v("20.10") == v("20.10.0")
    assert v("2.9") < v("2.10")  # not string comparison
    assert v("2.0.0-rc1") < v("2.0.0") < v("2.0.1")
    assert v("2.0.0-alpha") < v("2.0.0-beta.2") < v("2.0.0-rc1")
    assert v("15.18").within_max(v("15")) and not v("16.0").within_max(v("15"))
    assert v("2.1.9").within_max(v("2.1")) and v("2").within_max(v("2.1"))
    assert extract_version("tool 1.2.3 built with lib 9.9", regex=r"lib (\S+)") == v("9.9")
    assert extract_version("no digits here") is None


# ----------------------------------------------------------------------------------------- dotenv
def test_dotenv_syntax() -> None:
    text = (
        "# a comment\n"
        "\n"
        "export DATABASE_URL=postgres://u:p@db/app?sslmode=require\n"
        "PLAIN=value # inline comment\n"
        "HASH=abc#notacomment\n"
        "SINGLE='it''s $literal'\n"
        "SPACED = ' padded '\n"
        'DOUBLE="line1\\nline2 \\"q\\""\n'
        'MULTI="first\n'
        'second"\n'
        "EMPTY=\n"
        "BARE\n"
        "1BAD=x\n"
        "not a pair\n"
        "UNTERMINATED='oops\n"
    )
    env = parse_dotenv(text)
    assert env.values["DATABASE_URL"] == "postgres://u:p@db/app?sslmode=require"
    assert env.values["PLAIN"] == "value"
    assert env.values["HASH"] == "abc#notacomment"
    assert env.values["SPACED"] == " padded "
    assert env.values["DOUBLE"] == 'line1\nline2 "q"'
    assert env.values["MULTI"] == "first\nsecond"
    assert env.values["EMPTY"] == ""
    assert env.values["BARE"] is None
    assert "SINGLE" not in env.values  # 'it' followed by text after the closing quote
    assert env.lines["MULTI"] == 9
    reasons = dict(env.errors)
    assert reasons[6] == "unexpected text after the closing quote"
    assert reasons[13] == "invalid variable name"
    assert reasons[14] == "not KEY=VALUE"
    assert reasons[15] == "unterminated ' quote"
    assert all("oops" not in r and r != "x" for _, r in env.errors)


# ---------------------------------------------------------------------------------------- sockets
PROC_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
    "   2: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n"
)
PROC_TCP6 = (
    "  sl  local_address                         remote_address                        st ...\n"
    "   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 0\n"
    "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0\n"
    "   2: 0000000000000000FFFF00000100007F:0BB8 00000000000000000000000000000000:0000 0A 0\n"
)


def test_proc_net_tcp() -> None:
    assert parse_proc_net_tcp(PROC_TCP) == [("127.0.0.1", 8080), ("0.0.0.0", 22)]
    assert parse_proc_net_tcp(PROC_TCP6, ipv6=True) == [("::1", 5432), ("::", 80), ("127.0.0.1", 3000)]


def test_ss_output() -> None:
    out = (
        "LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*\n"
        "LISTEN 0      128          0.0.0.0:22        0.0.0.0:*\n"
        "LISTEN 0      511            [::1]:6379         [::]:*\n"
        "LISTEN 0      511                *:8080            *:*\n"
    )
    assert parse_ss(out) == [("127.0.0.53", 53), ("0.0.0.0", 22), ("::1", 6379), ("*", 8080)]


def test_listener_matching() -> None:
    listeners = [("127.0.0.1", 8080), ("0.0.0.0", 22), ("::1", 5432), ("::", 80)]
    assert matching(listeners, "127.0.0.1", 8080) == ["127.0.0.1:8080"]
    assert matching(listeners, "10.1.2.3", 8080) == []
    assert matching(listeners, "10.1.2.3", 22) == ["0.0.0.0:22"]
    assert matching(listeners, "::1", 22) == []  # an IPv4 wildcard does not take IPv6
    assert matching(listeners, "localhost", 5432) == ["[::1]:5432"]
    assert matching(listeners, "127.0.0.1", 80) == ["[::]:80"]
    assert matching(listeners, "0.0.0.0", 5432) == ["[::1]:5432"]
    with pytest.raises(ValueError):
        matching(listeners, "db.example", 80)


# ------------------------------------------------------------------------------------------ modes
@pytest.mark.parametrize(
    ("spec", "current", "is_dir", "expected"),
    [
        ("0644", 0, False, 0o644),
        ("644", 0, False, 0o644),
        ("0o750", 0, False, 0o750),
        ("4755", 0, False, 0o4755),
        (0o600, 0, False, 0o600),
        ("u=rw,g=r,o=", 0o777, False, 0o640),
        ("u+x", 0o644, False, 0o744),
        ("a-w", 0o664, False, 0o444),
        ("go-rwx", 0o755, False, 0o700),
        ("u=rwX,g=rX,o=", 0o644, False, 0o640),
        ("u=rwX,g=rX,o=", 0o644, True, 0o750),
        ("u=rwX,g=rX,o=", 0o744, False, 0o750),
        ("+t", 0o777, True, 0o1777),
    ],
)
def test_parse_mode(spec: object, current: int, is_dir: bool, expected: int) -> None:
    assert parse_mode(spec, current, is_dir) == expected


@pytest.mark.parametrize("spec", ["rw-r--r--", "0999", "u=rq", 0o17777, True])
def test_parse_mode_rejects(spec: object) -> None:
    with pytest.raises(ValueError, match="mode"):
        parse_mode(spec)
