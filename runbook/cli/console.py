"""The rich console: a subscriber to the engine's events. Live progress (per host and step, elapsed
time on long steps) on a terminal; otherwise (a CI log, a pipe) a line with its UTC time when each
step starts and when it ends; then a recap table. Text that came from the run (command output,
messages, names) is made plain first: a command's colours or terminal escapes never reach the
console; NO_COLOR (or TERM=dumb) turns every style off."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape as _escape
from rich.table import Table
from rich.text import Text

from runbook.cli.output import no_color, plain
from runbook.execute.events import Event


def escape(text: str) -> str:
    """Rich markup escaping of text from the run, made plain first (no terminal escapes)."""
    return _escape(plain(text))


def make_console(*, stderr: bool = False) -> Console:
    """The console every command prints with: no styles at all (no ANSI escapes) under NO_COLOR,
    none either when the output is not a terminal (rich's own rule), where lines are not wrapped."""
    console = Console(stderr=stderr, highlight=False, **({"color_system": None} if no_color() else {}))
    if not console.is_terminal:  # a log or a pipe: a line is never broken in two (grep finds it whole)
        console.soft_wrap = True
    return console


def unstyled_code(code: str) -> Text:
    """What ``rich.syntax.Syntax(code, word_wrap=False, background_color="default")`` prints on a
    console that shows no style and wraps no line, without pygments: the code with its tabs
    expanded to 4 columns and a final newline kept as a blank line (Syntax._process_code and
    _get_syntax's simple case; tests/core/test_output.py compares the two). For text made
    ``plain`` (no control characters but newlines and tabs) that does not start with a BOM (which
    pygments drops)."""
    ends_on_nl = code.endswith("\n")
    text = Text(
        (code if ends_on_nl else code + "\n").expandtabs(4), justify="default", no_wrap=True, tab_size=4
    )
    if not ends_on_nl:
        text.remove_suffix("\n")
    return text


def utc_stamp(ts: str) -> str:
    """An event's ISO time as ``2026-12-02T08:27:19Z``."""
    return ts[:19] + "Z" if len(ts) >= 19 else ts

STYLE = {
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "skipped": "cyan",
    "rolled_back": "magenta",
}
MARK = {
    "ok": "ok",
    "changed": "changed",
    "failed": "FAILED",
    "skipped": "skipped",
    "rolled_back": "rolled back",
}


class ConsoleRenderer:
    def __init__(self, console: Console, *, verbose: int = 0, show_diffs: bool = True):
        self.c = console
        self.verbose = verbose
        self.show_diffs = show_diffs
        self.running: dict[str, tuple[str, float]] = {}  # host -> (step, started)
        self._lock = threading.Lock()
        self.live: Live | None = None
        self.stamped = not console.is_terminal  # a log: each step's start and end, with its UTC time
        if console.is_terminal:
            self.live = Live(
                self._render_running(),
                console=console,
                refresh_per_second=4,
                transient=True,
                get_renderable=self._render_running,
            )
            self.live.start()

    def _render_running(self) -> Any:
        with self._lock:
            items = list(self.running.items())
        if not items:
            return Text("")
        now = time.monotonic()
        rows = [
            Text.assemble(("  ⠿ ", "cyan"), (plain(h), "bold"), f"  {plain(s)}  ", (f"{now - t:.0f}s", "dim"))
            for h, (s, t) in items[:20]
        ]
        if len(items) > 20:
            rows.append(Text(f"  … and {len(items) - 20} more hosts", style="dim"))
        return Group(*rows)

    def __call__(self, ev: Event) -> None:
        k = ev.kind
        if k == "run.start":
            d = ev.data
            mode = " (dry-run)" if d.get("dry_run") else ""
            self.c.print(
                f"[bold]RUNBOOK[/] {escape(str(d.get('runbook')))}{mode}  run {ev.run_id}  hosts: {escape(', '.join(d.get('hosts', [])) or '-')}"
            )
        elif k == "phase.start":
            self.c.print(f"\n[bold blue]{(ev.phase or '').upper()}[/]")
        elif k == "batch.start" and len(ev.data.get("hosts", [])) > 0:
            if self.verbose:
                self.c.print(f"[dim]batch: {', '.join(ev.data['hosts'])}[/]")
        elif k == "step.start":
            with self._lock:
                self.running[ev.host or "-"] = (ev.step or "", time.monotonic())
            if self.stamped:
                self.c.print(f"{utc_stamp(ev.ts)} [dim]{'start':>7}[/] {escape(ev.host or '')} | {escape(ev.step or '')}")
        elif k == "step.output":
            self.c.print(f"  [dim]{escape(ev.host or '')}: {escape(str(ev.data.get('line', '')))}[/]")
        elif k == "step.end":
            with self._lock:
                self.running.pop(ev.host or "-", None)
            self._step_line(ev)
        elif k == "step.item":  # one loop item, its name rendered (`ping {{ item }}` -> `ping a`)
            outcome = ev.outcome or "ok"
            if outcome != "skipped" or self.verbose:
                lead = f"{utc_stamp(ev.ts)} " if self.stamped else "  "
                self.c.print(
                    f"{lead}[{STYLE.get(outcome, '')}]{MARK.get(outcome, outcome):>7}[/] "
                    f"{escape(ev.host or '')} | [dim]item[/] {escape(ev.step or '')}"
                )
        elif k == "rollback.start":
            self.c.print(
                f"\n[bold magenta]ROLLBACK[/] {escape(ev.host or '')}: {escape(str(ev.data.get('reason', '')))}"
            )
        elif k == "rollback.step":
            style = "magenta" if ev.outcome == "rolled_back" else STYLE.get(ev.outcome or "", "")
            msg = ev.data.get("msg") or ""
            lead = f"{utc_stamp(ev.ts)} " if self.stamped else "  "
            self.c.print(
                f"{lead}[{style}]{MARK.get(ev.outcome or '', ev.outcome)}[/] {escape(ev.host or '')} | undo {escape(str(ev.data.get('step')))}"
                + (f" [dim]{escape(msg)}[/]" if msg else "")
            )
        elif k == "rollback.verify":
            msg = escape(str(ev.data.get("msg") or ""))
            if ev.outcome != "ok":
                self.c.print(
                    f"  [bold red]NOT AS BEFORE[/] {escape(ev.host or '')} | {escape(str(ev.data.get('step')))}: [red]{msg}[/]"
                )
            elif self.verbose:
                self.c.print(f"  [dim]checked {escape(ev.host or '')} | {escape(str(ev.data.get('step')))}: {msg}[/]")
        elif k == "rollback.end":
            style = "magenta" if ev.outcome == "ok" else "bold red"
            self.c.print(
                f"  [{style}]rollback {'complete' if ev.outcome == 'ok' else 'FAILED'}[/] on {escape(ev.host or '')}"
            )
        elif k == "approval":
            self.c.print(
                f"  [bold]approval[/] {escape(ev.host or '')}: {ev.outcome} by {escape(str(ev.data.get('approved_by')))}"
            )

    def _step_line(self, ev: Event) -> None:
        outcome = ev.outcome or "ok"
        if outcome == "skipped" and not self.verbose and not self.stamped and "--step" not in str(ev.data.get("msg")):
            return  # (a step the operator declined at --step is always shown)
        style = STYLE.get(outcome, "")
        dur = f" [dim]({ev.duration:.1f}s)[/]" if ev.duration and ev.duration >= 0.5 else ""
        attempts = ev.data.get("attempts", 1)
        att = f" [dim](attempts: {attempts})[/]" if attempts and attempts > 1 else ""
        lead = f"{utc_stamp(ev.ts)} " if self.stamped else "  "  # a log line says when it ended
        line = f"{lead}[{style}]{MARK.get(outcome, outcome):>7}[/] {escape(ev.host or '')} | {escape(ev.step or '')}{dur}{att}"
        self.c.print(line)
        msg = ev.data.get("msg")
        if msg and (outcome == "failed" or self.verbose or str(msg).startswith("recovered by fallback")
                    or "dry-run: " in str(msg) or "--step" in str(msg)):  # what was not done, and why
            self.c.print(
                f"          [red]{escape(str(msg))}[/]"
                if outcome == "failed"
                else f"          [dim]{escape(str(msg))}[/]"
            )
        if outcome == "failed":
            for stream in ("stderr", "stdout"):
                text = (ev.data.get(stream) or "").strip()
                if text:
                    tail = "\n".join(text.splitlines()[-10:])
                    self.c.print(f"          [dim]{stream}:[/] {escape(tail)}")
        if self.verbose:
            from runbook.cli.verbosity import result_lines

            shown = {k: v for k, v in ev.data.items() if outcome != "failed" or k != "stdout"}  # shown below
            for text in result_lines(shown, ev.rc, self.verbose):
                self.c.print(f"          [dim]{escape(text)}[/]")
        for p in ev.data.get("diffs", []) or []:  # --diff: what a real run wrote
            self.c.print(f"          [yellow]wrote[/] {escape(p['summary'])}")
            if p.get("diff"):
                self._diff(p["diff"])
        for p in ev.data.get("planned", []) or []:
            if p["kind"] in ("file", "change"):  # change: a check mode's answer (Ansible --check --diff)
                verb = "would write" if p["kind"] == "file" else "would change"
                summary = str(p["summary"]).removesuffix(": would change")
                self.c.print(f"          [yellow]{verb}[/] {escape(summary)}")
                if self.show_diffs and p.get("diff"):
                    self._diff(p["diff"])
            else:
                self.c.print(
                    f"          [yellow]would {'run' if p['kind'] == 'command' else 'send'}[/] {escape(p['summary'])}"
                )

    def _diff(self, diff: str) -> None:
        """A file's diff, every line whole: wrapped at the terminal's width, never cut."""
        text = plain(diff)
        if self.c.color_system is None and self.c.soft_wrap and not text.startswith("\ufeff"):
            self.c.print(unstyled_code(text))  # a log without colours: nothing for pygments to do
            return
        from rich.syntax import Syntax  # pygments: only when there is a diff to colour

        self.c.print(
            Syntax(text, "diff", theme="ansi_dark", background_color="default",
                   word_wrap=not self.c.soft_wrap)  # a log (soft wrap): each line whole, as it is
        )

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the live display (a prompt is being answered), and start it again after."""
        live = self.live
        if live is None:
            yield
            return
        live.stop()
        try:
            yield
        finally:
            if self.live is live:
                live.start()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def recap(console: Console, result: Any, audit_path: str | None) -> None:
    table = Table(title="RECAP", title_justify="left", show_edge=False, header_style="bold")
    table.add_column("host")
    for col in ("ok", "changed", "failed", "skipped", "rolled_back", "unreachable"):
        table.add_column(col.replace("_", " "), justify="right")
    for host, hr in result.hosts.items():
        s = hr.stats
        style = "red" if hr.failed else ("yellow" if s["changed"] else "green")
        table.add_row(
            f"[{style}]{escape(host)}[/]",
            *(str(s[k]) for k in ("ok", "changed", "failed", "skipped", "rolled_back", "unreachable")),
        )
    console.print()
    console.print(table)
    color = {0: "green", 1: "yellow", 3: "red", 4: "bold red", 130: "yellow"}.get(result.exit_code, "red")
    console.print(
        f"[{color}]{result.status}[/] (exit {result.exit_code}) in {result.ended - result.started:.1f}s  run {result.run_id}"
    )
    if result.message:
        console.print(f"[{color}]{escape(result.message)}[/]")
    if audit_path:
        console.print(f"audit: {escape(audit_path)}")

