"""Drop what no model should see."""

from __future__ import annotations

import pandas as pd


def clean(raw: pd.DataFrame, max_area: float) -> pd.DataFrame:
    """Rows with a price and a plausible area, re-indexed from 0."""
    kept = raw.dropna(subset=["price"])
    kept = kept[kept["area"] <= max_area].reset_index(drop=True)
    print(f"kept {len(kept)} of {len(raw)} rows")
    return kept
