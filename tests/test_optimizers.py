"""The optimizers against float64 NumPy restatements of their equations.

Each ``ref_*`` function below restates one optimizer for a single array leaf, written
from the papers' and torch.optim's update rules (and the lecture's, where it differs
only in notation).  The references take the same arguments, with the same defaults,
as README's table of optimizers, so a configuration ``(name, kwargs)`` of
``CONFIGS`` builds both ``jopt.<name>(**kwargs)`` and ``REFERENCES[name](**kwargs)``.

Conventions of the references: ``g`` is the gradient, ``t`` the 1-based step,
``sq(g) = |g|²`` (real even for complex ``g``); each returns ``(init, step)`` with
``init(p) -> state`` and ``step(p, g, state, t) -> (new_p, new_state)``.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import make_nested_tree

import jopt

# Compared with float64 restatements: 64-bit types on for every test here.
pytestmark = pytest.mark.float64

# --- the configurations every test below runs over --------------------------------------

# (optimizer name, keyword arguments): every optimizer with every option, alone and
# combined where they interact.  Learning rates are raised from the defaults so that
# 60 steps move the parameters visibly; the defaults themselves are pinned by
# test_defaults_are_the_specified_ones (and Adadelta runs with them).
CONFIGS = [
    ("sgd", {"learning_rate": 0.1}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"learning_rate": 0.1, "weight_decay": 0.05}),
    ("momentum", {"learning_rate": 0.05, "momentum": 0.7, "weight_decay": 0.05}),
    ("nesterov", {"learning_rate": 0.05, "momentum": 0.7, "weight_decay": 0.05}),
    ("adagrad", {"learning_rate": 0.1}),
    ("adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.1}),
    ("adagrad", {"learning_rate": 0.1, "eps": 0.0, "eps_root": 1e-2}),
    ("adagrad", {"learning_rate": 0.1, "weight_decay": 0.05}),
    ("adadelta", {}),
    ("adadelta", {"learning_rate": 0.5, "rho": 0.95, "eps": 1e-4}),
    ("adadelta", {"weight_decay": 0.05}),
    ("rmsprop", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "centered": True}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("rmsprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.9}),
    ("rmsprop", {"learning_rate": 0.01, "eps": 0.0, "eps_root": 1e-4}),
    ("rmsprop", {"learning_rate": 0.01, "decay": 0.99, "weight_decay": 0.05}),
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adam", {"learning_rate": 0.01, "eps": 0.0, "eps_root": 1e-4}),
    ("adam", {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "weight_decay": 0.05}),
    ("adamw", {"learning_rate": 0.01}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adamax", {"learning_rate": 0.01}),
    ("adamax", {"learning_rate": 0.01, "weight_decay": 0.05}),
]


def _config_id(config) -> str:
    name, kwargs = config
    return "-".join([name, *(f"{k}={v}" for k, v in kwargs.items())])


def as_params(selected):
    return [pytest.param(*c, id=_config_id(c)) for c in selected]


def configs(decay: bool | None = None):
    """``CONFIGS`` as pytest params, optionally only those with or without weight decay."""
    return as_params([c for c in CONFIGS if decay is None or _has_decay(c) == decay])


# One configuration per building block and per flag that changes a block's arithmetic,
# for the tests that are not run over every configuration: float32 takes all of them,
# vmap and grad the first six (one per block), complex numbers [1:4] (the blocks with
# squared magnitudes).
ONE_PER_BLOCK = [
    ("nesterov", {"learning_rate": 0.05, "momentum": 0.7, "weight_decay": 0.05}),
    ("adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.1}),
    ("rmsprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.9}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adadelta", {"learning_rate": 0.5, "rho": 0.95, "eps": 1e-4}),
    ("adamax", {"learning_rate": 0.01, "weight_decay": 0.05}),
    ("adam", {"learning_rate": 0.01, "eps": 0.0, "eps_root": 1e-4}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.1}),
]
assert all(c in CONFIGS for c in ONE_PER_BLOCK)


def _has_decay(config) -> bool:
    name, kwargs = config
    return name == "adamw" or kwargs.get("weight_decay", 0.0) != 0.0


# --- float64 NumPy restatements --------------------------------------------------------


def sq(x: np.ndarray) -> np.ndarray:
    """``|x|²`` as a real array."""
    return (x * np.conj(x)).real


def ref_sgd(learning_rate=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0):
    # torch.optim.SGD: g += λθ; b = μb + g (b₁ = g); d = g + μb (Nesterov) or b; θ -= ηd.
    def init(p):
        return {"buf": np.zeros_like(p)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        buf = momentum * s["buf"] + g
        direction = g + momentum * buf if nesterov else buf
        return p - learning_rate * direction, {"buf": buf}

    return init, step


def ref_momentum(learning_rate=1e-3, momentum=0.9, weight_decay=0.0):
    return ref_sgd(learning_rate, momentum, False, weight_decay)


def ref_nesterov(learning_rate=1e-3, momentum=0.9, weight_decay=0.0):
    return ref_sgd(learning_rate, momentum, True, weight_decay)


def ref_adagrad(
    learning_rate=1e-2, initial_accumulator_value=0.0, eps=1e-10, eps_root=0.0, weight_decay=0.0
):
    # Duchi et al.: G = G₀ + Σ g²; θ -= η g / (√(G + eps_root) + eps).
    def init(p):
        return {"G": np.full(np.shape(p), initial_accumulator_value, np.float64)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        G = s["G"] + sq(g)
        return p - learning_rate * g / (np.sqrt(G + eps_root) + eps), {"G": G}

    return init, step


def ref_adadelta(learning_rate=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    # Zeiler: E[g²] = ρE[g²] + (1-ρ)g²; Δ = √(E[Δ²] + ε)/√(E[g²] + ε)·g;
    # E[Δ²] = ρE[Δ²] + (1-ρ)Δ²; θ -= ηΔ.
    def init(p):
        zeros = np.zeros(np.shape(p))
        return {"Eg2": zeros, "Ed2": zeros}

    def step(p, g, s, t):
        g = g + weight_decay * p
        Eg2 = rho * s["Eg2"] + (1 - rho) * sq(g)
        delta = np.sqrt(s["Ed2"] + eps) / np.sqrt(Eg2 + eps) * g
        Ed2 = rho * s["Ed2"] + (1 - rho) * sq(delta)
        return p - learning_rate * delta, {"Eg2": Eg2, "Ed2": Ed2}

    return init, step


def ref_rmsprop(
    learning_rate=1e-3,
    decay=0.9,
    eps=1e-8,
    eps_root=0.0,
    centered=False,
    momentum=0.0,
    weight_decay=0.0,
):
    # Hinton's lecture 6e (+ Graves' centring, + torch's momentum buffer outside η).
    def init(p):
        return {"Eg2": np.zeros(np.shape(p)), "Eg": np.zeros_like(p), "buf": np.zeros_like(p)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        Eg2 = decay * s["Eg2"] + (1 - decay) * sq(g)
        Eg = decay * s["Eg"] + (1 - decay) * g
        second = Eg2 - sq(Eg) if centered else Eg2
        direction = g / (np.sqrt(second + eps_root) + eps)
        buf = momentum * s["buf"] + direction
        if momentum:
            direction = buf
        return p - learning_rate * direction, {"Eg2": Eg2, "Eg": Eg, "buf": buf}

    return init, step


def ref_adam(
    learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, amsgrad=False, weight_decay=0.0
):
    # Kingma & Ba, with torch's AMSGrad order (max of v, then bias correction).
    def init(p):
        zeros = np.zeros(np.shape(p))
        return {"m": np.zeros_like(p), "v": zeros, "vmax": zeros}

    def step(p, g, s, t):
        g = g + weight_decay * p
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * sq(g)
        vmax = np.maximum(s["vmax"], v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        new_p = p - learning_rate * m_hat / (np.sqrt(v_hat + eps_root) + eps)
        return new_p, {"m": m, "v": v, "vmax": vmax}

    return init, step


def ref_adamw(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2):
    # Loshchilov & Hutter: the Adam step, then θ -= ηλθ with the θ before the step.
    init, adam_step = ref_adam(learning_rate, b1, b2, eps)

    def step(p, g, s, t):
        new_p, s = adam_step(p, g, s, t)
        return new_p - learning_rate * weight_decay * p, s

    return init, step


def ref_adamax(learning_rate=2e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    # Kingma & Ba §7.1 with torch's eps: u = max(β₂u, |g| + ε); θ -= η/(1-β₁ᵗ)·m/u.
    def init(p):
        return {"m": np.zeros_like(p), "u": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        g = g + weight_decay * p
        m = b1 * s["m"] + (1 - b1) * g
        u = np.maximum(b2 * s["u"], np.abs(g) + eps)
        return p - learning_rate / (1 - b1**t) * m / u, {"m": m, "u": u}

    return init, step


REFERENCES = {
    "sgd": ref_sgd,
    "momentum": ref_momentum,
    "nesterov": ref_nesterov,
    "adagrad": ref_adagrad,
    "adadelta": ref_adadelta,
    "rmsprop": ref_rmsprop,
    "adam": ref_adam,
    "adamw": ref_adamw,
    "adamax": ref_adamax,
}


@pytest.mark.parametrize("name", REFERENCES)
def test_defaults_are_the_specified_ones(name):
    # The references carry the specified names, order and defaults; jopt may add
    # keyword-only extras (e.g. moment dtypes) after them.
    specified = inspect.signature(REFERENCES[name]).parameters
    actual = {
        key: p.default
        for key, p in inspect.signature(getattr(jopt, name)).parameters.items()
        if p.kind is not inspect.Parameter.KEYWORD_ONLY
    }
    assert actual == {key: p.default for key, p in specified.items()}
    assert list(actual) == list(specified)


STEPS = 60


def _noises(rng: np.random.Generator, like, steps: int = STEPS, dtype=None):
    """Per-step gradient noise shaped like ``like``, of varying size (so AMSGrad's max bites)."""

    def draw(x, size):
        return np.asarray(size * rng.normal(size=np.shape(x)), dtype or x.dtype)

    return [
        jax.tree.map(functools.partial(draw, size=rng.uniform(0.1, 2.0)), like)
        for _ in range(steps)
    ]


def _gradient(p, n):
    # The gradient of ½|θ|² plus noise: depends on the parameters, so errors would compound.
    return p + n


def run_reference(name, kwargs, params, noises, dtype=np.float64):
    """The reference's parameter trajectory (a list of leaf lists), in ``dtype``."""
    init, step = REFERENCES[name](**kwargs)
    leaves = [np.asarray(leaf, dtype) for leaf in jax.tree.leaves(params)]
    states = [init(p) for p in leaves]
    trajectory = []
    for t, noise in enumerate(noises, start=1):
        results = [
            step(p, _gradient(p, np.asarray(n, dtype)), s, t)
            for p, n, s in zip(leaves, jax.tree.leaves(noise), states)
        ]
        leaves, states = [r[0] for r in results], [r[1] for r in results]
        trajectory.append(leaves)
    return trajectory


def make_step(optimizer: jopt.GradientTransformation):
    def step(params, state, noise):
        grads = jax.tree.map(_gradient, params, noise)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state

    return step


def run_jopt(step, optimizer, params, noises):
    state = optimizer.init(params)
    trajectory = []
    for noise in noises:
        params, state = step(params, state, noise)
        trajectory.append(params)
    return trajectory


def assert_trajectories_close(actual, expected, rtol, atol=0.0):
    assert len(actual) == len(expected)
    for t, (params, leaves) in enumerate(zip(actual, expected), start=1):
        for i, (a, e) in enumerate(zip(jax.tree.leaves(params), leaves)):
            np.testing.assert_allclose(
                np.asarray(a, np.result_type(e)),
                e,
                rtol=rtol,
                atol=atol,
                err_msg=f"step {t}, leaf {i}",
            )


# --- equality with the references ---------------------------------------------------


@pytest.mark.parametrize("name, kwargs", configs())
def test_matches_reference_float64_with_and_without_jit(
    name, kwargs, nested_tree, rng, trace_counter
):
    noises = _noises(rng, nested_tree)
    expected = run_reference(name, kwargs, nested_tree, noises)
    optimizer = getattr(jopt, name)(**kwargs)
    params = jax.tree.map(jnp.asarray, nested_tree)
    step = make_step(optimizer)

    jitted = jax.jit(trace_counter.wrap(step))
    assert_trajectories_close(run_jopt(jitted, optimizer, params, noises), expected, 1e-10)
    assert trace_counter.count == 1, "the jitted step was traced again after the first step"

    assert_trajectories_close(run_jopt(step, optimizer, params, noises), expected, 1e-10)


@pytest.mark.parametrize("name, kwargs", as_params(ONE_PER_BLOCK))
def test_matches_reference_float32(name, kwargs, nested_tree, rng):
    # float32 parameters and gradients against the float64 reference started from the
    # same float32 values: after 60 steps the largest error measured was 3.6e-6 (Adam
    # at η = 0.01, parameters of size ~1), i.e. float32 rounding of the parameters.
    params = jax.tree.map(lambda x: np.asarray(x, np.float32), nested_tree)
    noises = _noises(rng, params)
    expected = run_reference(name, kwargs, params, noises)
    optimizer = getattr(jopt, name)(**kwargs)
    actual = run_jopt(make_step(optimizer), optimizer, params, noises)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(actual[-1]))
    assert_trajectories_close(actual, expected, rtol=1e-5, atol=1e-5)


