"""Documentation of the runbook.core.window action."""

from __future__ import annotations

DOCUMENTATION = r"""
module: window
short_description: Fail unless now is inside a maintenance window
description:
  - Runs on the controller. A window may cross midnight; C(days) name the day the window starts.
version_added: "0.1.0"
options:
  start: {description: Start time of day, HH:MM., type: str, required: true}
  end: {description: End time of day, HH:MM., type: str, required: true}
  tz: {description: IANA time zone., type: str, default: UTC}
  days: {description: "Days the window opens (mon..sun); empty: every day.", type: list, elements: str}
author:
  - runbook maintainers
"""

EXAMPLES = r"""
- runbook.core.window: {start: "01:00", end: "03:00", tz: Europe/Paris, days: [sat, sun]}
"""

RETURN = r"""
"""
