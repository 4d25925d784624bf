"""The example's python targets: plain functions, their values saved by extension."""

from __future__ import annotations

import random


def samples(size: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[x, 2.0 * x + 1.0 + rng.gauss(0, 0.5)] for x in (i / 10 for i in range(size))]


def fit(points: list[list[float]]) -> dict[str, object]:
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    line = {"slope": round(slope, 3), "intercept": round(my - slope * mx, 3)}
    return {"line": line, "summary": f"y = {line['slope']} x + {line['intercept']} ({n} points)"}