# --- the lecture's forms ------------------------------------------------------------


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


def test_optax_adadelta_default_ascends():
    # optax.adadelta() leaves learning_rate=None, which applies the ascent direction:
    # the difference jopt's learning_rate=1.0 default pins.
    losses, _ = _run_scan(optax.adadelta(), _quadratic([0.2, 0.5, 1.0]), jnp.ones(3), 50)
    assert np.all(np.diff(losses) > 0)


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
    [pytest.param(*c, id=_config_id(c[:2])) for c in CONVERGENCE],
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


# --- transformations: vmap and grad through update ----------------------------------


@pytest.mark.parametrize("name, kwargs", as_params(ONE_PER_BLOCK[:6]))
def test_update_under_vmap_over_independent_problems(name, kwargs, rng):
    # Three problems that differ in parameters, gradients and learning rate, batched
    # on a leading axis; each is compared with its own reference run.
    batch, steps = 3, 10
    trees = [make_nested_tree(rng) for _ in range(batch)]
    noises = [_noises(rng, trees[0], steps) for _ in range(batch)]
    rates = np.array([0.5, 1.0, 2.0]) * kwargs["learning_rate"]

    def stack(trees):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)

    @jax.jit
    @jax.vmap
    def batched_step(params, state, noise, learning_rate):
        optimizer = getattr(jopt, name)(**{**kwargs, "learning_rate": learning_rate})
        return make_step(optimizer)(params, state, noise)

    init = jax.vmap(getattr(jopt, name)(**kwargs).init)
    params = stack(trees)
    state = init(params)
    for t in range(steps):
        params, state = batched_step(params, state, stack([n[t] for n in noises]), rates)
    for i in range(batch):
        expected = run_reference(name, {**kwargs, "learning_rate": rates[i]}, trees[i], noises[i])
        actual = jax.tree.map(lambda x, i=i: x[i], params)
        assert_trajectories_close([actual], expected[-1:], rtol=1e-10)


