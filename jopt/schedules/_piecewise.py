"""Step functions and sequences of schedules: piecewise_constant, multistep, join."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from jopt._core import Schedule
from jopt._validation import as_number
from jopt.schedules._decay import constant
from jopt.schedules._steps import Steps, make_schedule
from jopt.schedules._steps import boundaries as _boundaries
from jopt.schedules._steps import value as _value

__all__ = ["piecewise_constant", "multistep", "join"]


def _sequence(name: str, items: Any, what: str) -> list:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"{name} must be a sequence of {what}, got {items!r}")
    return list(items)


def piecewise_constant(boundaries: Sequence[int], *, values: Sequence[Any]) -> Schedule:
    """A step function: ``values[i]`` from step ``boundaries[i − 1]`` on.

    ``value(t) = values[#{i : t >= boundaries[i]}]``: ``values[0]`` before
    ``boundaries[0]``, and the switch happens *at* each boundary.  The values are the
    values themselves, not factors as in optax's ``piecewise_constant_schedule``.

    Args:
      boundaries: non-negative, strictly increasing integers.
      values: ``len(boundaries) + 1`` finite numbers.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range, the
        boundaries do not increase, or the lengths do not fit.
    """
    bounds = _boundaries("boundaries", boundaries, increasing=True)
    values = _sequence("values", values, "numbers")
    if len(values) != len(bounds) + 1:
        raise ValueError(
            f"values must have len(boundaries) + 1 = {len(bounds) + 1} entries, "
            f"got {len(values)}: {values!r}"
        )
    table = [_value(f"values[{i}]", v) for i, v in enumerate(values)]

    def body(steps: Steps):
        return jnp.stack([jnp.asarray(v, jnp.result_type(float)) for v in table])[
            steps.count_reached(bounds)
        ]

    return make_schedule(body, "piecewise_constant")


def multistep(init_value: Any, *, milestones: Sequence[int], gamma: Any = 0.1) -> Schedule:
    """torch's ``MultiStepLR``: ``value(t) = v₀·γ^#{i : t >= milestones[i]}``.

    ``v₀ = init_value`` is multiplied by ``γ = gamma`` at every milestone.  As in
    torch, the milestones may come in any order and a milestone given twice multiplies
    by ``γ²``.

    Args:
      init_value: ``v₀``, a finite number.
      milestones: a sequence of integers ``>= 0``.
      gamma: ``γ > 0``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    v0, g = _value("init_value", init_value), _value("gamma", gamma)
    marks = _boundaries("milestones", milestones, increasing=False)

    def body(steps: Steps):
        return v0 * jnp.power(g, steps.as_float(steps.count_reached(marks)))

    return make_schedule(body, "multistep")


def join(schedules: Sequence[Schedule | Any], *, boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[0]`` until ``boundaries[0]``, then ``schedules[1]``, and so on.

    ``schedules[i]`` is used from step ``boundaries[i − 1]`` on and sees the steps
    counted from there: ``value(t) = schedules[i](t − boundaries[i − 1])``, as optax's
    ``join_schedules``.  A number in place of a schedule is a constant.  Every schedule
    is evaluated (later ones at step 0 until they start) and the right one selected.

    Args:
      schedules: ``len(boundaries) + 1`` schedules or numbers.
      boundaries: non-negative, strictly increasing integers.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range, or the
        lengths do not fit.
    """
    bounds = _boundaries("boundaries", boundaries, increasing=True)
    pieces = [_piece(i, s) for i, s in enumerate(_sequence("schedules", schedules, "schedules"))]
    if len(pieces) != len(bounds) + 1:
        raise ValueError(
            f"schedules must have len(boundaries) + 1 = {len(bounds) + 1} entries, "
            f"got {len(pieces)}"
        )

    def body(steps: Steps):
        dtype = jnp.result_type(float)
        values = [jnp.asarray(pieces[0](steps.t), dtype)]
        values += [
            jnp.asarray(piece(steps.since(b)), dtype)
            for b, piece in zip(bounds, pieces[1:], strict=True)
        ]
        values = jnp.stack([jnp.broadcast_to(v, steps.shape) for v in values])
        index = steps.count_reached(bounds)
        return jnp.take_along_axis(values, jnp.asarray(index)[None, ...], axis=0)[0]

    return make_schedule(body, "join")


def _piece(i: int, s: Any) -> Schedule:
    """``schedules[i]`` of ``join``: a schedule, or a number made a constant."""
    if callable(s) and not hasattr(s, "dtype"):
        return s
    try:
        as_number(f"schedules[{i}]", s)
    except TypeError:
        raise TypeError(
            f"schedules[{i}] must be a schedule (a callable step -> value) or a number, got {s!r}"
        ) from None
    try:
        return constant(s)
    except ValueError:
        raise ValueError(f"schedules[{i}] must be a finite number, got {s!r}") from None
