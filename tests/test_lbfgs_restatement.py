"""L-BFGS against the float64 NumPy restatement (pytrees, float32, schedules), its
signature, and bad input; the restatement is proven against torch in test_lbfgs.py."""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lbfgs_support import RTOL, closed_loop, load
from references import ref_lbfgs

import jopt
from jopt.transforms import LbfgsState

# --- jopt against the restatement ------------------------------------------------------


def nested_rosenbrock(params):
    """Rosenbrock's function of all float leaves, in tree order (integer leaves unused)."""
    x = jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(params) if v.dtype.kind == "f"])
    return jnp.sum(10.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _reference_run(kwargs, params, steps, dtype=np.float64):
    """The restatement on the tree's float leaves as one float64 vector."""
    floats = [v for v in jax.tree.leaves(params) if v.dtype.kind == "f"]
    shapes = [v.shape for v in floats]

    def value_and_grad(x):
        parts = np.split(x, np.cumsum([math.prod(s) for s in shapes])[:-1])
        vector = jnp.concatenate([jnp.asarray(p, dtype) for p in parts])
        value, grad = jax.value_and_grad(lambda v: nested_rosenbrock({"v": v}))(vector)
        return float(value), np.asarray(grad, np.float64)

    init, step = ref_lbfgs(**kwargs)
    x = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in floats])
    state, path = init(x), []
    for k in range(1, steps + 1):
        value, grad = value_and_grad(x)
        x, state = step(x, grad, state, k, value=value, value_and_grad=value_and_grad)
        path.append(x)
    return path


def _tree(dtype=jnp.float64):
    return {
        "a": jnp.array([-1.2, 1.0, 0.3], dtype),
        "b": {"c": jnp.full((2, 2), 0.7, dtype), "n": jnp.int32(3)},
        "d": jnp.asarray(-0.5, dtype),
    }


def _flat(params):
    return np.concatenate([np.ravel(v) for v in jax.tree.leaves(params) if v.dtype.kind == "f"])


@pytest.mark.float64
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"history_size": 2},
        {"learning_rate": 0.05, "line_search": None},
        {"learning_rate": lambda count: 0.1 / (1 + count), "line_search": None},
    ],
    ids=["defaults", "history_size=2", "fixed_step", "schedule"],
)
def test_pytree_matches_reference(kwargs):
    """A nested tree with a 0-d leaf and an integer leaf: the float leaves are one
    vector, in tree order; the integer leaf is carried along untouched."""
    params = _tree()
    run = closed_loop(jopt.lbfgs(**kwargs), nested_rosenbrock, params, 12)
    expected = _reference_run(kwargs, params, 12)
    for k, ((_, ours, _), theirs) in enumerate(zip(run, expected, strict=True)):
        np.testing.assert_allclose(_flat(ours), theirs, rtol=RTOL, err_msg=f"step {k + 1}")
        assert int(ours["b"]["n"]) == 3 and ours["b"]["n"].dtype == jnp.int32


def test_float32():
    """64-bit types off, as users run: float32 throughout, close to the float64 path."""
    params = _tree(jnp.float32)
    run = closed_loop(jopt.lbfgs(), nested_rosenbrock, params, 6)
    expected = _reference_run({}, params, 6, dtype=np.float32)
    for (value, ours, state), theirs in zip(run, expected, strict=True):
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(ours) if v.dtype.kind == "f")
        assert state.direction.dtype == jnp.float32 and value.dtype == jnp.float32
        np.testing.assert_allclose(_flat(ours), theirs, rtol=1e-4, atol=1e-5)


def test_fixed_step_needs_no_loss():
    """Without a line search ``update(grads, state)`` is enough, as for any optimizer."""
    optimizer = jopt.lbfgs(0.1, line_search=None)
    params = {"w": jnp.array([1.0, -2.0])}
    state = optimizer.init(params)
    updates, state = optimizer.update({"w": jnp.array([0.5, 0.5])}, state)
    # First iteration: t = min(1, 1/‖g‖₁)·η = 0.1 and d = −g.
    np.testing.assert_allclose(updates["w"], [-0.05, -0.05], rtol=1e-6)
    assert state.value is None and state.grad is None


