"""Synthesize the raw table: houses with an area, rooms, an age and a price."""

from __future__ import annotations

import numpy as np
import pandas as pd


def generate(rows: int, seed: int) -> pd.DataFrame:
    """A reproducible table of ``rows`` houses; about 3% of rows are broken on purpose."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 250, rows)
    rooms = np.maximum(1, np.round(area / 35 + rng.normal(0, 0.8, rows))).astype(int)
    age = rng.integers(0, 80, rows)
    price = 1_500 * area + 8_000 * rooms - 900 * age + rng.normal(0, 20_000, rows)
    df = pd.DataFrame({"area": area, "rooms": rooms, "age": age, "price": price})
    broken = rng.random(rows) < 0.03
    df.loc[broken, "price"] = np.nan
    df.loc[rng.random(rows) < 0.01, "area"] = 10_000.0  # typos
    print(f"generated {rows} rows ({int(broken.sum())} without a price)")
    return df
