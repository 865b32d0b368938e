"""Schedules against float64 closed forms, at every step and at huge steps.

The closed forms (``tests/schedule_support.py``) are compared at every step up to 40,
around every boundary, and at huge steps: the largest int32 (where jopt's step counts
saturate) traced under ``jit``, and Python ints up to 2⁶³ − 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from schedule_support import (
    HUGE,
    INT32_MAX,
    INT64_MAX,
    ref_cosine,
    ref_cyclic,
    ref_exponential,
    ref_join,
    ref_multistep,
    ref_one_cycle,
    ref_piecewise,
    ref_poly,
    ref_restarts,
    ref_swa,
    ref_warmup_cosine,
    ref_wsd,
)

import jopt
from jopt import schedules

S = schedules
CASES = [
    ("constant", S.constant(0.3), lambda t: 0.3, ()),
    (
        "linear",
        S.linear(1.0, end_value=0.1, transition_steps=10),
        lambda t: ref_poly(t, 1.0, 0.1, 1.0, 10),
        (10,),
    ),
    (
        "linear-begin-huge",
        S.linear(2.0, end_value=-1.0, transition_steps=3 * 10**9, transition_begin=7),
        lambda t: ref_poly(t, 2.0, -1.0, 1.0, 3 * 10**9, 7),
        (7,),
    ),
    (
        "polynomial",
        S.polynomial(0.5, end_value=0.01, power=2.5, transition_steps=20, transition_begin=3),
        lambda t: ref_poly(t, 0.5, 0.01, 2.5, 20, 3),
        (3, 23),
    ),
    (
        "exponential",
        S.exponential_decay(0.1, decay_rate=0.9),
        lambda t: ref_exponential(t, 0.1, 0.9, 1),
        (),
    ),
    (
        "exponential-staircase-begin",
        S.exponential_decay(
            0.05, decay_rate=0.5, transition_steps=10, transition_begin=4, staircase=True
        ),
        lambda t: ref_exponential(t, 0.05, 0.5, 10, 4, True),
        (4, 14, 24),
    ),
    (
        "exponential-growth-capped",
        S.exponential_decay(1e-3, decay_rate=1.5, transition_steps=3, end_value=0.7),
        lambda t: ref_exponential(t, 1e-3, 1.5, 3, end=0.7),
        (3, 6, 48),
    ),
    (
        "exponential-floor-huge-period",
        S.exponential_decay(
            1.0, decay_rate=0.5, transition_steps=2**35, staircase=True, end_value=0.3
        ),
        lambda t: ref_exponential(t, 1.0, 0.5, 2**35, 0, True, 0.3),
        (2**35, 2**36),
    ),
    (
        "cosine-huge",
        S.cosine_decay(1000.0, decay_steps=10**10),
        lambda t: ref_cosine(t, 1000.0, 10**10, 0.0),
        (10**9, 10**10),
    ),
    (
        "cosine-alpha",
        S.cosine_decay(0.02, decay_steps=30, alpha=0.005),
        lambda t: ref_cosine(t, 0.02, 30, 0.005),
        (30,),
    ),
    (
        "warmup-cosine",
        S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=5, decay_steps=25, end_value=0.1),
        lambda t: ref_warmup_cosine(t, 0.0, 1.0, 5, 25, 0.1),
        (5, 25),
    ),
    (
        "warmup-cosine-no-warmup",
        S.warmup_cosine_decay(9.0, peak_value=1.0, warmup_steps=0, decay_steps=12),
        lambda t: ref_warmup_cosine(t, 9.0, 1.0, 0, 12, 0.0),
        (12,),
    ),
    (
        "warmup-cosine-huge",
        S.warmup_cosine_decay(0.0, peak_value=2.0, warmup_steps=2**31, decay_steps=2**33),
        lambda t: ref_warmup_cosine(t, 0.0, 2.0, 2**31, 2**33, 0.0),
        (2**31, 2**33),
    ),
    (
        "piecewise",
        S.piecewise_constant([3, 7, 20, INT32_MAX, 2**40], values=[1.0, 0.5, 0.1, 0.01, 7.0, 9.0]),
        lambda t: ref_piecewise(t, [3, 7, 20, INT32_MAX, 2**40], [1.0, 0.5, 0.1, 0.01, 7.0, 9.0]),
        (3, 7, 20, 2**40),
    ),
    (
        "multistep",
        S.multistep(0.8, milestones=[12, 5, 12, 2**32], gamma=0.5),
        lambda t: ref_multistep(t, 0.8, [12, 5, 12, 2**32], 0.5),
        (5, 12, 2**32),
    ),
    (
        "join",
        S.join(
            [
                S.linear(0.0, end_value=1.0, transition_steps=4),
                S.cosine_decay(1.0, decay_steps=10, alpha=0.1),
                0.05,
            ],
            boundaries=[4, 2**33],
        ),
        ref_join,
        (4, 14, 2**33),
    ),  # fmt: skip
    (
        "wsd-linear",
        S.warmup_stable_decay(1.0, warmup_steps=4, stable_steps=6, decay_steps=8, init_value=0.1),
        lambda t: ref_wsd(t, 1.0, 4, 6, 8, 0.1, 0.0, "linear"),
        (4, 10, 18),
    ),
    (
        "wsd-cosine",
        S.warmup_stable_decay(
            2.0, warmup_steps=3, stable_steps=0, decay_steps=9, end_value=0.2, decay_shape="cosine"
        ),  # fmt: skip
        lambda t: ref_wsd(t, 2.0, 3, 0, 9, 0.0, 0.2, "cosine"),
        (3, 12),
    ),
    (
        "wsd-sqrt-huge",
        S.warmup_stable_decay(
            1.0, warmup_steps=0, stable_steps=2**33, decay_steps=10**12, decay_shape="sqrt"
        ),  # fmt: skip
        lambda t: ref_wsd(t, 1.0, 0, 2**33, 10**12, 0.0, 0.0, "sqrt"),
        (2**33,),
    ),
    (
        "cosine-restarts",
        S.cosine_restarts(1.0, first_period=7, min_value=0.1),
        lambda t: ref_restarts(t, 1.0, 7, 1, 0.1),
        (7, 14, 21),
    ),
    (
        "cosine-restarts-mult",
        S.cosine_restarts(0.5, first_period=3, period_mult=2),
        lambda t: ref_restarts(t, 0.5, 3, 2, 0.0),
        (3, 9, 21, 3 * (2**31 - 1), 3 * (2**40 - 1)),
    ),
    (
        "cyclic-triangular",
        S.cyclic(0.1, max_value=1.0, step_size_up=4, step_size_down=6),
        lambda t: ref_cyclic(t, 0.1, 1.0, 4, 6, "triangular", 1.0),
        (4, 10, 14),
    ),
    (
        "cyclic-triangular2",
        S.cyclic(0.0, max_value=1.0, step_size_up=3, mode="triangular2"),
        lambda t: ref_cyclic(t, 0.0, 1.0, 3, 3, "triangular2", 1.0),
        (3, 6, 12),
    ),
    (
        "cyclic-exp-range",
        S.cyclic(
            0.01, max_value=0.1, step_size_up=2, step_size_down=5, mode="exp_range", gamma=0.99
        ),
        lambda t: ref_cyclic(t, 0.01, 0.1, 2, 5, "exp_range", 0.99),
        (2, 7),
    ),
    (
        "one-cycle",
        S.one_cycle(0.5, total_steps=30),
        lambda t: ref_one_cycle(t, [0.02, 0.5, 0.02 / 1e4], 30, 0.3, "cos", False),
        (8, 9, 29),
    ),
    (
        "one-cycle-three-linear",
        S.one_cycle(
            1.0,
            total_steps=37,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            final_div_factor=50.0,
            three_phase=True,
        ),  # fmt: skip
        lambda t: ref_one_cycle(t, [0.1, 1.0, 0.1, 0.002], 37, 0.25, "linear", True),
        (8, 9, 17, 18, 36),
    ),
    (
        "one-cycle-momentum",
        S.one_cycle_momentum(30, base_momentum=0.8, max_momentum=0.9),
        lambda t: ref_one_cycle(t, [0.9, 0.8, 0.9], 30, 0.3, "cos", False),
        (8, 9, 29),
    ),
    (
        "swa-cos",
        S.swa(0.1, swa_value=0.01, anneal_steps=7),
        lambda t: ref_swa(t, 0.1, 0.01, 7, "cos"),
        (7,),
    ),
    (
        "swa-linear-no-anneal",
        S.swa(0.1, swa_value=0.03, anneal_steps=0, anneal_strategy="linear"),
        lambda t: ref_swa(t, 0.1, 0.03, 0, "linear"),
        (),
    ),
]
IDS = [c[0] for c in CASES]


def steps_for(points, upto=40) -> list[int]:
    near = {p + d for p in points for d in (-1, 0, 1)}
    return sorted(set(range(upto + 1)) | {s for s in near if 0 <= s <= INT64_MAX} | set(HUGE))


def check_everywhere(schedule, reference, points, rtol):
    """Traced int32 steps (jit, vectorised), NumPy int64 steps, and Python ints."""
    steps = steps_for(points)
    expected = np.array([reference(t) for t in steps])
    atol = rtol * max(1.0, float(np.max(np.abs(expected))))
    small = [i for i, t in enumerate(steps) if t <= INT32_MAX]
    traced = jax.jit(schedule)(jnp.asarray([steps[i] for i in small], jnp.int32))
    assert traced.dtype == jnp.result_type(float)
    np.testing.assert_allclose(traced, expected[small], rtol=rtol, atol=atol)
    if jax.config.jax_enable_x64:  # traced int64 steps reach 2⁶³ − 1 too
        wide = jax.jit(schedule)(jnp.asarray(steps, jnp.int64))
        np.testing.assert_allclose(wide, expected, rtol=rtol, atol=atol)
    concrete = schedule(np.asarray(steps, np.int64))
    np.testing.assert_allclose(concrete, expected, rtol=rtol, atol=atol)
    for t in (0, 10**10, INT64_MAX):  # Python ints take the NumPy path above, from int
        np.testing.assert_allclose(schedule(t), reference(t), rtol=rtol, atol=atol)


@pytest.mark.float64
@pytest.mark.parametrize("name, schedule, reference, points", CASES, ids=IDS)
def test_schedule_matches_closed_form_at_every_step(name, schedule, reference, points):
    check_everywhere(schedule, reference, points, rtol=1e-12)


@pytest.mark.parametrize("name, schedule, reference, points", CASES, ids=IDS)
def test_schedule_in_float32(name, schedule, reference, points):
    """The path users run: 64-bit types off, float32 values, int32 counts."""
    check_everywhere(schedule, reference, points, rtol=2e-6)


def test_cosine_decay_huge_steps_as_optax():
    """Issue 14 item 4: optax gives 975.528 here; jopt used to overflow."""
    expected = optax.cosine_decay_schedule(1000.0, 10**10)(10**9)
    got = schedules.cosine_decay(1000.0, decay_steps=10**10)(10**9)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got, 975.528258, rtol=1e-6)


def test_saturated_count_sees_the_value_at_the_largest_int32():
    """An optimizer's count stops at 2³¹ − 1; a boundary just past it is never crossed."""
    schedule = schedules.piecewise_constant([INT32_MAX + 1], values=[1.0, 2.0])
    count = jnp.asarray(INT32_MAX, jnp.int32)
    assert float(jax.jit(schedule)(jopt._numerics.safe_increment(count))) == 1.0
    assert float(schedule(INT32_MAX + 1)) == 2.0
