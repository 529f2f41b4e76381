"""The example project shipped with runbook: the repository's playbooks/, templates/,
inventories/local/ and migrations/. An installed wheel holds them as package data under
runbook/examples/ (pyproject.toml maps those directories into the package); a source checkout
reads the same files where they are. `runbook init` copies them; `runbook doc` quotes examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from runbook.errors import RunbookError

# project directory -> the files of it that are examples (the same globs as pyproject.toml's
# [tool.setuptools.package-data]; tests/ux/test_packaging.py keeps the two equal). Anything else
# there (setup-local's generated host_vars with its passwords) is never shipped nor copied.
PATTERNS: dict[str, tuple[str, ...]] = {
    "playbooks": ("*.yml",),
    "templates": ("*.j2", "**/*.j2"),
    "inventories/local": ("hosts", "group_vars/*.yml"),
    "migrations": ("*.sql", "*.md", "**/*.sql", "**/*.md"),
}


def examples_root() -> Path:
    """Where the example project is: runbook/examples/ in an installed package, else the checkout."""
    import runbook

    package = Path(runbook.__file__).resolve().parent
    shipped = package / "examples"
    if (shipped / "playbooks").is_dir():
        return shipped
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "playbooks").is_dir():
        return checkout
    raise RunbookError(
        f"the example project is not installed (looked in {shipped})",
        hint="reinstall runbook from its wheel or source: pip install runbook",
    )


def example_files(root: Path | None = None) -> Iterator[tuple[str, Path]]:
    """(path relative to the project, source file) of every example file, sorted, each once."""
    root = root or examples_root()
    seen: set[str] = set()
    for directory, globs in PATTERNS.items():
        base = root / directory
        if not base.is_dir():
            continue
        found = sorted({p for g in globs for p in base.glob(g) if p.is_file() and not p.is_symlink()})
        for p in found:
            rel = f"{directory}/{p.relative_to(base).as_posix()}"
            if rel not in seen:
                seen.add(rel)
                yield rel, p
