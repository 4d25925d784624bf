"""Shared by the stage scripts: params.yaml and the TSV format."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def params(stage: str) -> dict:
    """This stage's section of params.yaml (the scripts read it themselves, as DVC's do)."""
    with open(Path(__file__).resolve().parents[1] / "params.yaml") as f:
        return yaml.safe_load(f)[stage]


def read_tsv(path: str | Path) -> list[tuple[int, str]]:
    rows = []
    with open(path) as f:
        for line in f:
            label, text = line.rstrip("\n").split("\t", 1)
            rows.append((int(label), text))
    return rows


def write_tsv(path: str | Path, rows: list[tuple[int, str]]) -> None:
    with open(path, "w") as f:
        f.writelines(f"{label}\t{text}\n" for label, text in rows)


def usage(count: int, text: str) -> list[str]:
    if len(sys.argv) != count + 1:
        sys.exit(f"usage: {Path(sys.argv[0]).name} {text}")
    return sys.argv[1:]
