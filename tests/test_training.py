"""jopt.training: batches, the compiled step, fit, and the learning-rate range test.

Expected values come from restatements written here: closed-form least-squares
solutions (NumPy), hand-written loops of ``update``/``apply_updates`` with the
documented batch order, and a hand-written SGD for the range test's grid search.
"""

from __future__ import annotations

import os
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from training_support import (
    assert_trees_equal,
    counting_compiles,
    hand_step,
    least_squares,
    lstsq_solution,
    make_regression,
    zeros_params,
)

import jopt
from jopt import training
from jopt.training._range_test import running_average, zero_phase_average

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


# --- fit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_size", "lr", "epochs"),
    [(None, 0.3, 150), (1, 0.03, 40), (5, 0.1, 60)],
    ids=["batch", "stochastic", "mini-batch"],
)
def test_fit_converges_on_a_convex_problem(rng, batch_size, lr, epochs):
    # A consistent least-squares system: its minimiser fits every example exactly, so
    # stochastic and mini-batch gradients vanish there too and all three converge.
    x, y = make_regression(rng, n=24, d=3)
    w, b = lstsq_solution(x, y)
    params, _, history = training.fit(
        least_squares,
        zeros_params(3),
        jopt.sgd(lr),
        (x, y),
        batch_size=batch_size,
        epochs=epochs,
        key=jax.random.key(0),
        progress=False,
    )
    np.testing.assert_allclose(params["w"], w, atol=1e-6)
    np.testing.assert_allclose(params["b"], b, atol=1e-6)
    steps_per_epoch = 1 if batch_size is None else -(-24 // batch_size)
    assert history.steps == epochs * steps_per_epoch
    assert history.epochs == epochs
    np.testing.assert_array_equal(history.epoch_step, steps_per_epoch * np.arange(1, epochs + 1))
    assert history.epoch_loss[-1] < 1e-10 < history.epoch_loss[0]


@pytest.mark.parametrize(
    "make_optimizer",
    [lambda: jopt.adam(0.1), lambda: optax.adam(0.1), lambda: jopt.nesterov(0.05)],
    ids=["jopt.adam", "optax.adam", "jopt.nesterov"],
)
def test_full_batch_fit_equals_a_hand_written_loop_bit_for_bit(rng, make_optimizer):
    x, y = make_regression(rng, noise=0.3)
    optimizer = make_optimizer()
    params, state, history = training.fit(
        least_squares, zeros_params(3), optimizer, (x, y), epochs=6, progress=False
    )
    step = hand_step(least_squares, optimizer)
    expected = jax.tree.map(jnp.asarray, zeros_params(3))
    expected_state = optimizer.init(expected)
    losses = []
    for _ in range(6):
        expected, expected_state, loss = step(expected, expected_state, (x, y))
        losses.append(float(loss))
    assert_trees_equal(params, expected)
    assert_trees_equal(state, expected_state)
    np.testing.assert_array_equal(history.loss, losses)
    np.testing.assert_array_equal(history.epoch_loss, losses)


def test_mini_batch_fit_reshuffles_every_epoch_from_the_key(rng):
    x, y = make_regression(rng, n=10, noise=0.3)
    optimizer = jopt.adam(0.05)
    key = jax.random.key(7)
    params, _, history = training.fit(
        least_squares,
        zeros_params(3),
        optimizer,
        (x, y),
        batch_size=4,
        epochs=3,
        key=key,
        progress=False,
    )
    # The documented order: epoch e visits permutation(fold_in(key, e), n) in batches
    # of 4, the last one ragged (2 examples).
    step = hand_step(least_squares, optimizer)
    expected = jax.tree.map(jnp.asarray, zeros_params(3))
    state = optimizer.init(expected)
    losses, orders = [], []
    for epoch in range(3):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), 10))
        orders.append(order)
        for start in range(0, 10, 4):
            index = order[start : start + 4]
            expected, state, loss = step(expected, state, (x[index], y[index]))
            losses.append(float(loss))
    assert not np.array_equal(orders[0], orders[1])
    assert_trees_equal(params, expected)
    np.testing.assert_array_equal(history.loss, losses)
    np.testing.assert_allclose(history.epoch_loss, np.reshape(losses, (3, 3)).mean(axis=1))


