"""AdaBelief: Adam with the variance of the gradient around its prediction (Zhuang et al., 2020)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation
from jopt._validation import check
from jopt.transforms._adam import _first_moment

__all__ = ["ScaleByBeliefState", "scale_by_belief"]


class ScaleByBeliefState(NamedTuple):
    """The state of [`scale_by_belief`][jopt.transforms.scale_by_belief].

    Attributes:
      count: t, the number of updates, int32.
      mu: the first moment m, shaped like the params (the authors' ``exp_avg``).
      nu: s, the second central moment with its ε, real (``exp_avg_var``).
    """

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_belief(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief's scaling (Zhuang et al., 2020, Algorithm 2).

    The second moment tracks how far the gradient lands from its prediction m:

    ```text
    mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ
    sₜ = β₂·sₜ₋₁ + (1 − β₂)·|gₜ − mₜ|² + eps_root
    u  = m̂ₜ / (√ŝₜ + eps),   m̂ₜ = mₜ / (1 − β₁ᵗ),   ŝₜ = sₜ / (1 − β₂ᵗ)
    ```

    The paper adds the same ε at both places (``eps_root = eps``); the state keeps sₜ
    with its ε, as the authors' ``exp_avg_var`` does.  ``nesterov=True`` uses Adam's
    look-ahead m̂ (Dozat, 2016).  Same as ``optax.scale_by_belief`` (whose defaults
    these are), plus ``mu_dtype``/``nu_dtype``, the storage dtypes of m and s.

    Args:
      b1: β₁, the decay of the first moment, in [0, 1).
      b2: β₂, the decay of the second central moment, in [0, 1).
      eps: ε added to √ŝ, >= 0.
      eps_root: ε added to s at every step, >= 0.
      nesterov: the look-ahead first moment.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of s (default: the parameter's real dtype).

    Returns:
      The transformation; its state is a
      [`ScaleByBeliefState`][jopt.transforms.ScaleByBeliefState].
    """
    check(
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        nesterov=nesterov,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )

    def rule(g, s):
        mu = b1 * s.mu + (1 - b1) * g
        nu = b2 * s.nu + (1 - b2) * abs_sq(g - mu) + eps_root
        mu_hat = _first_moment(g, mu, b1, s.count, nesterov)
        nu_hat = nu / (1 - b2**s.count)
        return mu_hat / (jnp.sqrt(nu_hat) + eps), s._replace(mu=mu, nu=nu)

    return block(
        ScaleByBeliefState, rule, mu=Field.zeros(mu_dtype), nu=Field.zeros(nu_dtype, real=True)
    )
