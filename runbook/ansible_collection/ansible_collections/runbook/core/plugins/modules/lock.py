"""Documentation of the runbook.core.lock action."""

from __future__ import annotations

DOCUMENTATION = r"""
module: lock
short_description: Take or release runbook's per-host deploy lock
description:
  - The same lock as C(runbook exec) (an atomic mkdir under /tmp/runbook-locks on the host, with
    who holds it); a lock whose holder died, or older than C(ttl), is broken.
version_added: "0.1.0"
options:
  name: {description: The lock's name., type: str, required: true}
  state: {description: acquired or released., type: str, default: acquired, choices: [acquired, released]}
  ttl: {description: Seconds after which a held lock is stale., type: float, default: 14400}
author:
  - runbook maintainers
"""

EXAMPLES = r"""
- runbook.core.lock: {name: deploy}
- runbook.core.lock: {name: deploy, state: released}
"""

RETURN = r"""
runbook_lock:
  description: The lock directory on the host.
  type: str
  returned: when acquired
"""
