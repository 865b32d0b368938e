"""Schedule-free AdamW and SGD, and Prodigy, against their authors' packages (golden data).

``tools/golden_tuning_free.py`` trained the float64 tanh network of the other golden
files with ``schedulefree``'s ``AdamWScheduleFree`` and ``SGDScheduleFree`` and with
``prodigyopt``'s ``Prodigy`` (warmup, every option); the files in
``tests/golden/tuning_free/`` are replayed here without them, in closed loop for 100
steps: loss, parameters y, evaluation parameters x, every state tensor and the numbers
kept in the parameter group (Prodigy's d) agree to 1e-10 relative.  Wrong mappings are
caught, and ``docs/porting.md`` has a row for every argument and state entry.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from golden_replay import GOLDEN_RTOL, MaxErrors, closed_loop, fields_named
from tuning_free_support import NAMES, load

import jopt

pytestmark = pytest.mark.float64

ROOT = Path(__file__).resolve().parents[1]


# --- golden data -------------------------------------------------------------------------


def _z(state, params, key):
    """schedulefree's z, ``y + β·(1 − c)·m``: jopt keeps m = z − x before the average."""
    [sf] = fields_named(state, "z_minus_previous_x")
    [b1], [ckp1] = fields_named(state, "b1"), fields_named(state, "ckp1")
    return params[key] + b1 * (1 - ckp1) * sf[key]


_SCHEDULE_FREE_GROUP = {"k": "count", **{n: n for n in ("lr_max", "weight_sum", "scheduled_lr")}}

# package class -> (alias, package argument -> jopt keyword(s) (None: not passed on),
# state entry -> jopt field (or a function of state, params, key), group entry -> field).
PORTS = {
    "AdamWScheduleFree": (
        "schedule_free_adamw",
        {
            "betas": ("b1", "b2"),
            "eps": "eps",
            "weight_decay": "weight_decay",
            "warmup_steps": "warmup_steps",
            "r": "r",
            "weight_lr_power": "weight_lr_power",
        },
        {"z": _z, "exp_avg_sq": "nu"},
        {
            "k": "count",
            "lr_max": "lr_max",
            "weight_sum": "weight_sum",
            "scheduled_lr": "scheduled_lr",
        },
    ),
    "SGDScheduleFree": (
        "schedule_free_sgd",
        {
            "momentum": "momentum",
            "weight_decay": "weight_decay",
            "warmup_steps": "warmup_steps",
            "r": "r",
            "weight_lr_power": "weight_lr_power",
        },
        {"z": _z},
        {
            "k": "count",
            "lr_max": "lr_max",
            "weight_sum": "weight_sum",
            "scheduled_lr": "scheduled_lr",
        },
    ),
    "Prodigy": (
        "prodigy",
        {
            "betas": ("b1", "b2"),
            "beta3": "b3",
            "eps": "eps",
            "weight_decay": "weight_decay",
            "d0": "d0",
            "d_coef": "d_coef",
            "growth_rate": "growth_rate",
            "use_bias_correction": "use_bias_correction",
            "safeguard_warmup": "safeguard_warmup",
        },
        {"exp_avg": "mu", "exp_avg_sq": "nu", "s": "s", "p0": "p0", "step": "k"},
        {"k": "k", "d": "d", "d_max": "d_max", "d_numerator": "d_numerator"},
    ),
}


def jopt_from_package(record: dict, **override) -> jopt.GradientTransformation:
    """The jopt call ``docs/porting.md`` maps the record's package call to."""
    alias, arguments, _, _ = PORTS[record["optimizer"]]
    kwargs = {}
    for name, value in record["hyperparameters"].items():
        if name == "lr":
            continue
        target = arguments[name]
        if isinstance(target, tuple):
            kwargs.update(zip(target, value, strict=True))
        else:
            kwargs[target] = value
    return getattr(jopt, alias)(record["hyperparameters"]["lr"], **{**kwargs, **override})


def _value(state, params, key, field):
    """The jopt counterpart of a package state entry (``key``: the parameter, or None)."""
    if callable(field):
        return field(state, params, key)
    [value] = fields_named(state, field)
    return value if key is None else value[key]


