"""ADOPT: Adam normalized by the earlier gradients' second moment (Taniguchi et al., 2024)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation
from jopt._validation import check

__all__ = ["ScaleByAdoptState", "scale_by_adopt"]


class ScaleByAdoptState(NamedTuple):
    """The state of [`scale_by_adopt`][jopt.transforms.scale_by_adopt].

    Attributes:
      count: the number of updates, int32 (the authors' ``step`` plus one).
      mu: the momentum m of the normalized gradients (the authors' ``exp_avg``).
      nu: the second moment v, real (``exp_avg_sq``).
    """

    count: jax.Array
    mu: Any
    nu: Any


def _fourth_root(step: jax.Array) -> jax.Array:
    """The paper's clipping bound ``c = step^¼``."""
    return step**0.25


def _clipped(x: jax.Array, bound: jax.Array) -> jax.Array:
    """``clip(x, −c, c)``; a complex entry keeps its phase, its magnitude clipped to c."""
    if jnp.iscomplexobj(x):
        size = jnp.abs(x)
        over = size > bound
        return x * jnp.where(over, bound / jnp.where(over, size, 1), 1)
    return jnp.clip(x, -bound, bound)


def scale_by_adopt(
    b1: float = 0.9,
    *,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _fourth_root,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """ADOPT's scaling (Taniguchi et al., 2024, Algorithm 2, with clipping).

    The gradient is normalized by the second moment of the *earlier* gradients, so
    that gₜ and its normalizer are independent; the momentum comes after:

    ```text
    first update:  v₀ = |g₀|²,  u = 0              (the parameters stay put)
    then, step t = 1, 2, …:
        ĝₜ = clip(gₜ / max(√vₜ₋₁, eps), cₜ),   cₜ = clip_value_fn(t) = t^¼
        mₜ = β₁·mₜ₋₁ + (1 − β₁)·ĝₜ,           u = mₜ
        vₜ = β₂·vₜ₋₁ + (1 − β₂)·|gₜ|²
    ```

    ``t`` is the number of earlier updates (``clip_value_fn`` gets it as an int32).
    ``use_clipping=False`` drops the clip (the paper's Algorithm 1).  A complex ĝ is
    clipped in magnitude, keeping its phase.  ``nesterov=True`` returns
    ``β₁·mₜ + (1 − β₁)·ĝₜ``.  Same as ``optax.contrib.scale_by_adopt``, plus
    ``nu_dtype``.

    Args:
      b1: β₁, the decay of the momentum, in [0, 1).
      b2: β₂, the decay of the second moment, in [0, 1).
      eps: the least normalizer, >= 0.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nesterov: return the look-ahead momentum.
      use_clipping: clip the normalized gradient.
      clip_value_fn: ``t -> cₜ``, the clipping bound after ``t`` earlier updates.
      nu_dtype: the storage dtype of v (default: the parameter's real dtype).

    Returns:
      The transformation; its state is a
      [`ScaleByAdoptState`][jopt.transforms.ScaleByAdoptState].
    """
    check(
        b1=b1,
        b2=b2,
        eps=eps,
        mu_dtype=mu_dtype,
        nesterov=nesterov,
        use_clipping=use_clipping,
        clip_value_fn=clip_value_fn,
        nu_dtype=nu_dtype,
    )

    def rule(g, s):
        first = s.count == 1
        # v is still 0 on the first update, whose ĝ is not used: divide by 1 there.
        normed = g / jnp.where(first, 1, jnp.maximum(jnp.sqrt(s.nu), eps))
        if use_clipping:
            normed = _clipped(normed, clip_value_fn(s.count.astype(jnp.int32) - 1))
        mu = jnp.where(first, s.mu, b1 * s.mu + (1 - b1) * normed)
        u = jnp.where(first, mu, b1 * mu + (1 - b1) * normed) if nesterov else mu
        g2 = abs_sq(g)
        nu = jnp.where(first, g2, b2 * s.nu + (1 - b2) * g2)
        return u, s._replace(mu=mu, nu=nu)

    return block(
        ScaleByAdoptState, rule, mu=Field.zeros(mu_dtype), nu=Field.zeros(nu_dtype, real=True)
    )