@pytest.mark.parametrize("name, kwargs", as_params(ONE_PER_BLOCK[:6]))
def test_update_is_differentiable(name, kwargs, rng):
    # The loss ½|θ₃|² after three steps, as a function of the learning rate and of the
    # initial parameters: jax.grad against central differences (float64, h = 1e-6).
    # One small leaf and no jit: compiling the backward pass would cost seconds per
    # optimizer, and jit is covered by the reference tests.
    params = {"w": rng.normal(size=4), "b": np.asarray(rng.normal())}  # shapes the tree has
    noises = _noises(rng, params, 3)
    rate = kwargs["learning_rate"]

    def loss(learning_rate, params):
        optimizer = getattr(jopt, name)(**{**kwargs, "learning_rate": learning_rate})
        step = make_step(optimizer)
        state = optimizer.init(params)
        for noise in noises:
            params, state = step(params, state, noise)
        return 0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))

    grad_rate, grad_params = jax.grad(loss, argnums=(0, 1))(rate, params)
    h = 1e-6
    finite_difference = (loss(rate + h, params) - loss(rate - h, params)) / (2 * h)
    np.testing.assert_allclose(grad_rate, finite_difference, rtol=1e-6)
    assert abs(grad_rate) > 1e-3

    direction = jax.tree.map(lambda x: rng.normal(size=np.shape(x)), params)
    shifted = [jax.tree.map(lambda p, d, s=s: p + s * h * d, params, direction) for s in (1, -1)]
    finite_difference = (loss(rate, shifted[0]) - loss(rate, shifted[1])) / (2 * h)
    directional = sum(
        np.vdot(g, d) for g, d in zip(jax.tree.leaves(grad_params), jax.tree.leaves(direction))
    )
    np.testing.assert_allclose(directional, finite_difference, rtol=1e-6)


