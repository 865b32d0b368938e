"""Problems and helpers shared by the training tests (not a test module).

Expected values in those tests come from restatements written here: closed-form
least-squares solutions (NumPy) and hand-written loops of ``update``/``apply_updates``.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

import jopt


def least_squares(x_and_y_params, batch):
    """Mean squared error of a linear model ``x @ w + b``."""
    x, y = batch
    return jnp.mean((x @ x_and_y_params["w"] + x_and_y_params["b"] - y) ** 2)


def make_regression(rng, n=24, d=3, noise=0.0):
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = x @ w + 0.5 + noise * rng.normal(size=n)
    return x, y


def lstsq_solution(x, y):
    """The minimiser of the mean squared error, with an intercept, by NumPy."""
    design = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    return solution[:-1], solution[-1]


def zeros_params(d):
    return {"w": np.zeros(d), "b": np.float64(0.0)}


def hand_step(loss_fn, optimizer):
    """The documented step, written out: value_and_grad, update, apply_updates.

    Jitted as one program like the step under test, because XLA may round the last
    bit differently when the same operations run one by one.
    """

    @jax.jit
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    return step


def assert_trees_equal(actual, expected):
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def
    for a, e in zip(a_leaves, e_leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


class CompileCounter:
    """Counts XLA backend compilations, from JAX's own monitoring events."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count = 0

    def __call__(self, event, duration, **kwargs):
        if event == self.EVENT:
            self.count += 1


@contextlib.contextmanager
def counting_compiles():
    """``with counting_compiles() as compiles: ...``; then ``compiles.count``."""
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)
