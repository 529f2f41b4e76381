"""cli layer.

The command line starts here, before any module defines a dataclass: the methods ``dataclasses``
generates are run from the code compiled for them by an earlier process (runbook.render.codecache;
``RUNBOOK_CODE_CACHE=off`` turns it off), the largest part of a command's own start-up otherwise."""

from runbook.render import codecache as _codecache

_codecache.install_dataclass_cache()