# --- dtypes and special leaves -------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64])
@pytest.mark.parametrize("name, kwargs", configs())
def test_parameters_keep_their_dtype(name, kwargs, dtype, rng):
    params = {"w": jnp.asarray(rng.normal(size=4), dtype), "b": jnp.asarray(0.5, dtype)}
    optimizer = getattr(jopt, name)(**kwargs)
    state = optimizer.init(params)
    for _ in range(2):
        grads = jax.tree.map(lambda p: p + jnp.asarray(rng.normal(size=p.shape), dtype), params)
        updates, state = optimizer.update(grads, state, params)
        params = jopt.apply_updates(params, updates)
        for tree in (updates, params):
            for leaf in jax.tree.leaves(tree):
                assert leaf.dtype == dtype
                assert np.all(np.isfinite(np.asarray(leaf, np.float64)))


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


@pytest.mark.parametrize("name, kwargs", configs(decay=False))
def test_zero_gradient_leaves_parameters_unchanged(name, kwargs, nested_tree):
    optimizer = getattr(jopt, name)(**kwargs)
    params = jax.tree.map(jnp.asarray, nested_tree)
    state = optimizer.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for _ in range(3):
        updates, state = optimizer.update(zeros, state, params)
        new_params = jopt.apply_updates(params, updates)
        for new, old in zip(jax.tree.leaves(new_params), jax.tree.leaves(params)):
            np.testing.assert_array_equal(new, old)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state))