def test_fit_is_deterministic_for_a_key(rng):
    x, y = make_regression(rng, n=20, noise=0.3)

    def run():
        return training.fit(
            least_squares,
            zeros_params(3),
            jopt.rmsprop(0.01),
            (x, y),
            batch_size=3,
            epochs=2,
            key=jax.random.key(1),
            progress=False,
        )

    (p1, _, h1), (p2, _, h2) = run(), run()
    assert_trees_equal(p1, p2)
    np.testing.assert_array_equal(h1.loss, h2.loss)


@pytest.mark.parametrize(("n", "expected_traces"), [(12, 1), (10, 2)], ids=["even", "ragged"])
def test_fit_compiles_once_per_batch_shape(rng, trace_counter, n, expected_traces):
    x, y = make_regression(rng, n=n)
    _, _, history = training.fit(
        trace_counter.wrap(least_squares),
        zeros_params(3),
        jopt.adam(0.01),
        (x, y),
        batch_size=4,
        epochs=4,
        key=jax.random.key(0),
        progress=False,
    )
    # 4 epochs of 3 batches; the ragged last batch is a second shape, compiled once,
    # not once per epoch.
    assert history.steps == 12
    assert trace_counter.count == expected_traces
    assert history.compile_time > 0


def test_fit_leaves_the_callers_arrays_alive(rng):
    x, y = make_regression(rng)
    params = jax.tree.map(jnp.array, zeros_params(3))
    training.fit(least_squares, params, jopt.sgd(0.1), (x, y), epochs=2, progress=False)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(params))
    np.testing.assert_array_equal(params["w"], np.zeros(3))


def test_fit_and_the_range_test_need_a_key_only_to_shuffle(rng):
    x, y = make_regression(rng, n=12)
    # Full batches and in-order mini-batches take no key at all.
    _, _, full = training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), progress=False)
    assert full.steps == 1
    params, _, in_order = training.fit(
        least_squares,
        zeros_params(3),
        jopt.sgd(0.1),
        (x, y),
        batch_size=4,
        shuffle=False,
        progress=False,
    )
    step = hand_step(least_squares, jopt.sgd(0.1))
    expected = jax.tree.map(jnp.asarray, zeros_params(3))
    state = jopt.sgd(0.1).init(expected)
    for start in (0, 4, 8):
        expected, state, _ = step(expected, state, (x[start : start + 4], y[start : start + 4]))
    assert_trees_equal(params, expected)
    assert in_order.steps == 3
    result = training.lr_range_test(least_squares, zeros_params(3), jopt.sgd, (x, y), steps=5)
    assert len(result.losses) >= 3
    # Shuffled mini-batches without a key: an error that names it, in both.
    with pytest.raises(ValueError, match="key is None"):
        training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), batch_size=4)
    with pytest.raises(ValueError, match="key is None"):
        training.lr_range_test(least_squares, zeros_params(3), jopt.sgd, (x, y), batch_size=4)


def test_fit_records_eval_metrics_per_epoch(rng):
    x, y = make_regression(rng, noise=0.3)

    def eval_fn(params):
        return {"full_loss": least_squares(params, (x, y)), "b": params["b"]}

    _, _, history = training.fit(
        least_squares,
        zeros_params(3),
        jopt.sgd(0.1),
        (x, y),
        epochs=5,
        progress=False,
        eval_fn=eval_fn,
    )
    assert set(history.metrics) == {"full_loss", "b"}
    assert history.metrics["full_loss"].shape == (5,)
    # Full batch: the loss evaluated after epoch e is the next step's loss (to float32
    # rounding: one is computed inside the compiled step, the other on its own).
    np.testing.assert_allclose(history.metrics["full_loss"][:-1], history.loss[1:], rtol=1e-6)

    _, _, scalar = training.fit(
        least_squares,
        zeros_params(3),
        jopt.sgd(0.1),
        (x, y),
        epochs=2,
        progress=False,
        eval_fn=lambda p: least_squares(p, (x, y)),
    )
    assert list(scalar.metrics) == ["eval"] and scalar.metrics["eval"].shape == (2,)


