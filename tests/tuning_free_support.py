"""The golden files of ``tests/golden/tuning_free/``, written by
``tools/golden_tuning_free.py`` and read here without the reference packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).parent / "golden" / "tuning_free"
NAMES = tuple(sorted(p.stem for p in GOLDEN.glob("*.json")))


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"shape", "data"}:
            return np.asarray(value["data"], np.float64).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def load(name: str) -> dict:
    return _decode(json.loads((GOLDEN / f"{name}.json").read_text()))
