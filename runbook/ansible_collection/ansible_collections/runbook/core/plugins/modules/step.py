"""Documentation of the runbook.core.step action (the action plugin does the work on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: step
short_description: Run a runbook step kind on the host through Ansible's connection
description:
  - Runs one runbook step kind (C(shell), C(copy), C(template), C(file), C(compose.up), ...) with
    runbook's own step code, through the connection Ansible opened to the host (an action plugin;
    nothing is copied to the host but the commands the kind runs).
  - A mutating kind takes its snapshot before it changes anything; the snapshot is returned as
    C(runbook_snapshot) so that a later task (a block's C(rescue)) can undo the step with C(undo=true).
  - With C(runbook_snapshot_dir) (a variable) or C($RUNBOOK_SNAPSHOT_DIR) set, every snapshot is
    also written to a 0600 JSON file there and fsynced before the change it guards; a snapshot that
    cannot be saved fails the task with nothing changed.
  - With C(undo=true) the kind's undo runs from C(snapshot), then the restored state is checked
    against it (the task fails naming what differs).
  - Check mode runs read-only kinds for real and reports what mutating ones would do.
version_added: "0.1.0"
options:
  kind:
    description: The runbook step kind (module name), e.g. C(shell), C(copy), C(compose.up).
    type: str
    required: true
  args:
    description: The kind's arguments (see C(runbook doc KIND)); a string for free-form kinds.
    type: raw
    default: {}
  undo:
    description: Undo from C(snapshot) instead of running the kind.
    type: bool
    default: false
  snapshot:
    description: The snapshot to undo from (a registered result's C(runbook_snapshot)).
    type: dict
  read_only:
    description:
      - A pre-flight step. Read-only kinds run; an action that would change the host fails the task
        (as in C(runbook exec)'s preflight phase).
    type: bool
    default: false
  retry:
    description:
      - Retry a failed step as C(runbook exec) does, C(retries) times, waiting C(delay) seconds
        before the first retry and multiplying the wait by C(backoff) after each (Ansible's own
        C(retries)/C(delay) wait the same time between attempts). The result has C(attempts).
      - C(runbook compile) uses it for steps with C(backoff); never in check mode.
    type: dict
    suboptions:
      retries: {description: How many retries after the first attempt., type: int, required: true}
      delay: {description: Seconds before the first retry., type: float, default: 1}
      backoff: {description: What each wait is multiplied by for the next one., type: float, default: 1}
  name:
    description: The runbook step's name (shown in the result and the audit trail).
    type: str
author:
  - runbook maintainers
"""

EXAMPLES = r"""
- name: Write the release marker
  runbook.core.step:
    kind: copy
    args: {content: "v2\n", dest: /srv/app/RELEASE}
  register: marker

- name: Undo it from its snapshot
  runbook.core.step:
    kind: copy
    args: {content: "v2\n", dest: /srv/app/RELEASE}
    undo: true
    snapshot: "{{ marker.runbook_snapshot }}"
  when: marker.runbook_snapshot is defined
"""

RETURN = r"""
runbook_snapshot:
  description: The first snapshot the kind took (what undo needs); absent when it took none.
  type: dict
  returned: when the kind took a snapshot
runbook_snapshots:
  description: Every snapshot the kind took, in order.
  type: list
  returned: always
runbook_kind:
  description: The kind that ran.
  type: str
  returned: always
"""
