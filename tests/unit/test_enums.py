"""The status, result and kind Enums (model.py): their values are the strings flowmake
has always printed and stored, and a member behaves as its value everywhere it goes."""

from __future__ import annotations

import json
import pickle
import sqlite3

import pytest

from flowmake.model import BuiltinKind, OutcomeStatus, RunResult, Shell, Target, TargetStatus
from flowmake.plan.check import State
from flowmake.schedule import Outcome, Summary


def test_values():
    assert [m.value for m in TargetStatus] == ["fresh", "stale", "restorable"]
    assert [m.value for m in OutcomeStatus] == ["built", "restored", "fresh", "failed", "skipped"]
    assert [m.value for m in RunResult] == ["success", "failed", "interrupted", "running"]
    assert [m.value for m in BuiltinKind] == ["cmd", "python"]
    assert State is TargetStatus  # the planner's states are the status Enum


@pytest.mark.parametrize("member", [*TargetStatus, *OutcomeStatus, *RunResult, *BuiltinKind])
def test_a_member_is_its_value_in_text_json_sqlite_and_pickle(member):
    value = member.value
    assert member == value and hash(member) == hash(value) and isinstance(member, str)
    assert (str(member), f"{member}", f"{member:>12}", " ".join([member]), repr(member)) == (
        value, value, f"{value:>12}", value, repr(value))
    assert json.dumps({member: [member]}) == json.dumps({value: [value]})
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (member,))
    assert db.execute("SELECT v, typeof(v) FROM t").fetchone() == (value, "text")
    assert pickle.loads(pickle.dumps(member)) is member
    assert type(member)(value) is member  # a stored string reads back as the member


def test_target_kind():
    shell = Target("a", Shell("true"))
    assert shell.kind is BuiltinKind.CMD
    assert f"{shell.kind:<6}|" == "cmd   |"  # `flowmake list` pads it


def test_a_summary_json_is_plain():
    outcome = Outcome("a", OutcomeStatus.BUILT, 1.0)
    summary = Summary(1, RunResult.SUCCESS, {"a": outcome}, 1.0)
    assert summary.counts() == {"built": 1, "restored": 0, "fresh": 0, "failed": 0, "skipped": 0}
    assert json.dumps(summary.to_json()) == (
        '{"run_id": 1, "result": "success", "duration": 1.0, "counts": {"built": 1,'
        ' "restored": 0, "fresh": 0, "failed": 0, "skipped": 0}, "targets": [{"name": "a",'
        ' "status": "built", "duration": 1.0}]}')
