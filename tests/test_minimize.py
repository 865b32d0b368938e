"""``jopt.minimize`` against ``scipy.optimize.minimize(method="L-BFGS-B")``, unbounded.

The minimum f* is exact where it is known (0 for Rosenbrock and the quadratic, which
scipy reaches within 1e-22) and otherwise scipy's, solved to its tightest
(``gtol=1e-12``, ``ftol=0``).  The target is a point with ``|f − f*| ≤ 1e-8·(1 + |f*|)``
and ``‖∇f‖₂ ≤ 1e-5``.  scipy's cost is counted up to its first iterate on target
(iterations, and evaluations of f and ∇f, which scipy always takes together).
``jopt.minimize`` must end on target with at most 1.5 times as many of each.
Everything in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import jopt

TARGET_GRAD = 1e-5
MAX_RATIO = 1.5


def rosenbrock(x):
    """The chained Rosenbrock function, minimum 0 at x = 1."""
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def ill_conditioned_quadratic(n=20, condition=1e6, seed=0):
    """``½·(x − c)ᵀA(x − c)``, A with eigenvalues log-spaced in [1, 1e6], random axes."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = jnp.asarray((q * np.logspace(0, np.log10(condition), n)) @ q.T)
    c = jnp.asarray(rng.normal(size=n))

    def f(x):
        e = x - c
        return 0.5 * e @ (a @ e)

    return f


def digits_logistic_regression(l2=1e-4):
    """Multinomial logistic regression on scikit-learn's bundled digits (1797 × 64,
    10 classes, 650 weights), mean cross-entropy plus ``½·l2·‖W‖²``: the small L2
    term keeps the minimum finite and unique."""
    digits = load_digits()
    x = jnp.asarray(digits.data / 16.0)
    y = jax.nn.one_hot(jnp.asarray(digits.target), 10, dtype=x.dtype)

    def f(w):
        weights, bias = w[:640].reshape(64, 10), w[640:]
        log_p = jax.nn.log_softmax(x @ weights + bias)
        return -jnp.mean(jnp.sum(y * log_p, axis=-1)) + 0.5 * l2 * jnp.sum(weights * weights)

    return f


# name -> (fun, x0, f* or None, tol).  The quadratic has 20 dimensions: scipy needs
# about 4,000 iterations there (and about 8,000 in 100 dimensions, where jopt needs
# 3,500), seconds of scipy's per-iteration overhead for no more coverage.  With
# l2 = 1e-4 the logistic loss has Hessian eigenvalues near 1e-4, so f − f* ≈
# ½‖∇f‖²/1e-4 and the f target needs ‖∇f‖ near 1e-6.
PROBLEMS = {
    "rosenbrock_2": (rosenbrock, np.array([-1.2, 1.0]), 0.0, 1e-5),
    "rosenbrock_100": (rosenbrock, np.tile([-1.2, 1.0], 50), 0.0, 1e-5),
    "quadratic_cond_1e6": (ill_conditioned_quadratic(), np.zeros(20), 0.0, 1e-5),
    "digits_logistic": (digits_logistic_regression(), np.zeros(650), None, 1e-6),
}


def scipy_cost(fun, x0, f_star=None):
    """``(f*, iterations, evaluations)``: the minimum (scipy's when ``f_star`` is None),
    and scipy's cost to the target."""
    value_and_grad = jax.jit(jax.value_and_grad(fun))
    calls, last, history = [0], {}, []

    def fg(x):
        calls[0] += 1
        value, grad = value_and_grad(x)
        last.update(x=np.copy(x), value=float(value), grad=np.asarray(grad))
        return last["value"], last["grad"]

    def callback(xk):
        # L-BFGS-B's last evaluation is at its new iterate.
        assert np.array_equal(xk, last["x"])
        history.append((len(history) + 1, calls[0], last["value"], np.linalg.norm(last["grad"])))
        if f_star is not None and on_target(last["value"], history[-1][3], f_star):
            raise StopIteration

    options = {"maxiter": 100_000, "maxfun": 100_000, "ftol": 0.0, "gtol": 1e-12}
    # L-BFGS-B's BLAS calls on 20 to 650 entries: threads only add waiting (20 to 40
    # times slower on a busy machine).
    with threadpool_limits(1):
        result = scipy.optimize.minimize(
            fg, x0, jac=True, method="L-BFGS-B", callback=callback, options=options
        )
    if f_star is None:
        f_star = min(result.fun, *(h[2] for h in history))
    for iterations, evaluations, value, grad_norm in history:
        if on_target(value, grad_norm, f_star):
            return f_star, iterations, evaluations
    raise AssertionError("scipy never reached the target")


def on_target(value, grad_norm, f_star) -> bool:
    return abs(value - f_star) <= 1e-8 * (1 + abs(f_star)) and grad_norm <= TARGET_GRAD


