"""Numerical parity of jopt with torch.optim (golden files).

``tools/make_golden.py`` trained a small float64 network with torch and wrote the
trajectory to ``tests/golden/*.json``.  Here jopt replays each trajectory in closed
loop (its own ``jax.grad`` of the same loss, at its own parameters) and must stay
within 1e-10 relative of torch's parameters and optimizer state at every recorded
step.  torch is not needed: only the JSON files are read.  Every file of
``tests/golden/`` is replayed, with every alias whose torch port (in
``references``) takes its torch call.  ``docs/porting.md`` covers every torch
argument and state name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import (
    GOLDEN_NAMES,
    GOLDEN_RTOL,
    LOSSES,
    STATE_FIELDS,
    golden_loss,
    jopt_from_torch,
    load_golden,
    replay,
    replayers,
    torch_schedule,
)

import jopt

# Torch trajectories and optax runs agree with jopt's to 1e-10 and 1e-12 relative:
# 64-bit types on for every test here.
pytestmark = pytest.mark.float64

ROOT = Path(__file__).resolve().parents[1]


def _generator_configs() -> list[str]:
    """The names of tools/make_golden.py's CONFIGS, read without importing torch."""
    tree = ast.parse((ROOT / "tools" / "make_golden.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "CONFIGS":
            return list(ast.literal_eval(node.value))
    raise AssertionError("tools/make_golden.py has no CONFIGS")


def test_golden_files_are_the_generators_configurations():
    assert sorted(_generator_configs()) == list(GOLDEN_NAMES)
    assert len(GOLDEN_NAMES) >= 22


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_file_is_self_describing(name):
    record = load_golden(name)
    assert record["name"] == name
    assert record["model"] in LOSSES
    assert record["torch_version"]
    assert record["foreach"] is False
    assert record["param_order"] == list(record["initial_params"])
    steps = [c["step"] for c in record["checkpoints"]]
    assert steps == sorted(steps) and steps[-1] == record["num_steps"]
    assert record["lr_history"].shape == record["loss_history"].shape == (record["num_steps"],)
    shapes = {k: v.shape for k, v in record["initial_params"].items()}
    assert () in shapes.values(), "a 0-d parameter is part of the problem"
    for point in record["checkpoints"]:
        assert {k: v.shape for k, v in point["params"].items()} == shapes
        for k, entries in point["state"].items():
            for torch_name, value in entries.items():
                if torch_name != "step":
                    assert value.shape in _state_shapes(shapes[k]), (k, torch_name)


def _state_shapes(shape):
    """A torch state entry has its parameter's shape, is 0-d (NAdam's ``mu_product``,
    ASGD's ``eta`` and ``mu``), or is reduced to 1 along one of the last two axes
    (Adafactor's ``row_var``, ``col_var``)."""
    shapes = {shape, ()}
    if len(shape) >= 2:
        shapes |= {(*shape[:-1], 1), (*shape[:-2], 1, shape[-1])}
    return shapes


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_jax_loss_restates_torch_loss(name):
    record = load_golden(name)
    loss_fn = golden_loss(record)
    np.testing.assert_allclose(
        loss_fn(record["initial_params"]), record["loss_history"][0], rtol=1e-13
    )
    # The restatement holds away from the initial point too.
    for point in record["checkpoints"]:
        if point["step"] < record["num_steps"]:
            np.testing.assert_allclose(
                loss_fn(point["params"]), record["loss_history"][point["step"]], rtol=1e-13
            )


# Every golden file, with every alias that ports its torch call (or the chain that
# does); a file nothing ports is listed with None and fails.
REPLAYS = [
    (name, alias) for name in GOLDEN_NAMES for alias in replayers(load_golden(name)) or [None]
]


def test_every_alias_with_a_torch_port_is_replayed():
    ported = {alias for _, alias in REPLAYS}
    assert {"sgd", "momentum", "nesterov", "adam", "adamw", "adamax", "rmsprop"} <= ported
    assert {"adagrad", "adadelta", "chain"} <= ported
    assert {"nadam", "radam", "asgd", "rprop", "adafactor"} <= ported


@pytest.mark.parametrize("name, alias", REPLAYS, ids=[f"{n}-{a}" for n, a in REPLAYS])
def test_golden_replay_matches_torch(name, alias):
    record = load_golden(name)
    errors = replay(record, jopt_from_torch(record, alias))
    worst = {k: v for k, v in errors.items() if v > GOLDEN_RTOL}
    assert not worst, f"relative error above {GOLDEN_RTOL:g}: {worst}"
    # Every state entry torch keeps (except a step counter jopt does not need) was
    # compared, so a missing moment cannot pass silently.
    torch_names = set(record["checkpoints"][-1]["state"]["W1"])
    fields = STATE_FIELDS[record["optimizer"]]
    assert {n for n in torch_names if fields[n] not in (None, "count")} <= set(errors)


# Each trap of docs/porting.md, applied to a golden configuration, must be caught.
WRONG_MAPPINGS = [
    ("adam_amsgrad", {"amsgrad": False}),
    ("rmsprop_plain", {"eps": 0.0, "eps_root": 1e-6}),  # eps inside the root
    ("adagrad", {"eps": 0.0, "eps_root": 1e-3}),  # eps inside the root
    ("adagrad", {"initial_accumulator_value": 0.0}),
    ("rmsprop_centered", {"centered": False}),
    ("sgd_nesterov", {"nesterov": False}),
    ("adam_weight_decay", {"weight_decay": 0.0}),
    ("nadam_decoupled_weight_decay", {"decoupled_weight_decay": False}),
    ("nadam", {"momentum_decay": 0.0}),
    ("radam_decoupled_weight_decay", {"decoupled_weight_decay": False}),
    ("asgd", {"t0": 1e6}),  # torch's default t0: the average never starts
    ("rprop_bounded", {"step_sizes": (1e-6, 50.0)}),
    ("adafactor_weight_decay", {"d": 1.0}),
]


@pytest.mark.parametrize("name, override", WRONG_MAPPINGS)
def test_golden_replay_catches_a_wrong_mapping(name, override):
    record = load_golden(name)
    errors = replay(record, jopt_from_torch(record, **override))
    assert max(errors.values()) > 1e-6


def test_golden_replay_catches_l2_in_place_of_decoupled_decay():
    record = load_golden("adamw")
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    coupled = jopt.adam(hp["lr"], b1=b1, b2=b2, eps=hp["eps"], weight_decay=hp["weight_decay"])
    assert max(replay(record, coupled).values()) > 1e-6


SCHEDULED = [name for name in GOLDEN_NAMES if load_golden(name)["scheduler"] is not None]


@pytest.mark.parametrize("name", SCHEDULED)
def test_schedule_restates_torch_scheduler(name):
    """The closed form used in the replay gives the learning rate torch used at every
    step, with step t (1-based) seeing ``schedule(t - 1)``."""
    record = load_golden(name)
    schedule = torch_schedule(record)
    got = np.array([schedule(jnp.asarray(t, jnp.int32)) for t in range(record["num_steps"])])
    # torch's CosineAnnealingLR is a recursion; its rounding drifts from the closed form.
    np.testing.assert_allclose(got, record["lr_history"], rtol=1e-12)
    assert len(set(record["lr_history"].tolist())) > 1


def test_adagrad_lr_decay_is_a_schedule():
    record = load_golden("adagrad_lr_decay")
    hp = record["hyperparameters"]
    expected = [hp["lr"] / (1 + t * hp["lr_decay"]) for t in range(record["num_steps"])]
    # torch applies lr_decay inside the step, so its recorded group lr stays constant.
    np.testing.assert_array_equal(record["lr_history"], hp["lr"])
    schedule = torch_schedule(record)
    got = [float(schedule(jnp.asarray(t, jnp.int32))) for t in range(record["num_steps"])]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_amsgrad_golden_exercises_the_maximum():
    """torch's max_exp_avg_sq departs from exp_avg_sq, so amsgrad is really tested."""
    last = load_golden("adam_amsgrad")["checkpoints"][-1]["state"]
    assert any(np.any(s["max_exp_avg_sq"] > s["exp_avg_sq"]) for s in last.values())


# --- the porting guide -------------------------------------------------------------------

PORTING_GUIDE = Path(__file__).parent.parent / "docs" / "porting.md"


def _guide_section(*titles: str) -> str:
    """Every ``##`` or ``###`` section of the guide whose heading starts with one of
    ``titles`` (a group of optimizers appends its own "From torch.optim: …" section)."""
    sections = re.split(r"\n#{2,3} ", PORTING_GUIDE.read_text())
    found = [s for s in sections if s.startswith(titles)]
    assert found, titles
    return "\n".join(found)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_porting_guide_covers_every_torch_argument(name):
    """Each argument of the torch constructor (recorded in the golden file, so torch
    is not needed) has a row in the guide's torch.optim table, as does the optimizer."""
    record = load_golden(name)
    section = _guide_section("From torch.optim", "NAdam, RAdam")
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    first_cells = [row.split("|")[1] for row in rows]
    assert any(f"`{record['optimizer']}()`" in cell for cell in first_cells)
    missing = [
        arg
        for arg in record["torch_arguments"]
        if not any(f"`{arg}`" in cell or f"`{arg}=" in cell for cell in first_cells)
    ]
    assert not missing, (
        f"docs/porting.md has no row for torch.optim.{record['optimizer']} {missing}"
    )


def test_porting_guide_maps_every_torch_state_name():
    section = _guide_section("Where torch's state lives in jopt", "NAdam, RAdam")
    for fields in STATE_FIELDS.values():
        for torch_name, field in fields.items():
            assert f"`{torch_name}`" in section
            if field is not None:
                assert f"`{field}`" in section