def test_keyboard_interrupt_returns_what_was_trained(rng):
    x, y = make_regression(rng, n=12, noise=0.3)
    optimizer = jopt.adam(0.05)
    seen = []

    def callback(step, params, opt_state, loss):
        seen.append(step)
        if step == 5:
            raise KeyboardInterrupt

    params, state, history = training.fit(
        least_squares,
        zeros_params(3),
        optimizer,
        (x, y),
        batch_size=4,
        epochs=10,
        key=jax.random.key(0),
        steps_per_call=1,
        progress=False,
        callback=callback,
    )
    assert seen == [1, 2, 3, 4, 5]
    assert history.interrupted and not history.stopped
    assert history.steps == 5 and history.epochs == 1  # epoch 2 was cut short
    # The returned arrays are the live result of step 5, equal to a hand loop's.
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves((params, state)))
    step = hand_step(least_squares, optimizer)
    expected = jax.tree.map(jnp.asarray, zeros_params(3))
    expected_state = optimizer.init(expected)
    batches = [
        index
        for epoch in range(2)
        for order in [
            np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(0), epoch), 12))
        ]
        for index in np.split(order, 3)
    ]
    for index in batches[:5]:
        expected, expected_state, _ = step(expected, expected_state, (x[index], y[index]))
    assert_trees_equal(params, expected)


def test_first_ctrl_c_lets_the_step_finish_and_stops(rng):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("a custom SIGINT handler is installed; fit leaves it alone")
    x, y = make_regression(rng)
    finished = []

    def callback(step, params, opt_state, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would
            finished.append(step)  # not reached if the signal raised here

    _, _, history = training.fit(
        least_squares,
        zeros_params(3),
        jopt.sgd(0.1),
        (x, y),
        epochs=10,
        progress=False,
        callback=callback,
    )
    assert finished == [3]
    assert history.interrupted and history.steps == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_callback_returning_true_stops(rng):
    x, y = make_regression(rng)
    _, _, history = training.fit(
        least_squares,
        zeros_params(3),
        jopt.sgd(0.1),
        (x, y),
        epochs=50,
        progress=False,
        callback=lambda step, *_: step == 7,
    )
    assert history.stopped and not history.interrupted
    assert history.steps == 7 and history.epochs == 6


def test_progress_false_is_silent(rng, capfd):
    x, y = make_regression(rng)
    training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), epochs=3, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_uses_tqdm(rng, capfd):
    # tqdm is in the test extra, so this runs everywhere the suite does.
    x, y = make_regression(rng)
    training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), epochs=3)
    out, err = capfd.readouterr()
    assert out == ""
    assert "3/3" in err and "step" in err and "loss=" in err


def test_progress_falls_back_to_plain_lines_without_tqdm(rng, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import tqdm.auto -> ImportError
    x, y = make_regression(rng)
    training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), epochs=3)
    out, err = capfd.readouterr()
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("step 3/3 | epoch 3/3 | loss ") and last.endswith("steps/s")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": -1}, ValueError, "epochs must be an integer >= 0, got -1"),
        ({"epochs": 1.5}, TypeError, "epochs must be an integer"),
        ({"shuffle": 1}, TypeError, "shuffle must be a bool"),
        ({"batch_size": 100}, ValueError, "batch_size must be <= the number of examples"),
        ({"batch_size": 4, "key": None}, ValueError, "key is None"),
        ({"progress": "yes"}, TypeError, "progress must be a bool"),
        ({"eval_fn": 3}, TypeError, "eval_fn must be callable"),
        ({"callback": 3}, TypeError, "callback must be callable"),
    ],
)
def test_fit_rejects_bad_arguments(rng, kwargs, error, match):
    x, y = make_regression(rng)
    args = {"epochs": 1} | kwargs
    with pytest.raises(error, match=match):
        training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), **args)


# --- several steps per call ---------------------------------------------------------


