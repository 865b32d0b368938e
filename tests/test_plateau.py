"""jopt.reduce_on_plateau against torch's ReduceLROnPlateau (golden data) and by hand.

``tests/golden/schedules/plateau.json`` (written by ``tools/golden_schedules.py``)
holds, per configuration, torch's keyword arguments, a loss sequence (several with
negative losses, and both modes) and the learning rate after ``scheduler.step(loss)``
for each loss.  jopt sees the same losses through ``update(..., value=loss)``; its
scale times the initial learning rate must be torch's learning rate at every step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jopt

GOLDEN = json.loads((Path(__file__).parent / "golden" / "schedules" / "plateau.json").read_text())
NAMES = sorted(k for k, v in GOLDEN.items() if isinstance(v, dict))


def from_torch(record: dict):
    """The jopt call ``docs/porting.md`` maps the torch call to."""
    kw, lr = dict(record["kwargs"]), record["lr"]
    kwargs = {k: kw.pop(k) for k in ("patience", "threshold", "threshold_mode", "cooldown", "mode")
              if k in kw}  # fmt: skip
    kwargs["min_scale"] = kw.pop("min_lr", 0.0) / lr
    kwargs["eps"] = kw.pop("eps", 1e-8) / lr
    factor = kw.pop("factor", 0.1)
    assert not kw, kw
    return jopt.reduce_on_plateau(factor, **kwargs)


def run(transform, losses, params):
    """The scale after each update, and the updates (of ones) each update returned."""
    state = transform.init(params)
    update = jax.jit(transform.update)
    ones = jax.tree.map(jnp.ones_like, params)
    scales, returned = [], []
    for loss in losses:
        updates, state = update(ones, state, params, value=loss)
        scales.append(float(jopt.plateau_scale(state)))
        returned.append(float(updates["w"][0]))
    return np.array(scales), np.array(returned), state


def test_golden_covers_negative_losses_and_both_modes():
    modes = {GOLDEN[n]["kwargs"].get("mode", "min") for n in NAMES}
    assert modes == {"min", "max"}
    negative = [n for n in NAMES if min(GOLDEN[n]["losses"]) < 0]
    assert len(negative) >= 3
    for name in NAMES:  # every run reduces at least twice
        assert len(set(GOLDEN[name]["lr_history"])) >= 3, name


@pytest.mark.float64
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_step_for_step(name):
    record = GOLDEN[name]
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    scales, returned, _ = run(from_torch(record), record["losses"], params)
    expected = np.asarray(record["lr_history"]) / record["lr"]
    np.testing.assert_allclose(scales, expected, rtol=1e-12)
    np.testing.assert_array_equal(returned, scales)  # the updates carry the new scale


@pytest.mark.parametrize("name", ["min_rel_negative", "max_abs_negative", "min_lr_floor"])
def test_matches_torch_in_float32(name):
    """64-bit types off: float32 losses and scale, the same reductions at the same steps."""
    record = GOLDEN[name]
    params = {"w": jnp.zeros(3, jnp.bfloat16), "b": jnp.zeros(())}
    scales, _, state = run(from_torch(record), record["losses"], params)
    assert state.scale.dtype == jnp.float32
    expected = np.asarray(record["lr_history"]) / record["lr"]
    np.testing.assert_allclose(scales, expected, rtol=1e-6)


def test_by_hand_patience_cooldown_and_floor():
    """factor 0.5, patience 1, cooldown 1, min_scale 0.3 on a loss that never improves."""
    transform = jopt.reduce_on_plateau(0.5, patience=1, cooldown=1, min_scale=0.3)
    scales, _, state = run(transform, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], {"w": jnp.zeros(2)})
    # step 1 sets best; bad counts 1, 2 -> reduce at step 3; cooldown eats step 4; bad
    # counts 1 (step 5), 2 (step 6) -> max(0.25, 0.3) = 0.3; then nothing is left to cut.
    np.testing.assert_allclose(scales, [1, 1, 0.5, 0.5, 0.5, 0.3, 0.3], rtol=1e-6)
    assert float(state.best) == 1.0


def test_in_a_chain_with_other_leaves_and_jit():
    transform = jopt.chain(jopt.sgd(0.1), jopt.reduce_on_plateau(0.5, patience=0))
    params = {"w": jnp.ones(2), "n": jnp.asarray(3), "none": None}
    state = transform.init(params)
    grads = {"w": jnp.ones(2), "n": jnp.asarray(0), "none": None}
    update = jax.jit(transform.update)
    for loss in (2.0, 3.0):
        updates, state = update(grads, state, params, value=jnp.asarray(loss))
    np.testing.assert_allclose(updates["w"], -0.05, rtol=1e-6)
    assert int(updates["n"]) == 0 and updates["none"] is None
    assert float(jopt.plateau_scale(state)) == 0.5


@pytest.mark.float64
def test_once_per_epoch_recipe_of_the_porting_guide():
    """A separate plateau state stepped once per epoch sets an injected learning rate."""
    record = GOLDEN["min_rel"]
    lr, plateau = record["lr"], from_torch(record)
    plateau_state = plateau.init(None)
    optimizer = jopt.inject_hyperparams(jopt.sgd)(learning_rate=lr)
    params = jnp.zeros(2)
    opt_state = optimizer.init(params)
    for loss, expected in zip(record["losses"], record["lr_history"], strict=True):
        _, opt_state = optimizer.update(jnp.ones(2), opt_state, params)  # an epoch of steps
        _, plateau_state = plateau.update(None, plateau_state, value=loss)
        opt_state = jopt.set_hyperparams(
            opt_state, learning_rate=lr * jopt.plateau_scale(plateau_state)
        )
        got = jopt.get_hyperparams(opt_state)["learning_rate"]
        np.testing.assert_allclose(got, expected, rtol=1e-12)


BAD = [
    (lambda: jopt.reduce_on_plateau(1.0), ValueError, "factor"),
    (lambda: jopt.reduce_on_plateau(-0.1), ValueError, "factor"),
    (lambda: jopt.reduce_on_plateau(0.1, patience=-1), ValueError, "patience"),
    (lambda: jopt.reduce_on_plateau(0.1, patience=2.0), TypeError, "patience"),
    (lambda: jopt.reduce_on_plateau(0.1, threshold=-1e-4), ValueError, "threshold"),
    (lambda: jopt.reduce_on_plateau(0.1, threshold_mode="relative"), ValueError, "threshold_mode"),
    (lambda: jopt.reduce_on_plateau(0.1, cooldown=-1), ValueError, "cooldown"),
    (lambda: jopt.reduce_on_plateau(0.1, min_scale=-1.0), ValueError, "min_scale"),
    (lambda: jopt.reduce_on_plateau(0.1, mode="up"), ValueError, "mode"),
    (lambda: jopt.reduce_on_plateau(0.1, eps="small"), TypeError, "eps"),
    (lambda: jopt.reduce_on_plateau(0.1, 10), TypeError, "positional"),
    (lambda: _update(), TypeError, "value"),
    (lambda: _update(value=jnp.ones(3)), TypeError, "value"),
    (lambda: _update(value="0.5"), TypeError, "value"),
    (lambda: jopt.plateau_scale(jopt.adam(1e-3).init({"w": jnp.ones(2)})), ValueError,
     "ReduceOnPlateauState"),
    (lambda: jopt.plateau_scale(jopt.chain(jopt.reduce_on_plateau(),
                                           jopt.reduce_on_plateau()).init(jnp.ones(2))),
     ValueError, "ReduceOnPlateauState"),
]  # fmt: skip


def _update(**value):
    transform = jopt.reduce_on_plateau()
    params = jnp.ones(2)
    return transform.update(params, transform.init(params), params, **value)


@pytest.mark.parametrize("make, error, name", BAD, ids=range(len(BAD)))
def test_bad_input_fails_naming_it(make, error, name):
    with pytest.raises(error, match=rf"(^|\W){re.escape(name)}\W"):
        make()
