"""Schedules: pure functions ``step -> value`` for learning rates and other hyperparameters.

Each function here returns a schedule, a jittable function of an integer step ``t`` (a
Python int or an integer array, possibly traced) that returns a float array.  A schedule
is accepted anywhere a learning rate is, and by :func:`jopt.inject_hyperparams` for any
numeric hyperparameter.

Which step a schedule sees: ``t`` is the number of updates applied *before* the current
one.  The first update uses ``schedule(0)``, the second ``schedule(1)``, and so on.  This
is optax's convention, and the same as a torch ``LRScheduler`` whose ``step()`` is called
once after every ``optimizer.step()``: torch's k-th optimizer step (k = 1, 2, ...) uses
the rate the scheduler computes for epoch ``k - 1``.

Step-count arguments (``transition_steps``, ``decay_steps``, ``warmup_steps``,
``boundaries``) are Python integers, fixed when the schedule is built; values may be
numbers or 0-d arrays.  Bad arguments raise ``ValueError`` (or ``TypeError``) naming the
argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jopt._core import Schedule
from jopt._validation import check, checked

__all__ = [
    "constant",
    "linear",
    "exponential_decay",
    "cosine_decay",
    "warmup_cosine_decay",
    "piecewise_constant",
    "join",
]


# --- validation ------------------------------------------------------------------------


def _check_boundaries(boundaries: Any, name: str = "boundaries") -> tuple[int, ...]:
    """Non-negative, strictly increasing integers."""
    if not isinstance(boundaries, (Sequence, np.ndarray)) or isinstance(boundaries, str):
        raise TypeError(f"{name} must be a sequence of integers, got {boundaries!r}")
    bounds = tuple(checked(f"{name}[{i}]", b) for i, b in enumerate(list(boundaries)))
    for i in range(1, len(bounds)):
        if bounds[i] <= bounds[i - 1]:
            raise ValueError(
                f"{name} must be strictly increasing, got {name}[{i - 1}]={bounds[i - 1]} "
                f"and {name}[{i}]={bounds[i]}"
            )
    return bounds


# --- shared arithmetic -----------------------------------------------------------------


def _float_dtype():
    # float64 when x64 is enabled, float32 otherwise.
    return jnp.result_type(float)


def _as_float(x: Any) -> jax.Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(_float_dtype())


def _step(step: Any) -> jax.Array:
    """The step as a float array, for the arithmetic below."""
    return jnp.asarray(step).astype(_float_dtype())


def _linear_interp(t: jax.Array, start, end, steps) -> jax.Array:
    """``start + (end − start)·clip(t / steps, 0, 1)``."""
    fraction = jnp.clip(t / steps, 0.0, 1.0)
    return _as_float(start + (end - start) * fraction)


def _cosine_interp(t: jax.Array, start, end, steps) -> jax.Array:
    """``end + (start − end)·½(1 + cos(π·clip(t, 0, steps) / steps))``."""
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.clip(t, 0.0, steps) / steps))
    return _as_float(end + (start - end) * cosine)


# --- schedules -------------------------------------------------------------------------


def constant(value: float | jax.Array) -> Schedule:
    """The schedule ``t -> value`` for every step."""
    check(value=value)

    def schedule(step):
        del step
        return _as_float(value)

    return schedule


def linear(
    init_value: float | jax.Array, end_value: float | jax.Array, transition_steps: int
) -> Schedule:
    """Linear interpolation, then constant.

    ``value(t) = v₀ + (v₁ − v₀)·min(t / T, 1)`` with ``v₀ = init_value``,
    ``v₁ = end_value`` and ``T = transition_steps`` (an integer ``>= 1``): ``v₀`` at
    ``t = 0``, ``v₁`` from ``t = T`` on.
    """
    check(init_value=init_value)
    check(end_value=end_value)
    steps = checked("transition_steps", transition_steps)

    def schedule(step):
        return _linear_interp(_step(step), init_value, end_value, steps)

    return schedule


def exponential_decay(
    init_value: float | jax.Array,
    decay_rate: float | jax.Array,
    transition_steps: int = 1,
    staircase: bool = False,
) -> Schedule:
    """Exponential decay: ``value(t) = v₀ · r^(t / T)``.

    ``v₀ = init_value``, ``r = decay_rate`` (``>= 0``; ``r > 1`` grows) and
    ``T = transition_steps`` (an integer ``>= 1``).  With ``staircase=True`` the
    exponent is ``⌊t / T⌋``, so the value drops by a factor ``r`` every ``T`` steps
    (torch's ``StepLR(step_size=T, gamma=r)``).
    """
    check(init_value=init_value)
    check(decay_rate=decay_rate)
    check(decay_rate=decay_rate)
    steps = checked("transition_steps", transition_steps)
    if not isinstance(staircase, (bool, np.bool_)):
        raise TypeError(f"staircase must be a bool, got {staircase!r}")

    def schedule(step):
        exponent = _step(step) / steps
        if staircase:
            exponent = jnp.floor(exponent)
        return _as_float(init_value * jnp.power(decay_rate, exponent))

    return schedule


def cosine_decay(
    init_value: float | jax.Array, decay_steps: int, alpha: float | jax.Array = 0.0
) -> Schedule:
    """Cosine decay (Loshchilov & Hutter, 2017, without restarts).

    ``value(t) = v₀ · ((1 − α)·½(1 + cos(π·min(t, T) / T)) + α)`` with
    ``v₀ = init_value``, ``T = decay_steps`` (an integer ``>= 1``) and ``α = alpha``
    (``>= 0``): ``v₀`` at ``t = 0``, ``α·v₀`` from ``t = T`` on.  torch's
    ``CosineAnnealingLR(T_max=T, eta_min=α·v₀)`` over its first ``T`` steps.
    """
    check(init_value=init_value)
    check(alpha=alpha)
    check(alpha=alpha)
    steps = checked("decay_steps", decay_steps)

    def schedule(step):
        return _cosine_interp(_step(step), init_value, alpha * init_value, steps)

    return schedule


def warmup_cosine_decay(
    init_value: float | jax.Array,
    peak_value: float | jax.Array,
    warmup_steps: int,
    decay_steps: int,
    end_value: float | jax.Array = 0.0,
) -> Schedule:
    """Linear warmup, then cosine decay.

    With ``W = warmup_steps`` (an integer ``>= 0``) and ``D = decay_steps``, the total
    length *including* the warmup (an integer ``> W``, optax's convention)::

        value(t) = v₀ + (v_peak − v₀)·t / W                           for t < W
        value(t) = v_end + (v_peak − v_end)·½(1 + cos(π·min(t − W, D − W) / (D − W)))
                                                                      for t >= W

    so ``value(W) = v_peak`` and ``value(t) = v_end`` from ``t = D`` on.  With ``W = 0``
    there is no warmup and ``init_value`` is not used.
    """
    check(init_value=init_value)
    check(peak_value=peak_value)
    check(end_value=end_value)
    warmup = checked("warmup_steps", warmup_steps)
    total = checked("decay_steps", decay_steps)
    if total <= warmup:
        raise ValueError(
            f"decay_steps must be greater than warmup_steps (it counts the warmup too), "
            f"got decay_steps={total!r} and warmup_steps={warmup!r}"
        )

    def schedule(step):
        t = _step(step)
        # max(W, 1): with no warmup the first branch is never selected, but must not be 0/0.
        rising = _linear_interp(t, init_value, peak_value, max(warmup, 1))
        falling = _cosine_interp(t - warmup, peak_value, end_value, total - warmup)
        return jnp.where(t < warmup, rising, falling)

    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float | jax.Array]) -> Schedule:
    """A step function: ``values[0]`` before ``boundaries[0]``, ``values[i]`` from
    ``boundaries[i − 1]`` on.

    ``value(t) = values[#{i : t >= boundaries[i]}]``.  ``boundaries`` are non-negative,
    strictly increasing integers and ``len(values) == len(boundaries) + 1``.  (The
    values are the values themselves, not factors as in optax's
    ``piecewise_constant_schedule``.)
    """
    bounds = _check_boundaries(boundaries)
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"values must be a sequence of numbers, got {values!r}")
    values = list(values)
    if len(values) != len(bounds) + 1:
        raise ValueError(
            f"values must have len(boundaries) + 1 = {len(bounds) + 1} entries, "
            f"got {len(values)}: {values!r}"
        )
    for i, v in enumerate(values):
        checked(f"values[{i}]", v)

    def schedule(step):
        t = jnp.asarray(step)
        index = sum((t >= b).astype(jnp.int32) for b in bounds) if bounds else 0
        return _as_float(jnp.stack([_as_float(v) for v in values]))[index]

    return schedule


def join(schedules: Sequence[Schedule | float], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[0]`` until ``boundaries[0]``, then ``schedules[1]``, and so on.

    ``schedules[i]`` is used from step ``boundaries[i − 1]`` on and sees the steps
    counted from there: ``value(t) = schedules[i](t − boundaries[i − 1])``, as optax's
    ``join_schedules``.  ``len(schedules) == len(boundaries) + 1``; a number in place
    of a schedule is a constant.
    """
    bounds = _check_boundaries(boundaries)
    if isinstance(schedules, str) or not isinstance(schedules, Sequence):
        raise TypeError(f"schedules must be a sequence of schedules, got {schedules!r}")
    pieces = []
    for i, s in enumerate(schedules):
        if callable(s):
            pieces.append(s)
        else:
            try:
                pieces.append(constant(s))
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"schedules[{i}] must be a schedule (a callable step -> value) or a "
                    f"number, got {s!r}"
                ) from error
    if len(pieces) != len(bounds) + 1:
        raise ValueError(
            f"schedules must have len(boundaries) + 1 = {len(bounds) + 1} entries, "
            f"got {len(pieces)}"
        )

    def schedule(step):
        t = jnp.asarray(step)
        value = _as_float(pieces[0](t))
        for boundary, piece in zip(bounds, pieces[1:]):
            # max(., 0): a later piece is also evaluated (and discarded) before its start.
            later = _as_float(piece(jnp.maximum(t - boundary, 0)))
            value = jnp.where(t >= boundary, later, value)
        return value

    return schedule
