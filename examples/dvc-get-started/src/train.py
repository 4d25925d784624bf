"""Logistic regression by full-batch gradient descent (params: train.*)."""

import pickle
from pathlib import Path

import numpy as np
from common import params, usage

features, out = usage(2, "FEATURES_DIR MODEL.pkl")
p = params("train")
data = np.load(Path(features) / "train.npz")
x, y = data["x"], data["y"]
mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
x = (x - mean) / scale
rng = np.random.default_rng(p["seed"])
w, b = rng.normal(0, 0.01, x.shape[1]), 0.0
for _ in range(p["epochs"]):
    prob = 1 / (1 + np.exp(-(x @ w + b)))
    w -= p["lr"] * (x.T @ (prob - y) / len(y))
    b -= p["lr"] * float(np.mean(prob - y))
with open(out, "wb") as f:
    pickle.dump({"w": w, "b": b, "mean": mean, "scale": scale}, f)
print(f"trained on {len(y)} posts")
