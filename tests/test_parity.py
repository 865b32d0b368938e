"""Numerical parity of jopt with torch.optim (golden files) and with optax (live).

torch.optim
    ``tools/make_golden.py`` trained a small float64 network with torch and wrote the
    trajectory to ``tests/golden/*.json``.  Here jopt replays each trajectory in closed
    loop (its own ``jax.grad`` of the same loss, at its own parameters) and must stay
    within 1e-10 relative of torch's parameters and optimizer state at every recorded
    step.  torch is not needed: only the JSON files are read.  Every file of
    ``tests/golden/`` is replayed, with every alias whose torch port (in
    ``references``) takes its torch call.

optax
    Where optax implements the same formula, jopt's optimizers (and chains of jopt's
    blocks, which take optax's defaults) and optax's are run side by side on nested
    trees and must agree to rounding; ``test_blocks.py`` does the same block by block.
    Where the aliases differ by design (adagrad, rmsprop, adadelta's
    ``learning_rate=None``, amsgrad's order), a test pins the difference:
    jopt equals optax under the hyperparameter mapping of ``docs/porting.md``, and
    optax's own rule is restated so that a change on either side is noticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
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
from support import run_side_by_side

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
    """Every ``## `` section of the guide whose heading starts with one of ``titles``
    (a group of optimizers appends its own "From torch.optim: …" section)."""
    sections = PORTING_GUIDE.read_text().split("\n## ")
    found = [s for s in sections if s.startswith(titles)]
    assert found, titles
    return "\n".join(found)


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_porting_guide_covers_every_torch_argument(name):
    """Each argument of the torch constructor (recorded in the golden file, so torch
    is not needed) has a row in the guide's torch.optim table, as does the optimizer."""
    record = load_golden(name)
    section = _guide_section("From torch.optim")
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
    section = _guide_section("Where torch's state lives in jopt", "From torch.optim:")
    for fields in STATE_FIELDS.values():
        for torch_name, field in fields.items():
            assert f"`{torch_name}`" in section
            if field is not None:
                assert f"`{field}`" in section


# --- live comparison with optax -----------------------------------------------------------


def _assert_trees_close(a, b, rtol=1e-12, atol=1e-14):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def _assert_same_trajectory(jopt_tx, optax_tx, params, moments=()):
    """Updates and params agree to rounding at every step; so do the named moments
    (pairs of jopt field, optax field)."""
    ours, theirs = run_side_by_side([jopt_tx, optax_tx], params, steps=50, jit=True)
    for (u1, p1, s1), (u2, p2, s2) in zip(ours, theirs, strict=True):
        _assert_trees_close(u1, u2)
        _assert_trees_close(p1, p2)
        for ours_field, optax_field in moments:
            _assert_trees_close(
                jopt.tree_get(s1, ours_field), optax.tree_utils.tree_get(s2, optax_field)
            )


