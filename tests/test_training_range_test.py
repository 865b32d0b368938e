"""jopt.training.lr_range_test: the suggestion, the sweep, smoothing and bad arguments.

The suggestion is checked against a hand-written SGD grid search.
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
from jopt.training._range_test import running_average, zero_phase_average

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
