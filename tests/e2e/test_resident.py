"""The resident process (docs/resident.md): a command is run by a fork of a server that
holds flowmake's imports, and is the same command as one run in-process — its folder,
environment, output, exit code, signals — through real servers, sockets and signals.

The suite runs every command this way (tests/conftest.py gives it a folder of sockets of
its own); these tests check that it really happens, and the ways it must not go wrong."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import flowmake
from tests.conftest import FLOWMAKE, Project, base_env, describe, pid_alive, wait_for

# The command's parent (the flowmake process running the build) and that one's parent.
WHO = ("echo $PPID > ${outputs}; awk '/^PPid/ {print $2}' /proc/$PPID/status >> ${outputs}; "
       "echo \"$MYVAR\" >> ${outputs}; pwd >> ${outputs}; umask >> ${outputs}")
FLOW = f"[targets.who]\ncmd = '''{WHO}'''\noutputs = [\"who.txt\"]\nalways = true\n"
SLOW = ('[targets.slow]\ncmd = "echo $PPID > pid.txt; sleep 30; echo done > ${outputs}"\n'
        'outputs = ["slow.txt"]\n')


def age(path: Path) -> None:
    old = time.time() - 60
    os.utime(path, (old, old))


def sockets(folder: Path | None = None) -> list[Path]:
    return sorted((folder or Path(os.environ["FLOWMAKE_RESIDENT_DIR"])).glob("*.sock"))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def start_server(project: Project, env: dict[str, str | None] | None = None) -> None:
    """A first command starts a server in the background: wait until one for this
    environment runs a command (another test's socket in the folder says nothing of it,
    and a server may be retiring, idle, as this test starts)."""
    traced = {**(env or {}), "FLOWMAKE_TRACE": "resident"}

    def served() -> bool:
        result = project.run("--version", check=True, env=traced)
        return "run by process" in result.stderr

    wait_for(served, timeout=60, interval=0.1, what="a resident server running a command")


def who(project: Project, env: dict[str, str | None] | None = None) -> tuple[int, list[str]]:
    """Build ``who`` in a process of our own: (the client's pid, what the command saw)."""
    proc = project.popen("build", "-q", env=env)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return proc.pid, project.read("who.txt").splitlines()


def test_a_command_runs_in_a_fork_of_the_resident_server(project: Project) -> None:
    project.flow(FLOW)
    start_server(project)
    client, (runner, parent, *_) = who(project)
    assert int(runner) != client  # not the process the user started
    assert "flowmake.resident.server" in cmdline(int(parent))


def test_off_the_command_runs_in_the_process_started(project: Project) -> None:
    project.flow(FLOW)
    start_server(project)
    client, (runner, *_) = who(project, env={"FLOWMAKE_RESIDENT": "0"})
    assert int(runner) == client


def test_the_command_sees_the_clients_folder_environment_and_umask(project: Project) -> None:
    project.flow(FLOW)
    (project.root / "sub").mkdir()
    start_server(project)
    seen = {}
    for mode in ("1", "0"):
        proc = subprocess.Popen(
            ["sh", "-c", f"umask 027; exec {' '.join(FLOWMAKE)} build -q"],
            cwd=project.root / "sub", env=base_env({"MYVAR": "from the client",
                                                   "FLOWMAKE_RESIDENT": mode}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        runner, _parent, *rest = project.read("who.txt").splitlines()
        seen[mode] = rest
        assert (int(runner) == proc.pid) == (mode == "0")
    assert seen["1"] == seen["0"] == ["from the client", str(project.root), "0027"]


def test_output_and_exit_codes_are_the_commands(make_project: Any) -> None:
    flow = ('[targets.bad]\ncmd = "echo oops >&2; exit 3"\noutputs = ["b.txt"]\n'
            '[targets.good]\ncmd = "echo fine > ${outputs}"\noutputs = ["g.txt"]\n')
    runs = {}
    for mode in ("1", "0"):
        project = make_project(f"p{mode}")
        project.flow(flow)
        start_server(project)
        env = {"FLOWMAKE_RESIDENT": mode}
        runs[mode] = [project.run(*args, env=env) for args in (
            ("build", "-k", "-q"), ("build", "nosuch"), ("status",), ("--version",),
            ("build", "-j", "x"), ("list", "--json"), ("build", "--help"))]
    for resident, here in zip(runs["1"], runs["0"], strict=True):
        assert (resident.returncode, timeless(resident.stdout), resident.stderr) == (
            here.returncode, timeless(here.stdout), here.stderr), describe(resident)
    assert [r.returncode for r in runs["1"]] == [1, 2, 0, 0, 2, 0, 0]
    assert "nosuch" in runs["1"][1].stderr and "Traceback" not in runs["1"][1].stderr


def timeless(text: str) -> str:
    return re.sub(r"\d+\.\d+s", "N.NNs", text)


def slow_running(project: Project) -> tuple[subprocess.Popen[str], int]:
    """A resident build of SLOW, once its command runs: the client, the build's process."""
    project.flow(SLOW)
    start_server(project)
    proc = project.popen("build")
    wait_for(lambda: project.exists("pid.txt") and project.read("pid.txt").strip(),
             what="the slow command")
    runner = int(project.read("pid.txt"))
    assert runner != proc.pid
    return proc, runner


def test_ctrl_c_interrupts_the_resident_build(project: Project) -> None:
    proc, runner = slow_running(project)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in out + err
    wait_for(lambda: not pid_alive(runner), what="the build process to end")
    assert project.states()["slow"]["state"] != "fresh"


POOL = """
import concurrent.futures
import flowmake
import flowmake.warm

POOL = concurrent.futures.ThreadPoolExecutor(1)

@flowmake.hookimpl
def flowmake_build_finish(summary):
    # its thread is left idle, never shut down; and the fork knows it is one
    POOL.submit(print, "sent, forked:", flowmake.warm.forked, flush=True).result()
"""


def test_a_plugins_idle_thread_pool_ends_with_the_command(project: Project) -> None:
    """Python's exit tells an idle ThreadPoolExecutor's threads to end before it joins
    them; the fork's exit does too (it joined them first, and waited for ever)."""
    project.flow('[flow]\nplugins = ["pools"]\n' + FLOW, {"pools.py": POOL})
    start_server(project)
    proc = project.popen("build", "-q", env={"FLOWMAKE_TRACE": "resident"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "run by process" in err
    assert out == "sent, forked: True\n"


def socket_of(project: Project, env: dict[str, str | None]) -> str:
    """The socket a command run with ``env`` in the project looks for its server at."""
    code = ("import sys; from flowmake.resident.client import key_parts, socket_path; "
            "print(socket_path(key_parts(sys.path[1:])))")
    found = subprocess.run([sys.executable, "-c", code], cwd=project.root, env=base_env(env),
                           text=True, capture_output=True, check=True)
    return found.stdout.strip()


@pytest.mark.parametrize("answer", [b"", b"R\0\0\0\0"], ids=["closed", "refused"])
def test_ctrl_c_interrupts_a_command_the_server_did_not_take(
        project: Project, tmp_path: Path, answer: bytes) -> None:
    """A server that closes the connection before it forks (stopped, idle) or refuses the
    command (its code changed): the command runs in the client's own process, and Ctrl-C
    still interrupts it (the handlers that would have passed it on are put back)."""
    folder = tmp_path / "r"
    folder.mkdir(mode=0o700)
    env: dict[str, str | None] = {"FLOWMAKE_RESIDENT_DIR": str(folder),
                                  "FLOWMAKE_RESIDENT_IDLE": "2", "FLOWMAKE_TRACE": "resident"}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_of(project, env))
    listener.listen(8)

    def serve() -> None:  # a server that never forks: it reads the request and answers
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(1 << 16)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        project.flow(SLOW)
        proc = project.popen("build", env=env)
        wait_for(lambda: project.exists("pid.txt") and project.read("pid.txt").strip(),
                 what="the slow command")
        assert int(project.read("pid.txt")) == proc.pid  # run in the client's process
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        listener.close()
    assert proc.returncode == 130, err
    assert "in-process" in err and "interrupted" in out + err
    assert project.states()["slow"]["state"] != "fresh"


def test_ctrl_c_before_a_server_closes_unstarted_ends_the_client_by_sigint(
        project: Project, tmp_path: Path) -> None:
    """Ctrl-C while the client waits for its server, which then closes without starting
    the command: nothing runs, and the client ends as Ctrl-C ends a program."""
    folder = tmp_path / "r"
    folder.mkdir(mode=0o700)
    env: dict[str, str | None] = {"FLOWMAKE_RESIDENT_DIR": str(folder)}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_of(project, env))
    listener.listen(8)
    asked, close = threading.Event(), threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1 << 16)
            asked.set()
            close.wait(30)

    threading.Thread(target=serve, daemon=True).start()
    try:
        project.flow(SLOW)
        proc = project.popen("build", env=env)
        assert asked.wait(30)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the client's handler holds it: no child to pass it to yet
        close.set()
        _out, err = proc.communicate(timeout=20)
    finally:
        listener.close()
    assert proc.returncode == -signal.SIGINT, err
    assert not project.exists("pid.txt")  # the command never started
    assert "Traceback" not in err


def test_kill_9_of_the_client_kills_its_build_abruptly(project: Project) -> None:
    proc, runner = slow_running(project)
    proc.kill()
    proc.wait(timeout=10)
    wait_for(lambda: not pid_alive(runner), what="the build process to be killed")
    assert not project.exists("slow.txt")
    assert project.states()["slow"]["state"] != "fresh"


def test_a_build_killed_by_sigkill_ends_its_client_by_sigkill(project: Project) -> None:
    # the child's end as the server saw it (no exit status): the client ends the same way,
    # as a shell sees a build killed with kill -9 (SIGKILL has no handler to reset)
    project.flow('[targets.die]\ncmd = "kill -9 $PPID"\noutputs = ["never.txt"]\n')
    start_server(project)
    proc = project.popen("build", "-q")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert "Traceback" not in err
    assert project.states()["die"]["state"] != "fresh"


def test_a_server_stopped_mid_build_still_gives_the_exit_code(project: Project) -> None:
    project.flow('[targets.wait]\ncmd = "echo $PPID > pid.txt; sleep 1.5; echo ok > ${outputs}"\n'
                 'outputs = ["w.txt"]\n')
    start_server(project)
    proc = project.popen("build", "-q")
    wait_for(lambda: project.exists("pid.txt") and project.read("pid.txt").strip(),
             what="the command")
    server = int(Path(f"/proc/{int(project.read('pid.txt'))}/status").read_text()
                 .split("PPid:")[1].split()[0])
    assert "flowmake.resident.server" in cmdline(server)
    os.kill(server, signal.SIGKILL)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert project.read("w.txt") == "ok\n"


def test_a_changed_module_is_never_served_stale(project: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(Path(flowmake.__file__).parent, site / "flowmake",
                    ignore=shutil.ignore_patterns("__pycache__"))
    folder = tmp_path / "r"
    env: dict[str, str | None] = {"PYTHONPATH": str(site), "FLOWMAKE_RESIDENT_DIR": str(folder)}
    project.flow(FLOW)
    start_server(project, env)
    [first] = sockets(folder)
    main = site / "flowmake/cli/main.py"
    main.write_text(main.read_text().replace('print(f"flowmake {__version__}")',
                                             'print(f"flowmake {__version__} (edited)")'))
    assert "(edited)" in project.run("--version", check=True, env=env).stdout
    wait_for(lambda: sockets(folder), what="a new server")
    assert "(edited)" in project.run("--version", check=True, env=env).stdout
    assert sockets(folder) == [first]  # the same environment: the same name, a new server


def test_an_idle_server_exits(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "r"
    env: dict[str, str | None] = {"FLOWMAKE_RESIDENT_DIR": str(folder),
                                  "FLOWMAKE_RESIDENT_IDLE": "3"}  # time to see its spare
    project.flow(FLOW)
    start_server(project, env)
    pid = int(next(folder.glob("*.lock")).read_text())
    assert pid_alive(pid)
    spare = spare_of(pid)  # the child it keeps forked for the next command goes too
    wait_for(lambda: not sockets(folder) and not pid_alive(pid) and not pid_alive(spare),
             timeout=20, what="the idle server and its spare to exit")


def test_a_folder_others_can_write_is_not_used(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    env: dict[str, str | None] = {"FLOWMAKE_RESIDENT_DIR": str(folder)}
    project.flow(FLOW)
    project.run("--version", check=True, env=env)
    time.sleep(0.5)
    client, (runner, *_) = who(project, env=env)
    assert int(runner) == client
    assert not sockets(folder)


def test_concurrent_commands_each_get_their_own_process(make_project: Any) -> None:
    one, two = make_project("one"), make_project("two")
    for p in (one, two):
        p.flow(FLOW.replace("always = true", 'always = true\n[targets.nap]\ncmd = "sleep 1"'))
    start_server(one)
    procs = [p.popen("build", "-q") for p in (one, two)]
    for p, proc in zip((one, two), procs, strict=True):
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        runner, parent, *_ = p.read("who.txt").splitlines()
        assert int(runner) != proc.pid and "flowmake.resident.server" in cmdline(int(parent))
    assert one.read("who.txt").split()[0] != two.read("who.txt").split()[0]


def test_the_client_imports_only_the_standard_librarys_c_parts() -> None:
    code = ("import sys; before = set(sys.modules); import flowmake.resident.client; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert eval(out) == ["flowmake", "flowmake.resident", "flowmake.resident.client"]


def test_the_socket_name_needs_no_hash_module_and_tells_keys_apart() -> None:
    code = ("import sys; from flowmake.resident.client import socket_path; "
            "names = [socket_path(('flowmake', '1.0', p)) for p in ('/a', '/b', '/a')]; "
            "print(names[0] == names[2] != names[1], 'zlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "False"]


def test_the_installed_command_imports_nothing_before_the_client() -> None:
    # pip's wrapper for an entry point imports `re` first (~9 ms of every command):
    # the `flowmake` installed is bin/flowmake, which imports sys and the client only.
    script = Path(sysconfig.get_path("scripts")) / "flowmake"
    interpreter = script.read_text().splitlines()[0].removeprefix("#!")
    assert Path(interpreter).samefile(sys.executable)
    # Without site (-S; its imports, an editable install's finder's among them, are every
    # interpreter's), the import path given whole: what is imported is the script's own.
    path = [str(Path(flowmake.__file__).parent.parent), *site.getsitepackages()]
    proc = subprocess.run([sys.executable, "-S", "-X", "importtime", str(script), "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: flowmake")
    names = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
             if line.startswith("import time:") and "|" in line]
    before = names[:names.index("flowmake.resident.client")]
    assert "re" not in before and "enum" not in before, before


def test_a_fork_gets_the_compiled_flow_decoded_and_still_sees_an_edit(project: Project
                                                                      ) -> None:
    project.flow('[targets.a]\ncmd = "echo one > ${outputs}"\noutputs = ["a.txt"]\n')
    age(project.root / "flow.toml")  # past the racy window: the compiled flow is used
    start_server(project)
    trace = {"FLOWMAKE_TRACE": "resident"}
    project.run("build", check=True)  # its fork writes flow.pickle; the server keeps it
    result = project.run("build", "-B", check=True, env=trace)
    assert "flow.pickle as the server decoded it" in result.stderr
    project.edit_flow("echo one", "echo two")
    age(project.root / "flow.toml")
    project.run("build", check=True)  # the kept flow is the old one: its signature says so
    assert project.read("a.txt") == "two\n"
    result = project.run("build", "-B", check=True, env=trace)
    assert "flow.pickle as the server decoded it" in result.stderr
    assert project.read("a.txt") == "two\n"


def test_a_no_op_fork_gets_the_snapshot_decoded_and_still_sees_a_change(project: Project
                                                                         ) -> None:
    project.flow('[targets.a]\ncmd = "cp in.txt ${outputs}"\ninputs = ["in.txt"]\n'
                 'outputs = ["a.txt"]\n', {"in.txt": "one\n"})
    start_server(project)
    trace = {"FLOWMAKE_TRACE": "resident"}
    project.run("build", check=True)
    for path in project.root.rglob("*"):
        age(path)  # nothing racy: the snapshot is saved, and trusted
    project.run("build", check=True)  # all fresh: saves the snapshot, its server keeps it
    for _ in range(2):
        result = project.run("build", check=True, env=trace)
        assert "noop.marshal as the server decoded it" in result.stderr
        assert "0 built" in result.stdout and "1 fresh" in result.stdout
    (project.root / "in.txt").write_text("two\n")
    result = project.run("build", check=True, env=trace)
    assert "noop.marshal as the server decoded it" in result.stderr
    assert "1 built" in result.stdout and project.read("a.txt") == "two\n"
    (project.root / "a.txt").unlink()
    assert "1 restored" in project.run("build", check=True).stdout  # from the cache
    assert project.read("a.txt") == "two\n"


def test_a_fork_splices_flow_lock_from_its_servers_copy_and_still_sees_a_hand_edit(
        project: Project) -> None:
    project.flow('[targets.a]\ncmd = "cp in_a.txt ${outputs}"\ninputs = ["in_a.txt"]\n'
                 'outputs = ["a.txt"]\n\n[targets.b]\ncmd = "cp in_b.txt ${outputs}"\n'
                 'inputs = ["in_b.txt"]\noutputs = ["b.txt"]\n',
                 {"in_a.txt": "a0\n", "in_b.txt": "b0\n"})
    start_server(project)
    trace = {"FLOWMAKE_TRACE": "resident"}
    project.run("build", check=True)
    lock = project.root / "flow.lock"
    for i in (1, 2):  # each build's fork writes flow.lock; its server reads it after
        (project.root / "in_a.txt").write_text(f"a{i}\n")
        result = project.run("build", check=True, env=trace)
        assert "1 built" in result.stdout
    assert "flow.lock as the server decoded it" in result.stderr
    spliced = lock.read_text()
    project.run("status", "--check", check=True, env={"FLOWMAKE_RESIDENT": "0"})
    # A hand edit (a comment; what a merge could leave) is the file's: seen, and kept.
    lock.write_text(spliced.replace("[targets.b]", "# reviewed\n[targets.b]"))
    (project.root / "in_a.txt").write_text("a3\n")
    result = project.run("build", check=True, env=trace)
    assert "flow.lock as the server decoded it" not in result.stderr
    assert "1 built" in result.stdout
    from flowmake.store import flowlock

    written = lock.read_text()  # parsed again, and written whole (a full render again)
    entries = flowlock.read(lock)
    assert entries is not None and written == flowlock.render(entries)
    (project.root / "in_a.txt").write_text("a4\n")
    result = project.run("build", check=True, env=trace)
    assert "1 built" in result.stdout
    fresh_lock = lock.read_text()
    (project.root / ".flowmake").rename(project.root / "state-gone")  # a fresh clone's view
    project.run("status", "--check", check=True, env={"FLOWMAKE_RESIDENT": "0"})
    assert lock.read_text() == fresh_lock


def test_the_command_runs_with_the_clients_nice_value_and_cpus(project: Project) -> None:
    project.flow('[targets.n]\ncmd = "nice > ${outputs}; '
                 'awk \'/Cpus_allowed_list/ {print $2}\' /proc/self/status >> ${outputs}"\n'
                 'outputs = ["n.txt"]\nalways = true\n')
    start_server(project)
    seen = {}
    for mode in ("1", "0"):
        proc = subprocess.run(["nice", "-n", "7", "taskset", "-c", "0", *FLOWMAKE, "build", "-q"],
                              cwd=project.root, env=base_env({"FLOWMAKE_RESIDENT": mode}),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        seen[mode] = project.read("n.txt").split()
    assert seen["1"] == seen["0"] == ["7", "0"]


def test_an_idle_server_whose_code_changed_exits_without_a_command(project: Project,
                                                                   tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(Path(flowmake.__file__).parent, site / "flowmake",
                    ignore=shutil.ignore_patterns("__pycache__"))
    folder = tmp_path / "r"
    env: dict[str, str | None] = {"PYTHONPATH": str(site), "FLOWMAKE_RESIDENT_DIR": str(folder),
                                  "FLOWMAKE_RESIDENT_IDLE": "10"}  # looks every second
    project.flow(FLOW)
    start_server(project, env)
    pid = int(next(folder.glob("*.lock")).read_text())
    shutil.rmtree(site)  # the environment it serves is gone (a venv removed)
    wait_for(lambda: not sockets(folder) and not pid_alive(pid), timeout=8,
             what="the server to notice and exit")


def children_of(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as f:
            found.update(int(c) for c in f.read().split())
    return found


def spare_of(server: int) -> int:
    """The server's one child waiting between commands, once the last command's end is
    dealt with (its spare replaced by one forked after its files were kept)."""
    def settled() -> int | None:
        alive = {c for c in children_of(server) if pid_alive(c)}
        if len(alive) != 1:
            return None
        time.sleep(0.3)
        again = {c for c in children_of(server) if pid_alive(c)}
        return alive.pop() if again == alive else None

    return int(wait_for(settled, what="the server's spare"))


def server_pid(env: dict[str, str | None] | None = None) -> int:
    folder = Path((env or {}).get("FLOWMAKE_RESIDENT_DIR") or os.environ["FLOWMAKE_RESIDENT_DIR"])
    for lock in folder.glob("*.lock"):
        pid = int(lock.read_text() or 0)
        if pid and pid_alive(pid) and "flowmake.resident.server" in cmdline(pid):
            return pid
    raise AssertionError("no server")


def test_a_command_is_run_by_the_child_forked_before_it_came(project: Project,
                                                             tmp_path: Path) -> None:
    """The server forks the next command's process between commands (a spare): the
    command is run by that one, and a new spare waits for the next; killed, or sent
    SIGTERM, a spare leaves the server serving."""
    env: dict[str, str | None] = {"FLOWMAKE_RESIDENT_DIR": str(tmp_path / "r")}
    project.flow(FLOW)
    start_server(project, env)
    server = server_pid(env)
    trace = {**env, "FLOWMAKE_TRACE": "resident"}
    used = []
    for _ in range(2):
        waiting = spare_of(server)
        result = project.run("build", "-q", check=True, env=trace)
        ran = int(re.search(r"run by process (\d+)", result.stderr).group(1))
        assert ran == waiting  # forked before the command came
        runner, parent = project.read("who.txt").splitlines()[:2]
        assert (int(runner), int(parent)) == (ran, server)  # the command's parent, its server
        used.append(ran)
    assert used[0] != used[1]  # a new one for each command
    spare = spare_of(server)
    os.kill(spare, signal.SIGTERM)  # the server's SIGTERM handler is not the spare's
    wait_for(lambda: not pid_alive(spare), what="the spare to end")
    result = project.run("build", "-q", check=True, env=trace)
    assert "run by process" in result.stderr and sockets(tmp_path / "r")
    assert pid_alive(server)
    spare = spare_of(server)
    os.kill(spare, signal.SIGKILL)
    wait_for(lambda: not pid_alive(spare), what="the spare to die")
    result = project.run("build", "-q", check=True, env=trace)  # forked at the request
    ran = int(re.search(r"run by process (\d+)", result.stderr).group(1))
    assert ran != spare and int(project.read("who.txt").splitlines()[0]) == ran


def test_a_forks_state_log_holds_every_record_and_the_next_build_copies_it(
        project: Project) -> None:
    """A fork leaves its connection to state.db to the process's end (no copy of SQLite's
    log into the database before the client has its exit code: store/sqlite.py's
    _LEFT_OPEN). The log holds every record, for any reader; each build copies what
    earlier ones left while its commands run, so the log does not grow build after build."""
    import sqlite3

    count = 30
    project.flow("".join(f'[targets.t{i}]\ncmd = "echo {i} > ${{outputs}}; sleep 0.05"\n'
                         f'outputs = ["out/{i}.txt"]\n\n' for i in range(count)))
    start_server(project)
    project.build("-j2")
    wal = project.path(".flowmake/state.db-wal")
    sizes = []
    for _ in range(6):
        assert set(project.build("-B", "-j2").values()) == {"built"}
        sizes.append(wal.stat().st_size)
    latest = json.loads(project.run("log", "--json", check=True).stdout)["runs"][0]["run_id"]
    # read as the files are: a read-only connection neither copies nor removes the log
    db = sqlite3.connect(f"{project.path('.flowmake/state.db').as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT count(*), min(run_id) FROM records").fetchone()
    finally:
        db.close()
    assert rows == (count, latest)
    assert sizes[0] > 0
    assert sizes[-1] <= 2 * sizes[1], sizes  # each build's, not six builds' together


def processes_of(server: int) -> list[tuple[int, str]]:
    """The server's children and theirs (pid, state letter from /proc/PID/stat)."""
    found, todo = [], [server]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            for child in children_of(pid):
                with contextlib.suppress(OSError):
                    state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    found.append((child, state))
                    todo.append(child)
    return found


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a helper for a second CPU")
def test_a_spares_stat_helper_sees_a_change_in_its_part_and_leaves_no_process(
        project: Project, tmp_path: Path) -> None:
    """A spare forks the stat check's helper before its command comes (fastpath.stand_by):
    a change anywhere among 4,200 paths, the helper's part included, is still seen; a
    killed helper makes the check take the full way, never a wrong "fresh"; and the
    helpers of spares dropped or used end with them (no orphan, no zombie)."""
    count = 4200  # above fastpath.PARALLEL_MIN: shared between two processes
    files = {f"src/f{i:04}.txt": f"{i}\n" for i in range(count)}
    project.flow('[targets.all]\ncmd = "cat src/* > ${outputs}"\ninputs = ["src"]\n'
                 'outputs = ["all.txt"]\n', files)
    env: dict[str, str | None] = {"FLOWMAKE_RESIDENT_DIR": str(tmp_path / "r")}
    trace = {**env, "FLOWMAKE_TRACE": "resident"}
    start_server(project, env)
    server = server_pid(env)
    project.run("build", check=True, env=env)
    for path in project.root.rglob("*"):
        age(path)  # past the racy window: the snapshot is saved and trusted
    project.run("build", check=True, env=env)  # all fresh: the snapshot saved, then kept

    def built_after_edit(name: str, text: str) -> str:
        spare_of(server)  # waiting, with its helper forked
        (project.root / name).write_text(text)
        age(project.root / name)
        result = project.run("build", check=True, env=trace)
        assert "the stat check shared with 1 helper(s)" in result.stderr
        return result.stdout

    for i in (count - 1, 0, count // 2 + 7):  # the helper's part, the command's, the helper's
        assert "1 built" in built_after_edit(f"src/f{i:04}.txt", f"edited {i}\n")
        assert f"edited {i}\n" in project.read("all.txt")
        for _ in range(2):  # the next one sees nothing changed
            spare_of(server)
            assert "0 built" in project.run("build", check=True, env=env).stdout
    spare = spare_of(server)
    helper = [pid for pid, _ in processes_of(server) if pid != spare]
    assert len(helper) == 1 and helper[0] in children_of(spare)
    os.kill(helper[0], signal.SIGKILL)  # a zombie of its spare's until a check meets it
    wait_for(lambda: dict(processes_of(server)).get(helper[0]) in (None, "Z"),
             what="the helper to die")
    (project.root / f"src/f{count - 2:04}.txt").write_text("edited again\n")
    age(project.root / f"src/f{count - 2:04}.txt")
    result = project.run("build", check=True, env=env)  # the full way: a change is found
    assert "1 built" in result.stdout and "edited again\n" in project.read("all.txt")
    spare_of(server)
    time.sleep(0.5)  # the dropped spares' helpers, had they been left, would show by now
    ours = cmdline(server)  # a fork's command line is its server's: orphans included
    same = [int(d.name) for d in Path("/proc").iterdir()
            if d.name.isdigit() and cmdline(int(d.name)) == ours]
    assert sorted(same) == sorted([server, *(p for p, _ in processes_of(server))])
    assert len(same) == 3 and "Z" not in dict(processes_of(server)).values()  # spare, helper
