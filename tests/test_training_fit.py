"""jopt.training.fit: convergence, determinism, compilation, metrics, interrupts,
progress and bad arguments.

Expected values come from closed-form least-squares solutions (NumPy) and hand-written
loops of ``update``/``apply_updates`` with the documented batch order.
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
    hand_step,
    least_squares,
    lstsq_solution,
    make_regression,
    zeros_params,
)

import jopt
from jopt import training

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
