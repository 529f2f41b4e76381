"""The core tests' project fixture (a scratch project driven through the real CLI)."""

from tests.core.conftest import project as project  # fixture