@pytest.mark.parametrize("name, kwargs", configs())
def test_none_and_integer_leaves(name, kwargs, rng):
    params = {
        "w": rng.normal(size=4),
        "none": None,
        "step": jnp.asarray(7, jnp.int32),
        "mask": jnp.asarray([True, False]),
    }

    def loss(params):
        return 0.5 * jnp.sum(params["w"] ** 2) * params["step"]

    optimizer = getattr(jopt, name)(**kwargs)
    state = optimizer.init(params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    assert not [p for p in paths if "'step'" in p or "'mask'" in p or "'none'" in p]

    grads = jax.grad(loss, allow_int=True)(params)  # float0 for the integer leaves
    updates, state = optimizer.update(grads, state, params)
    assert updates["none"] is None
    new_params = jopt.apply_updates(params, updates)
    assert new_params["none"] is None
    for key in ("step", "mask"):
        assert new_params[key].dtype == params[key].dtype
        np.testing.assert_array_equal(new_params[key], params[key])
    # The float leaf took exactly the reference's first step.
    init, step = REFERENCES[name](**kwargs)
    w = params["w"]
    expected, _ = step(w, 7.0 * w, init(w), 1)
    np.testing.assert_allclose(new_params["w"], expected, rtol=1e-10)


@pytest.mark.parametrize("name, kwargs", as_params(ONE_PER_BLOCK[1:4]))
def test_complex_parameters_use_squared_magnitudes(name, kwargs, nested_tree, rng):
    params = jax.tree.map(lambda x: x + 1j * rng.normal(size=np.shape(x)), nested_tree)
    noises = [
        jax.tree.map(lambda a, b: a + 1j * b, *pair)
        for pair in zip(_noises(rng, nested_tree), _noises(rng, nested_tree))
    ]
    expected = run_reference(name, kwargs, params, noises, np.complex128)
    optimizer = getattr(jopt, name)(**kwargs)
    actual = run_jopt(jax.jit(make_step(optimizer)), optimizer, params, noises)
    assert_trajectories_close(actual, expected, rtol=1e-10)
    # The squared-magnitude accumulators are stored real.
    state = optimizer.init(params)
    for field in ("nu", "sum_of_squares"):
        for leaf in jax.tree.leaves(jopt.tree_get(state, field, [])):
            assert leaf.dtype == jnp.float64


@pytest.mark.parametrize("name, kwargs", configs())
def test_mismatched_shapes_raise_naming_the_path(name, kwargs):
    params = {"dense": {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}}
    grads = {"dense": {"w": jnp.ones((4, 3)), "b": jnp.ones(4)}}
    optimizer = getattr(jopt, name)(**kwargs)
    state = optimizer.init(params)
    with pytest.raises(ValueError, match=r"\['dense'\]\['w'\]"):
        optimizer.update(grads, state, params)
    with pytest.raises(ValueError, match=r"\['dense'\]\['w'\]"):
        jopt.apply_updates(params, grads)