def stepped_and_scanned(x, y, optimizer_factory, steps_per_call, callback=None, **kwargs):
    """The per-step loop (proven against hand loops above) and a scanned run."""
    common = dict(batch_size=4, epochs=3, key=jax.random.key(2), progress=False) | kwargs
    stepped = training.fit(
        least_squares, zeros_params(3), optimizer_factory(), (x, y), steps_per_call=1, **common
    )
    scanned = training.fit(
        least_squares,
        zeros_params(3),
        optimizer_factory(),
        (x, y),
        steps_per_call=steps_per_call,
        callback=callback,
        **common,
    )
    return stepped, scanned


@pytest.mark.parametrize("steps_per_call", ["epoch", 2], ids=["epoch", "k=2"])
def test_scanned_calls_equal_the_per_step_loop(rng, steps_per_call):
    # 10 examples in batches of 4: two full batches and a ragged one of 2 per epoch,
    # shuffled anew every epoch.  With k = 2 the epoch's second call skips a step.
    x, y = make_regression(rng, n=10, noise=0.3)
    seen = []

    def eval_fn(params):
        return least_squares(params, (x, y))

    (p1, s1, h1), (p2, s2, h2) = stepped_and_scanned(
        x,
        y,
        lambda: jopt.adam(0.05),
        steps_per_call,
        eval_fn=eval_fn,
        callback=lambda step, *_: seen.append(step),
    )
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=1e-6)
    assert h2.steps == h1.steps == 9
    np.testing.assert_array_equal(h2.epoch_step, [3, 6, 9])
    np.testing.assert_allclose(h2.epoch_loss, h1.epoch_loss, rtol=1e-6)
    np.testing.assert_allclose(h2.metrics["eval"], h1.metrics["eval"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves((p2, s2)), jax.tree.leaves((p1, s1)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The callback runs once per call, after the steps it took.
    per_epoch = [3] if steps_per_call == "epoch" else [2, 3]
    assert seen == [3 * epoch + step for epoch in range(3) for step in per_epoch]


def test_the_ragged_batch_costs_no_second_compile(rng):
    x, y = make_regression(rng, n=10, noise=0.3)
    # Warm up what every run shares (copies, batch orders) with another optimizer.
    stepped_and_scanned(x, y, lambda: jopt.sgd(0.01), "epoch")
    common = dict(batch_size=4, epochs=3, key=jax.random.key(2), progress=False)
    with counting_compiles() as compiles:
        training.fit(least_squares, zeros_params(3), jopt.rmsprop(0.01), (x, y), **common)
    assert compiles.count == 1  # full and ragged batches in one program
    with counting_compiles() as compiles:
        training.fit(
            least_squares,
            zeros_params(3),
            jopt.rmsprop(0.02),
            (x, y),
            steps_per_call=1,
            **common,
        )
    assert compiles.count == 2  # the per-step loop: one per batch shape


def test_a_second_fit_compiles_nothing(rng, trace_counter):
    x, y = make_regression(rng, n=12)
    loss_fn = trace_counter.wrap(least_squares)

    def run(optimizer):
        return training.fit(
            loss_fn,
            zeros_params(3),
            optimizer,
            (x, y),
            batch_size=4,
            epochs=2,
            progress=False,
            key=jax.random.key(0),
        )

    _, _, first = run(jopt.adam(0.01))
    traces = trace_counter.count
    with counting_compiles() as compiles:
        _, _, second = run(jopt.adam(0.01))  # built again, the same way
    assert trace_counter.count == traces and compiles.count == 0
    assert first.compile_time > 0 and second.compile_time == 0
    np.testing.assert_array_equal(second.loss, first.loss)
    run(jopt.adam(0.02))  # another learning rate is another program
    assert trace_counter.count == traces + 1


def test_a_rebound_global_is_not_served_stale(rng):
    # A loss that reads a module global: rebinding it between two fits must change the
    # result, as it would with a new jit.
    x, y = make_regression(rng, n=12)
    global WEIGHT_DECAY_FOR_TEST
    results = []
    for decay in (0.0, 10.0):
        WEIGHT_DECAY_FOR_TEST = decay
        params, _, _ = training.fit(
            _decayed_loss, zeros_params(3), jopt.sgd(0.01), (x, y), epochs=20, progress=False
        )
        results.append(np.asarray(params["w"]))
    assert np.linalg.norm(results[1]) < 0.5 * np.linalg.norm(results[0])


WEIGHT_DECAY_FOR_TEST = 0.0


def _decayed_loss(params, batch):
    return least_squares(params, batch) + WEIGHT_DECAY_FOR_TEST * jnp.sum(params["w"] ** 2)


def test_updates_receive_the_loss_and_a_value_fn(rng):
    # reduce_on_plateau reads value=; a hand-written transformation that halves its
    # step while the loss at the trial point (value_fn) is not lower reads value_fn.
    x, y = make_regression(rng, n=12, noise=0.3)

    def halving():
        def update(updates, state, params=None, *, value=None, value_fn=None, **extra):
            step = jax.tree.map(lambda g: -0.5 * g, updates)

            def shorter(step):
                return jax.tree.map(lambda u: 0.5 * u, step)

            def worse(step):
                return value_fn(jopt.apply_updates(params, step)) >= value

            for _ in range(3):
                step = jax.lax.cond(worse(step), shorter, lambda s: s, step)
            return step, state

        return jopt.GradientTransformation(lambda p: jopt.EmptyState(), update)

    def plateau():
        return jopt.chain(jopt.sgd(0.05), jopt.reduce_on_plateau(0.5, patience=0))

    for make in (halving, plateau):
        params, _, history = training.fit(
            least_squares,
            zeros_params(3),
            make(),
            (x, y),
            batch_size=4,
            epochs=2,
            key=jax.random.key(1),
            progress=False,
        )
        optimizer = make()
        expected = jax.tree.map(jnp.asarray, zeros_params(3))
        state = optimizer.init(expected)
        losses = []
        for epoch in range(2):
            order = np.asarray(
                jax.random.permutation(jax.random.fold_in(jax.random.key(1), epoch), 12)
            )
            for index in np.split(order, 3):
                batch = (x[index], y[index])
                loss, grads = jax.value_and_grad(least_squares)(expected, batch)
                updates, state = optimizer.update(
                    grads,
                    state,
                    expected,
                    value=loss,
                    value_fn=lambda p, b=batch: least_squares(p, b),
                )
                expected = jopt.apply_updates(expected, updates)
                losses.append(float(loss))
        np.testing.assert_allclose(history.loss, losses, rtol=1e-6)
        np.testing.assert_allclose(params["w"], expected["w"], rtol=1e-5, atol=1e-7)


def test_steps_per_call_is_checked(rng):
    x, y = make_regression(rng)
    for bad, error in ((0, ValueError), ("epochs", ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="steps_per_call"):
            training.fit(least_squares, zeros_params(3), jopt.sgd(0.1), (x, y), steps_per_call=bad)


# --- the learning-rate range test ----------------------------------------------------


def best_fixed_sgd_lr(x, y, batch_size, steps, grid):
    """Grid search: the rate whose hand-written SGD run has the lowest mean full-data
    loss over `steps` steps (the fastest descent, the range test's own criterion)."""
    n, d = x.shape
    per_epoch = n // batch_size
    x, y = jnp.asarray(x), jnp.asarray(y)

    def mean_loss(lr):
        def body(params, t):
            if batch_size == n:
                xb, yb = x, y
            else:
                order = jax.random.permutation(
                    jax.random.fold_in(jax.random.key(9), t // per_epoch), n
                )
                index = jax.lax.dynamic_slice_in_dim(
                    order, (t % per_epoch) * batch_size, batch_size
                )
                xb, yb = x[index], y[index]
            w, b = params
            residual = xb @ w + b - yb
            grad_w, grad_b = 2 * xb.T @ residual / len(yb), 2 * jnp.mean(residual)
            w, b = w - lr * grad_w, b - lr * grad_b
            full = jnp.mean((x @ w + b - y) ** 2)
            return (w, b), jnp.where(jnp.isfinite(full), full, jnp.inf)

        _, losses = jax.lax.scan(body, (jnp.zeros(d), jnp.asarray(0.0)), jnp.arange(steps))
        return jnp.mean(losses)

    scores = np.asarray(jax.jit(jax.vmap(mean_loss))(jnp.asarray(grid)))
    return float(grid[np.argmin(scores)])


@pytest.mark.parametrize("batch_size", [None, 16], ids=["full-batch", "mini-batch"])
def test_lr_range_test_suggests_within_3x_of_the_best_fixed_rate(batch_size):
    # A noisy least-squares quadratic, condition number 4.  Over 6 seeds, noise 0 and
    # 0.1, and batches of 256 (full), 16 and 32, the ratio suggested/best measured
    # 0.46 to 2.7; this seed is one of them, not a chosen one.
    rng = np.random.default_rng(0)
    n, d = 256, 8
    x = rng.normal(size=(n, d)) * np.geomspace(1.0, 2.0, d)
    y = x @ rng.normal(size=d) + 0.5 + 0.1 * rng.normal(size=n)
    result = training.lr_range_test(
        least_squares,
        zeros_params(d),
        jopt.sgd,
        (x, y),
        batch_size=batch_size,
        key=jax.random.key(0),
    )
    best = best_fixed_sgd_lr(x, y, batch_size or n, 50, np.geomspace(1e-3, 10.0, 121))
    assert best / 3 <= result.suggested_lr <= 3 * best, (result.suggested_lr, best)


def test_lr_range_test_sweeps_geometrically_and_stops_on_divergence(rng):
    x, y = make_regression(rng, n=32, noise=0.3)
    params = jax.tree.map(jnp.array, zeros_params(3))
    result = training.lr_range_test(
        least_squares, params, jopt.sgd, (x, y), min_lr=1e-4, max_lr=1e3, steps=70
    )
    taken = len(result.losses)
    # SGD on this quadratic diverges past 2/λ_max of its Hessian; the sweep must stop
    # soon after, long before 1e3.
    hessian = 2 * np.cov(np.hstack([x, np.ones((32, 1))]).T, bias=True) + 2 * np.outer(
        np.r_[x.mean(0), 1.0], np.r_[x.mean(0), 1.0]
    )
    limit = 2 / np.linalg.eigvalsh(hessian).max()
    assert taken < 70
    assert result.learning_rates[-1] < 30 * limit
    np.testing.assert_allclose(result.learning_rates, np.geomspace(1e-4, 1e3, 70)[:taken])
    assert result.suggested_lr < limit
    assert result.smoothed_losses.shape == result.losses.shape
    # The caller's parameters are untouched (the test trains a copy).
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(params))


def test_lr_range_test_smoothing_has_no_lag():
    # A loss falling exponentially, i.e. linearly in log space.  Away from the ends the
    # forward-backward average returns it unchanged; a forward-only average trails it
    # by β/(1 − β) = 9 steps, a factor e^(9·0.01).
    steps = np.arange(600)
    losses = np.exp(-0.01 * steps)
    interior = slice(150, 450)
    smoothed = zero_phase_average(losses, 0.9)
    np.testing.assert_allclose(smoothed[interior], losses[interior], rtol=1e-6)
    forward = np.exp(running_average(np.log(losses), 0.9))
    np.testing.assert_allclose(forward[interior] / losses[interior], np.exp(0.09), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_lr": 0.0}, ValueError, "min_lr must be a number > 0, got 0.0"),
        ({"min_lr": "1e-3"}, TypeError, "min_lr must be a number"),
        ({"max_lr": float("inf")}, ValueError, "max_lr must be a number > 0, got inf"),
        ({"max_lr": 1e-8}, ValueError, "max_lr must be > min_lr"),
        ({"steps": 2}, ValueError, "steps must be an integer >= 3, got 2"),
        ({"smoothing": 1.0}, ValueError, r"smoothing must be in \[0, 1\)"),
        ({"divergence": 1.0}, ValueError, "divergence must be a number > 1, got 1.0"),
        ({"batch_size": 4}, ValueError, "key is None"),
    ],
)
def test_lr_range_test_rejects_bad_arguments(rng, kwargs, error, match):
    x, y = make_regression(rng)
    with pytest.raises(error, match=match):
        training.lr_range_test(least_squares, zeros_params(3), jopt.sgd, (x, y), **kwargs)
