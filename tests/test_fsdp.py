"""Fully sharded data parallelism (jopt.sharding.fsdp_shardings) on 8 simulated CPU devices.

The layouts and the report's byte counts need no devices: they are checked here on
an 8-device ``AbstractMesh`` against the documented rule, written out by hand.  The
training checks need 8 devices, which this process (one CPU device, fixed at start)
cannot have: they run in one child process, this file run as a script, and each
reports "ok" or its traceback to one pytest test, as in test_sharding.

References: the FSDP run is compared with optax's Adam on one device (independent
of jopt) and with jopt's Adam on one device; the bytes the devices hold are read
from the arrays' shards, not from the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractMesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jopt
from jopt.sharding import fsdp_shardings, offloaded

ROOT = Path(__file__).resolve().parents[1]
N_DEVICES = 8
MIN_SIZE = 256
STEPS = 20


def _problem(rng):
    """A 32 -> 64 -> 16 tanh MLP with a trainable output scale, and 20 batches of 64."""
    params = {
        "l0": {
            "w": (rng.normal(size=(32, 64)) / np.sqrt(32)).astype(np.float32),
            "b": (0.1 * rng.normal(size=64)).astype(np.float32),
        },
        "l1": {
            "w": (rng.normal(size=(64, 16)) / 8.0).astype(np.float32),
            "b": np.zeros(16, np.float32),
        },
        "scale": np.float32(1.0),
    }
    x = rng.normal(size=(STEPS, 64, 32)).astype(np.float32)
    y = np.tanh(x @ (rng.normal(size=(32, 16)) / 6.0)).astype(np.float32)
    return params, x, y


def _loss(params, x, y):
    h = jnp.tanh(x @ params["l0"]["w"] + params["l0"]["b"])
    out = params["scale"] * (h @ params["l1"]["w"] + params["l1"]["b"])
    return jnp.mean((out - y) ** 2)


# The layout the rule gives this problem with min_size=256 on 8 devices: the two
# weights split on their first dimension; the biases (64 and 16 elements) and the
# scale stay whole.
_EXPECTED = {
    "['l0']['w']": (P("data"), 0),
    "['l0']['b']": (P(), None),
    "['l1']['w']": (P("data"), 0),
    "['l1']['b']": (P(), None),
    "['scale']": (P(), None),
}


# --- without devices: layouts and the report ------------------------------------------


@pytest.fixture
def abstract_mesh():
    return AbstractMesh((N_DEVICES,), ("data",))


def test_layout_follows_the_rule(abstract_mesh):
    params, _, _ = _problem(np.random.default_rng(0))
    params_sh, state_sh, report = fsdp_shardings(
        jopt.adam(1e-2), params, abstract_mesh, min_size=MIN_SIZE
    )
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params_sh)}
    assert {k: s.spec for k, s in flat.items()} == {k: v[0] for k, v in _EXPECTED.items()}
    adam = state_sh[0]
    for moment in (adam.mu, adam.nu):
        assert moment == params_sh, "each moment must follow its parameter"
    assert adam.count.spec == P()
    by_path = {leaf.path: leaf for leaf in report.leaves}
    for path, (_, dim) in _EXPECTED.items():
        for prefix in ("params", "state[0].mu", "state[0].nu"):
            assert by_path[prefix + path].dim == dim, prefix + path
    reasons = {leaf.path: leaf.reason for leaf in report.replicated}
    assert reasons["params['l0']['b']"] == "64 elements, fewer than min_size=256"
    assert reasons["params['scale']"] == "a scalar"
    assert reasons["state[0].count"] == "a scalar"
    assert "params['l1']['b']" in str(report) and "min_size=256" in str(report)


def test_report_bytes_are_an_eighth_plus_the_replicated(abstract_mesh):
    params, _, _ = _problem(np.random.default_rng(0))
    _, _, report = fsdp_shardings(jopt.adam(1e-2), params, abstract_mesh, min_size=MIN_SIZE)
    # Written out: weights 32*64 + 64*16 floats split, biases 64 + 16 and the scale
    # whole; params, mu and nu alike, plus Adam's int32 count.
    split = (32 * 64 + 64 * 16) * 4
    whole = (64 + 16 + 1) * 4
    assert report.nbytes == 3 * (split + whole) + 4
    assert report.device_nbytes == 3 * (split // N_DEVICES + whole) + 4
    assert sum(leaf.nbytes for leaf in report.replicated) == 3 * whole + 4


def test_min_size_zero_splits_every_divisible_leaf(abstract_mesh):
    params, _, _ = _problem(np.random.default_rng(0))
    params_sh, _, report = fsdp_shardings(jopt.sgd(1e-2), params, abstract_mesh, min_size=0)
    assert params_sh["l0"]["b"].spec == P("data") and params_sh["l1"]["b"].spec == P("data")
    assert [leaf.path for leaf in report.replicated] == ["params['scale']"]


def test_other_mesh_axes_are_kept():
    mesh = AbstractMesh((4, 2), ("data", "model"))
    by_model = NamedSharding(mesh, P(None, "model"))
    abstract = {
        "w": jax.ShapeDtypeStruct((16, 8), jnp.float32, sharding=by_model),
        "v": jax.ShapeDtypeStruct((6, 8), jnp.float32, sharding=by_model),
        "u": jax.ShapeDtypeStruct((6, 4), jnp.float32, sharding=by_model),
    }
    params_sh, state_sh, report = fsdp_shardings(jopt.momentum(0.1), abstract, mesh, min_size=0)
    assert params_sh["w"].spec == P("data", "model")
    # 6 rows do not divide over 4 devices: the columns, already split 2 ways, split 8.
    assert params_sh["v"].spec == P(None, ("model", "data"))
    assert params_sh["u"].spec == P(None, "model")  # 4 columns do not divide 8 ways
    assert "no dimension of shape (6, 4) is divisible by 'data' size 4" in str(report)
    assert state_sh[0].trace == params_sh
    assert report.axis_size == 4


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"axis": "batch"}, ValueError, r"axis='batch' is not an axis of the mesh"),
        ({"axis": 0}, TypeError, r"axis must be a mesh axis name"),
        ({"min_size": -1}, ValueError, r"min_size must be an integer >= 0, got -1"),
        ({"offload": 1}, TypeError, r"offload must be a bool"),
        ({"offload": True}, ValueError, r"cannot offload the state: .*AbstractMesh"),
    ],
)
def test_bad_arguments_are_named(abstract_mesh, kwargs, error, match):
    with pytest.raises(error, match=match):
        fsdp_shardings(jopt.adam(1e-2), {"w": np.ones((8, 8))}, abstract_mesh, **kwargs)


def test_mesh_and_optimizer_are_checked(abstract_mesh):
    with pytest.raises(TypeError, match=r"mesh must be a jax.sharding.Mesh, got str 'data'"):
        fsdp_shardings(jopt.adam(1e-2), {"w": np.ones(8)}, "data")
    with pytest.raises(TypeError, match=r"optimizer must be a GradientTransformation"):
        fsdp_shardings(object(), {"w": np.ones(8)}, abstract_mesh)
    with pytest.raises(TypeError, match=r"positional argument"):  # axis is keyword-only
        fsdp_shardings(jopt.adam(1e-2), {"w": np.ones(8)}, abstract_mesh, "data")


# --- with 8 devices: the child ------------------------------------------------------------

CHECKS: dict[str, Callable[[], None]] = {}
_RUNS: dict = {}


def _check(fn):
    CHECKS[fn.__name__.removeprefix("_check_")] = fn
    return fn


def _train(optimizer, params, xs, ys, *, mesh=None, offload=False):
    """20 Adam steps, FSDP over ``mesh`` or on one device; params, state, losses, step."""
    traces = []
    if mesh is None:
        params = jax.device_put(params, jax.devices()[0])
        state = optimizer.init(params)
        jit = jax.jit
    else:
        params_sh, state_sh, _ = fsdp_shardings(
            optimizer, params, mesh, min_size=MIN_SIZE, offload=offload
        )
        optimizer = offloaded(optimizer) if offload else optimizer
        batch_sh, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
        params = jax.device_put(params, params_sh)
        state = jax.jit(optimizer.init, out_shardings=state_sh)(params)
        xs = [jax.device_put(x, batch_sh) for x in xs]
        ys = [jax.device_put(y, batch_sh) for y in ys]
        jit = partial(
            jax.jit,
            in_shardings=(params_sh, state_sh, batch_sh, batch_sh),
            out_shardings=(params_sh, state_sh, replicated),
        )

    @partial(jit, donate_argnums=(0, 1))
    def step(params, state, x, y):
        traces.append(1)
        loss, grads = jax.value_and_grad(_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    losses = []
    for x, y in zip(xs, ys, strict=True):
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    return {"params": params, "state": state, "losses": losses, "step": step, "traces": traces}


def _runs():
    if not _RUNS:
        params, x, y = _problem(np.random.default_rng(1))
        mesh = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        _RUNS.update(
            mesh=mesh,
            data=(params, x, y),
            fsdp=_train(jopt.adam(1e-2), params, x, y, mesh=mesh),
            single=_train(jopt.adam(1e-2), params, x, y),
        )
    return _RUNS


def _optax_params(params, xs, ys):
    import optax

    optimizer = optax.adam(1e-2)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, x, y):
        updates, state = optimizer.update(jax.grad(_loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    for x, y in zip(xs, ys, strict=True):
        params, state = step(params, state, x, y)
    return params


def _max_difference(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@_check
def _check_equals_one_device():
    runs = _runs()
    fsdp, single = runs["fsdp"], runs["single"]
    assert fsdp["losses"][-1] < 0.5 * fsdp["losses"][0], fsdp["losses"]
    # Float32: the batch mean and the gathered matmuls sum in another order on 8 devices.
    np.testing.assert_allclose(fsdp["losses"], single["losses"], rtol=1e-5)
    reference = _optax_params(*runs["data"])
    for other in (single["params"], reference):
        difference = _max_difference(fsdp["params"], other)
        assert difference < 1e-6, f"max |params difference| = {difference}"


@_check
def _check_devices_hold_an_eighth():
    runs = _runs()
    held: dict = {}
    trees = (runs["fsdp"]["params"], runs["fsdp"]["state"])
    for leaf in jax.tree.leaves(trees):
        for shard in leaf.addressable_shards:
            held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
    total = sum(leaf.nbytes for leaf in jax.tree.leaves(trees))
    _, _, report = fsdp_shardings(jopt.adam(1e-2), runs["data"][0], runs["mesh"], min_size=MIN_SIZE)
    replicated = sum(leaf.nbytes for leaf in report.replicated)
    assert len(held) == N_DEVICES
    for device, nbytes in held.items():
        assert nbytes * N_DEVICES == total - replicated + N_DEVICES * replicated, (device, nbytes)
        assert nbytes == report.device_nbytes, (nbytes, report.device_nbytes)
    # The params keep their FSDP layout through the steps.
    for key in ("l0", "l1"):
        assert runs["fsdp"]["params"][key]["w"].sharding.spec == P("data"), key


@_check
def _check_compiles_once_with_gathers():
    runs = _runs()
    fsdp = runs["fsdp"]
    assert len(fsdp["traces"]) == 1, f"step traced {len(fsdp['traces'])} times"
    assert fsdp["step"]._cache_size() == 1
    _, x, y = runs["data"]
    # XLA's partitioned program: the split weights are gathered where they are used.
    compiled = fsdp["step"].lower(fsdp["params"], fsdp["state"], x[0], y[0]).compile()
    assert "all-gather" in compiled.as_text(), "no gather of the split params"


@_check
def _check_offloaded_state():
    runs = _runs()
    params, x, y = runs["data"]
    try:
        fsdp_shardings(jopt.adam(1e-2), params, runs["mesh"], offload=True)
    except ValueError as error:
        raise _Skip(str(error)) from None
    steps = 3
    on_host = _train(jopt.adam(1e-2), params, x[:steps], y[:steps], mesh=runs["mesh"], offload=True)
    on_device = _train(jopt.adam(1e-2), params, x[:steps], y[:steps], mesh=runs["mesh"])
    kinds = {leaf.sharding.memory_kind for leaf in jax.tree.leaves(on_host["state"])}
    assert kinds == {"pinned_host"}, kinds
    assert {leaf.sharding.memory_kind for leaf in jax.tree.leaves(on_host["params"])} == {"device"}
    assert on_host["losses"] == on_device["losses"]
    for a, b in zip(
        jax.tree.leaves((on_host["params"], on_host["state"])),
        jax.tree.leaves((on_device["params"], on_device["state"])),
        strict=True,
    ):
        assert np.array_equal(np.asarray(a), np.asarray(b)), "offloading changed a value"


class _Skip(Exception):
    """The backend cannot run the check; the message says why."""


def _run_child() -> None:
    assert jax.device_count() == N_DEVICES, jax.devices()
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except _Skip as reason:
            results[name] = f"skip: {reason}"
        except Exception:  # reported to the parent, which fails that test
            results[name] = traceback.format_exc()
    print(json.dumps(results))


@pytest.fixture(scope="module")
def child_results() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expect(results: dict, name: str) -> None:
    assert name in results, f"check {name} did not run"
    if results[name].startswith("skip: "):
        pytest.skip(results[name].removeprefix("skip: "))
    assert results[name] == "ok", results[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["equals_one_device", "devices_hold_an_eighth"])
def test_fsdp_training(child_results, name):
    _expect(child_results, name)


@pytest.mark.slow
def test_fsdp_step_compiles_once_and_gathers(child_results):
    _expect(child_results, "compiles_once_with_gathers")


@pytest.mark.slow
def test_offloaded_state_lives_on_the_host(child_results):
    _expect(child_results, "offloaded_state")


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    from jopt.sharding import launch

    launch.initialize(cpu_devices=N_DEVICES)
    _run_child()
