"""Stateless blocks and learning rates: scale, decay, clip.

Each computes in at least float32 and rounds once, to the update's dtype: a bfloat16
update scaled by a learning rate is rounded once, not twice.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _numerics, _placement
from jopt._block import block
from jopt._core import EmptyState, GradientTransformation, ScalarOrSchedule, Schedule
from jopt._validation import check
from jopt.wrappers import masked

__all__ = [
    "ScaleByScheduleState",
    "WeightDecayScheduleState",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
]


def scale(factor: float | jax.Array) -> GradientTransformation:
    """Multiply the updates by a constant: ``u = factor · g``.

    optax calls the argument ``step_size``; the computation is the same.

    Args:
      factor: a finite number or 0-d array.

    Returns:
      A stateless transformation (its state is ``EmptyState()``).
    """
    check(factor=factor)

    def rule(g, s):
        return factor * g, s

    return block(EmptyState, rule)


def _scaled(updates: Any, factor: Any, params: Any = None) -> Any:
    """``factor · g`` for every trainable leaf, with the stateless blocks' dtype policy."""
    return scale(factor).update(updates, EmptyState(), params)[0]


class ScaleByScheduleState(NamedTuple):
    """The state of [`scale_by_schedule`][jopt.transforms.scale_by_schedule].

    Attributes:
      count: the number of updates applied so far, int32, saturating at 2³¹ − 1.
    """

    count: jax.Array


def _count_state(params: Any) -> ScaleByScheduleState:
    return ScaleByScheduleState(count=_placement.scalar_like(params, 0, jnp.int32))


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiply the updates by ``step_size_fn(t)``, where ``t`` counts the earlier updates.

    ``u = step_size_fn(t) · g``.  The first update uses ``step_size_fn(0)``, as optax
    does, and as a torch ``LRScheduler`` stepped once after every optimizer step.

    Args:
      step_size_fn: a schedule ``t -> factor``, called with an int32 count.

    Returns:
      The transformation; its state is a
      [`ScaleByScheduleState`][jopt.transforms.ScaleByScheduleState].
    """
    check(step_size_fn=step_size_fn)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        scaled = _scaled(updates, step_size_fn(state.count), params)
        return scaled, ScaleByScheduleState(_numerics.safe_increment(state.count))

    return GradientTransformation(_count_state, update)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiply by ``−η`` (``+η`` without ``flip_sign``): the step ``θ ← θ − η·u``.

    Args:
      learning_rate: η >= 0, a number, a 0-d array, or a schedule ``step -> η`` (see
        [`scale_by_schedule`][jopt.transforms.scale_by_schedule] for which step it
        sees).
      flip_sign: multiply by ``−η`` (descent) when true, by ``+η`` when false.

    Returns:
      A stateless transformation for a number; for a schedule, the transformation of
      [`scale_by_schedule`][jopt.transforms.scale_by_schedule] (it counts steps).
    """
    check(learning_rate=learning_rate, flip_sign=flip_sign)
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


class WeightDecayScheduleState(NamedTuple):
    """The state of [`add_decayed_weights`][jopt.transforms.add_decayed_weights] with a scheduled λ.

    Attributes:
      count: the number of updates applied so far, int32, saturating.
    """

    count: jax.Array


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, *, mask: Any = None
) -> GradientTransformation:
    """Add an L2 penalty's gradient: ``u = g + λ·θ``.

    Placed before an adaptive block this is torch's ``weight_decay`` (L2 in the
    gradient); placed after it, just before the learning rate, it is decoupled weight
    decay as in AdamW (Loshchilov & Hutter, 2019).  Needs ``params``.

    Args:
      weight_decay: λ ≥ 0, or a schedule ``step -> λ`` (the state then counts steps,
        as optax's ``WeightDecaySchedule``).
      mask: a tree of bools with the structure of the params (or a prefix of it), or a
        function ``params -> tree of bools``: only the leaves where it is true decay;
        the others get ``u = g``.

    Returns:
      The transformation.  Its state is ``EmptyState()`` for a number,
      a [`WeightDecayScheduleState`][jopt.transforms.WeightDecayScheduleState] for a
      schedule, and a [`jopt.MaskedState`][jopt.MaskedState] around either with a
      ``mask``.
    """
    check(weight_decay=weight_decay)
    if mask is not None:
        return masked(add_decayed_weights(weight_decay), mask=mask)

    def decay(wd):
        def rule(g, s, p):
            return g + wd * p, s

        return block(EmptyState, rule, needs_params=True)

    if not callable(weight_decay):
        return decay(weight_decay)

    def update(updates, state, params=None, **extra_args):
        updates, _ = decay(weight_decay(state.count)).update(updates, EmptyState(), params)
        return updates, WeightDecayScheduleState(_numerics.safe_increment(state.count))

    def init(params):
        return WeightDecayScheduleState(_count_state(params).count)

    return GradientTransformation(init, update)


# --- clipping ------------------------------------------------------------------------


def _shrink_factor(size: jax.Array, limit) -> jax.Array:
    """``min(1, limit / size)``, elementwise; finite and differentiable where size is 0."""
    over = size > limit
    return jnp.where(over, limit / jnp.where(over, size, 1), 1)


def clip(max_delta: float | jax.Array) -> GradientTransformation:
    """Clip every entry: ``u = clip(g, −δ, δ)`` elementwise.

    A complex entry keeps its phase and has its magnitude clipped:
    ``u = g · min(1, δ / |g|)``.

    Args:
      max_delta: δ >= 0.

    Returns:
      A stateless transformation.
    """
    check(max_delta=max_delta)

    def rule(g, s):
        if jnp.iscomplexobj(g):
            return g * _shrink_factor(jnp.abs(g), max_delta), s
        return jnp.clip(g, -max_delta, max_delta), s

    return block(EmptyState, rule)


def global_norm(updates: Any) -> jax.Array:
    """``‖g‖ = √(Σ_leaves Σ |g|²)`` over the trainable leaves, in at least float32.

    Differentiable (gradient 0) at ``g = 0`` too.
    """
    squares = [
        jnp.sum(_numerics.abs_sq(_numerics.cast(g, _numerics.compute_dtype(g.dtype))))
        for g in jax.tree.leaves(updates)
        if _numerics.is_trainable(g)
    ]
    if not squares:
        return jnp.zeros([], jnp.float32)
    total = sum(squares)
    positive = total > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, total, 1)), 0)


def clip_by_global_norm(max_norm: float | jax.Array) -> GradientTransformation:
    """Rescale all updates together so that their global norm is at most ``c = max_norm``.

    ``u = g · min(1, c / ‖g‖)`` with ``‖g‖ = √(Σ_leaves Σ |g|²)`` (torch's
    ``clip_grad_norm_`` with the 2-norm, without its ``1e-6`` in the denominator).
    Updates whose norm is at most ``c`` pass unchanged, an all-zero update included
    (no ``0/0``).  The norm is taken in at least float32.

    Args:
      max_norm: c > 0.

    Returns:
      A stateless transformation.
    """
    check(max_norm=max_norm)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        factor = _shrink_factor(global_norm(updates), max_norm)
        return _scaled(updates, factor, params), state

    return GradientTransformation(lambda params: EmptyState(), update)
