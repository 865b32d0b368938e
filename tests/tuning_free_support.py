"""The golden files of ``tests/golden/tuning_free/``, written by
``tools/golden_tuning_free.py`` and read here without the reference packages."""

from __future__ import annotations

from pathlib import Path

from golden_replay import read_json

GOLDEN = Path(__file__).parent / "golden" / "tuning_free"
NAMES = tuple(sorted(p.stem for p in GOLDEN.glob("*.json")))


def load(name: str) -> dict:
    return read_json(GOLDEN / f"{name}.json")
