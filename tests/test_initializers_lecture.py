"""Tests for jopt.initializers: the lecture's claims about initialization.

The variance arguments are run on MLPs built here: zero and constant initializations keep
hidden units identical, a random one breaks the symmetry, and on deep tanh and ReLU networks
Xavier and He keep the second moment of the activations while wrong scales vanish or explode.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jopt import initializers as init

# ---------------------------------------------------------------- the lecture's claims


def _mlp_forward(params, x):
    hidden = []
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
        hidden.append(x)
    w, b = params[-1]
    return x @ w + b, hidden


def _mlp_loss(params, x, y):
    return jnp.mean((_mlp_forward(params, x)[0] - y) ** 2)


@jax.jit
def _gd_steps(params, x, y):
    """25 steps of plain gradient descent, lr 0.1, on the mean squared error."""

    def step(p, _):
        grads = jax.grad(_mlp_loss)(p, x, y)
        return jax.tree.map(lambda a, g: a - 0.1 * g, p, grads), None

    trained, _ = jax.lax.scan(step, params, None, length=25)
    return trained, _mlp_loss(params, x, y), _mlp_loss(trained, x, y), _mlp_forward(trained, x)[1]


def _train(kernel_init):
    """A 4-16-16-1 tanh MLP with zero biases, fitted to a smooth target."""
    sizes = [4, 16, 16, 1]
    keys = jax.random.split(jax.random.key(7), len(sizes))
    params = [
        (kernel_init(k, (n_in, n_out), jnp.float64), jnp.zeros(n_out, jnp.float64))
        for k, n_in, n_out in zip(keys[:-1], sizes[:-1], sizes[1:], strict=True)
    ]
    x = jax.random.normal(keys[-1], (64, 4), jnp.float64)
    y = jnp.sin(x @ jnp.array([1.0, -2.0, 0.5, 1.5]))[:, None]
    trained, loss0, loss1, hidden = _gd_steps(params, x, y)
    return params, trained, hidden, float(loss0), float(loss1)


def _unit_spread(h):
    """Largest difference between any hidden unit and the first one, over the data."""
    return float(jnp.max(jnp.abs(h - h[:, :1])))


@pytest.mark.float64
def test_zero_init_keeps_hidden_units_identical():
    _, trained, hidden, loss0, loss1 = _train(init.zeros)
    assert loss1 < loss0  # training did something (the output bias learns the mean)
    for h in hidden:
        assert _unit_spread(h) == 0.0
    # With W = 0 the gradient W^T dL/dz reaching the layers below is zero: they never move.
    for w, b in trained[:-1]:
        assert float(jnp.max(jnp.abs(w))) == 0.0 and float(jnp.max(jnp.abs(b))) == 0.0


@pytest.mark.float64
def test_constant_init_units_move_but_stay_identical():
    initial, trained, hidden, loss0, loss1 = _train(init.constant(0.1))
    assert loss1 < loss0
    assert float(jnp.max(jnp.abs(trained[0][0] - initial[0][0]))) > 1e-3  # weights do move
    for h in hidden:
        assert _unit_spread(h) <= 1e-12 * float(jnp.max(jnp.abs(h)))
    for w, b in trained[:-1]:  # but every unit (column) keeps the same weights and bias
        assert float(jnp.max(jnp.abs(w - w[:, :1]))) <= 1e-12
        assert float(jnp.max(jnp.abs(b - b[0]))) <= 1e-12


@pytest.mark.float64
def test_xavier_breaks_symmetry():
    _, _, hidden, loss0, loss1 = _train(init.xavier_uniform())
    assert loss1 < loss0
    for h in hidden:
        spreads = jnp.max(jnp.abs(h[:, 1:] - h[:, :1]), axis=0)  # each unit against unit 0
        assert float(jnp.min(spreads)) > 1e-2


DEPTH = 30


@partial(jax.jit, static_argnums=(0, 1, 2))
def _deep_mlp(kernel_init, act, width, net_keys, x):
    """Runs x through DEPTH square layers `act(a @ W)` for each network key.

    Returns E[a_l^2] for l = 1..DEPTH averaged over the networks (the expectation over the
    weights that the lecture's derivation takes), and the last activations of network 0.
    """

    def one_network(net_key):
        def layer(a, k):
            a = act(a @ kernel_init(k, (width, width), jnp.float32))
            return a, jnp.mean(a**2)

        return jax.lax.scan(layer, x, jax.random.split(net_key, DEPTH))

    last, moments = jax.vmap(one_network)(net_keys)
    return jnp.mean(moments, axis=0), last[0]


def _run_deep(kernel_init, act, *, width=512, batch=256, n_nets=1, input_std=1.0):
    """Second moments relative to the input's E[x^2], and the last layer's activations."""
    x = input_std * jax.random.normal(jax.random.key(11), (batch, width), jnp.float32)
    keys = jax.random.split(jax.random.key(12, impl="rbg"), n_nets)
    moments, last = _deep_mlp(kernel_init, act, width, keys, x)
    return np.asarray(moments, np.float64) / float(jnp.mean(x**2)), np.asarray(last)


def test_tanh_xavier_keeps_variance():
    # The lecture's derivation assumes the linear regime of tanh (small inputs), where
    # Var(a[l]) = n Var(W) Var(a[l-1]) and Xavier's n Var(W) = 1 keeps it.
    r, last = _run_deep(init.xavier_uniform(), jnp.tanh, input_std=0.1)
    assert r.min() >= 0.5 and r.max() <= 2.0
    assert np.mean(np.abs(last) > 0.99) == 0.0  # nowhere near saturation


def test_tanh_small_normal_vanishes():
    # normal(0.01) at width 512: n Var(W) = 0.0512 per layer.
    r, _ = _run_deep(init.normal(0.01), jnp.tanh, input_std=0.1)
    assert r[-1] < 1e-3
    assert r[1] < 0.01  # already gone after two layers (0.0512**2 = 0.0026)


def test_tanh_large_scale_saturates():
    # normal(1.0) at width 512: n Var(W) = 512, the pre-activations are huge.
    _, last = _run_deep(init.normal(1.0), jnp.tanh, input_std=0.1)
    assert np.mean(np.abs(last) > 0.99) > 0.9


def test_relu_he_keeps_second_moment():
    # He: Var(y_l) = n Var(W) E[x_{l-1}^2] = 2 E[x_{l-1}^2] and E[relu(y)^2] = Var(y) / 2,
    # so E[a_l^2] = E[x^2] in expectation over the weights (averaged over 8 networks).
    he = init.kaiming_uniform(nonlinearity="relu")
    r, _ = _run_deep(he, jax.nn.relu, batch=64, n_nets=8)
    assert r.min() >= 0.5 and r.max() <= 2.0


def test_relu_xavier_shrinks_by_orders_of_magnitude():
    # Xavier on square layers: n Var(W) = 1, so each ReLU halves E[a^2]: 2**-30 after 30.
    r, _ = _run_deep(init.xavier_uniform(), jax.nn.relu, batch=64, n_nets=4)
    assert r[-1] < 1e-6
    assert 2.0**-30 / 3 < r[-1] < 3 * 2.0**-30


def test_relu_too_large_explodes():
    # variance_scaling(8) instead of He's 2: E[a^2] is multiplied by 4 in every layer.
    r, _ = _run_deep(init.variance_scaling(8.0, "fan_in", "uniform"), jax.nn.relu, batch=64)
    assert r[9] > 0.2 * 4.0**10
    assert r[-1] > 1e15
