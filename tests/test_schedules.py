"""Schedules against float64 closed forms, optax, and torch's LR schedulers.

The closed forms are restated below as scalar Python functions on exact integers and
float64 ``math`` (the cycle of a restart schedule found by walking the periods, a step
function by counting boundaries), independently of jopt's integer-domain code.  They
are compared at every step up to 40, around every boundary, and at huge steps: the
largest int32 (where jopt's step counts saturate) traced under ``jit``, and Python ints
up to 2⁶³ − 1.  The torch comparison replays ``tests/golden/schedules/schedulers.json``,
written by ``tools/golden_schedules.py``, and the golden trajectories of
``tools/make_golden.py`` with ``StepLR`` and ``CosineAnnealingLR``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_replay import GOLDEN_RTOL, load_golden, replay

import jopt
from jopt import schedules

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
HUGE = (10**6, INT32_MAX, 2**31, 10**10, 2**40 + 3, 10**15 + 7, INT64_MAX)
SCHEDULERS = json.loads(
    (Path(__file__).parent / "golden" / "schedules" / "schedulers.json").read_text()
)


# --- closed forms: Python ints and float64 ----------------------------------------------


def ref_poly(t, v0, v1, power, T, B=0):
    done = min(max(t - B, 0), T)
    return v1 + (v0 - v1) * (1 - done / T) ** power


def ref_exponential(t, v0, r, T, B=0, staircase=False, end=None):
    done = max(t - B, 0)
    exponent = done // T if staircase else done / T
    try:
        value = v0 * r ** float(exponent)
    except OverflowError:  # growth past float64: the cap below applies
        value = math.inf
    if end is not None:
        value = max(value, end) if r < 1 else min(value, end)
    return value


def ref_cosine(t, v0, T, alpha):
    return v0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(t, T) / T)) + alpha)


def ref_warmup_cosine(t, v0, peak, W, D, end):
    if t < W:
        return v0 + (peak - v0) * t / W
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * min(t - W, D - W) / (D - W)))


def ref_wsd(t, peak, W, S, D, v0, end, shape):
    if t < W:
        return v0 + (peak - v0) * t / W
    s = min(max(t - W - S, 0), D) / D
    f = {"linear": s, "cosine": (1 - math.cos(math.pi * s)) / 2, "sqrt": math.sqrt(s)}[shape]
    return peak + (end - peak) * f


def ref_piecewise(t, bounds, values):
    return values[sum(t >= b for b in bounds)]


def ref_multistep(t, v0, milestones, gamma):
    return v0 * gamma ** sum(t >= m for m in milestones)


def ref_restarts(t, v0, T0, mult, vmin):
    start, period = 0, T0
    while t >= start + period:  # walk the periods (few: they grow geometrically)
        start, period = start + period, period * mult
        if mult == 1:  # equal periods: jump straight to the last one
            start, period = (t // T0) * T0, T0
    return vmin + (v0 - vmin) * 0.5 * (1 + math.cos(math.pi * (t - start) / period))


def ref_cyclic(t, base, top, up, down, mode, gamma):
    cycle, r = divmod(t, up + down)
    height = r / up if r <= up else (up + down - r) / down
    scale = {"triangular": 1.0, "triangular2": 0.5**cycle, "exp_range": gamma ** float(t)}[mode]
    return base + (top - base) * height * scale


def ref_one_cycle(t, points, N, pct, strategy, three):
    """torch's OneCycleLR as its documentation states it: phases end at these steps."""
    ends = [pct * N - 1, 2 * pct * N - 2, N - 1] if three else [pct * N - 1, N - 1]
    start = 0.0
    for k, end in enumerate(ends):
        if t <= end or k == len(ends) - 1:
            frac = min((t - start) / (end - start), 1.0)
            lo, hi = points[k], points[k + 1]
            if strategy == "cos":
                return hi + (lo - hi) / 2 * (1 + math.cos(math.pi * frac))
            return lo + (hi - lo) * frac
        start = end
    raise AssertionError


def ref_swa(t, v0, target, A, strategy):
    x = 1.0 if A == 0 else min(t / A, 1.0)
    a = (1 - math.cos(math.pi * x)) / 2 if strategy == "cos" else x
    return target * a + v0 * (1 - a)


def ref_join(t):
    """join([linear(0 → 1 over 4), cosine_decay(1, 10, α=0.1), 0.05], boundaries=[4, 2**33])."""
    if t < 4:
        return ref_poly(t, 0.0, 1.0, 1.0, 4)
    if t < 2**33:
        return ref_cosine(t - 4, 1.0, 10, 0.1)
    return 0.05


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


# --- torch's LR schedulers (golden data) ---------------------------------------------------


def jopt_schedule(record: dict):
    """The jopt schedule ``docs/porting.md`` maps a torch scheduler to."""
    kw, lr = record["kwargs"], record["lr"]
    name = record["scheduler"]
    if name == "PolynomialLR":
        return S.polynomial(
            lr, end_value=0.0, power=kw["power"], transition_steps=kw["total_iters"]
        )
    if name == "OneCycleLR":
        keys = ("pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase")
        return S.one_cycle(kw["max_lr"], total_steps=kw["total_steps"],
                           **{k: kw[k] for k in keys if k in kw})  # fmt: skip
    if name == "CosineAnnealingWarmRestarts":
        return S.cosine_restarts(lr, first_period=kw["T_0"], period_mult=kw["T_mult"],
                                 min_value=kw["eta_min"])  # fmt: skip
    if name == "CyclicLR":
        keys = ("step_size_up", "step_size_down", "mode", "gamma")
        return S.cyclic(
            kw["base_lr"], max_value=kw["max_lr"], **{k: kw[k] for k in keys if k in kw}
        )
    if name == "MultiStepLR":
        return S.multistep(lr, milestones=kw["milestones"], gamma=kw["gamma"])
    if name == "SWALR":
        return S.swa(lr, swa_value=kw["swa_lr"], anneal_steps=kw["anneal_epochs"],
                     anneal_strategy=kw.get("anneal_strategy", "cos"))  # fmt: skip
    raise NotImplementedError(name)


