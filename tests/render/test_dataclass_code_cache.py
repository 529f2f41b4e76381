"""The CLI runs the methods ``dataclasses`` generates from code compiled for them by an earlier
process (runbook.render.codecache): a class made that way behaves as one made by ``exec`` itself
(its methods, their signatures and annotations, its errors), a warm table compiles nothing, and a
table that is corrupt, not this user's or writable by others is not read."""

from __future__ import annotations

import dataclasses
import inspect
import os
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook.render import codecache

CLASSES = '''
from __future__ import annotations
import dataclasses
from dataclasses import KW_ONLY, InitVar, dataclass, field
from typing import Any, ClassVar

@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()

@dataclass(order=True, unsafe_hash=True)
class Version:
    major: int
    minor: int = field(default=0, compare=True)
    label: str = field(default="", compare=False, repr=False)

@dataclass(kw_only=True, slots=True)
class Options:
    name: str
    extra: dict[str, Any] = field(default_factory=dict)
    count: ClassVar[int] = 0

@dataclass
class Step:
    """A step."""
    name: str
    seed: InitVar[int] = 1
    _: KW_ONLY
    args: list[Any] = field(default_factory=list)
    doubled: int = field(init=False, default=0)

    def __post_init__(self, seed: int) -> None:
        self.doubled = seed * 2

@dataclass(frozen=True, eq=False)
class Child(Point):
    z: int = 3
'''


def _define() -> dict[str, Any]:
    """The classes, defined in a new module ``dc_probe`` (as an import would)."""
    module = types.ModuleType("dc_probe")
    sys.modules["dc_probe"] = module
    try:
        exec(compile(CLASSES, "dc_probe.py", "exec"), module.__dict__)
    finally:
        del sys.modules["dc_probe"]
    return module.__dict__


def _behaviour(ns: dict[str, Any]) -> list[Any]:
    point, version, options, step, child = (ns[n] for n in ("Point", "Version", "Options", "Step", "Child"))
    p = point(1, tags=("a",))
    out: list[Any] = [repr(p), p == point(1, 0, ("a",)), hash(p) == hash(point(1, 0, ("a",))), point.__doc__]
    try:
        p.x = 2  # type: ignore[misc]
    except dataclasses.FrozenInstanceError as exc:
        out.append(str(exc))
    v1, v2 = version(1, 2, "x"), version(1, 3)
    out += [repr(v1), v1 < v2, sorted([v2, v1]) == [v1, v2], hash(v1) == hash(version(1, 2, "y"))]
    o = options(name="n")
    out += [repr(o), o == options(name="n", extra={}), hasattr(o, "__dict__"), options.__slots__]
    try:
        options("positional")  # type: ignore[misc]
    except TypeError as exc:
        out.append(str(exc))
    s = step("a", 5, args=[1])
    out += [repr(s), s.doubled, [f.name for f in dataclasses.fields(s)]]
    c = child(1, 2, (), 4)
    out += [repr(c), c == child(1, 2, (), 4), child.__eq__ is object.__eq__]
    for cls in (point, version, options, step, child):
        for name in ("__init__", "__repr__", "__eq__", "__setattr__", "__hash__"):
            fn = cls.__dict__.get(name)
            if callable(fn):
                out.append((cls.__name__, name, fn.__qualname__, str(inspect.signature(fn)),
                            getattr(fn, "__annotations__", None) and sorted(map(str, fn.__annotations__.items()))))
    out.append(pickle.loads(pickle.dumps(dataclasses.asdict(s))))
    return out


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    before = vars(dataclasses).get("exec")
    codecache.uninstall_dataclass_cache()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RUNBOOK_CODE_CACHE", raising=False)
    codecache.reset()
    saved = dict(codecache._table)
    codecache._table.clear()
    yield tmp_path / "cache" / "runbook" / "code"
    codecache.uninstall_dataclass_cache()
    codecache._table.clear()
    codecache._table.update(saved)
    codecache.reset()
    if before is not None:
        dataclasses.exec = before  # type: ignore[attr-defined]


class _Compiles:
    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return compile(*args, **kwargs)

        monkeypatch.setattr(codecache, "compile", counting, raising=False)


