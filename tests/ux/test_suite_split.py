"""The suite's split over two workers (tests/conftest.py): which test files may run beside which."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FREE, ISOLATED, xdist_group_of

TESTS = Path(__file__).resolve().parents[1]


def test_every_directory_the_split_names_exists() -> None:
    """A renamed directory would silently join "machine": safe, but the split would be stale."""
    dirs = {p.name for p in TESTS.iterdir() if any(p.glob("test_*.py"))}
    assert dirs >= ISOLATED | FREE
    assert not ISOLATED & FREE


def test_files_of_a_free_directory_are_groups_of_their_own_the_rest_share_two() -> None:
    assert xdist_group_of("ssh/test_frozen.py") == "free:ssh/test_frozen.py"
    assert xdist_group_of("core/test_state.py") != xdist_group_of("core/test_become.py")
    assert (
        xdist_group_of("faults/test_kill_matrix.py")
        == xdist_group_of("seeds/test_blue_green.py")
        == "isolated"
    )
    assert xdist_group_of("deploy/test_deploy_ssh.py") == xdist_group_of("ansible/x.py") == "machine"
    assert xdist_group_of("a_new_directory/test_x.py") == "machine"  # unknown: with the shared ones
    assert all("@" not in xdist_group_of(f"{d}/test_x.py") for d in FREE)  # xdist splits node ids on it
