"""The building blocks against float64 NumPy restatements.

A block maps gradients to a direction ``u``; the optimizer then steps ``θ ← θ − η·u``.
So a block's output is the reference optimizer's step from ``θ = 0`` with ``η = 1``
and no weight decay, negated: ``u = −step(0, g)``.  That reuses the restatements of
``test_optimizers`` (written from the papers and torch.optim) instead of writing each
rule a second time; at ``θ = 0`` the negation is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_optimizers import REFERENCES, _config_id, _noises

import jopt

# Compared with float64 restatements: 64-bit types on for every test here.
pytestmark = pytest.mark.float64

STEPS = 50

# Each block, its reference optimizer and the renaming of its arguments there.
REFERENCE_OF = {
    "trace": ("sgd", {"decay": "momentum"}),
    "scale_by_rss": ("adagrad", {}),
    "scale_by_rms": ("rmsprop", {}),
    "scale_by_adadelta": ("adadelta", {}),
    "scale_by_adam": ("adam", {}),
    "scale_by_adamax": ("adamax", {}),
}

# Each block with its defaults (which must be the optimizer's) and with every option.
BLOCKS = [
    ("trace", {"decay": 0.9}),
    ("trace", {"decay": 0.7, "nesterov": True}),
    ("scale_by_rss", {}),
    ("scale_by_rss", {"initial_accumulator_value": 0.1, "eps": 1e-3, "eps_root": 1e-2}),
    ("scale_by_rms", {}),
    ("scale_by_rms", {"decay": 0.99, "eps": 1e-3, "eps_root": 1e-4, "centered": True}),
    ("scale_by_adadelta", {}),
    ("scale_by_adadelta", {"rho": 0.95, "eps": 1e-4}),
    ("scale_by_adam", {}),
    ("scale_by_adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-3, "eps_root": 1e-4, "amsgrad": True}),
    ("scale_by_adamax", {}),
    ("scale_by_adamax", {"b1": 0.8, "b2": 0.99, "eps": 1e-3}),
]


@pytest.fixture
def tree(rng):
    """A small dict / list / 0-d tree: nesting is exercised by the optimizer tests, and
    each leaf costs compile time here."""
    return {"w": rng.normal(size=(2, 3)), "b": [np.asarray(rng.normal())]}


def _run_block(transform, grads, params=None):
    """The block's outputs for a sequence of gradient trees, through one jitted update."""
    update = jax.jit(transform.update)
    state = transform.init(grads[0] if params is None else params)
    outputs = []
    for g in grads:
        u, state = update(g, state, params)
        outputs.append(u)
    return outputs


@pytest.mark.parametrize("name, kwargs", [pytest.param(*b, id=_config_id(b)) for b in BLOCKS])
def test_block_matches_reference(name, kwargs, tree, rng):
    grads = _noises(rng, tree, STEPS)
    outputs = _run_block(getattr(jopt, name)(**kwargs), grads)

    reference, renames = REFERENCE_OF[name]
    ref_kwargs = {renames.get(key, key): value for key, value in kwargs.items()}
    init, step = REFERENCES[reference](**ref_kwargs, learning_rate=1.0)
    leaves = jax.tree.leaves(tree)
    zeros = [np.zeros_like(leaf) for leaf in leaves]
    states = [init(z) for z in zeros]
    for t, (g, u) in enumerate(zip(grads, outputs), start=1):
        assert jax.tree.structure(u) == jax.tree.structure(tree)
        for i, (z, g_leaf, u_leaf) in enumerate(zip(zeros, jax.tree.leaves(g), jax.tree.leaves(u))):
            new_p, states[i] = step(z, g_leaf, states[i], t)
            np.testing.assert_allclose(u_leaf, -new_p, rtol=1e-10, err_msg=f"step {t}, leaf {i}")


def _assert_outputs(outputs, expected_fn, grads, rtol=1e-12):
    for t, (g, u) in enumerate(zip(grads, outputs), start=1):
        for g_leaf, u_leaf in zip(jax.tree.leaves(g), jax.tree.leaves(u)):
            np.testing.assert_allclose(u_leaf, expected_fn(t, g_leaf), rtol=rtol)


def test_scale(tree, rng):
    grads = _noises(rng, tree, 3)
    transform = jopt.scale(-2.5)
    assert transform.init(tree) == jopt.EmptyState()
    _assert_outputs(_run_block(transform, grads), lambda t, g: -2.5 * g, grads)


def test_scale_by_learning_rate_is_the_descent_step(tree, rng):
    grads = _noises(rng, tree, 3)
    _assert_outputs(
        _run_block(jopt.scale_by_learning_rate(0.3), grads), lambda t, g: -0.3 * g, grads
    )


def test_schedules_see_the_count_of_earlier_updates(tree, rng):
    # The t-th update (t = 1, 2, ...) uses schedule(t - 1), as optax and a torch
    # LRScheduler stepped after each optimizer step do.
    grads = _noises(rng, tree, 5)

    def schedule(count):
        return 0.1 * 0.5**count

    _assert_outputs(
        _run_block(jopt.scale_by_schedule(schedule), grads),
        lambda t, g: 0.1 * 0.5 ** (t - 1) * g,
        grads,
    )
    _assert_outputs(
        _run_block(jopt.scale_by_learning_rate(schedule), grads),
        lambda t, g: -0.1 * 0.5 ** (t - 1) * g,
        grads,
    )


def test_add_decayed_weights(tree, rng):
    grads = _noises(rng, tree, 2)
    outputs = _run_block(jopt.add_decayed_weights(0.3), grads, params=tree)
    for g, u in zip(grads, outputs):
        for g_leaf, u_leaf, p in zip(*map(jax.tree.leaves, (g, u, tree))):
            np.testing.assert_allclose(u_leaf, g_leaf + 0.3 * p, rtol=1e-12)


def test_add_decayed_weights_needs_params():
    transform = jopt.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="params"):
        transform.update(jnp.ones(3), transform.init(jnp.ones(3)))
