"""Where audit records go besides the run's JSON Lines file.

A sink receives every record exactly as chained (``record`` is the parsed dict including ``hash``;
``line`` its canonical bytes with the trailing newline). ``sync`` is called at step boundaries and
seals (make what was written durable); ``close`` at the end of the run. A sink that raises is
reported in the chain (an ``audit.sink_error`` record) and dropped for the rest of the run; the local
file remains the primary copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Sink(Protocol):
    def write(self, record: Mapping[str, Any], line: bytes) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


__all__ = ["Sink"]
