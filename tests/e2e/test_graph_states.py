"""An all-fresh `graph --format json` of every target keeps the rest of each node (state,
last run, last build) in ``.flowmake/graph.states`` (cli/graphstates.py): the document
made from it is the one made without it, and it is never used once a record or a target
line changed (whoever changed it: a build, another program writing the database, an
older flowmake's reset), once the time zone changed, or when it is damaged; a resident
server keeps it decoded for its forks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.conftest import Project
from tests.e2e.test_graph_texts import FLOW, IN_PROCESS, TRACE, age, graph, served

# graph.texts' flow without its always target, which no no-op fast path vouches for
FRESH_FLOW = FLOW[:FLOW.index("[targets.stamp]")]


def built(project: Project) -> Project:
    project.flow(FRESH_FLOW)
    project.run("build", check=True, env=IN_PROCESS)
    return project


def states(project: Project) -> Path:
    return project.root / ".flowmake" / "graph.states"


def nodes(text: str) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in json.loads(text)["nodes"]}


def state_db(project: Project) -> sqlite3.Connection:
    """The state database as another program opens it (not flowmake's code)."""
    return sqlite3.connect(project.root / ".flowmake" / "state.db", isolation_level=None)


def armed(project: Project) -> Project:
    """Every file past the racy window, then a no-op build: its stat snapshot says every
    target is fresh (the no-op fast path's answer, which graph takes)."""
    age(project)
    project.run("build", check=True, env=IN_PROCESS)
    return project


def kept(project: Project) -> str:
    """graph's document, made once and then answered from what it kept."""
    armed(project)
    made = graph(project)
    assert states(project).is_file()
    saved = states(project).stat().st_mtime_ns
    again = graph(project)
    assert states(project).stat().st_mtime_ns == saved  # used, not made again
    assert again == made
    return made


def test_the_kept_states_give_the_document_made_without_them(project: Project) -> None:
    built(project)
    made = kept(project)
    states(project).unlink()
    assert graph(project) == made
    doc = nodes(made)
    assert doc["src"]["state"] == "fresh" and doc["src"]["last_built"]["run_id"] >= 1
    assert doc["src"]["display"] == "fresh"
    # Not kept for a selection, nor for a plan with a stale target.
    states(project).unlink()
    graph(project, "fit[k=1]")
    assert not states(project).exists()
    project.write("out/src.txt", "changed by hand\n")
    assert nodes(graph(project))["src"]["state"] != "fresh"
    assert not states(project).exists()


def test_a_build_is_seen(project: Project) -> None:
    built(project)
    before = nodes(kept(project))
    project.edit_flow("echo ${params.rate}", "echo ${params.rate} again")
    project.run("build", check=True, env=IN_PROCESS)
    age(project)
    after = nodes(kept(project))
    assert after["src"]["last_built"]["run_id"] > before["src"]["last_built"]["run_id"]
    assert after["src"]["last_run"]["run_id"] > before["src"]["last_run"]["run_id"]


def test_a_change_by_another_program_is_seen(project: Project) -> None:
    """A record or line written without flowmake's code (a tool, an older flowmake):
    the database's triggers count it and note its target, whose node is made again."""
    built(project)
    kept(project)
    changes = [
        ("UPDATE records SET built_at = 1000000000.25 WHERE target = 'src'",
         lambda n: n["src"]["last_built"]["at"] == 1000000000.25),
        ("UPDATE run_targets SET duration = 7.5 WHERE target = 'join'",
         lambda n: n["join"]["last_run"]["duration"] == 7.5),
        ("DELETE FROM run_targets WHERE target = 'join'",
         lambda n: n["join"]["last_run"] is None),
        ("DELETE FROM records WHERE target = 'join'",
         lambda n: n["join"]["last_built"] is None),
    ]
    for sql, seen in changes:
        db = state_db(project)
        db.execute(sql)
        db.close()
        made = graph(project)  # the fast path still vouches: no file changed
        assert seen(nodes(made)), sql
        assert graph(project) == made, sql  # and kept again


def test_an_older_flowmakes_reset_is_seen(project: Project) -> None:
    """A flowmake of another schema drops the tables (and their triggers with them) and
    writes rows that no trigger counts: the log is made anew in a new epoch, and the
    states made again."""
    from flowmake.store.sqlite import _SCHEMA

    built(project)
    before = nodes(kept(project))
    db = state_db(project)
    rows = db.execute("SELECT * FROM records").fetchall()
    db.executescript("DROP TABLE records; DROP TABLE run_targets; " + _SCHEMA)
    db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, 99, ?, ?)",
                   [(r[0], r[1], r[2], r[3], r[5], r[6]) for r in rows])
    db.close()
    made = graph(project)  # the fast path still vouches: no file changed
    assert graph(project) == made  # and kept again
    after = nodes(made)
    assert after["src"]["last_built"]["run_id"] == 99 != before["src"]["last_built"]["run_id"]
    assert after["src"]["last_run"] is None


def test_another_time_zone_gets_its_own(project: Project) -> None:
    armed(built(project))
    utc = nodes(graph(project, env={"TZ": "UTC0"}))
    nine = nodes(graph(project, env={"TZ": "XYZ-9"}))  # UTC+9, a POSIX rule: no tz files
    assert utc["src"]["last_built"]["built"].endswith("+00:00")
    assert nine["src"]["last_built"]["built"].endswith("+09:00")
    assert nodes(graph(project, env={"TZ": "UTC0"})) == utc


