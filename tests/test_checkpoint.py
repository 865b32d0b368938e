"""Optimizer states are plain pytrees: orbax-checkpoint and flax.serialization save them.

Every registry entry (in its main configuration) and a few cases that add state (a
schedule, bfloat16 parameters with float32 moments, ``skip_nonfinite``, injected
hyperparameters) train a small tanh layer whose parameters include integer, boolean
and ``None`` leaves, under ``jit``:

* the state after 50 steps round-trips bit for bit through orbax's
  ``StandardCheckpointer`` (restored against ``jax.eval_shape(optimizer.init, params)``)
  and through ``flax.serialization.to_bytes``/``from_bytes``;
* training 100 steps equals training 50, saving, restoring in a fresh Python process
  and training 50 more, bit for bit.  One subprocess resumes every optimizer: it runs
  ``support.resume_all``.

orbax saves all the states in one checkpoint (a dict keyed by name; a mismatch names
the path): each save and restore costs about a second of fixed overhead.

The integer and boolean parameters come back unchanged after 100 steps.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization
from support import (
    CHECKPOINT_OPTIMIZERS,
    assert_trees_bitwise_equal,
    checkpoint_params,
    checkpoint_step,
    restore,
    save,
    train,
)

TESTS = Path(__file__).resolve().parent


@functools.cache
def _trained(name: str):
    """``(optimizer, step, params, state)`` after 50 steps, computed once per module."""
    optimizer = CHECKPOINT_OPTIMIZERS[name]()
    step = checkpoint_step(name, optimizer)
    params = checkpoint_params(name)
    params, state = train(step, params, optimizer.init(params), 0, 50)
    return optimizer, step, params, state


def test_orbax_round_trip_is_bit_exact(tmp_path):
    states = {name: _trained(name)[3] for name in CHECKPOINT_OPTIMIZERS}
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "states", states)
    targets = {
        name: jax.eval_shape(CHECKPOINT_OPTIMIZERS[name]().init, checkpoint_params(name))
        for name in CHECKPOINT_OPTIMIZERS
    }
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(tmp_path / "states", targets)
    assert_trees_bitwise_equal(restored, states)


@pytest.mark.parametrize("name", CHECKPOINT_OPTIMIZERS)
def test_flax_serialization_round_trip_is_bit_exact(name, tmp_path):
    optimizer, _, _, state = _trained(name)
    (tmp_path / "state.msgpack").write_bytes(serialization.to_bytes(state))
    restored = serialization.from_bytes(
        optimizer.init(checkpoint_params(name)), (tmp_path / "state.msgpack").read_bytes()
    )
    assert_trees_bitwise_equal(restored, state)


def test_resume_in_a_fresh_process_is_bit_exact(tmp_path):
    expected, checkpoint = {}, {}
    for name in CHECKPOINT_OPTIMIZERS:
        _, step, params, state = _trained(name)
        checkpoint[name] = {"params": params, "opt_state": state}
        expected[name] = train(step, params, state, 50, 50)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "step50", checkpoint)

    code = "import sys, pathlib, support; support.resume_all(pathlib.Path(sys.argv[1]))"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    for name, (params, state) in expected.items():
        optimizer = CHECKPOINT_OPTIMIZERS[name]()
        target = {"params": checkpoint_params(name), "opt_state": optimizer.init(params)}
        resumed = serialization.from_bytes(
            target, (tmp_path / name / "step100.msgpack").read_bytes()
        )
        assert_trees_bitwise_equal(resumed["params"], params)
        assert_trees_bitwise_equal(resumed["opt_state"], state)
        # The parameters that are not trained did not move.
        initial = checkpoint_params(name)
        for key in ("count", "mask"):
            np.testing.assert_array_equal(params[key], initial[key])
        assert params["none"] is None
        assert not np.array_equal(np.asarray(params["w"]), np.asarray(initial["w"])), name
        if name.startswith("skip-nonfinite"):
            # Steps 3, 20, 37, 54, 71 and 88 were poisoned and skipped in both halves.
            assert int(state.total_skipped) == 6


def test_the_readme_lines(tmp_path):
    """The three lines the README shows, as written there (and support.save/restore)."""
    optimizer, _, params, opt_state = _trained("adamw")
    path = tmp_path / "checkpoint"

    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, {"params": params, "opt_state": opt_state})
    restored = ocp.StandardCheckpointer().restore(path, jax.eval_shape(lambda: {"params": params, "opt_state": optimizer.init(params)}))  # noqa: E501  # fmt: skip

    assert_trees_bitwise_equal(restored["opt_state"], opt_state)
    assert_trees_bitwise_equal(restored["params"], params)
    save(tmp_path / "again", params, opt_state)
    restored = restore(tmp_path / "again", optimizer, params)
    assert_trees_bitwise_equal(restored["opt_state"], opt_state)