SAME_FORMULA = {
    "sgd": (lambda: jopt.sgd(0.05), lambda: optax.sgd(0.05), ()),
    "momentum": (
        lambda: jopt.momentum(0.05, momentum=0.8),
        lambda: optax.sgd(0.05, momentum=0.8),
        [("trace", "trace")],
    ),
    "sgd_momentum": (
        lambda: jopt.sgd(0.05, momentum=0.8),
        lambda: optax.sgd(0.05, momentum=0.8),
        [("trace", "trace")],
    ),
    "nesterov": (
        lambda: jopt.nesterov(0.05, momentum=0.8),
        lambda: optax.sgd(0.05, momentum=0.8, nesterov=True),
        [("trace", "trace")],
    ),
    "sgd_weight_decay": (
        lambda: jopt.sgd(0.05, momentum=0.8, weight_decay=0.1),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.05, momentum=0.8)),
        [("trace", "trace")],
    ),
    "adam": (
        lambda: jopt.adam(0.02, b1=0.8, b2=0.95, eps=1e-6),
        lambda: optax.adam(0.02, b1=0.8, b2=0.95, eps=1e-6),
        [("mu", "mu"), ("nu", "nu"), ("count", "count")],
    ),
    "adam_eps_root": (
        lambda: jopt.adam(0.02, b1=0.8, b2=0.95, eps=0.0, eps_root=1e-6),
        lambda: optax.adam(0.02, b1=0.8, b2=0.95, eps=0.0, eps_root=1e-6),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "adamw": (
        lambda: jopt.adamw(0.02, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1),
        lambda: optax.adamw(0.02, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "adamax": (
        lambda: jopt.adamax(0.02, b1=0.8, b2=0.95, eps=1e-6),
        lambda: optax.adamax(0.02, b1=0.8, b2=0.95, eps=1e-6),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "adadelta": (
        lambda: jopt.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.05),
        lambda: optax.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.05),
        [("grad_sq_avg", "e_g"), ("delta_sq_avg", "e_x")],
    ),
    # optax's defaults differ (see below); these are the mapped hyperparameters.
    "rmsprop_eps_outside": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=1e-4),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False),
        [("nu", "nu")],
    ),
    "rmsprop_eps_inside": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=0.0, eps_root=1e-4),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4),
        [("nu", "nu")],
    ),
    "rmsprop_centered": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=1e-4, centered=True),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False, centered=True),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "rmsprop_momentum_constant_lr": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=1e-4, momentum=0.7),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False, momentum=0.7),
        [("nu", "nu")],
    ),
    "rmsprop_nesterov_chain": (
        lambda: jopt.chain(
            jopt.scale_by_rms(0.9, eps=1e-4, eps_in_sqrt=False),
            jopt.trace(0.7, nesterov=True),
            jopt.scale_by_learning_rate(0.01),
        ),
        lambda: optax.rmsprop(
            0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False, momentum=0.7, nesterov=True
        ),
        [("nu", "nu")],  # optax's trace holds η·buf, jopt's holds buf
    ),
    "rmsprop_bias_correction_chain": (
        lambda: jopt.chain(
            jopt.scale_by_rms(0.9, eps=1e-4, bias_correction=True),
            jopt.scale_by_learning_rate(0.01),
        ),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, bias_correction=True),
        [("nu", "nu"), ("count", "count")],
    ),
    # The blocks take optax's defaults: optax.adagrad is scale_by_rss() and a rate.
    "adagrad_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_rss(), jopt.scale_by_learning_rate(0.1)),
        lambda: optax.adagrad(0.1),
        [("sum_of_squares", "sum_of_squares")],
    ),
    "rmsprop_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_rms(), jopt.scale_by_learning_rate(0.01)),
        lambda: optax.rmsprop(0.01),
        [("nu", "nu")],
    ),
    "centered_rmsprop_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_stddev(), jopt.scale_by_learning_rate(0.01)),
        lambda: optax.rmsprop(0.01, centered=True),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "amsgrad_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_amsgrad(0.8), jopt.scale_by_learning_rate(0.01)),
        lambda: optax.amsgrad(0.01, b1=0.8),
        [("mu", "mu"), ("nu", "nu"), ("nu_max", "nu_max")],
    ),
    "adagrad_optax_defaults": (
        lambda: jopt.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0, eps_root=1e-7),
        lambda: optax.adagrad(0.1),
        [("sum_of_squares", "sum_of_squares")],
    ),
}


@pytest.mark.parametrize("name", SAME_FORMULA)
def test_jopt_matches_optax(name, nested_tree):
    make_ours, make_theirs, moments = SAME_FORMULA[name]
    _assert_same_trajectory(make_ours(), make_theirs(), nested_tree, moments)


def test_side_by_side_comparison_can_fail(nested_tree):
    """The comparison notices a changed hyperparameter."""
    with pytest.raises(AssertionError):
        _assert_same_trajectory(
            jopt.adam(0.02, b1=0.8, b2=0.95, eps=1e-6),
            optax.adam(0.02, b1=0.8, b2=0.95, eps=1e-5),
            nested_tree,
        )


