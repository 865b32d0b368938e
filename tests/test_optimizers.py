"""What the lecture says about each optimizer, beyond the generic suite.

The generic tests (``test_registry.py``) compare every optimizer with its float64
restatement in ``references``.  The tests here check the lecture's own statements:
Nesterov's look-ahead recursion, the ε-inside-the-root formulas, Adadelta's descent
with its default multiplier, convergence on a quadratic and on Rosenbrock's function
within a measured step budget, and a first Adam step in bfloat16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import config_id

import jopt

# --- the lecture's forms ------------------------------------------------------------


@pytest.mark.float64
def test_nesterov_is_the_lectures_recursion_at_the_look_ahead_point():
    # The lecture: v_t = γ v_{t-1} + η ∇J(θ - γ v_{t-1}),  θ ← θ - v_t.  jopt's
    # parameters are φ = θ - γ v; both start at v = 0, so φ₀ = θ₀.
    gamma, eta = 0.9, 0.1
    A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.1]])
    b = np.array([1.0, -2.0, 0.5])

    def grad_J(x):  # J(x) = ½ xᵀAx - bᵀx
        return A @ x - b

    theta, v = np.array([2.0, -1.0, 4.0]), np.zeros(3)
    optimizer = jopt.nesterov(learning_rate=eta, momentum=gamma)
    phi = jnp.asarray(theta)
    state = optimizer.init(phi)
    # jopt takes the gradient where its parameters are, at φ.
    step = jax.jit(lambda phi, state: optimizer.update(jnp.asarray(A) @ phi - b, state, phi))
    for t in range(1, 201):
        v = gamma * v + eta * grad_J(theta - gamma * v)
        theta = theta - v
        updates, state = step(phi, state)
        phi = jopt.apply_updates(phi, updates)
        np.testing.assert_allclose(phi, theta - gamma * v, rtol=1e-10, err_msg=f"step {t}")
    # The comparison followed the whole path to the minimiser, not just a few steps.
    np.testing.assert_allclose(theta, np.linalg.solve(A, b), rtol=1e-2)


def _run_scan(optimizer, loss, x0, steps):
    """Losses J(θ₀), …, J(θ_{steps-1}) and every step's updates·gradients, under one jit."""

    def body(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(loss)(x)
        updates, state = optimizer.update(grad, state, x)
        return (jopt.apply_updates(x, updates), state), (value, updates * grad)

    run = jax.jit(lambda x0: jax.lax.scan(body, (x0, optimizer.init(x0)), None, length=steps))
    _, (losses, products) = run(x0)
    return np.asarray(losses), np.asarray(products)


def _quadratic(curvatures):
    a = jnp.asarray(curvatures)
    return lambda x: 0.5 * jnp.sum(a * x**2)


@pytest.mark.float64
def test_adadelta_never_ascends_with_its_default_learning_rate():
    x0 = jnp.array([1.0, -2.0, 3.0])
    # Curvatures ≤ 1: near the minimum Adadelta's step is η·√ε/√ε ≥ η = 1 times the
    # gradient, so a stiffer direction would oscillate by the rule itself (measured
    # with curvatures [1, 10, 0.3]: the loss first rises at step 811, identically with
    # optax.adadelta(1.0)).  On these curvatures it decreased for all 20000 steps tried.
    losses, products = _run_scan(jopt.adadelta(), _quadratic([0.2, 0.5, 1.0]), x0, 2000)
    assert np.all(np.diff(losses) <= 0)
    assert losses[-1] < 1e-10 * losses[0]
    # Every coordinate of every step points downhill, also on the stiff problem.
    _, products = _run_scan(jopt.adadelta(), _quadratic([1.0, 10.0, 0.3]), x0, 2000)
    assert np.all(products <= 0)


EPS = 1e-4


def lecture_adagrad(eta, p, grads):
    # θ_{t+1,i} = θ_{t,i} - η / √(G_{t,ii} + ε) · g_{t,i},  G_{t,ii} = Σ_τ g_{τ,i}².
    G = 0.0
    for g in grads:
        G = G + g**2
        p = p - eta / np.sqrt(G + EPS) * g
    return p


def lecture_rmsprop(eta, p, grads, gamma=0.9):
    # E[g²]_t = γE[g²]_{t-1} + (1-γ)g_t²,  Δθ_t = -η / √(E[g²]_t + ε) · g_t.
    Eg2 = 0.0
    for g in grads:
        Eg2 = gamma * Eg2 + (1 - gamma) * g**2
        p = p - eta / np.sqrt(Eg2 + EPS) * g
    return p


def lecture_adam(eta, p, grads, b1=0.9, b2=0.999):
    # m̂_t = m_t/(1-β₁ᵗ), v̂_t = v_t/(1-β₂ᵗ), θ_{t+1} = θ_t - η / √(v̂_t + ε) · m̂_t.
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p = p - eta / np.sqrt(v / (1 - b2**t) + EPS) * (m / (1 - b1**t))
    return p


@pytest.mark.float64
@pytest.mark.parametrize(
    "name, lecture, eta",
    [
        ("adagrad", lecture_adagrad, 0.1),
        ("rmsprop", lecture_rmsprop, 0.01),
        ("adam", lecture_adam, 0.01),
    ],
)
def test_eps_inside_the_root_is_the_lectures_literal_formula(name, lecture, eta, rng):
    p0 = rng.normal(size=5)
    grads = [rng.normal(size=5) * rng.uniform(0.01, 1.0) for _ in range(50)]
    optimizer = getattr(jopt, name)(learning_rate=eta, eps=0.0, eps_root=EPS)
    step = jax.jit(lambda g, state, p: optimizer.update(g, state, p))
    p, state = jnp.asarray(p0), optimizer.init(p0)
    for g in grads:
        updates, state = step(g, state, p)
        p = jopt.apply_updates(p, updates)
    np.testing.assert_allclose(p, lecture(eta, p0, grads), rtol=1e-10)


# --- convergence --------------------------------------------------------------------

# (name, kwargs, steps on the quadratic, steps on Rosenbrock).  Step budgets are about
# twice the first step at which the loss went below the tolerance when measured (in
# parentheses): quadratic ½Σaᵢxᵢ², a = (1, 10, 0.3), from (1, -2, 3) to 1e-6;
# Rosenbrock (1-x)² + 100(y-x²)² from (-1.2, 1) to 1e-3.  Adadelta's step multiplier
# tends to at least η near a minimum (see the Adadelta test above), so curvature 10
# wants η < 0.2 and Rosenbrock's valley η ≈ 0.01.
CONVERGENCE = [
    ("sgd", {"learning_rate": 0.1}, 500, None),  # (232)
    ("sgd", {"learning_rate": 1e-3}, None, 13000),  # (6543)
    ("momentum", {"learning_rate": 0.05}, 260, None),  # (129)
    ("momentum", {"learning_rate": 1e-3}, None, 1200),  # (568)
    ("nesterov", {"learning_rate": 0.05}, 200, None),  # (100)
    ("nesterov", {"learning_rate": 1e-3}, None, 1200),  # (604)
    ("adagrad", {"learning_rate": 0.5}, 170, 7000),  # (84, 3553)
    ("adadelta", {"learning_rate": 0.1}, 8000, None),  # (3960)
    ("adadelta", {"learning_rate": 0.01}, None, 30000),  # (14752)
    ("rmsprop", {"learning_rate": 1e-3, "centered": True}, 800, 4400),  # (392, 2164)
    ("rmsprop", {"learning_rate": 1e-2, "momentum": 0.9}, 230, None),  # (113)
    ("rmsprop", {"learning_rate": 1e-3}, None, 8000),  # (3993)
    ("adam", {"learning_rate": 0.05}, 350, None),  # (173)
    ("adam", {"learning_rate": 0.02}, None, 4000),  # (1960)
    ("adam", {"learning_rate": 0.02, "amsgrad": True}, None, 6200),  # (3093)
    ("adamw", {"learning_rate": 0.05}, 350, None),  # (171)
    ("adamw", {"learning_rate": 0.02}, None, 5800),  # (2893)
    ("adamax", {"learning_rate": 0.05}, 570, None),  # (283)
    ("adamax", {"learning_rate": 0.02}, None, 7500),  # (3749)
]


def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


@pytest.mark.parametrize(
    "name, kwargs, quadratic_steps, rosenbrock_steps",
    [pytest.param(*c, id=config_id(*c[:2])) for c in CONVERGENCE],
)
def test_converges(name, kwargs, quadratic_steps, rosenbrock_steps):
    optimizer = getattr(jopt, name)(**kwargs)
    if quadratic_steps:
        losses, _ = _run_scan(
            optimizer, _quadratic([1.0, 10.0, 0.3]), jnp.array([1.0, -2.0, 3.0]), quadratic_steps
        )
        assert losses.min() < 1e-6, f"quadratic: best loss {losses.min():.2e}"
    if rosenbrock_steps:
        losses, _ = _run_scan(optimizer, _rosenbrock, jnp.array([-1.2, 1.0]), rosenbrock_steps)
        assert losses.min() < 1e-3, f"Rosenbrock: best loss {losses.min():.2e}"


# --- bfloat16 -------------------------------------------------------------------------


def test_bfloat16_adam_takes_a_nonzero_first_step():
    # In bfloat16, β₂ = 0.999 rounds to 1 and 1 - β₂ to 0: a bias correction computed
    # in the storage dtype would divide by zero or lose the step.  The first Adam step
    # is -η·g/(|g| + ε) = -η·sign(g).
    params = jnp.asarray([0.5, -0.25, 2.0], jnp.bfloat16)
    grads = jnp.asarray([0.1, -0.3, 1e-3], jnp.bfloat16)
    optimizer = jopt.adam(learning_rate=1e-3)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    assert updates.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(updates, np.float64), -1e-3 * np.sign(np.asarray(grads, np.float64)), rtol=1e-2
    )
    new_params = jopt.apply_updates(params, updates * 100)  # visible at bfloat16 precision
    assert np.all(np.asarray(new_params != params))


@pytest.mark.parametrize("momentum", [0.0, np.float32(0.0)], ids=["literal", "array"])
def test_nesterov_without_momentum_is_plain_gradient_descent(momentum):
    # With γ = 0 the look-ahead update g + γ·buf is g itself: θ ← θ − η·g, restated here.
    momentum = jnp.asarray(momentum) if isinstance(momentum, np.floating) else momentum
    optimizer = jopt.sgd(0.1, momentum=momentum, nesterov=True)
    theta = np.array([1.0, -2.0, 0.5], np.float32)
    params, state = jnp.asarray(theta), optimizer.init(jnp.asarray(theta))
    for _ in range(5):
        updates, state = optimizer.update(params * 3.0, state, params)
        params = jopt.apply_updates(params, updates)
        theta = theta - np.float32(0.1) * (theta * np.float32(3.0))
    np.testing.assert_allclose(params, theta, rtol=1e-6)
