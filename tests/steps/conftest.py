from tests.steps.support import http_server, rb

__all__ = ["http_server", "rb"]
