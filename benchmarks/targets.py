"""The benchmark issue's targets, judged on a full run's results."""

from __future__ import annotations

from typing import Any

from benchmarks.report import AA
from benchmarks.training import TARGETS as TRAINING_TARGETS


def check_targets(results) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and a verdict.

    ``status`` is ``met``, ``NOT met``, or ``not resolved``: a ratio past its limit by
    less than the run can tell apart, that is, whose lower quartile is within the
    limit, or which misses it by less than the row's A/A control misses 1.
    """
    targets = []

    def add(name, entry, limit, better="lower", aa=None):
        value = entry.get("median") if isinstance(entry, dict) else entry
        if value is None:
            return
        met = value <= limit if better == "lower" else value >= limit
        status = "met" if met else "NOT met"
        if not met and better == "lower" and isinstance(entry, dict):
            spread = abs(aa - 1) if aa is not None else 0.0
            if entry.get("q25", value) <= limit or value - limit <= spread:
                status = "not resolved"
        targets.append(
            {"target": name, "value": value, "limit": limit, "met": met, "status": status}
        )

    for row in results["rows"]:
        shape, optimizer, ratios = row["shape"], row["optimizer"], row["ratios"]
        aa = ratios.get(f"jopt/{AA}", {}).get("median")
        step = ratios.get("jopt/optax")
        if step is not None:
            limit = 0.9 if optimizer == "adam" and shape in ("big", "resnet50") else 1.0
            add(f"{optimizer} step jopt/optax on {shape}", step, limit, aa=aa)
        if "jopt/optax compile" in ratios:
            add(f"{optimizer} compile jopt/optax on {shape}", ratios["jopt/optax compile"], 1.0)
        if optimizer == "adam" and shape == "big":
            if "jopt/torch-fused" in ratios:
                add("adam step jopt/torch-fused on big", ratios["jopt/torch-fused"], 1.2, aa=aa)
            if results["machine"]["platform"] == "gpu":
                add(
                    "adam jopt fraction of the floor on big (GPU)",
                    row["systems"]["jopt"]["floor_fraction"]["median"],
                    0.8,
                    better="higher",
                )
        memory = row["systems"].get("jopt", {}).get("memory", {})
        add(
            f"{optimizer} jopt peak memory / (params+grads+state) on {shape}",
            memory.get("ratio"),
            1.05,
        )
    training = results.get("training", {})
    for group in ("per_step", "sweep"):
        for name, entry in training.get(group, {}).get("ratios", {}).items():
            if name in TRAINING_TARGETS:
                add(f"training: {name}", entry, TRAINING_TARGETS[name])
    return targets