def replay(record: dict, optimizer, eval_params=jopt.schedule_free_eval_params) -> dict:
    """The largest relative error against the package, per compared quantity."""
    _, _, state_fields, group_fields = PORTS[record["optimizer"]]
    errors = MaxErrors()
    note = errors.note
    for t, params, state, loss, point in closed_loop(record, optimizer):
        note("loss", loss, record["loss_history"][t - 1])
        if point is None:
            continue
        for key, expected in point["params"].items():
            note(f"params/{key}", params[key], expected)
        if "eval_params" in point:
            x = eval_params(state, params)
            for key, expected in point["eval_params"].items():
                note(f"eval_params/{key}", x[key], expected)
        for key, entries in point["state"].items():
            for name, expected in entries.items():
                field = state_fields[name]
                if name == "step":
                    assert int(_value(state, params, None, field)) == expected
                    continue
                note(name, _value(state, params, key, field), expected)
        for name, expected in point["group"].items():
            field = group_fields[name]
            values = [np.asarray(v) for v in fields_named(state, field)]
            assert values, f"no field {field}"
            for value in values:  # every count of a chain is the package's k
                note(f"group/{name}", value, expected)
    return dict(errors)


def _generator_configs() -> list[str]:
    tree = ast.parse((ROOT / "tools" / "golden_tuning_free.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "CONFIGS":
            return list(ast.literal_eval(node.value))
    raise AssertionError("tools/golden_tuning_free.py has no CONFIGS")


def test_golden_files_are_the_generators_configurations():
    assert list(NAMES) == sorted(_generator_configs())
    packages = {load(name)["optimizer"] for name in NAMES}
    assert packages == set(PORTS)


@pytest.mark.parametrize("name", NAMES)
def test_golden_replay_matches_the_reference_package(name):
    record = load(name)
    errors = replay(record, jopt_from_package(record))
    worst = {k: v for k, v in errors.items() if v > GOLDEN_RTOL}
    assert not worst, f"relative error above {GOLDEN_RTOL:g}: {worst}"
    # Every state tensor and group number the package keeps was compared.
    compared = {k.split("/")[0] for k in errors} | {k.split("/")[1] for k in errors if "/" in k}
    entries = set(record["checkpoints"][-1]["state"]["W1"]) - {"step"}
    assert entries | set(record["checkpoints"][-1]["group"]) <= compared
    assert "ScheduleFree" not in record["optimizer"] or "eval_params" in compared


WRONG_MAPPINGS = [
    ("schedule_free_adamw_warmup", {"warmup_steps": 0}),
    ("schedule_free_sgd_warmup", {"weight_lr_power": 2.0}),
    ("prodigy_options", {"growth_rate": math.inf}),
    ("prodigy_safeguard_warmup", {"safeguard_warmup": False}),
]


@pytest.mark.parametrize("name, override", WRONG_MAPPINGS)
def test_golden_replay_catches_a_wrong_mapping(name, override):
    record = load(name)
    assert max(replay(record, jopt_from_package(record, **override)).values()) > 1e-6


def test_evaluating_at_y_is_caught():
    record = load("schedule_free_sgd")
    errors = replay(record, jopt_from_package(record), eval_params=lambda state, params: params)
    assert errors["eval_params/W1"] > 1e-6


def _guide_section() -> str:
    text = (ROOT / "docs" / "porting.md").read_text()
    start = text.index("## Schedule-free and Prodigy")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("name", NAMES)
def test_porting_guide_covers_every_argument_and_state_entry(name):
    """Every argument of the package's constructor (recorded in the golden file) and
    every state entry it keeps has a row in the guide's section."""
    record = load(name)
    rows = [line for line in _guide_section().splitlines() if line.startswith("| ")]
    first_cells = [row.split("|")[1] for row in rows]
    assert any(f"`{record['optimizer']}()`" in cell for cell in first_cells)
    missing = [a for a in record["arguments"] if not any(f"`{a}" in c for c in first_cells)]
    assert not missing, f"docs/porting.md: no row for {record['optimizer']} {missing}"
    point = record["checkpoints"][-1]
    entries = set(point["state"]["W1"]) | set(point["group"])
    state_cells = [row.split("|")[2] for row in rows]
    assert all(any(f"`{e}`" in cell for cell in state_cells) for e in entries), entries
