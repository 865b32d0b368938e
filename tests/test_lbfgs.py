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
import inspect
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import mlp_tanh_v1_loss, read_json
from references import ref_lbfgs, ref_strong_wolfe

import jopt
from jopt.transforms import LbfgsState
from jopt.transforms._line_search import strong_wolfe

GOLDEN = Path(__file__).parent / "golden" / "lbfgs"
NAMES = (
    "strong_wolfe",
    "strong_wolfe_history3",
    "fixed_step",
    "quadratic_strong_wolfe",
    "quadratic_tolerance_grad",
)
RTOL = 1e-10


# --- golden files ----------------------------------------------------------------------


def load(name: str) -> dict:
    return read_json(GOLDEN / f"{name}.json")


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


def _closed_loop(optimizer, loss, params, steps):
    """``(loss before, params after, state after)`` for each of ``steps`` updates."""
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss, allow_int=True)(params)
        updates, state = optimizer.update(
            grad, state, params, value=value, grad=grad, value_fn=loss
        )
        return jopt.apply_updates(params, updates), state, value

    out = []
    for _ in range(steps):
        params, state, value = step(params, state)
        out.append((value, params, state))
    return out


@pytest.mark.float64
@pytest.mark.parametrize("name", NAMES)
def test_golden_replay_matches_torch(name):
    record = load(name)
    loss, params = golden_problem(record)
    run = _closed_loop(jopt.lbfgs(**jopt_kwargs(record)), loss, params, record["num_steps"])
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
    run = _closed_loop(jopt.lbfgs(**jopt_kwargs(record)), loss, params, record["num_steps"])
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


# --- jopt against the restatement ------------------------------------------------------


def nested_rosenbrock(params):
    """Rosenbrock's function of all float leaves, in tree order (integer leaves unused)."""
    x = jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(params) if v.dtype.kind == "f"])
    return jnp.sum(10.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _reference_run(kwargs, params, steps, dtype=np.float64):
    """The restatement on the tree's float leaves as one float64 vector."""
    floats = [v for v in jax.tree.leaves(params) if v.dtype.kind == "f"]
    shapes = [v.shape for v in floats]

    def value_and_grad(x):
        parts = np.split(x, np.cumsum([math.prod(s) for s in shapes])[:-1])
        vector = jnp.concatenate([jnp.asarray(p, dtype) for p in parts])
        value, grad = jax.value_and_grad(lambda v: nested_rosenbrock({"v": v}))(vector)
        return float(value), np.asarray(grad, np.float64)

    init, step = ref_lbfgs(**kwargs)
    x = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in floats])
    state, path = init(x), []
    for k in range(1, steps + 1):
        value, grad = value_and_grad(x)
        x, state = step(x, grad, state, k, value=value, value_and_grad=value_and_grad)
        path.append(x)
    return path


def _tree(dtype=jnp.float64):
    return {
        "a": jnp.array([-1.2, 1.0, 0.3], dtype),
        "b": {"c": jnp.full((2, 2), 0.7, dtype), "n": jnp.int32(3)},
        "d": jnp.asarray(-0.5, dtype),
    }


def _flat(params):
    return np.concatenate([np.ravel(v) for v in jax.tree.leaves(params) if v.dtype.kind == "f"])


@pytest.mark.float64
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"history_size": 2},
        {"learning_rate": 0.05, "line_search": None},
        {"learning_rate": lambda count: 0.1 / (1 + count), "line_search": None},
    ],
    ids=["defaults", "history_size=2", "fixed_step", "schedule"],
)
def test_pytree_matches_reference(kwargs):
    """A nested tree with a 0-d leaf and an integer leaf: the float leaves are one
    vector, in tree order; the integer leaf is carried along untouched."""
    params = _tree()
    run = _closed_loop(jopt.lbfgs(**kwargs), nested_rosenbrock, params, 12)
    expected = _reference_run(kwargs, params, 12)
    for k, ((_, ours, _), theirs) in enumerate(zip(run, expected, strict=True)):
        np.testing.assert_allclose(_flat(ours), theirs, rtol=RTOL, err_msg=f"step {k + 1}")
        assert int(ours["b"]["n"]) == 3 and ours["b"]["n"].dtype == jnp.int32


def test_float32():
    """64-bit types off, as users run: float32 throughout, close to the float64 path."""
    params = _tree(jnp.float32)
    run = _closed_loop(jopt.lbfgs(), nested_rosenbrock, params, 6)
    expected = _reference_run({}, params, 6, dtype=np.float32)
    for (value, ours, state), theirs in zip(run, expected, strict=True):
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(ours) if v.dtype.kind == "f")
        assert state.direction.dtype == jnp.float32 and value.dtype == jnp.float32
        np.testing.assert_allclose(_flat(ours), theirs, rtol=1e-4, atol=1e-5)


def test_fixed_step_needs_no_loss():
    """Without a line search ``update(grads, state)`` is enough, as for any optimizer."""
    optimizer = jopt.lbfgs(0.1, line_search=None)
    params = {"w": jnp.array([1.0, -2.0])}
    state = optimizer.init(params)
    updates, state = optimizer.update({"w": jnp.array([0.5, 0.5])}, state)
    # First iteration: t = min(1, 1/‖g‖₁)·η = 0.1 and d = −g.
    np.testing.assert_allclose(updates["w"], [-0.05, -0.05], rtol=1e-6)
    assert state.value is None and state.grad is None


