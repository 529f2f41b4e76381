from tests.core.conftest import project

__all__ = ["project"]
