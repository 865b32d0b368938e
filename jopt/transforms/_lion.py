"""Lion: the sign of an interpolated momentum (Chen et al., 2023)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, block
from jopt._core import GradientTransformation
from jopt._validation import check

__all__ = ["ScaleByLionState", "scale_by_lion"]


class ScaleByLionState(NamedTuple):
    """The state of [`scale_by_lion`][jopt.transforms.scale_by_lion].

    Attributes:
      count: t, the number of updates, int32.
      mu: the momentum m, shaped like the params (lion-pytorch's ``exp_avg``).
    """

    count: jax.Array
    mu: Any


def scale_by_lion(
    b1: float = 0.9,
    *,
    b2: float = 0.99,
    mu_dtype: Any = None,
    mode: str = "hard",
    smooth_beta: float = 1.0,
) -> GradientTransformation:
    """Lion's scaling (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

    ``c = β₁·m + (1 − β₁)·g``, ``u = sign(c)``, then ``m ← β₂·m + (1 − β₂)·g``.
    The update interpolates with β₁ but the momentum is kept with β₂: every entry of
    ``u`` is ±1 (or 0), so the step size is the learning rate's alone.  For a complex
    ``c``, ``sign(c) = c/|c|``.

    ``mode`` replaces the sign as optax's does: ``"smooth"`` is ``tanh(smooth_beta·c)``
    and ``"refined"`` is ``c`` where ``|c| < 1`` and ``sign(c)`` elsewhere.  Same as
    ``optax.scale_by_lion`` for the same arguments and defaults.

    Args:
      b1: β₁, the interpolation of the update, in [0, 1).
      b2: β₂, the decay of the momentum, in [0, 1).
      mu_dtype: the momentum's storage dtype (default: the parameter's).
      mode: ``"hard"`` (the paper's sign), ``"smooth"`` or ``"refined"``.
      smooth_beta: the slope of ``tanh`` in ``"smooth"`` mode, > 0.

    Returns:
      The transformation; its state is a
      [`ScaleByLionState`][jopt.transforms.ScaleByLionState].
    """
    check(b1=b1, b2=b2, mu_dtype=mu_dtype, smooth_beta=smooth_beta)
    check("scale_by_lion", mode=mode)

    def direction(c):
        if mode == "smooth":
            return jnp.tanh(smooth_beta * c)
        if mode == "refined":
            return jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
        return jnp.sign(c)

    def rule(g, s):
        u = direction(b1 * s.mu + (1 - b1) * g)
        return u, s._replace(mu=b2 * s.mu + (1 - b2) * g)

    return block(ScaleByLionState, rule, mu=Field.zeros(mu_dtype))
