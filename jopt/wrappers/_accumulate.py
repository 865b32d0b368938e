"""Gradient accumulation: one inner update every k micro-steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _core, _placement
from jopt._block import Field, block
from jopt._core import GradientTransformation
from jopt._validation import checked

__all__ = ["AccumulateState", "accumulate"]


class _Sum(NamedTuple):
    grad_sum: Any


# s ← s + g, rounded once to the buffer's dtype; then the mean s / k as the update.
_SUMMING = block(
    _Sum, lambda g, s: (g, s._replace(grad_sum=s.grad_sum + g)), grad_sum=Field.zeros()
)


def _mean(k: int) -> GradientTransformation:
    return block(_Sum, lambda g, s: (s.grad_sum / k, s), grad_sum=Field.zeros())


# --- gradient accumulation ----------------------------------------------------------------


class AccumulateState(NamedTuple):
    """The state of [`accumulate`][jopt.wrappers.accumulate].

    Attributes:
      micro_step: int32 in ``[0, every_k)``, the micro-steps since the last inner update.
      grad_sum: the sum of their updates, one buffer shaped (and typed) like the params.
      inner_state: the wrapped optimizer's state, changed only on inner updates.
    """

    micro_step: jax.Array
    grad_sum: Any
    inner_state: Any


def accumulate(optimizer: GradientTransformation, *, every_k: int) -> GradientTransformation:
    """Gradient accumulation: one inner update every ``every_k`` micro-steps, on the mean.

    With ``k = every_k`` and micro-step gradients ``g₁ … g_k``: the first ``k − 1``
    micro-steps only add to the buffer ``s ← s + gᵢ`` and return zero updates (the
    params do not move, so all ``k`` gradients are taken at the same point); the
    ``k``-th runs the inner update on ``ḡ = (s + g_k) / k`` and resets ``s`` to zero.
    Over ``k·n`` micro-steps this is the inner optimizer on ``n`` steps of averaged
    gradients: with equal micro-batches of a mean loss, the large-batch run.

    The inner update sits in a ``lax.cond`` on the micro-step counter, so under ``jit``
    it runs only on the ``k``-th micro-step (not on every micro-step with the result
    discarded afterwards); under ``vmap`` the ``cond`` becomes a select and both sides
    run.  Memory: the inner state plus one params-shaped buffer and an int32 counter.
    The buffer has the params' dtype, so for bfloat16 params the sum is rounded to
    bfloat16 at each micro-step.

    Args:
      optimizer: the inner transformation (jopt's or optax's).
      every_k: the number of micro-steps per inner update, an integer ``>= 1``.

    Returns:
      A transformation whose state is an [`AccumulateState`][jopt.wrappers.AccumulateState].
    """
    inner = _core._as_transformation(optimizer, "optimizer")
    k = checked("every_k", every_k)

    def init(params):
        return AccumulateState(
            micro_step=_placement.scalar_like(params, 0, jnp.int32),
            grad_sum=_placement.zeros_like(params),
            inner_state=inner.init(params),
        )

    def update(updates, state, params=None, **extra_args):
        _, summed = _SUMMING.update(updates, _Sum(state.grad_sum), params)

        def run_inner(grad_sum, inner_state):
            mean, _ = _mean(k).update(updates, _Sum(grad_sum))
            new_updates, inner_state = inner.update(mean, inner_state, params, **extra_args)
            return new_updates, inner_state, _placement.zeros_like(grad_sum)

        def hold(grad_sum, inner_state):
            # Zero updates of exactly the types the inner update would return.
            shapes = jax.eval_shape(run_inner, grad_sum, inner_state)[0]
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return zeros, inner_state, grad_sum

        last = state.micro_step == k - 1
        new_updates, inner_state, grad_sum = jax.lax.cond(
            last, run_inner, hold, summed.grad_sum, state.inner_state
        )
        micro_step = jnp.where(last, 0, state.micro_step + 1).astype(jnp.int32)
        return new_updates, AccumulateState(micro_step, grad_sum, inner_state)

    return GradientTransformation(init, update)
