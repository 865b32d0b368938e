"""Periodic schedules: cosine_restarts (SGDR) and cyclic (CLR)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jopt._core import Schedule
from jopt._validation import checked
from jopt.schedules._steps import INT64_MAX, Steps, make_schedule, steps_arg
from jopt.schedules._steps import value as _value

__all__ = ["cosine_restarts", "cyclic"]

Number = Any


def _restart_starts(first: int, mult: int) -> list[int]:
    """The step at which each period begins, ``T₀·(mᵏ − 1)/(m − 1)``, up to 2⁶³ − 1."""
    starts, period = [0], first
    while starts[-1] + period <= INT64_MAX:
        starts.append(starts[-1] + period)
        period *= mult
    return starts


def cosine_restarts(
    init_value: Number,
    *,
    first_period: int,
    period_mult: int = 1,
    min_value: Number = 0.0,
) -> Schedule:
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2017).

    Period ``k`` lasts ``Tₖ = T₀·mᵏ`` steps (``T₀ = first_period``, ``m =
    period_mult``) and starts at ``Sₖ = T₀ + T₀·m + … + T₀·mᵏ⁻¹``; within it:

    ```text
    value(t) = v_min + (v₀ − v_min)·½(1 + cos(π·(t − Sₖ) / Tₖ))
    ```

    so the value restarts at ``v₀`` at every ``Sₖ``.  torch's
    ``CosineAnnealingWarmRestarts(T_0=T₀, T_mult=m, eta_min=v_min)``; the periods and
    the position in them are computed in integers, exact at any step.

    Args:
      init_value: ``v₀``, a finite number.
      first_period: ``T₀``, an integer ``>= 1``.
      period_mult: ``m``, an integer ``>= 1``.
      min_value: ``v_min``, a finite number.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    v0, low = _value("init_value", init_value), _value("min_value", min_value)
    first = steps_arg("first_period", first_period)
    mult = steps_arg("period_mult", period_mult)
    starts = _restart_starts(first, mult) if mult > 1 else None

    def body(steps: Steps):
        if starts is None:
            _, position = steps.divmod(first)
            period = float(first)
        else:
            cycle = steps.count_reached(starts[1:])
            reachable = [s for s in starts if s <= steps.imax]
            position = steps.t - steps.lookup(reachable, cycle)
            period = jnp.asarray([float(first * mult**k) for k in range(len(starts))])[cycle]
        fraction = steps.as_float(position) / period
        return low + (v0 - low) * 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))

    return make_schedule(body, "cosine_restarts")


def cyclic(
    base_value: Number,
    *,
    max_value: Number,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: Number = 1.0,
) -> Schedule:
    """Cyclical learning rates (Smith, 2017): torch's ``CyclicLR``.

    A cycle rises linearly from ``base_value`` towards ``max_value`` over ``U =
    step_size_up`` steps and falls back over ``D = step_size_down`` steps (default
    ``U``).  With ``c = ⌊t / (U + D)⌋`` and ``r = t − c·(U + D)``:

    ```text
    h(t) = r / U                 if r <= U
    h(t) = (U + D − r) / D       otherwise
    value(t) = v_base + (v_max − v_base)·h(t)·s(t)
    ```

    with ``s(t) = 1`` (``"triangular"``), ``s(t) = 2⁻ᶜ`` (``"triangular2"``: the
    amplitude halves every cycle) or ``s(t) = γᵗ`` (``"exp_range"``).

    Args:
      base_value: ``v_base``, a finite number.
      max_value: ``v_max``, a finite number.
      step_size_up: ``U``, an integer ``>= 1``.
      step_size_down: ``D``, an integer ``>= 1``, or ``None`` for ``U``.
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: ``γ > 0``, used by ``"exp_range"``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    base, top = _value("base_value", base_value), _value("max_value", max_value)
    up = steps_arg("step_size_up", step_size_up)
    down = steps_arg("step_size_down", step_size_down)
    down = up if down is None else down
    mode = checked("mode", mode, owner="cyclic")
    g = _value("gamma", gamma)

    def body(steps: Steps):
        cycle, position = steps.divmod(up + down)
        rising = ~steps.at_least(up + 1, position)
        r = steps.as_float(position)
        height = jnp.where(rising, r / float(up), (float(up + down) - r) / float(down))
        if mode == "triangular2":
            height = height * jnp.power(0.5, steps.as_float(cycle))
        elif mode == "exp_range":
            height = height * jnp.power(g, steps.float_t())
        return base + (top - base) * height

    return make_schedule(body, "cyclic")