def test_registered_with_the_specified_signature():
    assert jopt.optimizers.ALL["lbfgs"] is jopt.lbfgs
    assert jopt.optimizers.DEMO_LEARNING_RATES["lbfgs"] == 1.0
    signature = inspect.signature(jopt.lbfgs)
    defaults = {k: p.default for k, p in signature.parameters.items()}
    assert defaults == {
        "learning_rate": 1.0,
        "history_size": 100,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "line_search": "strong_wolfe",
    }
    kinds = [p.kind for p in signature.parameters.values()]
    assert kinds[1:] == [inspect.Parameter.KEYWORD_ONLY] * 4


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"history_size": 0}, ValueError, "history_size"),
        ({"history_size": 2.0}, TypeError, "history_size"),
        ({"tolerance_grad": -1e-7}, ValueError, "tolerance_grad"),
        ({"tolerance_change": "small"}, TypeError, "tolerance_change"),
        ({"line_search": "armijo"}, ValueError, "line_search"),
        ({"line_search": True}, TypeError, "line_search"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        jopt.lbfgs(**kwargs)


def test_positional_hyperparameters_are_refused():
    with pytest.raises(TypeError):
        jopt.lbfgs(1.0, 10)


@pytest.mark.parametrize("missing", ["params", "value", "value_fn"])
def test_line_search_names_what_it_needs(missing):
    params = {"w": jnp.array([1.0, 2.0])}
    optimizer = jopt.lbfgs()
    arguments = {"params": params, "value": jnp.float32(5.0), "value_fn": nested_rosenbrock}
    arguments[missing] = None
    with pytest.raises(ValueError, match=missing):
        optimizer.update(
            {"w": jnp.array([1.0, 1.0])},
            optimizer.init(params),
            arguments["params"],
            value=arguments["value"],
            value_fn=arguments["value_fn"],
        )


def test_mismatched_trees_and_states_are_named():
    optimizer = jopt.lbfgs(line_search=None)
    state = optimizer.init({"w": jnp.zeros(2)})
    with pytest.raises(ValueError, match="params"):
        optimizer.update({"w": jnp.zeros(2)}, state, {"v": jnp.zeros(2)})
    with pytest.raises(ValueError, match="trainable entries"):
        optimizer.update({"w": jnp.zeros(3)}, state)
    with pytest.raises(ValueError, match="LbfgsState"):
        optimizer.update({"w": jnp.zeros(2)}, jopt.sgd(0.1).init({"w": jnp.zeros(2)}))
    with pytest.raises(TypeError, match="complex"):
        optimizer.init({"w": jnp.zeros(2, jnp.complex64)})


@pytest.mark.float64
def test_state_keeps_the_loss_and_gradient_where_the_update_lands():
    params = _tree()
    (_, new_params, state), *_ = closed_loop(jopt.lbfgs(), nested_rosenbrock, params, 1)
    value, grad = jax.value_and_grad(nested_rosenbrock, allow_int=True)(new_params)
    np.testing.assert_allclose(state.value, value, rtol=1e-12)
    assert state.grad["b"]["n"] is None
    np.testing.assert_allclose(_flat(state.grad), _flat(grad), rtol=1e-10, atol=1e-12)


def test_porting_guide_maps_torch_lbfgs():
    """Every argument of torch's constructor and every entry of its state (as the golden
    files recorded them) has a row in the guide's L-BFGS section, as every state field."""
    text = (Path(__file__).parent.parent / "docs" / "porting.md").read_text()
    section = text[text.index("## L-BFGS") :]
    record = load("strong_wolfe")
    names = [*record["torch_arguments"], *record["checkpoints"][0]["state"], "al"]
    names += list(LbfgsState._fields)
    missing = [name for name in names if f"`{name}`" not in section]
    assert not missing, missing


def _three_steps(optimizer, w):
    """The loss after three closed-loop updates from ``{"w": w, "none": None}``."""
    params = {"w": w, "none": None}
    state = optimizer.init(params)

    def loss(p):
        return jnp.sum(jnp.arange(1.0, 4.0) * (p["w"] - 1.0) ** 2 + 0.1 * p["w"] ** 4)

    for _ in range(3):
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = optimizer.update(grad, state, params, value=value, value_fn=loss)
        params = jopt.apply_updates(params, updates)
    assert params["none"] is None
    return loss(params)


@pytest.mark.float64
@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_vmap_runs_each_problem_alone(line_search):
    """Under vmap (the line search's loop runs until every member is done) each member
    follows its own path: the unbatched runs are the ones the goldens check."""
    optimizer = jopt.lbfgs(0.5, line_search=line_search)
    run = jax.jit(functools.partial(_three_steps, optimizer))
    starts = jnp.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [3.0, -1.0, 0.5]])
    batched = jax.jit(jax.vmap(run))(starts)
    alone = [run(w) for w in starts]
    np.testing.assert_allclose(batched, alone, rtol=1e-12)


@pytest.mark.float64
def test_gradient_through_fixed_step_updates():
    """Without a line search the update is differentiable (the two-loop recursion has a
    fixed trip count); checked against central differences."""
    optimizer = jopt.lbfgs(0.1, history_size=3, line_search=None)
    run = jax.jit(functools.partial(_three_steps, optimizer))
    w = jnp.array([0.3, -0.4, 2.0])
    grad = jax.jit(jax.grad(run))(w)
    h = 1e-6
    numeric = [(run(w.at[i].add(h)) - run(w.at[i].add(-h))) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)
