"""Metrics files flattened by dots: nested tables, list items by index, numbers only."""

from __future__ import annotations

from flowmake.cli.metrics import flatten


def test_nested_keys_lists_and_non_numbers() -> None:
    doc = {"acc": 0.9, "roc": {"auc": 0.95, "curve": "x"}, "folds": [0.8, {"f1": 1}],
           "ok": True, "n": 3}
    assert flatten(doc) == {"acc": 0.9, "roc.auc": 0.95, "folds.0": 0.8, "folds.1.f1": 1.0,
                            "n": 3.0}


def test_a_bare_number_or_nothing() -> None:
    assert flatten(None) == {} and flatten("text") == {}
