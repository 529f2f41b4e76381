"""Import paramiko without ``invoke``.

paramiko.config imports ``invoke`` (and, through it, ``unittest.mock`` and a vendored YAML) only to run
``Match exec`` lines of an ssh_config; that import is ~60 % of ``import paramiko`` (~140 of ~240 ms
here), paid on every run by every SSH tool built on paramiko. paramiko already copes with invoke being
absent (``paramiko.config.invoke`` is None until a ``Match exec`` needs it), so we import it without
invoke and hand invoke over only when an ssh_config we load has a ``Match exec``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()
_MODULE: ModuleType | None = None
_MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def load_paramiko() -> ModuleType:
    """The paramiko module (imported on first use, without invoke). Thread-safe: a host thread that
    asks while another is importing waits for the import to finish (sys.modules already holds the
    partially initialised module by then, so it cannot be the test)."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    with _LOCK:
        if _MODULE is None:
            blocked = "invoke" not in sys.modules
            if blocked:
                sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` -> ImportError
            try:
                import paramiko
            finally:
                if blocked and "invoke" in sys.modules and sys.modules["invoke"] is None:
                    del sys.modules["invoke"]
            # paramiko's reader thread logs what breaks a connection (with a traceback) on logger
            # "paramiko"; with no handler, Python prints it on stderr amid the console and the
            # JSON. The transport reports each of those failures itself (connection lost, no
            # answer within N s): paramiko's own records go nowhere unless the operator adds one.
            logging.getLogger("paramiko").addHandler(logging.NullHandler())
            _MODULE = paramiko
        return _MODULE


def needs_match_exec(config_text: str) -> bool:
    return bool(_MATCH_EXEC.search(config_text))


def enable_match_exec() -> None:
    """Give paramiko.config the invoke module (for ``Match exec``), importing it now."""
    load_paramiko()
    import paramiko.config as pconfig

    if getattr(pconfig, "invoke", None) is not None:
        return
    try:
        import invoke
    except ImportError as exc:  # paramiko raises this when a Match exec is evaluated
        pconfig.invoke_import_error = exc
        return
    pconfig.invoke = invoke