def test_registered_with_the_specified_signature():
    assert jopt.optimizers.ALL["lbfgs"] is jopt.lbfgs
    assert jopt.optimizers.DEMO_LEARNING_RATES["lbfgs"] == 1.0
    signature = inspect.signature(jopt.lbfgs)
    defaults = {k: p.default for k, p in signature.parameters.items()}
    assert defaults == {
        "learning_rate": 1.0,
        "history_size": 100,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "line_search": "strong_wolfe",
    }
    kinds = [p.kind for p in signature.parameters.values()]
    assert kinds[1:] == [inspect.Parameter.KEYWORD_ONLY] * 4


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"history_size": 0}, ValueError, "history_size"),
        ({"history_size": 2.0}, TypeError, "history_size"),
        ({"tolerance_grad": -1e-7}, ValueError, "tolerance_grad"),
        ({"tolerance_change": "small"}, TypeError, "tolerance_change"),
        ({"line_search": "armijo"}, ValueError, "line_search"),
        ({"line_search": True}, TypeError, "line_search"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        jopt.lbfgs(**kwargs)


def test_positional_hyperparameters_are_refused():
    with pytest.raises(TypeError):
        jopt.lbfgs(1.0, 10)


@pytest.mark.parametrize("missing", ["params", "value", "value_fn"])
def test_line_search_names_what_it_needs(missing):
    params = {"w": jnp.array([1.0, 2.0])}
    optimizer = jopt.lbfgs()
    arguments = {"params": params, "value": jnp.float32(5.0), "value_fn": nested_rosenbrock}
    arguments[missing] = None
    with pytest.raises(ValueError, match=missing):
        optimizer.update(
            {"w": jnp.array([1.0, 1.0])},
            optimizer.init(params),
            arguments["params"],
            value=arguments["value"],
            value_fn=arguments["value_fn"],
        )


def test_mismatched_trees_and_states_are_named():
    optimizer = jopt.lbfgs(line_search=None)
    state = optimizer.init({"w": jnp.zeros(2)})
    with pytest.raises(ValueError, match="params"):
        optimizer.update({"w": jnp.zeros(2)}, state, {"v": jnp.zeros(2)})
    with pytest.raises(ValueError, match="trainable entries"):
        optimizer.update({"w": jnp.zeros(3)}, state)
    with pytest.raises(ValueError, match="LbfgsState"):
        optimizer.update({"w": jnp.zeros(2)}, jopt.sgd(0.1).init({"w": jnp.zeros(2)}))
    with pytest.raises(TypeError, match="complex"):
        optimizer.init({"w": jnp.zeros(2, jnp.complex64)})


@pytest.mark.float64
def test_state_keeps_the_loss_and_gradient_where_the_update_lands():
    params = _tree()
    (_, new_params, state), *_ = _closed_loop(jopt.lbfgs(), nested_rosenbrock, params, 1)
    value, grad = jax.value_and_grad(nested_rosenbrock, allow_int=True)(new_params)
    np.testing.assert_allclose(state.value, value, rtol=1e-12)
    assert state.grad["b"]["n"] is None
    np.testing.assert_allclose(_flat(state.grad), _flat(grad), rtol=1e-10, atol=1e-12)


def test_porting_guide_maps_torch_lbfgs():
    """Every argument of torch's constructor and every entry of its state (as the golden
    files recorded them) has a row in the guide's L-BFGS section, as every state field."""
    text = (Path(__file__).parent.parent / "docs" / "porting.md").read_text()
    section = text[text.index("## L-BFGS") :]
    record = load("strong_wolfe")
    names = [*record["torch_arguments"], *record["checkpoints"][0]["state"], "al"]
    names += list(LbfgsState._fields)
    missing = [name for name in names if f"`{name}`" not in section]
    assert not missing, missing


def _three_steps(optimizer, w):
    """The loss after three closed-loop updates from ``{"w": w, "none": None}``."""
    params = {"w": w, "none": None}
    state = optimizer.init(params)

    def loss(p):
        return jnp.sum(jnp.arange(1.0, 4.0) * (p["w"] - 1.0) ** 2 + 0.1 * p["w"] ** 4)

    for _ in range(3):
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = optimizer.update(grad, state, params, value=value, value_fn=loss)
        params = jopt.apply_updates(params, updates)
    assert params["none"] is None
    return loss(params)


@pytest.mark.float64
@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_vmap_runs_each_problem_alone(line_search):
    """Under vmap (the line search's loop runs until every member is done) each member
    follows its own path: the unbatched runs are the ones the goldens check."""
    optimizer = jopt.lbfgs(0.5, line_search=line_search)
    run = jax.jit(functools.partial(_three_steps, optimizer))
    starts = jnp.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [3.0, -1.0, 0.5]])
    batched = jax.jit(jax.vmap(run))(starts)
    alone = [run(w) for w in starts]
    np.testing.assert_allclose(batched, alone, rtol=1e-12)


@pytest.mark.float64
def test_gradient_through_fixed_step_updates():
    """Without a line search the update is differentiable (the two-loop recursion has a
    fixed trip count); checked against central differences."""
    optimizer = jopt.lbfgs(0.1, history_size=3, line_search=None)
    run = jax.jit(functools.partial(_three_steps, optimizer))
    w = jnp.array([0.3, -0.4, 2.0])
    grad = jax.jit(jax.grad(run))(w)
    h = 1e-6
    numeric = [(run(w.at[i].add(h)) - run(w.at[i].add(-h))) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)
