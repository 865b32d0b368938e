"""test_sharding.py's checks, run by ``python tests/sharding_checks.py --child`` with 8
CPU devices: it prints one JSON object, each check's name and "ok" or its traceback."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from references import REFERENCES
from support import extra_args

import jopt
from jopt.sharding import state_shardings, zero_shardings

ROOT = Path(__file__).resolve().parents[1]
N_DEVICES = 8

# Every registry entry in its main configuration (every option that adds state), and
# the cases that add scalar state: a schedule's count, injected hyperparameters.
OPTIMIZERS: dict[str, Callable[[], jopt.GradientTransformation]] = {
    **{
        name: functools.partial(jopt.optimizers.ALL[name], **reference.main)
        for name, reference in REFERENCES.items()
    },
    "adam_schedule": lambda: jopt.adam(lambda t: 1e-2 / (1.0 + t)),
    "adam_injected": lambda: jopt.inject_hyperparams(jopt.adam)(learning_rate=1e-2, b1=0.8),
}

CHECKS: dict[str, Callable[[], None]] = {}


def _check(name: str):
    return lambda fn: CHECKS.setdefault(name, fn)  # registers fn under name


def _auto_mesh(shape, names):
    types = (jax.sharding.AxisType.Auto,) * len(names)
    return jax.make_mesh(shape, names, axis_types=types)


def _put(value, mesh, spec):
    return jax.device_put(np.asarray(value), NamedSharding(mesh, spec))


def _mixed_params(mesh, rng):
    """Float32 params laid out in several ways over a ("data": 4, "model": 2) mesh."""

    def normal(*shape):
        return rng.normal(size=shape).astype(np.float32)

    return {
        "w": _put(normal(16, 8), mesh, P("data", "model")),
        "v": _put(normal(6, 8), mesh, P(None, "data")),
        "b": _put(normal(8), mesh, P("model")),
        "r": _put(normal(3), mesh, P()),
        "s": _put(normal(), mesh, P()),
        "step": _put(np.int32(3), mesh, P()),
        "none": None,
    }


def _per_param_leaves(state, params, vectors: bool = False):
    """(state leaf, its param) and the replicated leaves, found from the state's paths.

    Every per-parameter state tree of jopt is a dict keyed like ``params``; the last
    key of a leaf's path names its parameter.  Replicated: the 0-d leaves, and the
    per-axis matrices of ``matrix_state`` optimizers (SOAP's), a tuple at the
    parameter's key.
    """
    per_param, scalars = [], []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if vectors:  # one vector of all parameters (L-BFGS): no parameter's layout
            continue
        last = path[-1]
        if isinstance(last, jax.tree_util.DictKey) and last.key in params:
            per_param.append((jax.tree_util.keystr(path), leaf, params[last.key]))
        else:
            owner = path[-2] if len(path) > 1 else None
            matrix = (
                isinstance(last, jax.tree_util.SequenceKey)
                and isinstance(owner, jax.tree_util.DictKey)
                and owner.key in params
                and np.shape(leaf) == (params[owner.key].shape[last.idx],) * 2
            )
            assert np.ndim(leaf) == 0 or matrix, f"{jax.tree_util.keystr(path)}: unexpected leaf"
            scalars.append((jax.tree_util.keystr(path), leaf))
    # Plain SGD keeps no state at all; every other optimizer here keeps some per leaf.
    assert per_param or vectors or not jax.tree.leaves(state), "no per-parameter state found"
    return per_param, scalars


def _expected_spec(leaf_shape, param_spec, param_shape) -> P:
    """The documented layout of a state leaf: its parameter's spec, unsharded on the
    axes a reduced statistic (Adafactor's factors) keeps at size 1."""
    spec = list(param_spec) + [None] * (len(param_shape) - len(param_spec))
    kept = [e if n == m else None for e, n, m in zip(spec, leaf_shape, param_shape, strict=True)]
    while kept and kept[-1] is None:
        kept.pop()
    return P(*kept)


def _expected_sharding(leaf, param):
    if leaf.shape == param.shape:
        return param.sharding
    spec = _expected_spec(leaf.shape, param.sharding.spec, param.shape)
    return NamedSharding(param.sharding.mesh, spec)


def _same_type(leaf, param) -> bool:
    """``jax.typeof`` agrees: the parameter's, or for a reduced leaf its spec reduced."""
    if leaf.shape == param.shape:
        return jax.typeof(leaf) == jax.typeof(param)
    expected = _expected_spec(leaf.shape, jax.typeof(param).sharding.spec, param.shape)
    return (
        jax.typeof(leaf).dtype == param.dtype
        and _expected_spec(leaf.shape, jax.typeof(leaf).sharding.spec, leaf.shape) == expected
    )


def _grads_like(params, rng):
    return jax.tree.map(
        lambda p: (
            jax.device_put(rng.normal(size=p.shape).astype(p.dtype), p.sharding)
            if jnp.issubdtype(p.dtype, jnp.floating)
            else p
        ),
        params,
    )


def _make_keep_shardings_check(name: str):
    def check():
        rng = np.random.default_rng(0)
        mesh = _auto_mesh((4, 2), ("data", "model"))
        replicated = NamedSharding(mesh, P())
        params = _mixed_params(mesh, rng)
        optimizer = OPTIMIZERS[name]()
        extra = extra_args(name) if name in REFERENCES else {}
        # A state that is one vector of all parameters has no per-parameter layout to
        # check; its updates, its one compilation and state_shardings still are.
        vectors = name in REFERENCES and REFERENCES[name].vector_state

        # Eagerly: each state leaf has exactly its parameter's sharding.
        state = optimizer.init(params)
        per_param, scalars = _per_param_leaves(state, params, vectors)
        for path, leaf, param in per_param:
            expected = _expected_sharding(leaf, param)
            assert leaf.sharding == expected, (path, leaf.sharding, expected)
        for path, leaf in scalars:
            assert leaf.sharding == replicated, (path, leaf.sharding)

        # state_shardings predicts them, from arrays and from abstract params alike.
        expected = jax.tree.map(lambda x: x.sharding, state)
        assert state_shardings(optimizer, params) == expected
        abstract = jax.tree.map(
            lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=p.sharding), params
        )
        assert state_shardings(optimizer, abstract) == expected
        jitted = jax.jit(optimizer.init, out_shardings=expected)(params)
        assert jax.tree.map(lambda x: x.sharding, jitted) == expected

        # A jitted update keeps every layout and compiles once.
        traces = []

        def update(grads, state, params):
            traces.append(1)
            return optimizer.update(grads, state, params, **extra)

        update = jax.jit(update)
        for _ in range(3):
            updates, state = update(_grads_like(params, rng), state, params)
        assert len(traces) == 1, f"update traced {len(traces)} times"
        per_param, scalars = _per_param_leaves(state, params, vectors)
        for path, leaf, param in per_param:
            expected = _expected_sharding(leaf, param)
            assert leaf.sharding.is_equivalent_to(expected, param.ndim), (path, leaf.sharding)
        for path, leaf in scalars:
            assert leaf.sharding.is_fully_replicated, (path, leaf.sharding)
        for key, param in params.items():
            # A vector state's update is cut from one vector of all parameters: XLA
            # lays it out as it sees fit (correct values, possibly another layout).
            if param is not None and jnp.issubdtype(param.dtype, jnp.floating) and not vectors:
                assert updates[key].sharding.is_equivalent_to(param.sharding, param.ndim), key

        # With explicit axes the sharding is part of the type: compare jax.typeof.
        explicit = jax.make_mesh(
            (4, 2), ("data", "model"), axis_types=(jax.sharding.AxisType.Explicit,) * 2
        )
        params = _mixed_params(explicit, np.random.default_rng(1))
        state = optimizer.init(params)
        for path, leaf, param in _per_param_leaves(state, params, vectors)[0]:
            assert _same_type(leaf, param), (path, jax.typeof(leaf))
        with jax.set_mesh(explicit):
            jitted_state = jax.jit(optimizer.init)(params)
            _, new_state = jax.jit(functools.partial(optimizer.update, **extra))(
                _grads_like(params, rng), jitted_state, params
            )
        for tree in (jitted_state, new_state):
            per_param, scalars = _per_param_leaves(tree, params, vectors)
            for path, leaf, param in per_param:
                assert _same_type(leaf, param), (path, jax.typeof(leaf))
            for path, leaf in scalars:
                assert leaf.sharding.is_fully_replicated, (path, leaf.sharding)

    return check


for _name in OPTIMIZERS:
    CHECKS[f"keep_shardings:{_name}"] = _make_keep_shardings_check(_name)


# --- ZeRO data parallelism against one device ----------------------------------------


def _teacher_problem(rng):
    """A 16 -> 32 -> 8 tanh MLP regressing a random teacher; every dimension divides 8."""
    sizes = [(16, 32), (32, 8)]
    params = {}
    for i, (fan_in, fan_out) in enumerate(sizes):
        params[f"l{i}"] = {
            "w": (rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32),
            "b": (0.1 * rng.normal(size=fan_out)).astype(np.float32),
        }
    x = rng.normal(size=(20, 256, 16)).astype(np.float32)
    teacher = rng.normal(size=(16, 8)).astype(np.float32) / 4.0
    y = np.tanh(x @ teacher).astype(np.float32)
    return params, x, y


def _mlp_loss(params, x, y):
    h = jnp.tanh(x @ params["l0"]["w"] + params["l0"]["b"])
    return jnp.mean((h @ params["l1"]["w"] + params["l1"]["b"] - y) ** 2)


def _train(optimizer, params, xs, ys, *, mesh=None, traces=None):
    """20 steps; ZeRO-sharded over mesh "data" when ``mesh`` is given, else one device."""
    if mesh is None:
        device = jax.devices()[0]
        params = jax.device_put(params, device)
        state = optimizer.init(params)
        step_kwargs = {}
    else:
        replicated = NamedSharding(mesh, P())
        params_sh = jax.tree.map(lambda _: replicated, params)
        state_sh, report = zero_shardings(optimizer, params, mesh)
        params = jax.device_put(params, params_sh)
        state = jax.jit(optimizer.init, out_shardings=state_sh)(params)
        batch_sh = NamedSharding(mesh, P("data"))
        xs = [jax.device_put(x, batch_sh) for x in xs]
        ys = [jax.device_put(y, batch_sh) for y in ys]
        step_kwargs = {
            "in_shardings": (params_sh, state_sh, batch_sh, batch_sh),
            "out_shardings": (params_sh, state_sh, replicated),
        }

    def step(params, state, x, y):
        if traces is not None:
            traces.append(1)
        loss, grads = jax.value_and_grad(_mlp_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    step = jax.jit(step, donate_argnums=(0, 1), **step_kwargs)
    losses = []
    for x, y in zip(xs, ys, strict=True):
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    return params, state, losses, step


def _train_optax(params, xs, ys):
    import optax

    optimizer = optax.adam(1e-2)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(_mlp_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for x, y in zip(xs, ys, strict=True):
        params, state = step(params, state, x, y)
    return params


_ZERO_RUN: dict = {}


def _zero_run():
    """The ZeRO run and its references, computed once for the checks that need them."""
    if not _ZERO_RUN:
        params, x, y = _teacher_problem(np.random.default_rng(2))
        mesh = _auto_mesh((N_DEVICES,), ("data",))
        traces: list[int] = []
        zero = _train(jopt.adam(1e-2), params, x, y, mesh=mesh, traces=traces)
        single = _train(jopt.adam(1e-2), params, x, y)
        reference = _train_optax(params, x, y)
        _ZERO_RUN.update(
            mesh=mesh, params=params, zero=zero, single=single, traces=traces, optax=reference
        )
    return _ZERO_RUN


def _max_difference(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@_check("zero_equals_single_device")
def _check_zero_equals_single_device():
    run = _zero_run()
    zero_params, zero_state, zero_losses, _ = run["zero"]
    single_params, single_state, single_losses, _ = run["single"]
    assert zero_losses[-1] < 0.5 * zero_losses[0], zero_losses
    # Float32 rounding: the batch mean is summed in another order on 8 devices, and
    # 20 Adam steps of size ~1e-2 carry that difference of a few ulps along.
    np.testing.assert_allclose(zero_losses, single_losses, rtol=1e-5)
    for tree_a, tree_b in ((zero_params, single_params), (zero_params, run["optax"])):
        difference = _max_difference(tree_a, tree_b)
        assert difference < 1e-6, f"max |params difference| = {difference}"
    for name in ("mu", "nu"):
        a, b = jopt.tree_get(zero_state, name), jopt.tree_get(single_state, name)
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=1e-7)


@_check("moment_bytes_split_eight_ways")
def _check_moment_bytes():
    run = _zero_run()
    _, state, _, _ = run["zero"]
    moments = [jopt.tree_get(state, "mu"), jopt.tree_get(state, "nu")]
    total = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(moments))
    per_device: dict = {}
    for leaf in jax.tree.leaves(moments):
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    assert len(per_device) == N_DEVICES, per_device
    for device, nbytes in per_device.items():
        assert nbytes * N_DEVICES == total, (device, nbytes, total)
    # The report's own figure agrees with what the devices hold (moments + the count).
    _, report = zero_shardings(jopt.adam(1e-2), run["params"], run["mesh"])
    assert report.device_nbytes == total // N_DEVICES + 4, (report.device_nbytes, total)
    assert [leaf.path for leaf in report.replicated] == ["[0].count"], report


@_check("zero_step_compiles_once")
def _check_compiles_once():
    run = _zero_run()
    _, _, losses, step = run["zero"]
    assert len(losses) == 20
    assert len(run["traces"]) == 1, f"step traced {len(run['traces'])} times"
    assert step._cache_size() == 1, step._cache_size()


# --- indivisible shapes, several mesh axes ---------------------------------------------


@_check("indivisible_shapes_reported")
def _check_indivisible():
    rng = np.random.default_rng(3)
    mesh = _auto_mesh((N_DEVICES,), ("data",))
    shapes = {"a": (3, 5), "b": (7,), "c": (12, 10), "d": (10, 16), "e": (), "f": (16, 3)}
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    params["count"] = np.int32(0)  # an integer leaf: no state at all
    optimizer = jopt.adam(1e-2)
    shardings, report = zero_shardings(optimizer, params, mesh)

    expected_dim = {"a": None, "b": None, "c": None, "d": 1, "e": None, "f": 0}
    by_path = {leaf.path: leaf for leaf in report.leaves}
    for field in ("mu", "nu"):
        for key, dim in expected_dim.items():
            leaf = by_path[f"[0].{field}['{key}']"]
            assert leaf.dim == dim, (leaf.path, leaf.dim)
            if dim is None:
                assert leaf.spec == P() and leaf.reason, leaf
                assert ("scalar" if key == "e" else "divisible") in leaf.reason, leaf.reason
            else:
                assert leaf.reason is None and leaf.spec[dim] == "data", leaf
        assert f"[0].{field}['count']" not in by_path
    assert "[0].mu['c']" in str(report) and "divisible" in str(report)
    assert shardings[0].mu["count"] is None

    # The shardings run: three jitted steps equal optax on one device.
    import optax

    state = jax.jit(optimizer.init, out_shardings=shardings)(params)
    assert state[0].mu["d"].sharding.spec == P(None, "data")
    update = jax.jit(optimizer.update, out_shardings=(None, shardings))
    reference = optax.adam(1e-2)
    ref_state = reference.init({k: v for k, v in params.items() if k != "count"})
    for _ in range(3):
        grads = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
        grads["count"] = np.int32(0)
        updates, state = update(grads, state, params)
        ref_updates, ref_state = reference.update(
            {k: v for k, v in grads.items() if k != "count"}, ref_state
        )
        for key in shapes:
            np.testing.assert_allclose(
                np.asarray(updates[key]), np.asarray(ref_updates[key]), rtol=1e-5, atol=1e-7
            )


def _ways(mesh, entry) -> int:
    """Into how many blocks a PartitionSpec entry cuts a dimension."""
    axes = () if entry is None else (entry,) if isinstance(entry, str) else entry
    return int(np.prod([mesh.shape[axis] for axis in axes]))


@_check("zero_on_two_axes")
def _check_two_axes():
    mesh = _auto_mesh((4, 2), ("data", "model"))
    rng = np.random.default_rng(4)
    layouts = {
        "w": ((16, 8), P(None, "model")),  # gains "data" on its free first dimension
        "fsdp": ((8, 6), P("data")),  # already split over "data": kept
        "m": ((8,), P("model")),  # only dimension taken: combined ("model", "data")
        "odd": ((6,), P("model")),  # 6 is not divisible by 2 * 4: stays as it is
        "rep": ((5, 4), P()),  # 4 divisible by 4 on its second dimension
    }
    params = {
        key: _put(rng.normal(size=shape).astype(np.float32), mesh, spec)
        for key, (shape, spec) in layouts.items()
    }
    shardings, report = zero_shardings(jopt.momentum(0.1), params, mesh)
    expected = {
        "w": (P("data", "model"), 0),
        "fsdp": (P("data"), 0),
        "m": (P(("model", "data")), 0),
        "odd": (P("model"), None),
        "rep": (P(None, "data"), 1),
    }
    traces = shardings[0].trace
    for key, (spec, dim) in expected.items():
        assert traces[key] == NamedSharding(mesh, spec), (key, traces[key].spec)
        assert report.param_shardings[key] == NamedSharding(mesh, spec), key
        leaf = next(leaf for leaf in report.leaves if leaf.path == f"[0].trace['{key}']")
        assert leaf.dim == dim, (key, leaf.dim)
        # The spec may be shorter than the shape: its missing entries are None.
        block = [
            size // _ways(mesh, entry)
            for size, entry in zip(layouts[key][0], [*spec, None, None], strict=False)
        ]
        assert leaf.device_nbytes == int(np.prod(block)) * 4, (key, leaf.device_nbytes)
    state = jax.jit(jopt.momentum(0.1).init, out_shardings=shardings)(params)
    assert state[0].trace["m"].addressable_shards[0].data.shape == (1,)


@_check("example_runs")
def _check_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "data_parallel", ROOT / "examples" / "data_parallel.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main(["--steps", "6", "--json"])
    assert summary["devices"] == N_DEVICES and summary["process_count"] == 1
    for variant in ("jit", "shard_map"):
        losses = summary["variants"][variant]["losses"]
        assert len(losses) == 6 and losses[-1] < losses[0], (variant, losses)
    # Adam's two moments of a 64-128-10 MLP: the 10 output biases cannot be split
    # over 8 devices, everything else is.
    split = 64 * 128 + 128 + 128 * 10
    assert summary["moment_bytes"] == {i: 2 * (split // 8 + 10) * 4 for i in range(8)}, summary
    assert summary["max_param_difference"] < 1e-5, summary
    assert sorted(summary["state_replicated"]) == sorted(
        ["[0].count", "[0].mu['layer1']['b']", "[0].nu['layer1']['b']"]
    ), summary


def _run_child() -> None:
    assert jax.device_count() == N_DEVICES, jax.devices()
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception:  # reported to the parent, which fails that test
            results[name] = traceback.format_exc()
    print(json.dumps(results))


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    _run_child()