def _first_update(tx, grads, params):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def _small_gradients(nested_tree):
    # Small gradients make eps and the initial accumulator matter.
    return jax.tree.map(lambda p: jnp.asarray(1e-3 * (p + 0.5)), nested_tree)


def test_adagrad_defaults_differ_from_optax_as_documented(nested_tree):
    """jopt/torch: G₀ = 0, g / (√G + 1e-10).  optax: G₀ = 0.1, g / √(G + 1e-7)."""
    grads = _small_gradients(nested_tree)
    ours = _first_update(jopt.adagrad(0.1), grads, nested_tree)
    theirs = _first_update(optax.adagrad(0.1), grads, nested_tree)
    _assert_trees_close(ours, jax.tree.map(lambda g: -0.1 * g / (np.abs(g) + 1e-10), grads))
    _assert_trees_close(
        theirs, jax.tree.map(lambda g: -0.1 * g / np.sqrt(0.1 + g * g + 1e-7), grads)
    )
    # The first jopt step has size η per coordinate; optax's is ~ η·|g|/√0.1.
    ratio = jax.tree.map(lambda a, b: np.abs(a / b), ours, theirs)
    assert min(float(np.min(r)) for r in jax.tree.leaves(ratio)) > 10


def test_rmsprop_defaults_differ_from_optax_as_documented(nested_tree):
    """Same defaults (decay 0.9, eps 1e-8) but optax puts eps inside the root."""
    grads = _small_gradients(nested_tree)
    ours = _first_update(jopt.rmsprop(0.01), grads, nested_tree)
    theirs = _first_update(optax.rmsprop(0.01), grads, nested_tree)
    _assert_trees_close(
        ours, jax.tree.map(lambda g: -0.01 * g / (np.sqrt(0.1 * g * g) + 1e-8), grads)
    )
    _assert_trees_close(
        theirs, jax.tree.map(lambda g: -0.01 * g / np.sqrt(0.1 * g * g + 1e-8), grads)
    )
    assert not np.allclose(jax.tree.leaves(ours)[0], jax.tree.leaves(theirs)[0], rtol=1e-3)


