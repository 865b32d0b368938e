"""Decays: constant, linear, polynomial, exponential, cosine, and warmup then cosine."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jopt._core import Schedule
from jopt._validation import checked
from jopt.schedules._steps import Steps, make_schedule, steps_arg
from jopt.schedules._steps import value as _value

__all__ = [
    "constant",
    "linear",
    "polynomial",
    "exponential_decay",
    "cosine_decay",
    "warmup_cosine_decay",
]

Number = Any  # a Python number or a 0-d array


def _cosine_fraction(steps: Steps, done, length: int):
    """``½(1 + cos(π·done / length))``: 1 at ``done = 0``, 0 at ``done = length``."""
    return 0.5 * (1.0 + jnp.cos(jnp.pi * (steps.as_float(done) / float(length))))


def constant(value: Number) -> Schedule:
    """The schedule ``t ↦ value`` for every step.

    Args:
      value: a finite number or 0-d array.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError: ``value`` is not a number.
      ValueError: ``value`` is not finite.
    """
    v = _value("value", value)
    return make_schedule(lambda steps: steps.full(v), "constant")


def linear(
    init_value: Number,
    *,
    end_value: Number,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """Linear interpolation from ``init_value`` to ``end_value``, then constant.

    With ``v₀ = init_value``, ``v₁ = end_value``, ``T = transition_steps`` and
    ``B = transition_begin``:

    ```text
    value(t) = v₀ + (v₁ − v₀)·clip(t − B, 0, T) / T
    ```

    so ``value(t) = v₀`` up to ``t = B`` and ``v₁`` from ``t = B + T`` on (optax's
    ``linear_schedule``; torch's ``LinearLR`` with factors ``v₀/lr`` and ``v₁/lr`` over
    ``total_iters = T``).

    Args:
      init_value: the value at the start, a finite number.
      end_value: the value from ``B + T`` on, a finite number.
      transition_steps: ``T``, an integer ``>= 1``.
      transition_begin: ``B``, the steps to hold ``init_value`` first, an integer ``>= 0``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    return polynomial(
        init_value,
        end_value=end_value,
        power=1.0,
        transition_steps=transition_steps,
        transition_begin=transition_begin,
    )


def polynomial(
    init_value: Number,
    *,
    end_value: Number,
    power: Number,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """Polynomial decay from ``init_value`` to ``end_value``, then constant.

    With ``v₀ = init_value``, ``v₁ = end_value``, ``p = power``, ``T = transition_steps``
    and ``B = transition_begin``:

    ```text
    value(t) = v₁ + (v₀ − v₁)·(1 − clip(t − B, 0, T) / T)^p
    ```

    optax's ``polynomial_schedule``.  torch's ``PolynomialLR(total_iters=T, power=p)`` is
    ``polynomial(lr, end_value=0.0, power=p, transition_steps=T)``.  ``p = 1`` is
    [`linear`][jopt.schedules.linear]; ``p = 0`` holds ``v₀`` for ever (``0⁰ = 1``).

    Args:
      init_value: ``v₀``, a finite number.
      end_value: ``v₁``, a finite number.
      power: ``p >= 0``.
      transition_steps: ``T``, an integer ``>= 1``.
      transition_begin: ``B``, an integer ``>= 0``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    v0, v1 = _value("init_value", init_value), _value("end_value", end_value)
    p = _value("power", power)
    length = steps_arg("transition_steps", transition_steps)
    begin = steps_arg("transition_begin", transition_begin)

    def body(steps: Steps):
        # max(., 0): XLA may divide by multiplying with a rounded reciprocal, and a
        # remaining fraction of -1e-16 would make a fractional power NaN.
        remaining = jnp.maximum(
            1.0 - steps.as_float(steps.since(begin, length)) / float(length), 0.0
        )
        return v1 + (v0 - v1) * remaining**p

    return make_schedule(body, "polynomial")


def exponential_decay(
    init_value: Number,
    *,
    decay_rate: Number,
    transition_steps: int = 1,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: Number | None = None,
) -> Schedule:
    """Exponential decay: ``value(t) = v₀·r^e`` with ``e = max(t − B, 0) / T``.

    ``v₀ = init_value``, ``r = decay_rate``, ``T = transition_steps``, ``B =
    transition_begin``.  With ``staircase=True`` the exponent is ``⌊max(t − B, 0) / T⌋``,
    so the value drops by ``r`` every ``T`` steps (torch's ``StepLR(step_size=T,
    gamma=r)``; with ``T = 1``, ``ExponentialLR(gamma=r)``).  ``end_value`` bounds the
    value: from below when ``r < 1``, from above when ``r > 1``.  As optax's
    ``exponential_decay``, except that a zero ``decay_rate`` is an error here (optax
    then returns the constant ``init_value``).

    Args:
      init_value: ``v₀``, a finite number.
      decay_rate: ``r > 0`` (``r > 1`` grows).
      transition_steps: ``T``, an integer ``>= 1``.
      transition_begin: ``B``, the steps to hold ``v₀`` first, an integer ``>= 0``.
      staircase: a bool; decay in whole steps of ``T``.
      end_value: ``None`` or a finite number, the bound described above.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    v0, r = _value("init_value", init_value), _value("decay_rate", decay_rate)
    length = steps_arg("transition_steps", transition_steps)
    begin = steps_arg("transition_begin", transition_begin)
    staircase = checked("staircase", staircase)
    end = _value("end_value", end_value, owner="exponential_decay")

    def body(steps: Steps):
        elapsed = steps.since(begin)
        if staircase:
            exponent = steps.as_float(steps.divmod(length, elapsed)[0])
        else:
            exponent = steps.as_float(elapsed) / float(length)
        decayed = v0 * jnp.power(r, exponent)
        if end is None:
            return decayed
        # optax's convention: a lower bound while decaying, an upper bound while growing.
        return jnp.where(jnp.asarray(r) < 1.0, jnp.maximum(decayed, end), jnp.minimum(decayed, end))

    return make_schedule(body, "exponential_decay")


