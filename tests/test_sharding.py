"""Sharded optimizer state (jopt.sharding) on 8 simulated CPU devices.

conftest.py has already started JAX in this process with one CPU device, and the
device count cannot change afterwards.  The multi-device checks therefore run in one
child process, ``tests/sharding_checks.py`` run as a script with 8 CPU devices (``XLA_FLAGS``); each
check reports "ok" or its traceback, and one pytest test per check asserts it.  The
argument checks that need no second device run here directly.

References are independent of jopt's sharding code: expected shardings are the
params' own, expected ZeRO layouts are written out from the documented rule, and the
data-parallel run is compared with optax on one device as well as with jopt on one
device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sharding_checks import N_DEVICES, OPTIMIZERS, ROOT

import jopt
from jopt.sharding import state_shardings, zero_shardings

CHILD = Path(__file__).with_name("sharding_checks.py")

# --- the parent: one child process, one test per check ---------------------------------


@pytest.fixture(scope="module")
def child_results() -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={N_DEVICES}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    # Spare threads for the CPU client: with fewer cores than devices, a collective
    # can otherwise wait forever for a device whose thread is busy elsewhere.
    env["PJRT_NPROC"] = str(4 * N_DEVICES)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(CHILD), "--child"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expect_ok(results: dict, name: str) -> None:
    assert name in results, f"check {name} did not run"
    assert results[name] == "ok", results[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_init_and_update_keep_shardings(child_results, name):
    _expect_ok(child_results, f"keep_shardings:{name}")


@pytest.mark.slow
def test_zero_data_parallel_equals_single_device(child_results):
    _expect_ok(child_results, "zero_equals_single_device")


@pytest.mark.slow
def test_each_device_holds_an_eighth_of_the_moments(child_results):
    _expect_ok(child_results, "moment_bytes_split_eight_ways")


@pytest.mark.slow
def test_zero_step_compiles_once(child_results):
    _expect_ok(child_results, "zero_step_compiles_once")


@pytest.mark.slow
def test_indivisible_dimensions_are_replicated_and_reported(child_results):
    _expect_ok(child_results, "indivisible_shapes_reported")


@pytest.mark.slow
def test_zero_respects_other_mesh_axes(child_results):
    _expect_ok(child_results, "zero_on_two_axes")


@pytest.mark.slow
def test_example_runs_reduced(child_results):
    _expect_ok(child_results, "example_runs")


# --- argument checks, on this process's single device ----------------------------------


@pytest.fixture
def one_device_mesh():
    return jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))


def test_zero_shardings_rejects_unknown_axis(one_device_mesh):
    with pytest.raises(ValueError, match=r"axis='batch'.*\('data',\)"):
        zero_shardings(jopt.adam(), {"w": np.ones(4)}, one_device_mesh, axis="batch")


def test_zero_shardings_rejects_non_mesh():
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        zero_shardings(jopt.adam(), {"w": np.ones(4)}, "data")


@pytest.mark.parametrize("fn", [state_shardings, zero_shardings])
def test_rejects_non_optimizer(fn, one_device_mesh):
    with pytest.raises(TypeError, match="optimizer must be a GradientTransformation"):
        fn(object(), {"w": np.ones(4)}, one_device_mesh)


def test_state_shardings_rejects_tracers():
    def inside_jit(params):
        state_shardings(jopt.adam(), params)
        return params

    with pytest.raises(TypeError, match=r"params\['w'\] is a tracer"):
        jax.jit(inside_jit)({"w": jnp.ones(4)})


def test_state_shardings_needs_a_placement():
    abstract = {"w": jax.ShapeDtypeStruct((4,), jnp.float32)}
    with pytest.raises(ValueError, match="pass mesh="):
        state_shardings(jopt.adam(), abstract)


def test_state_shardings_single_device(one_device_mesh):
    device = jax.devices()[0]
    params = {"w": jax.device_put(jnp.ones((3, 2)), device), "k": 1, "n": None}
    shardings = state_shardings(jopt.adam(amsgrad=True), params)
    single = jax.sharding.SingleDeviceSharding(device)
    state = jopt.adam(amsgrad=True).init(params)
    assert jax.tree.structure(shardings) == jax.tree.structure(state)
    assert all(s == single for s in jax.tree.leaves(shardings))
    assert shardings[0].mu["k"] is None and shardings[0].mu["n"] is None
    on_mesh = state_shardings(jopt.adam(), params, mesh=one_device_mesh)
    assert on_mesh[0].count == NamedSharding(one_device_mesh, P())


def test_params_on_another_mesh_are_rejected(one_device_mesh):
    other = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("model",))
    params = {"w": jax.device_put(jnp.ones(4), NamedSharding(other, P()))}
    with pytest.raises(ValueError, match=r"params\['w'\] is sharded over the mesh"):
        zero_shardings(jopt.adam(), params, one_device_mesh)
