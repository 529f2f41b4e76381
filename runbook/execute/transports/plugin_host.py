"""A host behind an Ansible connection plugin runbook has no transport for (community.docker.docker,
winrm, ...): connecting is a no-op, so steps that never touch the host (set_fact, debug, and the
Ansible-run steps, which reach it through ansible-runner) run; any command or file operation is a
TransportError naming the plugin. Native steps aimed at such hosts are refused before the run starts
(runbook.plan.connections); this is the last guard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

from runbook.errors import TransportError
from runbook.execute.transports.base import Transport
from runbook.model.connection import NOT_NATIVE_HINT, not_native_message


class PluginHostTransport(Transport):
    def __init__(self, spec: Any, *, max_output: object = None, **_ssh_options: object) -> None:
        super().__init__(spec, max_output=max_output)  # ssh options (known_hosts, ...) do not apply

    def _refuse(self) -> NoReturn:
        raise TransportError(not_native_message(self.spec.name, self.spec.connection), hint=NOT_NATIVE_HINT)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    def read_file(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    def stat(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    def write_file(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        self._refuse()
