"""``--step``: the operator confirms each step before it runs, as ``ansible-playbook --step``:
(y)es runs it, (n)o skips it, (c)ontinue runs it and every step after it without asking."""

from __future__ import annotations

import threading
from collections.abc import Callable

ANSWERS = {"y": "yes", "yes": "yes", "n": "no", "no": "no", "c": "continue", "continue": "continue"}


class StepGate:
    """A ``RunOptions.step_gate``: asks ``ask(question)`` (one host at a time) until the answer is
    yes, no or continue. No answer (the terminal closed) is no."""

    def __init__(self, ask: Callable[[str], str]):
        self._ask = ask
        self._lock = threading.Lock()
        self.go_on = False  # (c)ontinue was answered: no more questions

    def __call__(self, host: str, step: str) -> bool:
        with self._lock:
            if self.go_on:
                return True
            while True:
                try:
                    reply = self._ask(f"Perform step '{step}' on {host}? (y)es/(n)o/(c)ontinue")
                except (EOFError, OSError):
                    return False
                answer = ANSWERS.get(reply.strip().lower())
                if answer is not None:
                    break
            if answer == "continue":
                self.go_on = True
            return answer != "no"
