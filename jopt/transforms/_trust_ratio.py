"""Layer-wise trust ratios: each leaf's step scaled by ‖θ‖ over the norm of its update.

LARS (You, Gitman & Ginsburg, 2017) and LAMB (You et al., 2020) scale the update of
each parameter tensor (each leaf, a "layer") so that its norm is a fixed fraction of
the parameter's norm, whatever the scale of the gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt._validation import check

__all__ = [
    "ScaleByLarsScheduleState",
    "ScaleByLarsState",
    "ScaleByTrustRatioState",
    "scale_by_lars",
    "scale_by_trust_ratio",
]


def _norm(x: jax.Array) -> jax.Array:
    """``‖x‖ = √(Σ|x|²)`` over the whole leaf, with a finite gradient at ``x = 0``."""
    total = jnp.sum(abs_sq(x))
    positive = total > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, total, 1)), 0)


def _ratio(numerator, denominator, use):
    """``numerator / denominator`` where ``use``, else 1; finite gradients either way."""
    return jnp.where(use, numerator / jnp.where(use, denominator, 1), 1)


class ScaleByTrustRatioState(NamedTuple):
    """The state of [`scale_by_trust_ratio`][jopt.transforms.scale_by_trust_ratio]: no fields."""


def scale_by_trust_ratio(
    min_norm: float = 0.0, *, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """Scale each leaf's update by its trust ratio, as in LAMB (You et al., 2020).

    With ``‖θ‖ = max(‖θ‖₂, min_norm)`` and ``‖u‖ = max(‖g‖₂, min_norm)`` over the
    leaf, the output is ``r·g`` with ``r = c·‖θ‖ / (‖u‖ + eps)``, and ``r = 1`` when
    either norm is 0 (a zero parameter, or a zero update, is left as it is).  Complex
    leaves use ``‖x‖² = Σ|x|²``.  Same as ``optax.scale_by_trust_ratio``.  Needs
    ``params``; no state.

    Args:
      min_norm: the least value of either norm, >= 0 (0: no floor).
      trust_coefficient: c, >= 0.
      eps: added to the update's norm in the denominator, >= 0.

    Returns:
      The transformation; its state is an empty
      [`ScaleByTrustRatioState`][jopt.transforms.ScaleByTrustRatioState].
    """
    check(min_norm=min_norm, trust_coefficient=trust_coefficient, eps=eps)

    def floored(x):
        norm = _norm(x)
        return jnp.where(norm <= min_norm, min_norm, norm)

    def rule(g, s, p):
        param_norm, update_norm = floored(p), floored(g)
        nonzero = (param_norm != 0) & (update_norm != 0)
        ratio = _ratio(trust_coefficient * param_norm, update_norm + eps, nonzero)
        return ratio * g, s

    return block(ScaleByTrustRatioState, rule, needs_params=True)


class ScaleByLarsState(NamedTuple):
    """The state of [`scale_by_lars`][jopt.transforms.scale_by_lars], constant decay: no fields."""


class ScaleByLarsScheduleState(NamedTuple):
    """The state of [`scale_by_lars`][jopt.transforms.scale_by_lars] with a scheduled weight decay.

    Attributes:
      count: t, the number of updates, int32.
      weight_decay: β of the latest update, ``schedule(t − 1)``, a 0-d float.
    """

    count: jax.Array
    weight_decay: jax.Array


def scale_by_lars(
    trust_coefficient: float = 1e-3,
    *,
    weight_decay: ScalarOrSchedule = 0.0,
    eps: float = 0.0,
) -> GradientTransformation:
    """LARS's layer-wise scaling (You, Gitman & Ginsburg, 2017, Algorithm 1).

    For each leaf, with the local learning rate
    ``λˡ = η·‖θ‖ / (‖g‖ + β·‖θ‖ + eps)``, the output is ``λˡ·(g + β·θ)``; ``λˡ = 1``
    when ``‖θ‖ = 0`` or the denominator is 0.  η is ``trust_coefficient`` and β the
    weight decay.  The denominator adds the two norms, as the paper does; optax's
    ``lars`` divides by the norm of the sum, ``‖g + β·θ‖``, instead (the two agree
    for β = 0).  The global learning rate and the momentum come after this block
    ([`jopt.lars`][jopt.lars]).  Needs ``params``.

    Args:
      trust_coefficient: η, >= 0.
      weight_decay: β >= 0, or a schedule ``step -> β`` (the state then counts the
        updates; update t uses ``schedule(t − 1)``).
      eps: added to the denominator, >= 0.

    Returns:
      The transformation; its state is an empty
      [`ScaleByLarsState`][jopt.transforms.ScaleByLarsState] or, for a scheduled
      weight decay, a
      [`ScaleByLarsScheduleState`][jopt.transforms.ScaleByLarsScheduleState].
    """
    check(trust_coefficient=trust_coefficient, weight_decay=weight_decay, eps=eps)
    scheduled = callable(weight_decay)

    def rule(g, s, p):
        decay = s.weight_decay if scheduled else weight_decay
        param_norm = _norm(p)
        denominator = _norm(g) + decay * param_norm + eps
        ratio = _ratio(
            trust_coefficient * param_norm, denominator, (param_norm > 0) & (denominator > 0)
        )
        return ratio * (g + decay * p), s

    if not scheduled:
        return block(ScaleByLarsState, rule, needs_params=True)

    # float64 with 64-bit types on, float32 otherwise: the dtype the schedule's values get.
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)

    def step(s):
        return s._replace(weight_decay=jnp.asarray(weight_decay(s.count - 1), dtype))

    return block(
        ScaleByLarsScheduleState,
        rule,
        needs_params=True,
        step=step,
        weight_decay=Field.scalar(0.0, dtype),
    )
