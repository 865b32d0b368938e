"""jopt.training: batches and the compiled step (make_step).

Expected values come from restatements written here: the documented batch order and
hand-written loops of ``update``/``apply_updates``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_support import (
    least_squares,
    make_regression,
    zeros_params,
)

import jopt
from jopt import training

# --- batches -------------------------------------------------------------------------


def test_full_batch_is_the_data_itself():
    data = (np.arange(10.0).reshape(5, 2), np.arange(5))
    (batch,) = list(training.batches(data))
    assert batch is data


@pytest.mark.parametrize("to_device", [False, True], ids=["numpy", "jax"])
@pytest.mark.parametrize("batch_size", [1, 3, 5])
def test_batches_visit_every_example_once_in_the_keys_order(batch_size, to_device):
    n = 11
    ids = np.arange(n)
    data = {"id": ids, "x": np.arange(2.0 * n).reshape(n, 2)}
    if to_device:
        data = jax.tree.map(jnp.asarray, data)
    key = jax.random.key(3)
    got = list(training.batches(data, batch_size=batch_size, key=key))
    # Documented order: jax.random.permutation(key, n), cut into consecutive batches.
    order = np.asarray(jax.random.permutation(key, n))
    expected_sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    assert [len(b["id"]) for b in got] == expected_sizes
    np.testing.assert_array_equal(np.concatenate([np.asarray(b["id"]) for b in got]), order)
    for b in got:  # leaves stay aligned
        np.testing.assert_array_equal(
            np.asarray(b["x"]), 2.0 * np.asarray(b["id"])[:, None] + [0, 1]
        )
        assert isinstance(b["id"], jax.Array) == to_device


def test_batches_reshuffle_with_the_key_and_repeat_for_the_same_key():
    ids = np.arange(50)

    def order(seed):
        return np.concatenate(list(training.batches(ids, batch_size=7, key=jax.random.key(seed))))

    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    assert not np.array_equal(order(1), ids)


def test_batches_in_order_and_drop_last():
    ids = np.arange(10)
    in_order = list(training.batches(ids, batch_size=4, shuffle=False))
    assert [b.tolist() for b in in_order] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = list(training.batches(ids, batch_size=4, shuffle=False, drop_last=True))
    assert [b.tolist() for b in dropped] == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, or None, got 0"),
        ({"batch_size": 11}, ValueError, r"batch_size must be <= the number of examples \(10\)"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer"),
        ({"batch_size": True}, TypeError, "batch_size must be an integer"),
        ({"batch_size": 2, "key": None}, ValueError, "key is None"),
        ({"batch_size": 2, "key": 0}, TypeError, "key must be a JAX PRNG key"),
        ({"data": (np.zeros(10), np.zeros(9))}, ValueError, "disagree on the number of examples"),
        ({"data": np.float64(1.0)}, ValueError, "leading example axis"),
        ({"data": {}}, ValueError, "at least one array"),
    ],
)
def test_batches_reject_bad_input(kwargs, error, match):
    args = {"key": jax.random.key(0), "data": np.zeros(10), "batch_size": 2} | kwargs
    with pytest.raises(error, match=match):
        training.batches(args["data"], batch_size=args["batch_size"], key=args["key"])


# --- make_step -----------------------------------------------------------------------


def test_make_step_keeps_the_callers_arrays_by_default(rng):
    # As in flax and optax: a step does not donate unless asked to.
    x, y = make_regression(rng)
    optimizer = jopt.adam(0.1)
    params = jax.tree.map(jnp.array, zeros_params(3))
    state = optimizer.init(params)
    training.make_step(least_squares, optimizer)(params, state, (x, y))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves((params, state)))
    np.testing.assert_array_equal(params["w"], np.zeros(3))


def test_make_step_donate_true_frees_the_input_buffers(rng):
    x, y = make_regression(rng)
    optimizer = jopt.adam(0.1)
    step = training.make_step(least_squares, optimizer, donate=True)
    params = jax.tree.map(jnp.array, zeros_params(3))
    state = optimizer.init(params)
    inputs = jax.tree.leaves((params, state))
    new_params, new_state, _ = step(params, state, (x, y))
    # XLA:CPU honours donation: the step wrote into the input buffers.
    assert all(leaf.is_deleted() for leaf in inputs)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves((new_params, new_state)))


def test_make_step_is_traced_once_across_steps(rng, trace_counter):
    x, y = make_regression(rng)
    optimizer = jopt.momentum(0.05)
    step = training.make_step(trace_counter.wrap(least_squares), optimizer)
    params = jax.tree.map(jnp.array, zeros_params(3))
    state = optimizer.init(params)
    for _ in range(5):
        params, state, _ = step(params, state, (x[:8], y[:8]))
    assert trace_counter.count == 1
    step(params, state, (x[:5], y[:5]))  # a new batch shape: one more
    assert trace_counter.count == 2


def test_make_step_has_aux_and_matches_the_update_rule(rng):
    x, y = make_regression(rng)

    def loss_with_aux(params, batch):
        residual = batch[0] @ params["w"] + params["b"] - batch[1]
        return jnp.mean(residual**2), {"max": jnp.max(jnp.abs(residual))}

    step = training.make_step(loss_with_aux, jopt.sgd(0.1), has_aux=True, donate=False)
    params = zeros_params(3)
    new_params, _, loss, aux = step(params, jopt.sgd(0.1).init(params), (x, y))
    # SGD by hand: θ ← θ − η·∇J with ∇J of the mean squared error, in float64 NumPy;
    # the step runs in float32, hence the tolerance.
    residual = -y
    np.testing.assert_allclose(loss, np.mean(residual**2), rtol=1e-6)
    np.testing.assert_allclose(aux["max"], np.max(np.abs(residual)), rtol=1e-6)
    np.testing.assert_allclose(new_params["w"], -0.1 * 2 * x.T @ residual / len(y), rtol=1e-6)
    np.testing.assert_allclose(new_params["b"], -0.1 * 2 * np.mean(residual), rtol=1e-6)


def test_make_step_passes_integer_leaves_through():
    params = {"w": jnp.ones(2), "count": jnp.asarray(7, jnp.int32)}

    def loss(p, batch):
        return jnp.sum((p["w"] - batch) ** 2) + 0 * p["count"]

    step = training.make_step(loss, jopt.sgd(0.25), donate=False)
    new, _, _ = step(params, jopt.sgd(0.25).init(params), jnp.zeros(2))
    np.testing.assert_array_equal(new["w"], [0.5, 0.5])  # 1 − 0.25·2·1
    assert new["count"] == 7 and new["count"].dtype == jnp.int32


def test_make_step_rejects_bad_arguments():
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        training.make_step(3, jopt.sgd(0.1))
    with pytest.raises(TypeError, match="optimizer must be a GradientTransformation"):
        training.make_step(least_squares, object())
    with pytest.raises(TypeError, match="has_aux must be a bool"):
        training.make_step(least_squares, jopt.sgd(0.1), has_aux=1)
    with pytest.raises(TypeError, match="donate must be a bool"):
        training.make_step(least_squares, jopt.sgd(0.1), donate="yes")
    with pytest.raises(TypeError, match="positional"):
        training.make_step(least_squares, jopt.sgd(0.1), False)
