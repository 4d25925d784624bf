"""Labelled posts: label 1 posts lean on one vocabulary, label 0 on another, with noise."""

import random

from common import params, usage, write_tsv

SHARED = "the a of to and in is it for on with as this that".split()
TOPIC = {1: "python pandas numpy dataframe code function import error stack".split(),
         0: "recipe garden travel music movie weather coffee football book".split()}

(out,) = usage(1, "OUT.tsv")
p = params("generate")
rng = random.Random(p["seed"])
rows = []
for _ in range(p["rows"]):
    label = rng.random() < 0.5
    words = [rng.choice(TOPIC[label] if rng.random() < 0.3 else
                        TOPIC[not label] if rng.random() < 0.1 else SHARED)
             for _ in range(rng.randint(6, 14))]
    rows.append((int(label), " ".join(words)))
write_tsv(out, rows)
print(f"{len(rows)} posts")
