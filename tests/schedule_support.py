"""Closed forms of the schedules, shared by the schedule tests.

Scalar Python functions on exact integers and float64 ``math`` (the cycle of a restart
schedule found by walking the periods, a step function by counting boundaries), written
independently of jopt's integer-domain code.
"""

from __future__ import annotations

import math

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
HUGE = (10**6, INT32_MAX, 2**31, 10**10, 2**40 + 3, 10**15 + 7, INT64_MAX)


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
