"""`flowmake init`: write a commented starter flow.toml, never over an existing file.

The starter builds as it is (two shell targets, no other file needed), so that
`flowmake init && flowmake build` shows the whole cycle; the other keys are there,
commented out, to be filled in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowmake.errors import UsageError

STARTER = """\
# flow.toml: the pipeline flowmake builds. Paths are relative to this folder.
#   flowmake list            the targets
#   flowmake build           build what is stale (in parallel; -n shows what would run)
#   flowmake status          each target's state; `flowmake why TARGET` explains one
#   flowmake graph --format html -o graph.html    the pipeline as a page

[flow]
default = ["report"]          # what a bare `flowmake build` builds (default: every target)
# jobs     = 4                # parallel jobs (default: the CPU count)
# cache    = false            # the local artifact cache (default: ".flowmake/cache")
# remote   = "s3://bucket/flows"   # a shared artifact cache, any fsspec URL
# history  = 100              # builds kept by `flowmake log`

[params]                      # use as ${params.NAME}; override with `-p NAME=VALUE`
count = 10

[targets.numbers]
help    = "Generate the numbers"
cmd     = "seq 1 ${params.count} > ${outputs}"
outputs = ["data/numbers.txt"]

[targets.report]
help    = "Add them up"
cmd     = "awk '{ s += $$1 } END { print \\"sum:\\", s }' ${inputs} > ${outputs}"   # $$ is a literal $
inputs  = ["data/numbers.txt"]    # another target's output: `numbers` is built first
outputs = ["out/report.txt"]

# A python target: module:function, imported from this folder and called with its params
# and table-form inputs as keyword arguments; the return value is saved to its output.
# [targets.clean]
# python  = "pipeline.steps:clean"
# inputs  = { table = "data/raw.csv" }
# params  = { threshold = 0.5 }
# outputs = ["data/clean.json"]

# A matrix: one instance per combination, named fit[depth=3,lr=0.1] and so on.
# [targets.fit]
# matrix  = { lr = [0.1, 0.01], depth = [3, 5] }
# cmd     = "python fit.py --lr ${lr} --depth ${depth} > ${outputs}"
# inputs  = ["fit.py", "data/numbers.txt"]
# outputs = ["models/fit-${lr}-${depth}.txt"]
# env     = ["CUDA_VISIBLE_DEVICES"]   # env values that enter the key
# resources = { cpu = 2 }              # waits for capacity declared in [flow.resources]
"""


def init_command(directory: Path, args: argparse.Namespace) -> int:
    """Write the starter into ``directory`` (created if needed); refuse to overwrite."""
    path = directory / (args.file or "flow.toml")
    if path.exists():
        raise UsageError(f"{path} already exists; not overwriting it",
                         hint="remove it first, or write elsewhere with -C DIR or -f FILE")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:  # "x": never clobber, even in a race
            f.write(STARTER)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    if not args.quiet:
        print(f"flowmake: wrote {path}; try `flowmake build`, then `flowmake status`",
              file=sys.stderr)
    return 0
