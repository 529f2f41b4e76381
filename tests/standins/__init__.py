"""Local stand-ins for services that cannot run here (Coolify, a Slack-style webhook).

Each is a small threaded http.server on 127.0.0.1 (port 0 = ephemeral) that follows the service's
documented API (shared/specs), usable from pytest (context manager) and by hand
(``python -m tests.standins.coolify --port 8000``).
"""
