"""jopt.averaged against torch's AveragedModel (golden data) and NumPy averages.

``tests/golden/schedules/averaged.json`` (written by ``tools/golden_schedules.py``)
trains the float64 tanh network of the other golden files with SGD and momentum and
updates an ``AveragedModel`` (the default equal average, or
``get_ema_multi_avg_fn(decay)``) after the optimizer steps that ``start_step`` and
``every`` select.  jopt replays the run in closed loop with ``jopt.averaged`` around
``jopt.sgd`` and must give torch's parameters and averages at every checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import GOLDEN_RTOL, mlp_tanh_v1_loss

import jopt

GOLDEN = json.loads((Path(__file__).parent / "golden" / "schedules" / "averaged.json").read_text())


def decode(tree):
    if isinstance(tree, dict) and set(tree) == {"shape", "data"}:
        return np.asarray(tree["data"], np.float64).reshape(tree["shape"])
    return {k: decode(v) for k, v in tree.items()}


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-300)))


@pytest.mark.float64
@pytest.mark.parametrize("name", sorted(GOLDEN["runs"]))
def test_matches_torch_averaged_model(name):
    run = GOLDEN["runs"][name]
    data = decode(GOLDEN["data"])
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    sgd = run["optimizer"]
    optimizer = jopt.averaged(
        jopt.sgd(sgd["lr"], momentum=sgd["momentum"]),
        decay=run["decay"],
        start_step=run["start_step"],
        every=run["every"],
    )
    params = {k: jnp.asarray(v) for k, v in decode(GOLDEN["initial_params"]).items()}
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(mlp_tanh_v1_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state

    checkpoints = {c["step"]: c for c in run["checkpoints"]}
    for t in range(1, run["num_steps"] + 1):
        params, state = step(params, state)
        if t not in checkpoints:
            continue
        point = checkpoints[t]
        assert int(state.n_averaged) == point["n_averaged"], t
        average = jopt.averaged_params(state)
        for k, expected in decode(point["params"]).items():
            assert relative_error(params[k], expected) < GOLDEN_RTOL, (t, k)
        for k, expected in decode(point["averaged"]).items():
            assert relative_error(average[k], expected) < GOLDEN_RTOL, (t, k)


# --- closed forms in NumPy, float32 --------------------------------------------------------


def drive(optimizer, params, grads):
    """Run ``optimizer`` on the given gradients; the params after each update, and the state."""
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    path = []
    for g in grads:
        updates, state = update(g, state, params)
        params = jopt.apply_updates(params, updates)
        path.append(np.asarray(params["w"], np.float64))
    return np.array(path), state


@pytest.mark.parametrize("decay, start, every", [(None, 2, 3), (0.8, 0, 1), (0.5, 3, 2)])
def test_average_of_the_params_after_each_update(decay, start, every):
    rng = np.random.default_rng(0)
    grads = [{"w": jnp.asarray(rng.normal(size=4), jnp.float32)} for _ in range(12)]
    params = {"w": jnp.zeros(4, jnp.float32)}
    inner = jopt.sgd(0.1, momentum=0.5)
    path, state = drive(jopt.averaged(inner, decay=decay, start_step=start, every=every),
                        params, grads)  # fmt: skip
    plain, _ = drive(inner, params, grads)
    np.testing.assert_array_equal(path, plain)  # the updates pass through unchanged
    taken = [path[k - 1] for k in range(1, 13) if k > start and (k - start) % every == 0]
    if decay is None:
        expected = np.mean(taken, axis=0)
    else:
        expected = taken[0]
        for p in taken[1:]:
            expected = decay * expected + (1 - decay) * p
    assert int(state.n_averaged) == len(taken)
    np.testing.assert_allclose(jopt.averaged_params(state)["w"], expected, rtol=2e-6, atol=1e-7)


def test_before_any_average_the_initial_params_and_other_leaves():
    params = {"w": jnp.ones(3, jnp.bfloat16), "step": jnp.asarray(7), "none": None}
    optimizer = jopt.averaged(jopt.sgd(0.5), decay=0.9, start_step=5)
    state = optimizer.init(params)
    grads = {"w": jnp.ones(3, jnp.bfloat16), "step": jnp.asarray(0), "none": None}
    updates, state = jax.jit(optimizer.update)(grads, state, params)
    average = jopt.averaged_params(state)
    assert average["w"].dtype == jnp.bfloat16 and average["none"] is None
    np.testing.assert_array_equal(np.asarray(average["w"], np.float32), 1.0)  # not yet averaged
    assert int(average["step"]) == 7 and int(state.n_averaged) == 0
    np.testing.assert_array_equal(np.asarray(updates["w"], np.float32), -0.5)


def test_params_and_state_can_be_donated_together():
    params = {"w": jnp.arange(3.0)}
    optimizer = jopt.averaged(jopt.sgd(0.1))
    state = optimizer.init(params)
    assert state.averaged_params["w"] is not params["w"]

    @jax.jit
    def step(params, state):
        updates, state = optimizer.update(params, state, params)
        return jopt.apply_updates(params, updates), state

    donated = jax.jit(step.__wrapped__, donate_argnums=(0, 1))
    params, state = donated(params, state)
    np.testing.assert_allclose(jopt.averaged_params(state)["w"], 0.9 * np.arange(3.0), rtol=1e-6)


BAD = [
    (lambda: jopt.averaged(jopt.sgd(0.1), decay=1.5), ValueError, "decay"),
    (lambda: jopt.averaged(jopt.sgd(0.1), decay="ema"), TypeError, "decay"),
    (lambda: jopt.averaged(jopt.sgd(0.1), start_step=-1), ValueError, "start_step"),
    (lambda: jopt.averaged(jopt.sgd(0.1), every=0), ValueError, "every"),
    (lambda: jopt.averaged(jopt.sgd(0.1), every=1.0), TypeError, "every"),
    (lambda: jopt.averaged("sgd"), TypeError, "inner"),
    (lambda: jopt.averaged(jopt.sgd(0.1), 0.9), TypeError, "positional"),
    (lambda: _update_without_params(), ValueError, "params"),
    (lambda: jopt.averaged_params(jopt.sgd(0.1).init(jnp.ones(2))), ValueError, "AveragedState"),
]


def _update_without_params():
    optimizer = jopt.averaged(jopt.sgd(0.1))
    params = jnp.ones(2)
    return optimizer.update(params, optimizer.init(params))


@pytest.mark.parametrize("make, error, name", BAD, ids=range(len(BAD)))
def test_bad_input_fails_naming_it(make, error, name):
    with pytest.raises(error, match=rf"(^|\W){re.escape(name)}\W"):
        make()
