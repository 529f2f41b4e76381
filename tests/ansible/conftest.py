"""Shared fixtures of the Ansible-compatibility tests."""

from tests.core.conftest import project  # noqa: F401 (the scratch-project fixture)
