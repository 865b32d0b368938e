"""Skipping the steps whose gradients are not finite."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _align, _core, _numerics, _placement
from jopt._core import GradientTransformation
from jopt._validation import checked

__all__ = ["SkipNonfiniteState", "skip_nonfinite"]


# --- skip_nonfinite ------------------------------------------------------------------


class SkipNonfiniteState(NamedTuple):
    """The state of [`skip_nonfinite`][jopt.wrappers.skip_nonfinite].

    Attributes:
      inner_state: the wrapped optimizer's state, untouched by skipped steps.
      total_skipped: int32, how many steps were skipped so far (saturating).
      consecutive_nonfinite: int32, how many updates in a row, up to the last one,
        were non-finite, whether skipped or let through; a finite update resets it
        to 0 (saturating).
    """

    inner_state: Any
    total_skipped: jax.Array
    consecutive_nonfinite: jax.Array


def _all_finite(updates: Any) -> jax.Array:
    """A boolean scalar: no trainable leaf of ``updates`` holds a NaN or an infinity."""
    leaves = [g for g in jax.tree.leaves(updates) if _numerics.is_trainable(g)]
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in leaves], dtype=bool))


def skip_nonfinite(
    optimizer: GradientTransformation, *, max_consecutive: int | None = None
) -> GradientTransformation:
    """Skip the steps whose incoming updates hold a NaN or an infinity.

    With ``c`` the number of non-finite updates in a row before this one, a step is
    skipped when ``¬finite(g) ∧ (max_consecutive is None ∨ c < max_consecutive)``.  A
    skipped step returns updates of ``−0.0`` (so ``apply_updates`` returns every
    parameter bit for bit, ``−0.0`` included) and keeps the inner state exactly as it
    was; it adds 1 to ``total_skipped``.  Every non-finite update adds 1 to
    ``consecutive_nonfinite`` and a finite one resets it to 0.  Once
    ``max_consecutive`` non-finite updates in a row have been skipped the next ones
    go through, so a run that keeps producing NaNs fails visibly instead of stalling.
    ``max_consecutive=0`` lets everything through.

    "Finite" looks at the trainable (floating and complex) leaves of the incoming
    updates only; ``None``, integer and boolean leaves are ignored.  The choice is made
    with ``jnp.where``, not Python branching, so the wrapper works under ``jit`` and
    ``vmap``; the inner update is computed on every step and discarded when skipped.

    Args:
      optimizer: the wrapped transformation (jopt's or optax's).
      max_consecutive: ``None`` (skip every non-finite step) or an integer ``>= 0``.

    Returns:
      A transformation whose state is a [`SkipNonfiniteState`][jopt.wrappers.SkipNonfiniteState].
    """
    inner = _core._as_transformation(optimizer, "skip_nonfinite: optimizer")
    if max_consecutive is not None:
        # Above int32's range the counter saturates first: the limit is never reached.
        max_consecutive = min(checked("max_consecutive", max_consecutive), _numerics.INT32_MAX)

    def init(params):
        return SkipNonfiniteState(
            inner_state=inner.init(params),
            total_skipped=_placement.scalar_like(params, 0, jnp.int32),
            consecutive_nonfinite=_placement.scalar_like(params, 0, jnp.int32),
        )

    def update(updates, state, params=None, **extra_args):
        finite = _all_finite(updates)
        skip = jnp.logical_not(finite)
        if max_consecutive is not None:
            skip = skip & (state.consecutive_nonfinite < max_consecutive)
        new_updates, new_inner = inner.update(updates, state.inner_state, params, **extra_args)
        inner_state = jax.tree.map(
            lambda old, new: jnp.where(skip, old, new), state.inner_state, new_inner
        )
        # x + (−0.0) == x for every x, −0.0 included; x + 0.0 would turn −0.0 into 0.0.
        new_updates = _align.map_updates(
            lambda u: jnp.where(skip, -jnp.zeros_like(u), u), new_updates
        )
        return new_updates, SkipNonfiniteState(
            inner_state=inner_state,
            total_skipped=jnp.where(
                skip, _numerics.safe_increment(state.total_skipped), state.total_skipped
            ),
            consecutive_nonfinite=jnp.where(
                finite, 0, _numerics.safe_increment(state.consecutive_nonfinite)
            ).astype(jnp.int32),
        )

    return GradientTransformation(init, update)
