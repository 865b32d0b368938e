"""L-BFGS against torch.optim.LBFGS (golden files) and a float64 NumPy restatement.

``tools/golden_lbfgs.py`` ran ``torch.optim.LBFGS(max_iter=1, max_eval=26)`` in
float64 and wrote every step's loss and parameters, and torch's whole state at a few
steps, to ``tests/golden/lbfgs/``.  Here ``jopt.lbfgs`` replays each run in closed loop
(its gradients and line-search evaluations taken at its own parameters) and must agree
to 1e-10 relative.

``ref_lbfgs`` (the registry's reference, in the ``references`` package) restates the
algorithm in NumPy (the two-loop recursion of Nocedal & Wright's algorithm 7.4 and the
bracketing/zoom line search of their algorithms 3.5 and 3.6, in torch's variant),
written from the textbook with its own control flow; it is proven against the same
golden files, then used as the oracle for what torch cannot record: pytrees, float32,
schedules.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import mlp_tanh_v1_loss
from lbfgs_support import GOLDEN, NAMES, RTOL, closed_loop, load
from references import ref_lbfgs, ref_strong_wolfe

import jopt
from jopt.transforms import LbfgsState
from jopt.transforms._line_search import strong_wolfe


def quadratic_v1_loss(params, a, c):
    e = params["w"] - c
    return 0.5 * e @ (a @ e) + 1.0


def golden_problem(record):
    """The loss (of a params dict) and the initial params, as jax float64 arrays."""
    data = [jnp.asarray(v) for v in record["data"].values()]
    loss = {"mlp_tanh_v1": mlp_tanh_v1_loss, "quadratic_v1": quadratic_v1_loss}[record["model"]]
    params = {k: jnp.asarray(record["initial_params"][k]) for k in record["param_order"]}
    return (lambda p: loss(p, *data)), params


def jopt_kwargs(record) -> dict:
    """The ``docs/porting.md`` mapping of the recorded torch call."""
    hp = dict(record["hyperparameters"])
    assert (hp.pop("max_iter"), hp.pop("max_eval")) == (1, 26)
    kwargs = {"learning_rate": hp.pop("lr"), "line_search": hp.pop("line_search_fn")}
    kwargs.update(hp)  # history_size, tolerance_grad, tolerance_change: same names
    return kwargs


def chronological(state: LbfgsState, field: str) -> np.ndarray:
    """A history field, oldest pair first (torch's list order)."""
    m, length = state.rho_history.shape[0], int(state.history_length)
    order = [(int(state.history_next) - length + i) % m for i in range(length)]
    return np.asarray(getattr(state, field))[order]


def assert_close(actual, expected, what):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=RTOL, atol=0, err_msg=what
    )


def _field_scales(record: dict) -> dict[str, float]:
    """The largest magnitude each torch state vector reached over the checkpoints."""
    scales: dict[str, float] = {}
    for point in record["checkpoints"]:
        for name, value in point["state"].items():
            if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
                value = np.stack(value)
            if isinstance(value, np.ndarray) and value.ndim:
                scales[name] = max(scales.get(name, 0.0), float(np.max(np.abs(value))))
    return scales


def assert_torch_state(state: LbfgsState, torch_state: dict, step: int, record: dict):
    """Scalars to 1e-10 relative; vectors to 1e-10 of the scale the field reaches in
    the run (a gradient near a minimum is the small difference of large terms, so
    its own entries carry larger relative rounding)."""
    order = record["param_order"]
    sizes = [record["initial_params"][k].size for k in order]
    scales = _field_scales(record)

    def reorder(vector):  # torch's param_order to the tree's leaf order
        parts = dict(zip(order, np.split(vector, np.cumsum(sizes)[:-1]), strict=True))
        return np.concatenate(jax.tree.leaves(parts))

    def vectors(ours, name):
        theirs = torch_state[name]
        if isinstance(theirs, list):  # a history, oldest first
            theirs = np.stack([reorder(v) for v in theirs] or [np.zeros(sum(sizes))])[: len(theirs)]
        else:
            theirs = reorder(theirs)
        assert np.shape(ours) == theirs.shape, (name, step)
        error = np.max(np.abs(np.asarray(ours) - theirs), initial=0.0)
        assert error <= RTOL * scales[name], f"{name} at step {step}: {error:.2e}"

    assert int(state.count) == torch_state["n_iter"], step
    for ours, name in (
        (state.step_size, "t"),
        (state.h_diag, "H_diag"),
        (state.prev_value, "prev_loss"),
    ):
        assert_close(ours, torch_state[name], f"{name} at step {step}")
    assert_close(chronological(state, "rho_history"), np.asarray(torch_state["ro"]), "ro")
    vectors(state.direction, "d")
    vectors(state.prev_grad, "prev_flat_grad")
    vectors(chronological(state, "y_history"), "old_dirs")
    vectors(chronological(state, "s_history"), "old_stps")


def test_golden_files_are_the_listed_configurations():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted([*NAMES, "line_search"])


# The functions of the line-search golden file (tools/golden_lbfgs.py).
LINE_FUNCTIONS = {
    "rosenbrock": lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2,
    "wavy": lambda x: jnp.sum(jnp.sin(3 * x) + 0.1 * x**2),
}


def _line_search_cases():
    return load("line_search")["cases"]


