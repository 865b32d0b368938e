"""Optimizer states are plain pytrees: orbax-checkpoint and flax.serialization save them.

* Every optimizer's state round-trips bit for bit through orbax's
  ``StandardCheckpointer`` (restored against ``jax.eval_shape(optimizer.init, params)``)
  and through ``flax.serialization.to_bytes``/``from_bytes``.
* Training 100 steps equals training 50, saving, restoring in a fresh Python process
  and training 50 more, bit for bit.  One subprocess resumes every optimizer: it
  imports this file and runs :func:`resume_all`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization
from test_reliability import assert_trees_bitwise_equal as assert_bitwise_equal

import jopt

# Compared with float64 restatements: 64-bit types on for every test here.
pytestmark = pytest.mark.float64

OPTIMIZERS = {
    "sgd": lambda: jopt.sgd(0.1),
    "momentum": lambda: jopt.momentum(0.05, weight_decay=1e-3),
    "nesterov": lambda: jopt.nesterov(0.05),
    "adagrad": lambda: jopt.adagrad(0.1, initial_accumulator_value=0.1),
    "adadelta": lambda: jopt.adadelta(),
    "rmsprop": lambda: jopt.rmsprop(1e-2, centered=True, momentum=0.5, weight_decay=1e-3),
    "adam": lambda: jopt.adam(1e-2, amsgrad=True),
    "adam-schedule": lambda: jopt.adam(lambda count: 1e-2 / (1.0 + 0.1 * count)),
    "adam-bf16-params": lambda: jopt.adam(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "adamw": lambda: jopt.adamw(1e-2),
    "adamax": lambda: jopt.adamax(1e-2),
    "skip-nonfinite-adam": lambda: jopt.skip_nonfinite(jopt.adam(1e-2), max_consecutive=3),
}

# Data as NumPy, so that importing this module creates no JAX array (the resuming
# process enables x64 before anything is built).
_DATA = np.random.default_rng(1234)
X = _DATA.normal(size=(8, 5, 4)).astype(np.float32)
Y = _DATA.normal(size=(8, 5, 3)).astype(np.float32)


def make_params(name: str):
    """A small tanh layer, with an integer leaf and a ``None`` leaf along for the ride."""
    rng = np.random.default_rng(7)
    dtype = jnp.bfloat16 if "bf16" in name else jnp.float32
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)) / 2, dtype),
        "b": jnp.zeros(3, dtype),
        "count": jnp.asarray(5, jnp.int32),
        "none": None,
    }


def _loss(params, x, y):
    prediction = jnp.tanh(x @ params["w"] + params["b"])
    return jnp.mean((prediction - y) ** 2)


def make_step(name: str, optimizer):
    # For skip_nonfinite, step 3 of every 17 sees NaN gradients, which it must skip.
    poison = name.startswith("skip-nonfinite")

    @jax.jit
    def step(params, state, t):
        x, y = jnp.asarray(X)[t % 8], jnp.asarray(Y)[t % 8]
        if poison:
            x = x * jnp.where(t % 17 == 3, jnp.nan, 1.0)
        grads = jax.grad(_loss, allow_int=True)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state

    return step


def train(step, params, state, start: int, steps: int):
    for t in range(start, start + steps):
        params, state = step(params, state, jnp.asarray(t, jnp.int32))
    return params, state


def save(path: Path, params, opt_state) -> None:
    """README: save."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, {"params": params, "opt_state": opt_state})


def restore(path: Path, optimizer, params):
    """README: restore against the abstract tree of fresh params and a fresh state."""
    target = jax.eval_shape(lambda: {"params": params, "opt_state": optimizer.init(params)})
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path, target)


def resume_all(directory: Path) -> None:
    """In a fresh process: restore every optimizer at step 50 and train to step 100."""
    for name, factory in OPTIMIZERS.items():
        optimizer = factory()
        restored = restore(directory / name / "step50", optimizer, make_params(name))
        params, state = train(
            make_step(name, optimizer), restored["params"], restored["opt_state"], 50, 50
        )
        blob = serialization.to_bytes({"params": params, "opt_state": state})
        (directory / name / "step100.msgpack").write_bytes(blob)


# --- tests -----------------------------------------------------------------------------


def _trained_state(name, steps=20):
    optimizer = OPTIMIZERS[name]()
    params = make_params(name)
    params, state = train(make_step(name, optimizer), params, optimizer.init(params), 0, steps)
    return optimizer, params, state


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_orbax_round_trip_is_bit_exact(name, tmp_path):
    optimizer, params, state = _trained_state(name)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "state", state)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(
            tmp_path / "state", jax.eval_shape(optimizer.init, make_params(name))
        )
    assert_bitwise_equal(restored, state)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_flax_serialization_round_trip_is_bit_exact(name, tmp_path):
    optimizer, params, state = _trained_state(name)
    (tmp_path / "state.msgpack").write_bytes(serialization.to_bytes(state))
    restored = serialization.from_bytes(
        optimizer.init(make_params(name)), (tmp_path / "state.msgpack").read_bytes()
    )
    assert_bitwise_equal(restored, state)


def test_resume_in_a_fresh_process_is_bit_exact(tmp_path):
    expected = {}
    for name, factory in OPTIMIZERS.items():
        optimizer = factory()
        step = make_step(name, optimizer)
        params = make_params(name)
        params, state = train(step, params, optimizer.init(params), 0, 50)
        save(tmp_path / name / "step50", params, state)
        expected[name] = train(step, params, state, 50, 50)

    tests_dir = Path(__file__).resolve().parent
    code = (
        "import sys, pathlib, jax; jax.config.update('jax_enable_x64', True); "
        "import test_checkpoint; test_checkpoint.resume_all(pathlib.Path(sys.argv[1]))"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tests_dir), str(tests_dir.parent), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    for name, (params, state) in expected.items():
        target = {"params": make_params(name), "opt_state": OPTIMIZERS[name]().init(params)}
        resumed = serialization.from_bytes(
            target, (tmp_path / name / "step100.msgpack").read_bytes()
        )
        assert_bitwise_equal(resumed["params"], params)
        assert_bitwise_equal(resumed["opt_state"], state)
        if name.startswith("skip-nonfinite"):
            # Steps 3, 20, 37, 54, 71 and 88 were poisoned and skipped in both halves.
            assert int(state.total_skipped) == 6


def test_the_readme_lines(tmp_path):
    """The three lines the README shows, as written there."""
    optimizer, params, opt_state = _trained_state("adamw", steps=5)
    path = tmp_path / "checkpoint"

    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, {"params": params, "opt_state": opt_state})
    restored = ocp.StandardCheckpointer().restore(path, jax.eval_shape(lambda: {"params": params, "opt_state": optimizer.init(params)}))  # noqa: E501  # fmt: skip

    assert_bitwise_equal(restored["opt_state"], opt_state)
    assert_bitwise_equal(restored["params"], params)