def one_cycle_momentum(record: dict):
    kw = record["kwargs"]
    keys = ("pct_start", "anneal_strategy", "three_phase", "base_momentum", "max_momentum")
    return S.one_cycle_momentum(kw["total_steps"], **{k: kw[k] for k in keys if k in kw})


GOLDEN_NAMES = sorted(k for k, v in SCHEDULERS.items() if isinstance(v, dict))


def test_every_new_torch_scheduler_has_golden_data():
    classes = {SCHEDULERS[name]["scheduler"] for name in GOLDEN_NAMES}
    assert classes == {"PolynomialLR", "OneCycleLR", "CosineAnnealingWarmRestarts", "CyclicLR",
                       "MultiStepLR", "SWALR"}  # fmt: skip
    modes = {SCHEDULERS[n]["kwargs"].get("mode") for n in GOLDEN_NAMES}
    assert {"triangular2", "exp_range"} <= modes


@pytest.mark.float64
@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_schedule_gives_torch_learning_rates_golden(name):
    """``schedule(k − 1)`` is the rate torch used at its k-th step, to 1e-12."""
    record = SCHEDULERS[name]
    steps = jnp.arange(record["num_steps"], dtype=jnp.int32)
    expected = np.asarray(record["lr_history"])
    # The schedule really varies (or, for SWALR without annealing, leaves the start at once).
    assert len(np.unique(expected)) > 1 or expected[0] != record["lr"]
    np.testing.assert_allclose(jopt_schedule(record)(steps), expected, rtol=1e-12, atol=1e-17)
    if "momentum_history" in record:
        np.testing.assert_allclose(
            one_cycle_momentum(record)(steps), record["momentum_history"], rtol=1e-12
        )


# --- torch.optim with StepLR and CosineAnnealingLR (golden trajectories) -------------------

TORCH_SCHEDULERS = {
    "sgd_momentum_steplr": lambda hp, kw: schedules.exponential_decay(
        hp["lr"], decay_rate=kw["gamma"], transition_steps=kw["step_size"], staircase=True
    ),
    "adam_cosine": lambda hp, kw: schedules.cosine_decay(
        hp["lr"], decay_steps=kw["T_max"], alpha=kw["eta_min"] / hp["lr"]
    ),
}


def _golden_schedule(name: str):
    record = load_golden(name)
    return record, TORCH_SCHEDULERS[name](record["hyperparameters"], record["scheduler"]["kwargs"])


def _golden_optimizer(record, learning_rate, inject: bool):
    hp = record["hyperparameters"]
    if record["optimizer"] == "SGD":
        factory = jopt.inject_hyperparams(jopt.sgd) if inject else jopt.sgd
        return factory(learning_rate=learning_rate, momentum=hp["momentum"])
    assert record["optimizer"] == "Adam"
    factory = jopt.inject_hyperparams(jopt.adam) if inject else jopt.adam
    b1, b2 = hp["betas"]
    return factory(learning_rate=learning_rate, b1=b1, b2=b2, eps=hp["eps"])


@pytest.mark.float64
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_schedule_gives_torch_learning_rates(name):
    record, schedule = _golden_schedule(name)
    assert record["scheduler"]["stepped"] == "per_step"
    got = jax.jit(schedule)(jnp.arange(record["num_steps"], dtype=jnp.int32))
    # torch's CosineAnnealingLR is a recursion; its rounding drifts a little from the
    # closed form, far below the trajectory tolerance.
    np.testing.assert_allclose(got, record["lr_history"], rtol=1e-12)
    assert len(np.unique(record["lr_history"])) > 5  # the schedule really varies


@pytest.mark.float64
@pytest.mark.parametrize("inject", [False, True])
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_scheduled_optimizer_replays_torch(name, inject):
    record, schedule = _golden_schedule(name)
    errors = replay(record, _golden_optimizer(record, schedule, inject))
    worst = {k: v for k, v in errors.items() if v > GOLDEN_RTOL}
    assert not worst, f"relative error above {GOLDEN_RTOL:g}: {worst}"
    assert {"loss", "params/W1", "params/b2"} <= set(errors)
    # Shifting the schedule by one step (torch's k-th step with schedule(k)) fails.
    if not inject:
        shifted = _golden_optimizer(record, lambda count: schedule(count + 1), inject=False)
        assert max(replay(record, shifted).values()) > 1e-9


@pytest.mark.float64
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_injected_learning_rate_is_the_one_torch_used(name):
    """After update k, ``get_hyperparams(state)["learning_rate"]`` is torch's k-th rate."""
    record, schedule = _golden_schedule(name)
    optimizer = _golden_optimizer(record, schedule, inject=True)
    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    state = optimizer.init(params)
    np.testing.assert_allclose(
        jopt.get_hyperparams(state)["learning_rate"], record["lr_history"][0], rtol=1e-12
    )
    update = jax.jit(optimizer.update)
    grads = jax.tree.map(jnp.ones_like, params)
    logged = []
    for _ in range(record["num_steps"]):
        _, state = update(grads, state, params)
        logged.append(float(jopt.get_hyperparams(state)["learning_rate"]))
    np.testing.assert_allclose(logged, record["lr_history"], rtol=1e-12)
