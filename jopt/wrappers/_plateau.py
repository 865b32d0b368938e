"""Reduce on plateau: scale the updates down when a monitored value stops improving."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _align, _numerics, _placement
from jopt._block import block
from jopt._core import EmptyState, GradientTransformation
from jopt._validation import checked

__all__ = ["ReduceOnPlateauState", "plateau_scale", "reduce_on_plateau"]


class ReduceOnPlateauState(NamedTuple):
    """The state of [`reduce_on_plateau`][jopt.wrappers.reduce_on_plateau], with torch's
    ``ReduceLROnPlateau`` names.

    Attributes:
      scale: the factor on the updates, 1 at the start (torch's ``lr / initial lr``).
      best: the best value so far (``+inf`` in mode ``"min"``, ``−inf`` in ``"max"`` at
        the start).
      num_bad_steps: int32, values in a row that did not improve on ``best`` (torch's
        ``num_bad_epochs``).
      cooldown_counter: int32, updates left before bad values count again.
    """

    scale: jax.Array
    best: jax.Array
    num_bad_steps: jax.Array
    cooldown_counter: jax.Array


def find_state(state: Any, state_type: type, owner: str) -> Any:
    """The one ``state_type`` inside a (chained, wrapped, injected) optimizer state."""
    found, _ = jax.tree_util.tree_flatten_with_path(
        state, is_leaf=lambda x: isinstance(x, state_type)
    )
    found = [(path, leaf) for path, leaf in found if isinstance(leaf, state_type)]
    if not found:
        raise ValueError(f"state holds no {state_type.__name__}: it is not from {owner}")
    if len(found) > 1:
        paths = ", ".join(_align.path_str(path) or "<root>" for path, _ in found)
        raise ValueError(
            f"state holds {len(found)} of {state_type.__name__} (at {paths}): pass the part "
            f"of the state that holds the one you mean"
        )
    return found[0][1]


def plateau_scale(state: Any) -> jax.Array:
    """The current scale of the [`reduce_on_plateau`][jopt.wrappers.reduce_on_plateau] inside
    ``state``.

    Multiply it by the base learning rate to get the learning rate in effect, the
    number torch's ``ReduceLROnPlateau`` would report.

    Args:
      state: an optimizer state holding one ``ReduceOnPlateauState``, at any depth.

    Returns:
      The scale, a 0-d float array (1 until the first reduction).

    Raises:
      ValueError: ``state`` holds no ``ReduceOnPlateauState``, or several.
    """
    return find_state(state, ReduceOnPlateauState, "reduce_on_plateau").scale


def _improved(mode: str, threshold_mode: str, threshold: float):
    """torch's ``_is_better(a, best)``, word for word, negative values included."""
    if mode == "min" and threshold_mode == "rel":
        return lambda a, best: a < best * (1.0 - threshold)
    if mode == "min":
        return lambda a, best: a < best - threshold
    if threshold_mode == "rel":
        return lambda a, best: a > best * (threshold + 1.0)
    return lambda a, best: a > best + threshold


def reduce_on_plateau(
    factor: float = 0.1,
    *,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_scale: float = 0.0,
    mode: str = "min",
    eps: float = 1e-8,
) -> GradientTransformation:
    """Multiply the updates by a scale that drops by ``factor`` when the value plateaus.

    torch's ``ReduceLROnPlateau`` as a transformation.  Each update reads the monitored
    value (a loss, usually) from ``update(updates, state, params, value=v)`` and then,
    as torch's ``scheduler.step(v)``:

    * ``v`` improves when ``v < best·(1 − threshold)`` (mode ``"min"``, ``"rel"``),
      ``v < best − threshold`` (``"abs"``), ``v > best·(1 + threshold)`` (``"max"``,
      ``"rel"``) or ``v > best + threshold``; then ``best ← v`` and the bad count is 0,
      otherwise it goes up by one.  These are torch's tests as written, for negative
      values too: in mode ``"min"`` with ``"rel"``, a negative ``best`` is beaten by a
      slightly *larger* value (optax's version never reduces on negative losses).
    * During a cooldown the counter goes down by one and bad values are not counted.
    * When the bad count exceeds ``patience``: ``scale ← max(scale·factor,
      min_scale)`` if that lowers it by more than ``eps``; the cooldown restarts and
      the bad count is reset.

    The updates are then multiplied by the new scale, so the value passed with update
    ``k`` already sets update ``k``'s scale: torch's ``scheduler.step(v)`` before the
    optimizer step.  Put it last in a chain (``chain(adam(1e-3),
    reduce_on_plateau())``) to scale the learning rate.  ``min_scale`` and ``eps`` are
    fractions of the learning rate: torch's ``min_lr`` and ``eps`` divided by it.

    Args:
      factor: the factor of each reduction, in ``[0, 1)``.
      patience: bad values tolerated before a reduction, an integer ``>= 0``.
      threshold: the improvement needed, ``>= 0``.
      threshold_mode: ``"rel"`` or ``"abs"``.
      cooldown: updates after a reduction during which bad values are not counted.
      min_scale: the lowest scale, ``>= 0``.
      mode: ``"min"`` (the value should fall) or ``"max"`` (it should rise).
      eps: the smallest reduction of the scale that is applied, ``>= 0``.

    Returns:
      A transformation whose state is a
      [`ReduceOnPlateauState`][jopt.wrappers.ReduceOnPlateauState]; its ``update`` needs ``value=``
      (a real scalar).  Read the scale with [`plateau_scale`][jopt.wrappers.plateau_scale].

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    factor = float(checked("factor", factor, owner="reduce_on_plateau"))
    patience = min(checked("patience", patience), _numerics.INT32_MAX)
    threshold = float(checked("threshold", threshold))
    threshold_mode = checked("threshold_mode", threshold_mode)
    cooldown = min(checked("cooldown", cooldown), _numerics.INT32_MAX)
    min_scale = float(checked("min_scale", min_scale))
    mode = checked("mode", mode, owner="reduce_on_plateau")
    eps = float(checked("eps", eps))
    improved = _improved(mode, threshold_mode, threshold)

    def init(params):
        dtype = jnp.result_type(float)
        return ReduceOnPlateauState(
            scale=_placement.scalar_like(params, 1.0, dtype),
            best=_placement.scalar_like(params, np.inf if mode == "min" else -np.inf, dtype),
            num_bad_steps=_placement.scalar_like(params, 0, jnp.int32),
            cooldown_counter=_placement.scalar_like(params, 0, jnp.int32),
        )

    def step(state, value):
        current = jnp.asarray(value).astype(state.best.dtype)
        better = improved(current, state.best)
        best = jnp.where(better, current, state.best)
        bad = jnp.where(better, 0, _numerics.safe_increment(state.num_bad_steps))
        cooling = state.cooldown_counter > 0
        counter = jnp.where(cooling, state.cooldown_counter - 1, state.cooldown_counter)
        bad = jnp.where(cooling, 0, bad)
        reduce = bad > patience
        lowered = jnp.maximum(state.scale * factor, min_scale)
        scale = jnp.where(reduce & (state.scale - lowered > eps), lowered, state.scale)
        return ReduceOnPlateauState(
            scale=scale,
            best=best,
            num_bad_steps=jnp.where(reduce, 0, bad).astype(jnp.int32),
            cooldown_counter=jnp.where(reduce, cooldown, counter).astype(jnp.int32),
        )

    def update(updates, state, params=None, *, value=None, **extra_args):
        del extra_args
        _check_value(value)
        state = step(state, value)
        scaled = block(EmptyState, lambda g, s: (state.scale * g, s))
        return scaled.update(updates, EmptyState(), params)[0], state

    return GradientTransformation(init, update)


def _check_value(value: Any) -> None:
    if value is None:
        raise TypeError(
            "reduce_on_plateau needs the monitored value: update(updates, state, params, "
            "value=loss)"
        )
    shape = np.shape(value) if hasattr(value, "shape") else None
    dtype = getattr(value, "dtype", None)
    if dtype is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        dtype, shape = np.result_type(value), ()
    if (
        shape != ()
        or dtype is None
        or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))
    ):
        raise TypeError(
            f"value must be a real scalar (the loss), got {type(value).__name__} {value!r}"
        )
