"""Bag-of-words counts over the training vocabulary (params: featurize.*), as .npz."""

from collections import Counter
from pathlib import Path

import numpy as np
from common import params, read_tsv, usage

prepared, out = usage(2, "PREPARED_DIR OUT_DIR")
p = params("featurize")


def grams(text: str) -> list[str]:
    words = text.split()
    found = list(words)
    if p["ngrams"] >= 2:
        found += [f"{a} {b}" for a, b in zip(words, words[1:])]
    return found


train = read_tsv(Path(prepared) / "train.tsv")
counts = Counter(g for _, text in train for g in grams(text))
vocabulary = sorted(g for g, _ in counts.most_common(p["max_features"]))
index = {g: i for i, g in enumerate(vocabulary)}
Path(out).mkdir(parents=True, exist_ok=True)
for split in ("train", "test"):
    rows = read_tsv(Path(prepared) / f"{split}.tsv")
    x = np.zeros((len(rows), len(vocabulary)))
    for r, (_, text) in enumerate(rows):
        for g in grams(text):
            if g in index:
                x[r, index[g]] += 1
    y = np.array([label for label, _ in rows], dtype=float)
    np.savez(Path(out) / f"{split}.npz", x=x, y=y)
print(f"{len(vocabulary)} features")
