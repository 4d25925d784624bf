"""What a build shows: a rich live view on a terminal, plain lines elsewhere.

Each target's captured output is printed as one block when it ends (``-v`` streams it
instead). ``--json`` sends all of this to stderr so that stdout carries only the document.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # keep the no-op fast path free of the scheduler's imports
    from collections.abc import Collection

    from flowmake.plan.check import Step
    from flowmake.schedule import Outcome, Summary

_MARK = {"built": "ok", "restored": "restored", "fresh": "fresh", "failed": "FAILED",
         "skipped": "skipped"}


def use_rich(stream: IO[str], no_color: bool) -> bool:
    """The live view only on a terminal, and never with NO_COLOR or --no-color."""
    return (not no_color and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
            and stream.isatty())


def summary_line(summary: Summary) -> str:
    return format_summary(summary.result, summary.counts(), summary.duration, summary.run_id)


def format_summary(result: str, counts: dict[str, int], duration: float,
                   run_id: int | None) -> str:
    """The build's last line; ``run_id`` None for a build kept out of the history."""
    parts = ", ".join(f"{n} {k}" for k, n in counts.items())
    run = "not kept in the history" if run_id is None else f"run {run_id}"
    return f"flowmake: {result}: {parts} in {duration:.2f}s ({run})"


def finish_line(outcome: Outcome) -> str:
    """``ok       NAME  1.20s, after 2 attempts  (error)``: one target's end, without output."""
    text = f"{_MARK[outcome.status]:<8} {outcome.name}"
    if outcome.status in ("built", "restored", "failed"):
        text += f"  {outcome.duration:.2f}s"
        if outcome.attempts > 1:
            text += f", after {outcome.attempts} attempts"
    if outcome.error:
        text += f"  ({outcome.error})"
    return text


def unreported(summary: Summary, reported: set[str]) -> list[Outcome]:
    """Targets that ended without a line of their own: those stopped by Ctrl-C (status
    failed, error interrupted), named in the final lines."""
    from flowmake.outcome import stepped

    return [o for o in stepped(summary.outcomes).values()
            if o.status == "failed" and o.name not in reported]


class PlainReporter:
    """One line per event, safe for CI logs and pipes."""

    def __init__(self, stream: IO[str], *, quiet: bool = False, verbose: bool = False) -> None:
        self.out, self.quiet, self.verbose = stream, quiet, verbose
        self.lock = threading.Lock()
        self.reported: set[str] = set()  # targets whose finish was reported

    def write(self, text: str) -> None:
        with self.lock:
            self.out.write(text)
            self.out.flush()

    def build_start(self, total: int, jobs: int) -> None:
        if self.verbose:
            self.write(f"flowmake: {total} target(s) selected, -j{jobs}\n")

    def target_start(self, step: Step) -> None:
        if not self.quiet:
            why = ", ".join(str(r) for r in step.reasons[:3])
            self.write(f"run      {step.name}  ({why})\n")

    def target_finish(self, outcome: Outcome) -> None:
        self.reported.add(outcome.name)
        if outcome.status == "fresh" and not self.verbose:
            return
        failed = outcome.status == "failed"
        if self.quiet and not failed:
            return
        block = outcome.output if not self.verbose or outcome.status == "restored" else ""
        if block and not block.endswith("\n"):
            block += "\n"
        self.write(finish_line(outcome) + "\n" + block)

    def targets_fresh(self, names: Collection[str]) -> None:
        if self.verbose:  # each listed, as a target checked fresh is
            from flowmake.outcome import fresh

            for name in sorted(names):
                self.target_finish(fresh(name))

    def line(self, name: str, text: str) -> None:
        self.write(f"[{name}] {text}" if text.endswith("\n") else f"[{name}] {text}\n")

    def build_finish(self, summary: Summary) -> None:
        for outcome in unreported(summary, self.reported):
            self.target_finish(outcome)
        if not self.quiet or summary.result != "success":
            self.write(summary_line(summary) + "\n")


class RichReporter(PlainReporter):
    """A live view: progress bar, running targets with elapsed time, and a summary table."""

    def __init__(self, stream: IO[str], *, quiet: bool = False, verbose: bool = False) -> None:
        super().__init__(stream, quiet=quiet, verbose=verbose)
        from rich.console import Console

        self.console = Console(file=stream, highlight=False)
        self.running: dict[str, float] = {}
        self.done = 0
        self.total = 0
        self.live: Any = None

    def build_start(self, total: int, jobs: int) -> None:
        from rich.live import Live

        self.total = total
        self.live = Live(self._render(), console=self.console, refresh_per_second=8,
                         transient=True, get_renderable=self._render)
        self.live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        bar = ProgressBar(total=max(self.total, 1), completed=self.done, width=40)
        table.add_row(bar, Text(f"{self.done}/{self.total}"))
        now = time.monotonic()
        running = Table.grid(padding=(0, 2))
        for name, started in list(self.running.items())[:10]:
            # Text, not markup: target names may contain [brackets] (matrix instances).
            running.add_row(Text(f"▶ {name}", style="cyan"), Text(f"{now - started:5.1f}s"))
        if len(self.running) > 10:
            running.add_row(Text(f"… and {len(self.running) - 10} more"), Text(""))
        return Group(table, running)

    def print(self, text: str, style: str | None = None) -> None:
        with self.lock:
            self.console.print(text, style=style, markup=False, highlight=False, end="")

    def target_start(self, step: Step) -> None:
        self.running[step.name] = time.monotonic()

    def targets_fresh(self, names: Collection[str]) -> None:
        self.done += len(names)

    def target_finish(self, outcome: Outcome) -> None:
        self.reported.add(outcome.name)
        self.running.pop(outcome.name, None)
        self.done += 1
        if outcome.status == "fresh" or (self.quiet and outcome.status != "failed"):
            return
        style = {"built": "green", "restored": "blue", "failed": "bold red",
                 "skipped": "yellow"}[outcome.status]
        self.print(finish_line(outcome) + "\n", style)
        block = outcome.output if not self.verbose or outcome.status == "restored" else ""
        if block:
            self.print(block if block.endswith("\n") else block + "\n")

    def line(self, name: str, text: str) -> None:
        self.print(f"[{name}] {text}" if text.endswith("\n") else f"[{name}] {text}\n")

    def build_finish(self, summary: Summary) -> None:
        if self.live is not None:
            self.live.stop()
        from rich.table import Table

        for outcome in unreported(summary, self.reported):
            self.target_finish(outcome)
        if self.quiet and summary.result == "success":
            return
        table = Table(title=None, show_edge=False, pad_edge=False)
        for column in ("run", "result", "built", "restored", "fresh", "failed", "skipped",
                       "time"):
            table.add_column(column, justify="left" if column == "result" else "right")
        c = summary.counts()
        colour = {"success": "green", "failed": "red", "interrupted": "yellow"}[summary.result]
        table.add_row(str(summary.run_id or "-"), f"[{colour}]{summary.result}[/]",
                      *(str(c[k]) for k in c), f"{summary.duration:.2f}s")
        with self.lock:
            self.console.print(table)


def make_reporter(stream: IO[str] | None = None, *, no_color: bool = False, quiet: bool = False,
                  verbose: bool = False) -> PlainReporter:
    stream = stream or sys.stdout
    cls = RichReporter if use_rich(stream, no_color) else PlainReporter
    return cls(stream, quiet=quiet, verbose=verbose)
