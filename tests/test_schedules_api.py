"""Schedules: the same values as optax for the same arguments, bad arguments named, and
the step an optimizer's schedule sees (update k uses ``schedule(k − 1)``).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from schedule_support import ref_piecewise

import jopt
from jopt import schedules

S = schedules


# --- optax: the same meaning for the same arguments -------------------------------------

OPTAX = [
    (S.linear(0.3, end_value=0.01, transition_steps=9, transition_begin=4),
     optax.linear_schedule(0.3, 0.01, 9, transition_begin=4)),
    (S.polynomial(0.3, end_value=0.01, power=3.0, transition_steps=9, transition_begin=2),
     optax.polynomial_schedule(0.3, 0.01, 3.0, 9, transition_begin=2)),
    (S.exponential_decay(0.3, decay_rate=0.7, transition_steps=4, transition_begin=3,
                         staircase=True, end_value=0.1),
     optax.exponential_decay(0.3, 4, 0.7, transition_begin=3, staircase=True, end_value=0.1)),
    (S.exponential_decay(0.3, decay_rate=1.3, transition_steps=2, end_value=0.9),
     optax.exponential_decay(0.3, 2, 1.3, end_value=0.9)),
    (S.cosine_decay(0.3, decay_steps=17, alpha=0.2), optax.cosine_decay_schedule(0.3, 17, 0.2)),
    (S.warmup_cosine_decay(0.01, peak_value=0.3, warmup_steps=5, decay_steps=20, end_value=0.02),
     optax.warmup_cosine_decay_schedule(0.01, 0.3, 5, 20, end_value=0.02)),
    (S.join([0.1, S.linear(0.1, end_value=0.0, transition_steps=5)], boundaries=[6]),
     optax.join_schedules([optax.constant_schedule(0.1), optax.linear_schedule(0.1, 0.0, 5)], [6])),
]  # fmt: skip


@pytest.mark.parametrize("ours, theirs", OPTAX, ids=range(len(OPTAX)))
def test_same_values_as_optax(ours, theirs):
    steps = jnp.arange(40, dtype=jnp.int32)
    np.testing.assert_allclose(ours(steps), jax.vmap(theirs)(steps), rtol=2e-6, atol=1e-8)


# --- validation ---------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (lambda: S.linear(1.0, end_value=0.0, transition_steps=0), ValueError, "transition_steps"),
    (lambda: S.linear(1.0, end_value=0.0, transition_steps=2.5), TypeError, "transition_steps"),
    (lambda: S.linear(1.0, end_value=0.0, transition_steps=5, transition_begin=-1),
     ValueError, "transition_begin"),
    (lambda: S.linear(float("nan"), end_value=0.0, transition_steps=5), ValueError, "init_value"),
    (lambda: S.linear(1.0, end_value="x", transition_steps=5), TypeError, "end_value"),
    (lambda: S.linear(1.0, 0.0, 5), TypeError, "positional"),
    (lambda: S.polynomial(1.0, end_value=0.0, power=-1.0, transition_steps=5), ValueError, "power"),
    (lambda: S.exponential_decay(1.0, decay_rate=0.0), ValueError, "decay_rate"),
    (lambda: S.exponential_decay(1.0, decay_rate=0.5, staircase="yes"), TypeError, "staircase"),
    (lambda: S.exponential_decay(1.0, decay_rate=0.5, end_value="low"), TypeError, "end_value"),
    (lambda: S.cosine_decay(1.0, decay_steps=2**63), ValueError, "decay_steps"),
    (lambda: S.cosine_decay(1.0, decay_steps=10, alpha=-0.1), ValueError, "alpha"),
    (lambda: S.cosine_decay(1.0, decay_steps=True), TypeError, "decay_steps"),
    (lambda: S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=-1, decay_steps=10),
     ValueError, "warmup_steps"),
    (lambda: S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=10, decay_steps=10),
     ValueError, "decay_steps"),
    (lambda: S.warmup_cosine_decay(0.0, peak_value=float("inf"), warmup_steps=1, decay_steps=5),
     ValueError, "peak_value"),
    (lambda: S.warmup_stable_decay(1.0, warmup_steps=1, stable_steps=-1, decay_steps=5),
     ValueError, "stable_steps"),
    (lambda: S.warmup_stable_decay(1.0, warmup_steps=1, stable_steps=1, decay_steps=5,
                                   decay_shape="exp"), ValueError, "decay_shape"),
    (lambda: S.piecewise_constant([5, 5], values=[1.0, 2.0, 3.0]), ValueError, "boundaries"),
    (lambda: S.piecewise_constant([-1], values=[1.0, 2.0]), ValueError, "boundaries[0]"),
    (lambda: S.piecewise_constant([1.5], values=[1.0, 2.0]), TypeError, "boundaries[0]"),
    (lambda: S.piecewise_constant([5], values=[1.0]), ValueError, "values"),
    (lambda: S.piecewise_constant([5], values=[1.0, float("nan")]), ValueError, "values[1]"),
    (lambda: S.piecewise_constant(5, values=[1.0, 2.0]), TypeError, "boundaries"),
    (lambda: S.multistep(1.0, milestones=[3, -2]), ValueError, "milestones[1]"),
    (lambda: S.multistep(1.0, milestones=[3], gamma=0.0), ValueError, "gamma"),
    (lambda: S.join([S.constant(1.0)], boundaries=[5]), ValueError, "schedules"),
    (lambda: S.join([1.0, 2.0], boundaries=[4, 2]), ValueError, "boundaries"),
    (lambda: S.join([1.0, 2.0], boundaries=4), TypeError, "boundaries"),
    (lambda: S.join([1.0, "x"], boundaries=[4]), TypeError, "schedules[1]"),
    (lambda: S.join([1.0, float("nan")], boundaries=[4]), ValueError, "schedules[1]"),
    (lambda: S.constant(float("nan")), ValueError, "value"),
    (lambda: S.cosine_restarts(1.0, first_period=0), ValueError, "first_period"),
    (lambda: S.cosine_restarts(1.0, first_period=3, period_mult=1.5), TypeError, "period_mult"),
    (lambda: S.cyclic(0.1, max_value=1.0, step_size_up=0), ValueError, "step_size_up"),
    (lambda: S.cyclic(0.1, max_value=1.0, step_size_down=0), ValueError, "step_size_down"),
    (lambda: S.cyclic(0.1, max_value=1.0, mode="sine"), ValueError, "mode"),
    (lambda: S.cyclic(0.1, max_value=1.0, gamma=-1.0), ValueError, "gamma"),
    (lambda: S.one_cycle(1.0, total_steps=10, pct_start=1.0), ValueError, "pct_start"),
    (lambda: S.one_cycle(1.0, total_steps=10, anneal_strategy="cosine"), ValueError,
     "anneal_strategy"),
    (lambda: S.one_cycle(1.0, total_steps=10, div_factor=0.0), ValueError, "div_factor"),
    (lambda: S.one_cycle(1.0, total_steps=10, three_phase=1), TypeError, "three_phase"),
    (lambda: S.one_cycle_momentum(10, max_momentum=1.0), ValueError, "max_momentum"),
    (lambda: S.swa(0.1, swa_value=0.01, anneal_steps=-1), ValueError, "anneal_steps"),
    (lambda: S.swa(0.1, swa_value=None), TypeError, "swa_value"),
    (lambda: S.cosine_decay(1.0, decay_steps=5)(2.0), TypeError, "step"),
    (lambda: S.cosine_decay(1.0, decay_steps=5)(jnp.asarray(2.0)), TypeError, "step"),
    (lambda: S.cosine_decay(1.0, decay_steps=5)(True), TypeError, "step"),
]  # fmt: skip


@pytest.mark.parametrize("make, error, name", BAD_ARGUMENTS, ids=range(len(BAD_ARGUMENTS)))
def test_bad_arguments_fail_naming_the_argument(make, error, name):
    with pytest.raises(error, match=rf"(^|\W){re.escape(name)}\W"):
        make()


# --- which step an optimizer's schedule sees ---------------------------------------------


def _sgd_path(optimizer, steps: int) -> np.ndarray:
    """Parameters after each update of ``optimizer`` on ``J(θ) = θ`` (gradient 1)."""
    params = jnp.zeros([])
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    path = []
    for _ in range(steps):
        updates, state = update(jnp.ones([]), state, params)
        params = jopt.apply_updates(params, updates)
        path.append(float(params))
    return np.array(path)


@pytest.mark.parametrize("inject", [False, True])
def test_first_update_uses_schedule_at_zero(inject):
    """θₖ = −Σ_{j<k} schedule(j): update k (1-based) uses schedule(k − 1)."""
    schedule = schedules.piecewise_constant([1, 2, 4], values=[1.0, 0.5, 0.25, 0.125])
    factory = jopt.inject_hyperparams(jopt.sgd) if inject else jopt.sgd
    got = _sgd_path(factory(learning_rate=schedule), 6)
    rates = [ref_piecewise(t, [1, 2, 4], [1.0, 0.5, 0.25, 0.125]) for t in range(6)]
    np.testing.assert_allclose(got, -np.cumsum(rates), rtol=1e-6)
    # Off by one (update k using schedule(k)) would differ.
    shifted = [ref_piecewise(t, [1, 2, 4], [1.0, 0.5, 0.25, 0.125]) for t in range(1, 7)]
    assert not np.allclose(got, -np.cumsum(shifted))
