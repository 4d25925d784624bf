"""What several steps share: the column names."""

from __future__ import annotations

FEATURES = ["area", "rooms", "age", "area_per_room", "is_new"]
TARGET = "price"
