"""Action plugin runbook.core.window: fail unless now is inside the maintenance window (runs on the
controller; the same rule as `runbook exec`'s window: runbook.execute.window.inside)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

VALID = frozenset({"start", "end", "tz", "days"})


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = VALID
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        from runbook.errors import RunbookError
        from runbook.execute.window import inside
        from runbook.model.runbook import Window

        a = dict(self._task.args)
        if not a.get("start") or not a.get("end"):
            return {**result, "failed": True, "msg": "window needs start and end (HH:MM)"}
        window = Window(
            str(a["start"]),
            str(a["end"]),
            str(a.get("tz") or "UTC"),
            tuple(str(d) for d in a.get("days") or ()),
        )
        try:
            ok, desc = inside(window)
        except RunbookError as exc:
            return {**result, "failed": True, "msg": exc.message}
        if not ok:
            return {
                **result,
                "failed": True,
                "changed": False,
                "msg": f"outside the {desc}: nothing was changed",
            }
        return {**result, "changed": False, "msg": f"inside the {desc}"}
