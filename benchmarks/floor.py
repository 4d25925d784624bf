"""The least a Python build tool can cost: a reference, not a tool.

Reads a generated project's flow.toml (with tomllib, as any Python tool must read its
build file), fills in ``${inputs}`` and ``${outputs}``, and runs the commands with
``/bin/sh -c``, N at a time, from one selector loop: no state, no hashing, no records, no
plugins. What it takes over make is the price of starting Python and of Python's
``subprocess``, which no Python tool avoids. ``run.py`` runs it beside flowmake so that
a bar can be read against what Python itself allows on the machine.

    python benchmarks/floor.py -j 4      # in a project made by gen.py
"""

from __future__ import annotations

import selectors
import subprocess
import sys

try:
    import tomllib
except ImportError:  # Python 3.10: flowmake's own dependency
    import tomli as tomllib


def main(argv: list[str]) -> int:
    jobs = int(argv[argv.index("-j") + 1]) if "-j" in argv else 1
    with open("flow.toml", "rb") as f:
        targets = tomllib.load(f)["targets"]
    commands = iter([
        t["cmd"].replace("${inputs}", " ".join(t.get("inputs", [])))
                .replace("${outputs}", " ".join(t.get("outputs", [])))
        for t in targets.values()])
    selector = selectors.DefaultSelector()
    running: dict[object, subprocess.Popen[bytes]] = {}
    failed = 0

    def start() -> None:
        command = next(commands, None)
        if command is not None:
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            running[proc.stdout] = proc
            selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]

    for _ in range(jobs):
        start()
    while running:
        for key, _ in selector.select():
            if not key.fileobj.read(65536):  # type: ignore[union-attr]
                selector.unregister(key.fileobj)
                proc = running.pop(key.fileobj)
                failed += proc.wait() != 0
                proc.stdout.close()  # type: ignore[union-attr]
                start()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
