"""jopt.training.fit with several steps per compiled call, and compiled programs kept.

The scanned runs are compared with the per-step loop (itself checked against
hand-written loops in test_training_fit.py), to float32 rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_support import (
    counting_compiles,
    least_squares,
    make_regression,
    zeros_params,
)

import jopt
from jopt import training

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