@pytest.mark.float64
@pytest.mark.parametrize("name", PROBLEMS)
def test_reaches_scipys_minimum_in_no_more_steps(name):
    fun, x0, f_star, tol = PROBLEMS[name]
    f_star, scipy_iterations, scipy_evaluations = scipy_cost(fun, x0, f_star)
    result = jopt.minimize(fun, jnp.asarray(x0), tol=tol, max_steps=20_000)
    # The gradient and value at the returned point, recomputed here.
    value, grad = jax.value_and_grad(fun)(result.params)
    grad_norm = float(jnp.linalg.norm(grad))
    assert bool(result.converged)
    assert on_target(float(value), grad_norm, f_star), (float(value) - f_star, grad_norm)
    # The result's value and gradient come from the line search's last evaluation, at
    # the same point up to the rounding of x + t·d.
    assert abs(float(result.value) - float(value)) <= 1e-14 * (1 + abs(float(value)))
    np.testing.assert_allclose(float(result.grad_norm), grad_norm, rtol=1e-3, atol=1e-12)
    assert int(result.steps) <= MAX_RATIO * scipy_iterations, (result.steps, scipy_iterations)
    assert int(result.evaluations) <= MAX_RATIO * scipy_evaluations, (
        result.evaluations,
        scipy_evaluations,
    )


@pytest.mark.float64
def test_evaluations_are_counted_and_a_second_call_does_not_retrace():
    """``evaluations`` is the number of times ``fun`` runs (counted from inside it), and
    a second call with new values of the same shapes traces nothing."""
    traces, calls = [], []

    def fun(x):
        traces.append(1)
        jax.debug.callback(lambda: calls.append(1))
        return rosenbrock(x)

    first = jopt.minimize(fun, jnp.array([-1.2, 1.0]))
    assert len(calls) == int(first.evaluations) > int(first.steps) > 10
    traced = len(traces)
    second = jopt.minimize(fun, jnp.array([2.0, -1.5]), max_steps=500, tol=1e-7)
    assert traced > 0 and len(traces) == traced
    assert bool(first.converged) and bool(second.converged)
    np.testing.assert_allclose(second.params, [1.0, 1.0], rtol=1e-6)


@pytest.mark.float64
def test_pytree_params_with_an_integer_leaf():
    """A dict of leaves is one vector to L-BFGS; the integer leaf rides along."""

    def fun(p):
        x = jnp.concatenate([p["head"], p["rest"]["tail"].ravel()])
        return rosenbrock(x) * p["scale"]

    x0 = {"head": jnp.array([0.5, 0.5]), "rest": {"tail": jnp.full((2, 2), 0.5)}}
    x0["scale"] = jnp.int32(2)
    result = jopt.minimize(fun, x0)
    assert bool(result.converged)
    assert int(result.params["scale"]) == 2 and result.params["scale"].dtype == jnp.int32
    np.testing.assert_allclose(result.params["head"], [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(result.params["rest"]["tail"], np.ones((2, 2)), rtol=1e-6)
    value, grad = jax.value_and_grad(fun, allow_int=True)(result.params)
    assert float(result.value) == pytest.approx(float(value), abs=1e-20)
    assert float(jnp.linalg.norm(grad["head"])) <= 1e-5


@pytest.mark.float64
def test_any_optimizer_evaluates_once_per_step():
    """With plain gradient descent the loop is ``x ← x − η·∇f(x)``, restated in NumPy."""
    rng = np.random.default_rng(1)
    a = np.diag(rng.uniform(0.5, 2.0, size=4))
    c = rng.normal(size=4)

    def fun(x):
        return 0.5 * (x - c) @ (jnp.asarray(a) @ (x - c))

    result = jopt.minimize(fun, jnp.zeros(4), optimizer=jopt.sgd(0.1), max_steps=30, tol=0.0)
    x = np.zeros(4)
    for _ in range(30):
        x = x - 0.1 * a @ (x - c)
    np.testing.assert_allclose(result.params, x, rtol=1e-12)
    assert int(result.steps) == 30 and int(result.evaluations) == 31
    assert not bool(result.converged)


def test_float32():
    """64-bit types off, as users run: the solve stops near the minimum, in float32."""
    result = jopt.minimize(rosenbrock, jnp.array([-1.2, 1.0], jnp.float32))
    assert result.params.dtype == jnp.float32 and result.value.dtype == jnp.float32
    assert int(result.steps) < 1000
    np.testing.assert_allclose(result.params, [1.0, 1.0], atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"fun": "rosenbrock"}, TypeError, "fun"),
        ({"x0": jnp.array([1, 2])}, TypeError, "x0"),
        ({"x0": "start"}, TypeError, "x0"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"max_steps": 2.5}, TypeError, "max_steps"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"optimizer": "lbfgs"}, TypeError, "optimizer"),
        ({"fun": lambda x: x**2}, ValueError, "fun"),
    ],
)
def test_bad_input_is_named(kwargs, error, fragment):
    arguments = {"fun": rosenbrock, "x0": jnp.array([-1.2, 1.0]), **kwargs}
    fun, x0 = arguments.pop("fun"), arguments.pop("x0")
    with pytest.raises(error, match=fragment):
        jopt.minimize(fun, x0, **arguments)


def test_benchmark_runs():
    """``python -m benchmarks.minimize`` in miniature: every system solves, one round."""
    from benchmarks import minimize as benchmark

    rows = benchmark.run(repeats=1, problem_names=["rosenbrock_100"])
    systems = rows[0]["systems"]
    assert set(systems) == {"jopt", "jopt#2", "scipy+jax", "scipy+numpy"}
    assert all(entry["value"] < 1e-8 for entry in systems.values())
    assert "jopt/scipy+numpy" in rows[0]["ratios"] and "| rosenbrock_100 |" in benchmark.render(
        rows
    )