def test_a_damaged_file_is_not_used_and_is_made_again(project: Project) -> None:
    built(project)
    good = kept(project)
    data = states(project).read_bytes()
    body_at = data.index(b"\n") + 1
    flipped = bytearray(data)
    flipped[body_at + 20] ^= 0x01
    header = json.loads(data[:body_at])
    def header_with(**fields: Any) -> bytes:
        return json.dumps({**header, **fields}).encode() + b"\n" + data[body_at:]

    damages = {"one bit": bytes(flipped), "cut short": data[:len(data) // 2],
               "no header": data[body_at:], "empty": b"",
               "another epoch": header_with(epoch="0" * 16),
               "a later change": header_with(seq=header["seq"] + 1),
               "no change number": header_with(seq=None),
               "a line more": data + b"\nx"}
    for what, damaged in damages.items():
        states(project).write_bytes(damaged)
        assert graph(project) == good, what
        assert states(project).read_bytes() == data, what  # made again, as it was


# Runs `flowmake graph` in this process, with another program's write committed after
# graph took the change log's number and before it read the records (a build finishing
# then).
RACED = textwrap.dedent("""
    import sqlite3, sys
    from flowmake.store import db
    built = db.Store.built
    def raced(self, names=None):
        other = sqlite3.connect(self.path, isolation_level=None)
        other.execute("UPDATE records SET built_at = 1000000000.5 WHERE target = 'src'")
        other.close()
        return built(self, names)
    db.Store.built = raced
    from flowmake.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_change_while_graph_reads_is_seen_next_time(project: Project) -> None:
    built(project)
    kept(project)
    db = state_db(project)
    db.execute("UPDATE records SET built_at = 1000000000.0 WHERE target = 'src'")
    db.close()
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_RESIDENT": "0"}
    raced = subprocess.run([sys.executable, "-c", RACED, "-C", str(project.root), "graph",
                            "--format", "json"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert raced.returncode == 0, raced.stderr
    assert nodes(raced.stdout)["src"]["last_built"]["at"] == 1000000000.5  # read after
    # kept under the number taken before the write: 'src' is made again
    assert nodes(graph(project))["src"]["last_built"]["at"] == 1000000000.5


def test_a_resident_fork_gets_the_states_decoded(project: Project) -> None:
    built(project)
    served(project, kept(project), "graph.states")
    db = state_db(project)
    db.execute("UPDATE records SET duration = 3.25 WHERE target = 'src'")
    db.close()
    result = project.run("graph", "--format", "json", check=True, env=TRACE)
    assert nodes(result.stdout)["src"]["last_built"]["duration"] == 3.25


# `flowmake graph` in this process, saying whose rows each read of the records is for.
TRACED = textwrap.dedent("""
    import sys
    from flowmake.store import db
    built = db.Store.built
    def traced(self, names=None):
        print("rows of:", "all" if names is None else sorted(names), file=sys.stderr)
        return built(self, names)
    db.Store.built = traced
    from flowmake.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def traced_graph(project: Project) -> tuple[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_RESIDENT": "0"}
    done = subprocess.run([sys.executable, "-c", TRACED, "-C", str(project.root), "graph",
                           "--format", "json"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def test_only_the_targets_changed_since_are_made_again(project: Project) -> None:
    """After a change of a few records or lines (a cone build, another program's write),
    the kept texts of the others are used: only the changed targets' rows are read, and
    the document is the one made from every row."""
    built(project)
    kept(project)
    db = state_db(project)
    db.execute("UPDATE records SET duration = 4.5 WHERE target = 'join'")
    db.execute("UPDATE run_targets SET duration = 2.5 WHERE target = 'fit[k=1]'")
    db.close()
    made, err = traced_graph(project)
    assert "rows of: ['fit[k=1]', 'join']" in err and "rows of: all" not in err, err
    doc = nodes(made)
    assert doc["join"]["last_built"]["duration"] == 4.5
    assert doc["fit[k=1]"]["last_run"]["duration"] == 2.5
    again, err = traced_graph(project)
    assert again == made and "rows of:" not in err  # kept as patched: nothing read
    states(project).unlink()
    assert graph(project) == made  # the document made from every row


def test_after_a_cone_build_only_its_built_targets_are_made_again(project: Project) -> None:
    """An output changed by hand: the next build rebuilds that target alone (its cone's
    other target is fresh: early cutoff); the graph just after it checks that cone, and
    reads the rows of the rebuilt target only."""
    built(project)
    kept(project)
    project.write("out/fit-1.txt", "changed by hand\n")
    past = time.time() - 5  # the change outside the racy window; flow.toml as it was
    os.utime(project.root / "out" / "fit-1.txt", (past, past))
    done = project.run("build", check=True, env={**IN_PROCESS, "FLOWMAKE_TRACE": "cone"})
    assert "cone: 1 changed paths, 2 of 4 targets checked" in done.stderr, done.stderr
    made, err = traced_graph(project)
    assert "rows of: ['fit[k=1]']" in err and "rows of: all" not in err, err
    doc = nodes(made)
    assert {n["state"] for n in doc.values()} == {"fresh"}
    assert doc["fit[k=1]"]["last_run"]["run_id"] > doc["fit[k=2]"]["last_run"]["run_id"]
    states(project).unlink()
    assert graph(project) == made  # the document made from every row
