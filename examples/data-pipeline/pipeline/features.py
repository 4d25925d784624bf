"""Derived columns."""

from __future__ import annotations

import pandas as pd

from .common import FEATURES, TARGET


def features(df: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs and its target, as float columns."""
    out = df.copy()
    out["area_per_room"] = out["area"] / out["rooms"]
    out["is_new"] = (out["age"] < 5).astype(float)
    return out[[*FEATURES, TARGET]].astype(float)