def cosine_decay(init_value: Number, *, decay_steps: int, alpha: Number = 0.0) -> Schedule:
    """Cosine decay (Loshchilov & Hutter, 2017, without restarts), then constant.

    ``value(t) = v₀·((1 − α)·½(1 + cos(π·min(t, T) / T)) + α)`` with ``v₀ =
    init_value``, ``T = decay_steps`` and ``α = alpha``: ``v₀`` at ``t = 0``, ``α·v₀``
    from ``t = T`` on.  optax's ``cosine_decay_schedule``; torch's
    ``CosineAnnealingLR(T_max=T, eta_min=α·v₀)`` over its first ``T`` steps.

    Args:
      init_value: ``v₀``, a finite number.
      decay_steps: ``T``, an integer ``>= 1``.
      alpha: ``α >= 0``, the final value as a fraction of ``v₀``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    v0, a = _value("init_value", init_value), _value("alpha", alpha)
    length = steps_arg("decay_steps", decay_steps)

    def body(steps: Steps):
        cosine = _cosine_fraction(steps, steps.since(0, length), length)
        return v0 * ((1.0 - a) * cosine + a)

    return make_schedule(body, "cosine_decay")


def warmup_cosine_decay(
    init_value: Number,
    *,
    peak_value: Number,
    warmup_steps: int,
    decay_steps: int,
    end_value: Number = 0.0,
) -> Schedule:
    """Linear warmup, then cosine decay.

    With ``W = warmup_steps`` and ``D = decay_steps``, the total length *including*
    the warmup (optax's convention):

    ```text
    value(t) = v₀ + (v_peak − v₀)·t / W                                   t < W
    value(t) = v_end + (v_peak − v_end)·½(1 + cos(π·min(t − W, D − W) / (D − W)))
                                                                          t >= W
    ```

    so ``value(W) = v_peak`` and ``value(t) = v_end`` from ``t = D`` on.  With ``W = 0``
    there is no warmup and ``init_value`` is not used.

    Args:
      init_value: ``v₀``, the value at step 0, a finite number.
      peak_value: ``v_peak``, the value at the end of the warmup, a finite number.
      warmup_steps: ``W``, an integer ``>= 0``.
      decay_steps: ``D``, an integer ``> W``.
      end_value: ``v_end``, a finite number.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range
        (``decay_steps <= warmup_steps`` too).
    """
    v0, peak = _value("init_value", init_value), _value("peak_value", peak_value)
    end = _value("end_value", end_value)
    warmup = steps_arg("warmup_steps", warmup_steps)
    total = steps_arg("decay_steps", decay_steps)
    if total <= warmup:
        raise ValueError(
            f"decay_steps must be greater than warmup_steps (it counts the warmup too), "
            f"got decay_steps={total!r} and warmup_steps={warmup!r}"
        )

    def body(steps: Steps):
        # max(W, 1): with no warmup the rising branch is never selected, but must not be 0/0.
        rising = v0 + (peak - v0) * (steps.as_float(steps.since(0, warmup)) / float(max(warmup, 1)))
        cosine = _cosine_fraction(steps, steps.since(warmup, total - warmup), total - warmup)
        falling = end + (peak - end) * cosine
        return jnp.where(steps.at_least(warmup), falling, rising)

    return make_schedule(body, "warmup_cosine_decay")
