"""NAdam: Adam with Nesterov's look-ahead and Dozat's momentum schedule (Dozat, 2016)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation
from jopt._validation import check

__all__ = ["ScaleByNadamState", "scale_by_nadam"]


class ScaleByNadamState(NamedTuple):
    """NAdam's state.

    ``count``: t (torch ``step``); ``mu_product``: ``Πᵢ₌₁..ₜ μᵢ``, one scalar for the
    whole tree (torch ``mu_product``, kept per parameter there); ``mu``: m (torch
    ``exp_avg``); ``nu``: v (torch ``exp_avg_sq``).
    """

    count: jax.Array
    mu_product: jax.Array
    mu: Any
    nu: Any


def _momentum_schedule(b1, momentum_decay, t):
    """Dozat's ``μₜ = β₁·(1 − ½·0.96^(t·ψ))``, with ψ = ``momentum_decay``."""
    return b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))


def scale_by_nadam(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """NAdam's scaling (Dozat, 2016, "Incorporating Nesterov momentum into Adam").

    With the momentum schedule ``μₜ = β₁·(1 − ½·0.96^(t·ψ))`` and its running product
    ``Πₜ = μ₁·…·μₜ``:

    ```text
    m ← β₁·m + (1 − β₁)·g,         v ← β₂·v + (1 − β₂)·|g|²
    d = √(v / (1 − β₂ᵗ)) + ε
    u = (1 − μₜ) / (1 − Πₜ) · g / d  +  μₜ₊₁ / (1 − Πₜ·μₜ₊₁) · m / d
    ```

    the form of ``torch.optim.NAdam``; the descent step is ``−η·u``.  ψ =
    ``momentum_decay`` = 0 gives the constant ``μ = β₁/2``.  optax's NAdam, without the
    schedule, is [`jopt.scale_by_adam`][jopt.scale_by_adam] with ``nesterov=True``.

    Args:
      b1: β₁, the base momentum, in [0, 1).
      b2: β₂, in [0, 1).
      eps: ε ≥ 0, added outside the root.
      momentum_decay: ψ ≥ 0 (torch's default 4e-3).
      mu_dtype: storage dtype of ``mu`` (default: the parameter's).
      nu_dtype: storage dtype of ``nu`` (default: the parameter's, real).

    Returns:
      The transformation; its state is a [`ScaleByNadamState`][jopt.transforms.ScaleByNadamState].
    """
    check(
        b1=b1, b2=b2, eps=eps, momentum_decay=momentum_decay, mu_dtype=mu_dtype, nu_dtype=nu_dtype
    )

    def step(s):
        dtype = s.mu_product.dtype
        mu_now = _momentum_schedule(b1, momentum_decay, s.count.astype(dtype))
        return s._replace(mu_product=(s.mu_product * mu_now).astype(dtype))

    def rule(g, s):
        t = s.count
        mu_now = _momentum_schedule(b1, momentum_decay, t)
        mu_next = _momentum_schedule(b1, momentum_decay, t + 1)
        mu = b1 * s.mu + (1 - b1) * g
        nu = b2 * s.nu + (1 - b2) * abs_sq(g)
        denominator = jnp.sqrt(nu / (1 - b2**t)) + eps
        gradient_part = (1 - mu_now) / (1 - s.mu_product) * g
        momentum_part = mu_next / (1 - s.mu_product * mu_next) * mu
        return (gradient_part + momentum_part) / denominator, s._replace(mu=mu, nu=nu)

    return block(
        ScaleByNadamState,
        rule,
        step=step,
        # The product is kept at the widest float precision jax has (float64 with
        # 64-bit types on), as torch keeps it at its default dtype's.
        mu_product=Field.scalar(1.0, None),
        mu=Field.zeros(mu_dtype),
        nu=Field.zeros(nu_dtype, real=True),
    )