def test_a_class_behaves_the_same_with_the_cache_cold_warm_and_read_back(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _behaviour(_define())  # exec itself
    assert codecache.install_dataclass_cache()
    compiles = _Compiles(monkeypatch)
    assert _behaviour(_define()) == expected  # cold: compiled, kept
    assert compiles.count > 0 and codecache._table
    cold, compiles.count = compiles.count, 0
    assert _behaviour(_define()) == expected  # warm
    assert compiles.count == 0
    codecache.save_dataclass_cache()
    [table] = cache.glob("dataclasses-*.code")
    assert table.stat().st_mode & 0o777 == 0o600
    codecache.uninstall_dataclass_cache()
    codecache._table.clear()
    assert codecache.install_dataclass_cache()  # a new process: the table read back
    assert _behaviour(_define()) == expected
    assert compiles.count == 0 < cold


@pytest.mark.parametrize("spoil", ["truncated", "byte changed", "group writable", "someone else's"])
def test_a_spoilt_table_is_not_read(cache: Path, monkeypatch: pytest.MonkeyPatch, spoil: str) -> None:
    expected = _behaviour(_define())
    assert codecache.install_dataclass_cache()
    _define()
    codecache.save_dataclass_cache()
    [table] = cache.glob("dataclasses-*.code")
    data = table.read_bytes()
    if spoil == "truncated":
        table.write_bytes(data[: len(data) // 2])
    elif spoil == "byte changed":
        table.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif spoil == "group writable":
        table.chmod(0o620)
    else:
        me = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: me + 1)
        codecache.reset()
        monkeypatch.setattr(codecache, "directory", lambda: str(cache))  # the directory is still ours
    codecache.uninstall_dataclass_cache()
    codecache._table.clear()
    assert codecache.install_dataclass_cache()
    assert codecache._table == {}
    assert _behaviour(_define()) == expected


def test_off_or_without_a_private_directory_nothing_is_installed(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_CODE_CACHE", "off")
    codecache.reset()
    assert not codecache.install_dataclass_cache()
    assert "exec" not in vars(dataclasses)
    monkeypatch.delenv("RUNBOOK_CODE_CACHE")
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    codecache.reset()
    assert not codecache.install_dataclass_cache()
    assert "exec" not in vars(dataclasses)


def test_the_cli_installs_it(tmp_path: Path) -> None:
    import subprocess

    probe = "import dataclasses, runbook.cli.main; print(dataclasses.__dict__.get('exec'))"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    on = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert "_cached_exec" in on.stdout
    off = subprocess.run([sys.executable, "-c", probe], env={**env, "RUNBOOK_CODE_CACHE": "off"},
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert off.stdout.strip() == "None"
    tables = tmp_path / ".cache" / "runbook" / "code"
    for table in tables.glob("dataclasses-*.code"):
        table.unlink()
    cli = subprocess.run([sys.executable, "-m", "runbook", "validate", "--help"], env=env, capture_output=True)
    assert cli.returncode == 0, cli.stderr
    assert list(tables.glob("dataclasses-*.code"))  # the CLI's exit (no atexit there) writes it too


def test_a_full_table_is_started_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecache, "MAX_TABLE", 3)
    assert codecache.install_dataclass_cache()
    _define()
    assert len(codecache._table) == 3  # full: what did not fit is compiled each time
    codecache.save_dataclass_cache()
    codecache.uninstall_dataclass_cache()
    codecache._table.clear()
    assert codecache.install_dataclass_cache()
    assert codecache._table == {}  # the full table is not read: this process's classes fill a new one
    _define()
    assert len(codecache._table) == 3


def test_entries_are_loaded_only_when_a_class_asks_and_a_bad_one_is_compiled_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table is read whole (its checksum) but each entry stays marshalled until a class with
    that source is made; an entry that does not load as code (another table format) is compiled."""
    expected = _behaviour(_define())
    assert codecache.install_dataclass_cache()
    _define()
    codecache.save_dataclass_cache()
    codecache.uninstall_dataclass_cache()
    codecache._table.clear()
    assert codecache.install_dataclass_cache()
    assert codecache._table and all(isinstance(v, bytes) for v in codecache._table.values())
    first = next(iter(codecache._table))
    codecache._table[first] = b"not marshalled code"
    compiles = _Compiles(monkeypatch)
    assert _behaviour(_define()) == expected
    assert compiles.count == 1  # only the spoilt entry
    assert all(isinstance(v, types.CodeType) for v in codecache._table.values())
