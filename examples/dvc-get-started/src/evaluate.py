"""Accuracy and ROC AUC of the model on the test split, as JSON."""

import json
import pickle
from pathlib import Path

import numpy as np
from common import usage

model_path, features, out = usage(3, "MODEL.pkl FEATURES_DIR OUT.json")
with open(model_path, "rb") as f:
    model = pickle.load(f)
data = np.load(Path(features) / "test.npz")
x = (data["x"] - model["mean"]) / model["scale"]
y = data["y"]
score = 1 / (1 + np.exp(-(x @ model["w"] + model["b"])))
accuracy = float(np.mean((score > 0.5) == (y == 1)))
# AUC: the chance that a random positive scores above a random negative.
pos, neg = score[y == 1], score[y == 0]
auc = float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))
metrics = {"accuracy": round(accuracy, 4), "auc": round(auc, 4), "test_rows": int(len(y))}
Path(out).parent.mkdir(parents=True, exist_ok=True)
Path(out).write_text(json.dumps(metrics, indent=2) + "\n")
print(json.dumps(metrics))
