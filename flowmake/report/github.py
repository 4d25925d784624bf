"""GitHub Actions (SPEC §8): workflow commands and the job summary.

With ``GITHUB_ACTIONS=true`` a failed target prints an ``::error`` workflow command (an
annotation on the run) and a configuration error one with ``file=`` and ``line=``; with
``GITHUB_STEP_SUMMARY`` naming a file, `build` appends a Markdown summary of the run to
it. Values are escaped as GitHub's toolkit does (``%``, CR and LF in messages; ``:`` and
``,`` too in properties).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flowmake.model import OutcomeStatus, RunResult

if TYPE_CHECKING:
    from flowmake.errors import FlowmakeError
    from flowmake.schedule import Outcome, Summary

TAIL_LINES = 20  # of a failed target's output, in the summary
ANNOTATION_LINES = 10  # ... and in its annotation
LISTED = 50  # names listed per group (restored, built) before "… and N more"
SLOWEST = 10
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, **properties: Any) -> str:
    """``::kind prop=value,...::message``; properties whose value is None are left out."""
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items()
                     if v is not None)
    return f"::{kind}{' ' + props if props else ''}::{escape_data(message)}"


def _plain(text: str) -> str:
    return _ANSI.sub("", text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def tail(output: str, lines: int) -> list[str]:
    return _plain(output).rstrip("\n").split("\n")[-lines:] if output.strip() else []


def target_command(outcome: Outcome) -> str:
    """A failed target's annotation: its error, then the end of its output. A target
    stopped by Ctrl-C (a cancelled job) is a warning, not an error of its own."""
    message = "\n".join([outcome.error or "failed", *tail(outcome.output, ANNOTATION_LINES)])
    kind = "warning" if outcome.error == "interrupted" else "error"
    return command(kind, message, title=f"flowmake: {_plain(outcome.name)}")


def error_command(err: FlowmakeError, directory: str | None) -> str:
    """A configuration or usage error's annotation; a ConfigError's file (relative to the
    repository, ``GITHUB_WORKSPACE``, where it lies inside it) and line when known."""
    file = getattr(err, "file", None)
    line = getattr(err, "line", None)
    if file:
        file = _repo_path(Path(directory or ".") / file)
    message = str(err)
    detail, key = getattr(err, "detail", None), getattr(err, "key", None)
    if file and detail:  # the place is in file= and line= already
        message = f"{key}: {detail}" if key else detail
    return command("error", message, file=file, line=line if file else None,
                   title="flowmake")


def _repo_path(path: Path) -> str:
    path = path.resolve()
    for base in (os.environ.get("GITHUB_WORKSPACE"), os.getcwd()):
        if base:
            try:
                return path.relative_to(Path(base).resolve()).as_posix()
            except ValueError:
                continue
    return path.as_posix()


# -- the job summary --------------------------------------------------------------------


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks inside ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _code(name: str) -> str:
    tick = _fence(name)[:-2] or "`"
    return f"{tick} {name} {tick}" if "`" in name else f"`{name}`"


def _names(outcomes: list[Outcome]) -> str:
    shown = ", ".join(_code(_plain(o.name)) for o in outcomes[:LISTED])
    more = len(outcomes) - LISTED
    return shown + (f" … and {more} more" if more > 0 else "")


def _failure(outcome: Outcome) -> list[str]:
    lines = tail(outcome.output, TAIL_LINES)
    block = "\n".join(lines)
    fence = _fence(block)
    out = [f"#### ❌ {_code(_plain(outcome.name))}: {_plain(outcome.error or 'failed')}", ""]
    if lines:
        more = _plain(outcome.output).rstrip("\n").count("\n") + 1 - len(lines)
        if more > 0:
            out += [f"last {len(lines)} lines of its output ({more} before them):", ""]
        out += [f"{fence}text", block, fence, ""]
    return out


_RAN = (OutcomeStatus.BUILT, OutcomeStatus.RESTORED, OutcomeStatus.FAILED)


def summary_markdown(summary: Summary) -> str:
    """The run as Markdown: counts, failures with the end of their output, what was
    restored and built, the slowest targets."""
    counts = summary.counts()
    icon = {RunResult.SUCCESS: "✅", RunResult.FAILED: "❌", RunResult.INTERRUPTED: "⚠️"}[
        summary.result]
    run = f" (run {summary.run_id})" if summary.run_id is not None else ""
    lines = [f"### {icon} flowmake build: {summary.result}{run}", "",
             "| built | restored | fresh | failed | skipped | time |",
             "|---:|---:|---:|---:|---:|---:|",
             "| " + " | ".join(str(counts[k]) for k in counts) + f" | {summary.duration:.2f}s |",
             ""]
    outcomes = list(summary.outcomes.values())
    for outcome in outcomes:
        if outcome.status == OutcomeStatus.FAILED:
            lines += _failure(outcome)
    for status, title in ((OutcomeStatus.RESTORED, "Restored from the cache"),
                          (OutcomeStatus.BUILT, "Built")):
        group = [o for o in outcomes if o.status == status]
        if group:
            lines += [f"**{title} ({len(group)}):** {_names(group)}", ""]
    ran = sorted((o for o in outcomes if o.status in _RAN),
                 key=lambda o: -o.duration)[:SLOWEST]
    if ran:
        lines += ["<details><summary>Slowest targets</summary>", "",
                  "| target | status | duration |", "|---|---|---:|"]
        lines += [f"| {_code(_plain(o.name)).replace('|', '&#124;')} | {o.status} |"
                  f" {o.duration:.2f}s |" for o in ran]
        lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def after_build(summary: Summary, out: IO[str]) -> None:
    """On GitHub Actions: the annotations of failed targets; with GITHUB_STEP_SUMMARY, the
    summary appended to that file (a file that cannot be written is one warning)."""
    import sys

    if os.environ.get("GITHUB_ACTIONS") == "true":
        for outcome in summary.outcomes.values():
            if outcome.status == OutcomeStatus.FAILED:
                out.write(target_command(outcome) + "\n")
        out.flush()
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(summary_markdown(summary))
        except OSError as exc:
            print(f"flowmake: warning: GITHUB_STEP_SUMMARY {path}: not written:"
                  f" {exc.strerror or exc}", file=sys.stderr)
