"""A ridge regression by numpy least squares, scored on held-out rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.common import FEATURES, TARGET


def train(features: pd.DataFrame, ridge: float, test_fraction: float,
          seed: int) -> dict[str, Any]:
    """Fit on a random split; return the model (pickled) and its metrics (json)."""
    rng = np.random.default_rng(seed)
    test = rng.random(len(features)) < test_fraction
    x, y = features[FEATURES].to_numpy(), features[TARGET].to_numpy()
    mean, std = x[~test].mean(axis=0), x[~test].std(axis=0)
    std[std == 0] = 1.0
    coef, intercept = _fit((x[~test] - mean) / std, y[~test], ridge)
    predicted = ((x[test] - mean) / std) @ coef + intercept
    rmse = float(np.sqrt(np.mean((predicted - y[test]) ** 2)))
    r2 = float(1 - np.sum((predicted - y[test]) ** 2) / np.sum((y[test] - y[test].mean()) ** 2))
    model = {"features": FEATURES, "mean": mean.tolist(), "std": std.tolist(),
             "coef": coef.tolist(), "intercept": intercept}
    metrics = {"rmse": round(rmse, 2), "r2": round(r2, 4), "train_rows": int((~test).sum()),
               "test_rows": int(test.sum()), "ridge": ridge}
    return {"model": model, "metrics": metrics}


def _fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """Ridge regression as an augmented least-squares problem (no intercept penalty)."""
    n, k = x.shape
    design = np.vstack([np.hstack([x, np.ones((n, 1))]),
                        np.hstack([np.sqrt(ridge) * np.eye(k), np.zeros((k, 1))])])
    target = np.concatenate([y, np.zeros(k)])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return solution[:k], float(solution[k])
