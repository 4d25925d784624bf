"""Drive the flow from Python, as a notebook would: `python analysis.py [SIZE]`."""

from __future__ import annotations

import sys
from pathlib import Path

import flowmake

HERE = Path(__file__).resolve().parent


def main() -> int:
    params = {"size": int(sys.argv[1])} if len(sys.argv) > 1 else None
    result = flowmake.build("fit", params=params, project=HERE)
    if not result.ok:  # a failed target is a result, not an exception
        for name, target in result.targets.items():
            print(f"{name}: {target.status} {target.error or ''}")
        return 1
    line = flowmake.load("fit", "line", params=params, project=HERE)
    print(flowmake.load("fit", "summary", params=params, project=HERE))
    print(f"slope within 0.1 of 2: {abs(line['slope'] - 2.0) < 0.1}")
    print("statuses:", {name: t.status for name, t in result.targets.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