def test_rmsprop_momentum_with_schedule_differs_from_optax(nested_tree):
    """jopt (and torch) keep η outside the momentum buffer, optax puts it inside.

    With a constant η the two agree (``test_jopt_matches_optax``); with a schedule,
    jopt's step is η(t)·buf, so it is the constant-η step rescaled by η(t)/η, while
    optax's buffer mixes earlier learning rates.
    """
    schedule = lambda count: 0.01 * 0.5 ** (count // 3)
    kwargs = dict(decay=0.9, eps=1e-4, momentum=0.7)
    grads_seq = [jax.tree.map(lambda p, k=k: np.cos(k + p), nested_tree) for k in range(8)]

    def updates_of(tx):
        state, out = tx.init(nested_tree), []
        for g in grads_seq:  # open loop: the same gradients for every run
            u, state = tx.update(g, state, nested_tree)
            out.append(u)
        return out

    constant = updates_of(jopt.rmsprop(0.01, **kwargs))
    ours = updates_of(jopt.rmsprop(schedule, **kwargs))
    theirs = updates_of(optax.rmsprop(schedule, eps_in_sqrt=False, **kwargs))
    for t, (c, a, b) in enumerate(zip(constant, ours, theirs, strict=True)):
        factor = schedule(t) / 0.01
        _assert_trees_close(a, jax.tree.map(lambda x, f=factor: f * x, c))
        if factor == 1:
            _assert_trees_close(a, b)
        else:
            assert not np.allclose(jax.tree.leaves(a)[0], jax.tree.leaves(b)[0], rtol=1e-6)


def test_optax_adadelta_default_learning_rate_ascends(nested_tree):
    """optax.adadelta() (learning_rate=None) returns +Δθ, i.e. the ascent direction.

    It is exactly the negative of jopt.adadelta(learning_rate=1.0), and it raises the
    loss that jopt lowers.
    """
    loss = lambda p: sum(jnp.sum(q**2) for q in jax.tree.leaves(p))
    ours_tx, theirs_tx = jopt.adadelta(), optax.adadelta(rho=0.9, eps=1e-6)
    ours_state, theirs_state = ours_tx.init(nested_tree), theirs_tx.init(nested_tree)
    for _ in range(10):  # open loop at fixed params: the states stay comparable
        grads = jax.grad(loss)(nested_tree)
        ours, ours_state = ours_tx.update(grads, ours_state, nested_tree)
        theirs, theirs_state = theirs_tx.update(grads, theirs_state, nested_tree)
        _assert_trees_close(theirs, jax.tree.map(jnp.negative, ours))
    start = loss(nested_tree)
    assert loss(jopt.apply_updates(nested_tree, ours)) < start
    assert loss(optax.apply_updates(nested_tree, theirs)) > start


def test_amsgrad_bias_correction_order_differs_from_optax(nested_tree):
    """torch and jopt: v_max = max(v_max, v), then divide by 1 − β₂ᵗ.
    optax.amsgrad: v_max = max(v_max, v / (1 − β₂ᵗ)).

    The first step coincides; once the gradients shrink, the two maxima differ.
    Each library's maximum is checked against its own rule.
    """
    b1, b2 = 0.9, 0.99
    ours_tx = jopt.adam(0.01, b1=b1, b2=b2, eps=1e-8, amsgrad=True)
    theirs_tx = optax.amsgrad(0.01, b1=b1, b2=b2, eps=1e-8)
    ours_state, theirs_state = ours_tx.init(nested_tree), theirs_tx.init(nested_tree)
    nu = jax.tree.map(np.zeros_like, nested_tree)
    max_raw, max_corrected = nu, nu
    first, differs = True, False
    for t in range(1, 21):
        grads = jax.tree.map(lambda p, t=t: (p + 0.5) * 0.7**t, nested_tree)
        ours, ours_state = ours_tx.update(grads, ours_state, nested_tree)
        theirs, theirs_state = theirs_tx.update(grads, theirs_state, nested_tree)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, grads)
        max_raw = jax.tree.map(np.maximum, max_raw, nu)
        max_corrected = jax.tree.map(
            lambda m, v, t=t: np.maximum(m, v / (1 - b2**t)), max_corrected, nu
        )
        _assert_trees_close(jopt.tree_get(ours_state, "nu_max"), max_raw)
        _assert_trees_close(optax.tree_utils.tree_get(theirs_state, "nu_max"), max_corrected)
        _assert_trees_close(
            jopt.tree_get(ours_state, "nu"), optax.tree_utils.tree_get(theirs_state, "nu")
        )
        if first:
            _assert_trees_close(ours, theirs)
            first = False
        else:
            differs |= not all(
                np.allclose(a, b, rtol=1e-6)
                for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
            )
    assert differs


def test_optax_amsgrad_is_not_torch():
    """Replaying the torch amsgrad golden file with optax.amsgrad leaves 1e-10 parity."""
    record = load_golden("adam_amsgrad")
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    errors = replay(
        {**record, "optimizer": "Adam", "checkpoints": []},
        optax.amsgrad(hp["lr"], b1=b1, b2=b2, eps=hp["eps"]),
    )
    assert errors["loss"] > GOLDEN_RTOL


def test_optax_adam_replays_torch_golden():
    """optax.adam reproduces torch's Adam trajectory too (same formula)."""
    record = load_golden("adam_plain")
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    errors = replay(record, optax.adam(hp["lr"], b1=b1, b2=b2, eps=hp["eps"]))
    assert max(errors.values()) <= GOLDEN_RTOL, errors