@functools.partial(jax.jit, static_argnums=0)
def _search_slice(name, x, d, t0, tolerance_change, max_steps):
    fn = LINE_FUNCTIONS[name]
    value, grad = jax.value_and_grad(fn)(x)

    def value_and_grad(t):
        return jax.value_and_grad(fn)(x + t * d)

    return strong_wolfe(
        value_and_grad, d, t0, value, grad, tolerance_change=tolerance_change, max_steps=max_steps
    )


@pytest.mark.float64
def test_line_search_matches_torch():
    """Every case of torch's own line search, each branch of it taken somewhere."""
    for i, case in enumerate(_line_search_cases()):
        found = _search_slice(
            case["function"],
            jnp.asarray(case["x"]),
            jnp.asarray(case["d"]),
            case["t0"],
            case["tolerance_change"],
            case["max_ls"],
        )
        assert int(found.evaluations) == case["evaluations"], i
        for ours, theirs in zip(found[:3], (case["t"], case["f"], case["g"]), strict=True):
            assert_close(ours, theirs, f"case {i}")


def _numpy_slice_function(name):
    """The line-search functions with their gradients, in NumPy."""
    if name == "rosenbrock":

        def fg(x):
            r = x[1] - x[0] ** 2
            g = np.array([-400 * x[0] * r - 2 * (1 - x[0]), 200 * r])
            return 100 * r**2 + (1 - x[0]) ** 2, g

        return fg
    return lambda x: (np.sum(np.sin(3 * x) + 0.1 * x**2), 3 * np.cos(3 * x) + 0.2 * x)


@pytest.mark.float64
def test_reference_line_search_matches_torch():
    for i, case in enumerate(_line_search_cases()):
        fg, x, d = _numpy_slice_function(case["function"]), case["x"], case["d"]
        f0, g0 = fg(x)
        t, f, g, calls = ref_strong_wolfe(
            lambda t, fg=fg, x=x, d=d: fg(x + t * d),
            f0,
            g0,
            d,
            case["t0"],
            case["tolerance_change"],
            max_extra=case["max_ls"],
        )
        assert calls == case["evaluations"], i
        np.testing.assert_allclose([t, f], [case["t"], case["f"]], rtol=RTOL, err_msg=f"{i}")
        np.testing.assert_allclose(g, case["g"], rtol=RTOL, err_msg=f"case {i}")


@pytest.mark.float64
@pytest.mark.parametrize("name", NAMES)
def test_golden_replay_matches_torch(name):
    record = load(name)
    loss, params = golden_problem(record)
    run = closed_loop(jopt.lbfgs(**jopt_kwargs(record)), loss, params, record["num_steps"])
    checkpoints = {c["step"]: c["state"] for c in record["checkpoints"]}
    for k, (value, params, state) in enumerate(run, start=1):
        assert_close(value, record["loss_history"][k - 1], f"loss before step {k}")
        for key, expected in record["params_history"][k - 1].items():
            assert_close(params[key], expected, f"params[{key!r}] after step {k}")
        # torch counts its closure call at the start of every step as well.
        assert k + int(state.evaluations) == record["func_evals_history"][k - 1]
        assert int(state.count) == record["n_iter_history"][k - 1]
        if k in checkpoints:
            assert_torch_state(state, checkpoints[k], k, record)


@pytest.mark.float64
def test_converged_updates_are_zero_and_keep_the_state():
    """After torch's early return (max|g| ≤ tolerance_grad) jopt's update is exactly
    zero and its state (torch's fields) stays as it was."""
    record = load("quadratic_tolerance_grad")
    loss, params = golden_problem(record)
    run = closed_loop(jopt.lbfgs(**jopt_kwargs(record)), loss, params, record["num_steps"])
    frozen = [
        k
        for k in range(1, len(run))
        if record["n_iter_history"][k] == record["n_iter_history"][k - 1]
    ]
    assert frozen, "the golden run never met tolerance_grad"
    for k in frozen:
        (_, before, old), (_, after, new) = run[k - 1], run[k]
        assert all(np.array_equal(before[p], after[p]) for p in before)
        for field in LbfgsState._fields:
            if field not in ("value", "grad"):
                assert np.array_equal(getattr(old, field), getattr(new, field)), field


@pytest.mark.float64
@pytest.mark.parametrize("name", NAMES)
def test_reference_replays_torch(name):
    """The NumPy restatement follows the torch runs too: it is an oracle of its own."""
    record = load(name)
    loss, params = golden_problem(record)
    keys = record["param_order"]
    shapes = [np.shape(params[k]) for k in keys]
    sizes = [math.prod(s) for s in shapes]

    def unflat(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        return {k: jnp.asarray(p.reshape(s)) for k, p, s in zip(keys, parts, shapes, strict=True)}

    def value_and_grad(x):
        value, grad = jax.value_and_grad(loss)(unflat(x))
        return float(value), np.concatenate([np.ravel(grad[k]) for k in keys])

    init, step = ref_lbfgs(**jopt_kwargs(record))
    x = np.concatenate([np.ravel(params[k]) for k in keys])
    state = init(x)
    for k in range(1, record["num_steps"] + 1):
        value, grad = value_and_grad(x)
        np.testing.assert_allclose(value, record["loss_history"][k - 1], rtol=RTOL)
        x, state = step(x, grad, state, k, value=value, value_and_grad=value_and_grad)
        expected = np.concatenate([np.ravel(record["params_history"][k - 1][p]) for p in keys])
        np.testing.assert_allclose(x, expected, rtol=RTOL, atol=0)
        assert k + state["evaluations"] == record["func_evals_history"][k - 1]
