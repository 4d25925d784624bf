"""The local executor's event loop, with real processes: every command is started and
watched from one thread (the test's), as the scheduler does."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from flowmake.builtin.local_executor import CommandRunner, LocalExecutor
from flowmake.executor import Job


def job(tmp_path: Path, name: str, command: str, **kw: object) -> Job:
    return Job(name=name, root=str(tmp_path), cwd=str(tmp_path), command=command, **kw)  # type: ignore[arg-type]


def wait_all(executor: LocalExecutor, handles: list) -> dict[str, object]:
    pending, results = set(handles), {}
    while pending:
        for handle in executor.wait(pending):
            pending.discard(handle)
            result = handle.result()
            results[result.name] = result
    return results


def test_jobs_run_at_once_and_report_as_each_ends(tmp_path: Path) -> None:
    executor = LocalExecutor(jobs=3)
    try:
        start = time.monotonic()
        # 0.2, 1.0 and 1.2 s: far enough apart that a loaded machine still sees the first
        # end alone, and 2.4 s in turn against 1.2 s side by side
        handles = [executor.submit(job(tmp_path, f"s{i}", f"sleep {t}; echo done {i}"))
                   for i, t in enumerate(("0.2", "1.0", "1.2"))]
        first = executor.wait(handles)
        assert [h.result().name for h in first] == ["s0"]  # the shortest, alone
        results = wait_all(executor, handles)
        assert time.monotonic() - start < 2.0  # side by side, not in turn
        assert all(r.ok for r in results.values())
        assert results["s2"].output == "done 2\n"
    finally:
        executor.shutdown()


def test_a_command_that_closes_its_output_early_is_followed_to_its_exit(tmp_path: Path) -> None:
    """EOF comes long before the exit: the exit code still decides, and other jobs go on."""
    executor = LocalExecutor(jobs=2)
    try:
        quiet = executor.submit(job(tmp_path, "quiet", "echo bye; exec >&- 2>&-; sleep 0.4; exit 3"))
        quick = executor.submit(job(tmp_path, "quick", "echo hi"))
        assert {h.result().name for h in executor.wait([quiet, quick])} == {"quick"}
        result = quiet.result()
        assert (result.ok, result.error, result.output) == (False, "exit code 3", "bye\n")
        assert result.duration >= 0.35
    finally:
        executor.shutdown()


def test_a_missing_output_a_timeout_and_retries(tmp_path: Path) -> None:
    executor = LocalExecutor(jobs=3)
    try:
        handles = [
            executor.submit(job(tmp_path, "lazy", "true", outputs=((None, "out/never.txt"),))),
            executor.submit(job(tmp_path, "slow", "sleep 30", timeout=0.3)),
            executor.submit(job(tmp_path, "flaky",
                                "test -e tried && echo ok || { touch tried; exit 1; }",
                                retries=1)),
        ]
        results = wait_all(executor, handles)
        assert results["lazy"].error == "declared output not produced: out/never.txt"
        assert (tmp_path / "out").is_dir()  # an output's folder is made before the command
        assert results["slow"].error == "timed out after 0.3s"
        assert results["slow"].duration < 5
        flaky = results["flaky"]
        assert (flaky.ok, flaky.attempts) == (True, 2)
        assert "--- attempt 2 of 2 (exit code 1) ---" in flaky.output
    finally:
        executor.shutdown()


def test_a_command_that_cannot_start_fails_alone(tmp_path: Path) -> None:
    executor = LocalExecutor(jobs=1)
    try:
        gone = Job(name="gone", root=str(tmp_path), cwd=str(tmp_path / "nowhere"), command="true")
        result = executor.submit(gone).result()
        assert not result.ok and result.error.startswith("cannot start the command")
    finally:
        executor.shutdown()


def test_cancel_from_another_thread_stops_a_blocking_run(tmp_path: Path) -> None:
    """What a Dask worker does: run() on one thread, cancel() from another."""
    runner = CommandRunner()
    timer = threading.Timer(0.3, runner.cancel)
    timer.start()
    start = time.monotonic()
    result = runner.run(job(tmp_path, "long", "sleep 30"), None)
    assert result.interrupted and result.error == "interrupted"
    assert time.monotonic() - start < 5


def test_streamed_lines_arrive_whole_and_in_order(tmp_path: Path) -> None:
    lines: list[tuple[str, str]] = []
    runner = CommandRunner()
    result = runner.run(job(tmp_path, "talk", "printf 'a\\nb'; sleep 0.1; printf 'c\\nd'"),
                        lambda name, line: lines.append((name, line)))
    assert lines == [("talk", "a\n"), ("talk", "bc\n"), ("talk", "d")]
    assert result.output == "a\nbc\nd"


@pytest.mark.parametrize("step", ["close_pidfd", "close_pipe"])
def test_a_ctrl_c_as_the_loop_stops_watching_a_command_does_not_hang_it(
        tmp_path: Path, monkeypatch, step: str) -> None:
    """Ctrl-C between unregistering a finished command's pidfd (or its output pipe, at
    EOF) and closing it: the loop must still learn of the exit (it waited forever: a
    build hung after Ctrl-C)."""
    from flowmake.builtin.attempt import Attempt

    close, calls = getattr(Attempt, step), []

    def interrupted(attempt: Attempt) -> None:
        calls.append(attempt)
        if len(calls) == 1:
            raise KeyboardInterrupt
        close(attempt)

    monkeypatch.setattr(Attempt, step, interrupted)
    executor = LocalExecutor(jobs=1)
    handle = executor.submit(job(tmp_path, "t", "sleep 0.1"))
    try:
        executor.wait([handle])
    except KeyboardInterrupt:
        pass
    found: list = []
    waiter = threading.Thread(target=lambda: found.append(handle.result()), daemon=True)
    waiter.start()
    waiter.join(10)
    try:
        assert len(calls) == 2 and found and found[0].ok, "the loop never saw the exit"
    finally:
        executor.shutdown()
