"""Muon and SOAP on split matrices: each whole matrix computed once, on an owner device.

``jopt.muon(mesh=...)`` and ``jopt.soap(mesh=...)`` hand every matrix's
Newton–Schulz iteration or eigenvector work to ``jopt.sharding.owner_map``, which
stacks the matrices of one shape, splits the stack over the mesh axis and splits
each result again.  Checked here, with the params and state split by
``fsdp_shardings`` over an 8-device mesh:

* a few steps equal the same optimizer on one device to 1e-6 relative (the one-device
  optimizers are proven against torch and NumPy references in test_muon and
  test_soap), and equal the FSDP run without ``mesh=`` (where XLA places the work);
* in the compiled step, the iteration's products and the eigendecompositions run on
  per-device stacks of ``k / 8`` whole matrices, never on all ``k``;
* no device holds the whole model: the update step gathers nothing (all-to-alls move
  the matrices), its largest per-device buffer is smaller than the params, and all
  its per-device temporaries together less than half the params and state;
* SOAP's owners also work on a mesh of ``Explicit`` axes;
* ``owner_map`` itself equals the plain loop, a one-device mesh changes neither
  optimizer, and bad arguments are named.

The 8-device checks run in one child process (this file with ``--child``: this
process has one CPU device), and the training once more in two processes of four
devices each through ``jopt.sharding.launch`` (``--launched``); the parent computes
the one-device references.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jopt
from jopt.sharding import fsdp_shardings, launch, owner_map

ROOT = Path(__file__).resolve().parents[1]
N_DEVICES = 8
LAYERS = 16  # Muon's stacked hidden layers: 2 matrices per device
SQUARE = 8  # SOAP's square layers: one per device
TIMEOUT_S = 240


# --- the problems ---------------------------------------------------------------------


def muon_problem():
    """An MLP 32 -> 64 -> 16 x (64 -> 64, scanned) -> 16, and 4 batches of 64."""
    rng = np.random.default_rng(0)
    params = {
        "in": (rng.normal(size=(32, 64)) / np.sqrt(32)).astype(np.float32),
        "hidden": (rng.normal(size=(LAYERS, 64, 64)) / 8.0).astype(np.float32),
        "hidden_b": np.zeros((LAYERS, 64), np.float32),
        "out": (rng.normal(size=(64, 16)) / 8.0).astype(np.float32),
    }
    x = rng.normal(size=(4, 64, 32)).astype(np.float32)
    y = np.tanh(x @ (rng.normal(size=(32, 16)) / 6.0)).astype(np.float32)
    return params, x, y


def muon_loss(params, x, y):
    def layer(h, wb):
        return jnp.tanh(h @ wb[0] + wb[1]), None

    h, _ = jax.lax.scan(layer, jnp.tanh(x @ params["in"]), (params["hidden"], params["hidden_b"]))
    return jnp.mean((h @ params["out"] - y) ** 2)


def soap_problem():
    """8 square 32 x 32 tanh layers, and 5 batches of 64 (every statistic full rank:
    a rank-deficient one has no unique eigenbasis, and rounding would pick another)."""
    rng = np.random.default_rng(1)
    params = {f"w{i}": (rng.normal(size=(32, 32)) / np.sqrt(32)) for i in range(SQUARE)}
    params["b"] = np.zeros(32)
    x = rng.normal(size=(5, 64, 32))
    y = np.tanh(x @ (rng.normal(size=(32, 32)) / 6.0))
    return params, x, y


def soap_loss(params, x, y):
    h = x
    for i in range(SQUARE):
        h = jnp.tanh(h @ params[f"w{i}"])
    return jnp.mean((h + params["b"] - y) ** 2)


STACK_AXES = {"in": 0, "hidden": 1, "hidden_b": 1, "out": 0}


def make(name: str, mesh=None):
    """The optimizer under test; ``mesh`` turns on the owner devices."""
    owner = {} if mesh is None else {"mesh": mesh, "axis": "data"}
    if name == "muon":
        return jopt.muon(0.02, stack_axes=STACK_AXES, **owner)
    # precondition_frequency=2: an eigendecomposition and two refreshes in 5 steps
    return jopt.soap(3e-3, precondition_frequency=2, **owner)


PROBLEMS = {"muon": (muon_problem, muon_loss), "soap": (soap_problem, soap_loss)}


def _put(value, sharding):
    """A global array from the same host value in every process."""
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def train(name: str, mesh=None, owned: bool = True):
    """The problem's steps: one device when ``mesh`` is None, else FSDP over ``mesh``."""
    problem, loss = PROBLEMS[name]
    params, xs, ys = problem()
    optimizer = make(name, mesh if owned else None)
    if mesh is None:
        state, jit = optimizer.init(params), jax.jit
    else:
        params_sh, state_sh, _ = fsdp_shardings(optimizer, params, mesh, min_size=256)
        batch, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
        params = jax.tree.map(_put, params, params_sh)
        state = jax.jit(optimizer.init, out_shardings=state_sh)(params)
        xs, ys = [_put(x, batch) for x in xs], [_put(y, batch) for y in ys]
        jit = partial(
            jax.jit,
            in_shardings=(params_sh, state_sh, batch, batch),
            out_shardings=(params_sh, state_sh, replicated),
        )

    @jit
    def step(params, state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, value

    losses = []
    for x, y in zip(xs, ys, strict=True):
        params, state, value = step(params, state, x, y)
        losses.append(float(value))
    return {"params": params, "state": state, "losses": losses, "step": step, "x": xs, "y": ys}


def gathered(tree, mesh) -> dict:
    """The params as nested lists, gathered from every process."""
    whole = jax.jit(lambda t: t, out_shardings=NamedSharding(mesh, P()))(tree)
    return jax.tree.map(lambda a: np.asarray(a).tolist(), whole)


def assert_close(a, b, rtol: float = 1e-6) -> None:
    """Every leaf within ``rtol`` of the reference, relative to the reference's norm."""
    for path, u, v in zip(
        [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(b)],
        jax.tree.leaves(a),
        jax.tree.leaves(b),
        strict=True,
    ):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        error = np.linalg.norm(u - v) / max(np.linalg.norm(v), 1e-30)
        assert error <= rtol, f"{path}: relative difference {error:.3g} > {rtol}"


# --- in this process: owner_map on one device, and its arguments -------------------------


def test_owner_map_equals_the_loop_on_a_one_device_mesh():
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(2)
    items = [rng.normal(size=s).astype(np.float32) for s in [(4, 3), (2, 5), (4, 3), (4, 3)]]
    pairs = [(m, m.T @ m) for m in items]
    found = jax.jit(lambda ps: owner_map(lambda p: (p[0] @ p[1], p[1].sum()), ps, mesh))(pairs)
    for (m, g), (product, total) in zip(pairs, found, strict=True):
        np.testing.assert_allclose(product, m.astype(np.float64) @ g, rtol=1e-5)
        np.testing.assert_allclose(total, g.astype(np.float64).sum(), rtol=1e-5)


@pytest.mark.parametrize("name", ["muon", "soap"])
def test_a_one_device_mesh_changes_nothing(name):
    # Every matrix owned by this process's one device: the values of the optimizer
    # without a mesh (proven against references in test_muon and test_soap).
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(3)
    params = {"w": rng.normal(size=(6, 4)), "v": rng.normal(size=(2, 4, 4)), "b": np.ones(4)}
    params = jax.tree.map(lambda p: p.astype(np.float32), params)
    kwargs = {"stack_axes": {"w": 0, "v": 1, "b": 0}} if name == "muon" else {}
    factory = jopt.muon if name == "muon" else jopt.soap
    plain, owned = factory(1e-2, **kwargs), factory(1e-2, mesh=mesh, **kwargs)
    steps = [jax.jit(plain.update), jax.jit(owned.update)]
    states = [plain.init(params), owned.init(params)]
    for k in range(3):  # SOAP: the eigendecomposition, then Adam in the basis
        grads = jax.tree.map(lambda p, k=k: np.sin(p * (k + 1)), params)
        (u, states[0]), (v, states[1]) = (
            step(grads, state, params) for step, state in zip(steps, states, strict=True)
        )
        assert_close(v, u, rtol=1e-6)


def test_owner_map_and_the_optimizers_name_bad_arguments():
    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(ValueError, match=r"owner_map: axis='model' is not an axis of the mesh"):
        owner_map(jnp.sum, [np.ones(2)], mesh, axis="model")
    with pytest.raises(TypeError, match=r"fn must be callable"):
        owner_map(3, [np.ones(2)], mesh)
    with pytest.raises(TypeError, match=r"items must be a list"):
        owner_map(jnp.sum, np.ones(2), mesh)
    with pytest.raises(TypeError, match=r"mesh must be a jax.sharding.Mesh"):
        jopt.muon(mesh="data")
    with pytest.raises(ValueError, match=r"scale_by_soap: axis='x' is not an axis"):
        jopt.soap(mesh=mesh, axis="x")
    with pytest.raises(TypeError, match=r"axis must be a mesh axis name"):
        jopt.scale_by_newton_schulz(axis=0)


# --- 8 devices: the child --------------------------------------------------------------


def _child_checks() -> dict:
    mesh = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    checks = {}
    for name in PROBLEMS:
        owned = train(name, mesh)
        checks[f"{name}_values"] = partial(_check_values, name, mesh, owned)
        checks[f"{name}_placement"] = partial(_check_placement, name, mesh, owned)
    checks["soap_explicit"] = _check_explicit
    results = {}
    for key, check in checks.items():
        try:
            check()
            results[key] = "ok"
        except Exception:  # reported to the parent, which fails that test
            results[key] = traceback.format_exc()
    return results


def _check_values(name, mesh, owned):
    single = train(name)
    left_to_xla = train(name, mesh, owned=False)
    assert owned["losses"][-1] < owned["losses"][0], owned["losses"]
    assert_close(owned["params"], single["params"])
    assert_close(owned["params"], left_to_xla["params"])
    for leaf in jax.tree.leaves(owned["params"]):  # the params keep their FSDP layout
        assert leaf.sharding.spec in (P("data"), P()), leaf.sharding


def _check_explicit():
    """On a mesh of ``Explicit`` axes (JAX's default), where layouts are part of the types."""
    mesh = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
    with jax.set_mesh(mesh):
        owned = train("soap", mesh)
    assert_close(owned["params"], train("soap")["params"])


_SHAPE = r"((?:f32|f64)\[[\d,]*\])"
_DOT = re.compile(_SHAPE + r"\{[^}]*\} dot\(")
_SOLVER = re.compile(r"= \(?" + _SHAPE + r"[^\n]*custom_call_target=\"lapack_[sd](?:syevd|geqrf)")
_GATHER = re.compile(r"all-gather\(")


def _nbytes(shape: str) -> int:
    dims = [int(d) for d in shape[4:-1].split(",") if d]
    return int(np.prod(dims)) * (4 if shape.startswith("f32") else 8)


def _check_placement(name, mesh, owned):
    """The update step alone, compiled for FSDP params and state: its per-device program."""
    optimizer = make(name, mesh)
    params_sh, state_sh, _ = fsdp_shardings(optimizer, owned["params"], mesh, min_size=256)
    update = jax.jit(optimizer.update, in_shardings=(params_sh, state_sh, params_sh))
    compiled = update.lower(owned["params"], owned["state"], owned["params"]).compile()
    text = compiled.as_text()
    if name == "muon":  # 16 hidden matrices of 64 x 64: 2 per device, each whole
        shapes = set(_DOT.findall(text))
        assert "f32[2,64,64]" in shapes, sorted(shapes)
        assert not {"f32[16,64,64]", "f32[64,64]"} & shapes, sorted(shapes)
    else:  # 8 layers of 32 x 32: one per device, whose L and R it eigendecomposes
        shapes = set(_SOLVER.findall(text))
        assert shapes == {"f64[1,32,32]"}, sorted(shapes)
    # Nothing is gathered: the matrices travel to their owners and back (all-to-all).
    assert not _GATHER.findall(text), "an all-gather in the update"
    assert "all-to-all(" in text
    model = sum(leaf.nbytes for leaf in jax.tree.leaves(owned["params"]))
    largest = max(_nbytes(shape) for shape in re.findall(_SHAPE, text))
    assert largest < model, (largest, model)
    # Per device, all temporaries together are a fraction of the params and the state
    # (SOAP's state is 6 times its params: an owner holds its layers' whole state).
    whole = model + sum(leaf.nbytes for leaf in jax.tree.leaves(owned["state"]))
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < whole / 2, (temp, whole)


def _launched() -> None:
    """One of two processes: the owner-device runs on the 8-device mesh of both."""
    launch.initialize()
    jax.config.update("jax_enable_x64", True)  # SOAP's problem is float64
    mesh = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    summary = {}
    for name in PROBLEMS:
        run = train(name, mesh)
        summary[name] = {"losses": run["losses"], "params": gathered(run["params"], mesh)}
    if jax.process_index() == 0:
        print(json.dumps({"process_count": jax.process_count(), **summary}))


def _env() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _child() -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _two_processes() -> dict:
    results = launch.run(
        [sys.executable, __file__, "--launched"],
        processes=2,
        cpu_devices=4,
        timeout=TIMEOUT_S,
        env={"PYTHONPATH": _env()["PYTHONPATH"]},
        echo=False,
    )
    return json.loads(results[0].stdout.strip().splitlines()[-1])


@cache
def _runs() -> dict:
    """The child's checks and the two-process run, side by side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        child, two = pool.submit(_child), pool.submit(_two_processes)
        return {"child": child.result(), "two": two.result()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["muon", "soap"])
@pytest.mark.parametrize("check", ["values", "placement"])
def test_eight_devices(name, check):
    result = _runs()["child"][f"{name}_{check}"]
    assert result == "ok", result


@pytest.mark.slow
def test_eight_devices_explicit_axes():
    result = _runs()["child"]["soap_explicit"]
    assert result == "ok", result


@pytest.mark.slow
@pytest.mark.float64
@pytest.mark.parametrize("name", ["muon", "soap"])
def test_two_processes_equal_one_device(name):
    two = _runs()["two"]
    assert two["process_count"] == 2
    single = train(name)
    np.testing.assert_allclose(two[name]["losses"], single["losses"], rtol=1e-5)
    params = {key: np.asarray(value) for key, value in two[name]["params"].items()}
    assert_close(params, single["params"])


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    launch.initialize(cpu_devices=N_DEVICES)
    jax.config.update("jax_enable_x64", True)  # SOAP's problem is float64
    print(json.dumps(_child_checks()))
elif __name__ == "__main__" and sys.argv[1:] == ["--launched"]:
    _launched()
