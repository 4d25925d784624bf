"""Shuffle the posts and split them into train.tsv and test.tsv (params: prepare.*)."""

import random
from pathlib import Path

from common import params, read_tsv, usage, write_tsv

data, out = usage(2, "DATA.tsv OUT_DIR")
p = params("prepare")
rows = read_tsv(data)
random.Random(p["seed"]).shuffle(rows)
cut = int(len(rows) * (1 - p["split"]))
Path(out).mkdir(parents=True, exist_ok=True)
write_tsv(Path(out) / "train.tsv", rows[:cut])
write_tsv(Path(out) / "test.tsv", rows[cut:])
print(f"train {cut}, test {len(rows) - cut}")
