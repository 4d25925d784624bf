"""A text report of the trained model."""

from __future__ import annotations

from typing import Any


def report(model: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The metrics and the standardized coefficients, largest effect first."""
    lines = [f"ridge={metrics['ridge']}  rmse={metrics['rmse']:,.0f}  r2={metrics['r2']:.3f}"
             f"  ({metrics['train_rows']} train / {metrics['test_rows']} test rows)", ""]
    ranked = sorted(zip(model["features"], model["coef"], strict=True), key=lambda p: -abs(p[1]))
    lines += [f"  {name:<14} {coef:>12,.0f}" for name, coef in ranked]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    return text
