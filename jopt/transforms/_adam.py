"""Adam and its relatives: bias-corrected moment estimates (Kingma & Ba, 2015)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation
from jopt._validation import check

__all__ = [
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
]


class ScaleByAdamState(NamedTuple):
    """The state of [`scale_by_adam`][jopt.transforms.scale_by_adam].

    Attributes:
      count: t, the number of updates, int32.
      mu: the first moment m, shaped like the params (torch's ``exp_avg``).
      nu: the second moment v, shaped like the params, real (torch's ``exp_avg_sq``).
    """

    count: jax.Array
    mu: Any
    nu: Any


def _first_moment(g, mu, b1, t, nesterov: bool):
    """``m̂ = m / (1 − β₁ᵗ)``, or Nesterov's ``β₁·m / (1 − β₁ᵗ⁺¹) + (1 − β₁)·g / (1 − β₁ᵗ)``."""
    if nesterov:
        return b1 * mu / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
    return mu / (1 - b1**t)


def scale_by_adam(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam's scaling (Kingma & Ba, 2015), bias-corrected.

    ``m ← β₁·m + (1 − β₁)·g``, ``v ← β₂·v + (1 − β₂)·|g|²``,
    ``m̂ = m / (1 − β₁ᵗ)``, ``v̂ = v / (1 − β₂ᵗ)``, ``u = m̂ / (√(v̂ + eps_root) + eps)``.

    ``nesterov=True`` uses NAdam's look-ahead ``m̂`` (Dozat, 2016) without its momentum
    schedule, as optax's.  The update keeps the incoming update's dtype.  Same as
    ``optax.scale_by_adam``, plus ``nu_dtype``.

    Args:
      b1: β₁, the decay of m, in [0, 1].
      b2: β₂, the decay of v, in [0, 1].
      eps: added outside the root, >= 0.
      eps_root: added inside the root, >= 0.
      mu_dtype: the storage dtype of m (default: the parameter's), e.g. float32
        moments for bfloat16 parameters.
      nesterov: use NAdam's look-ahead first moment.
      nu_dtype: the storage dtype of v (default: the parameter's real dtype).

    Returns:
      The transformation; its state is a
      [`ScaleByAdamState`][jopt.transforms.ScaleByAdamState].
    """
    check(
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        mu_dtype=mu_dtype,
        nesterov=nesterov,
        nu_dtype=nu_dtype,
    )

    def rule(g, s):
        mu = b1 * s.mu + (1 - b1) * g
        nu = b2 * s.nu + (1 - b2) * abs_sq(g)
        mu_hat = _first_moment(g, mu, b1, s.count, nesterov)
        nu_hat = nu / (1 - b2**s.count)
        return mu_hat / (jnp.sqrt(nu_hat + eps_root) + eps), s._replace(mu=mu, nu=nu)

    return block(
        ScaleByAdamState, rule, mu=Field.zeros(mu_dtype), nu=Field.zeros(nu_dtype, real=True)
    )


class ScaleByAmsgradState(NamedTuple):
    """The state of [`scale_by_amsgrad`][jopt.transforms.scale_by_amsgrad]: Adam's, plus a maximum.

    Attributes:
      count: t, the number of updates, int32.
      mu: the first moment m, shaped like the params (torch's ``exp_avg``).
      nu: the second moment v, real (torch's ``exp_avg_sq``).
      nu_max: the running maximum of v (torch's ``max_exp_avg_sq``), or of v̂ in
        optax's order.
    """

    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any


def scale_by_amsgrad(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    correct_after_max: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AMSGrad's scaling (Reddi et al., 2018): Adam with a non-decreasing second moment.

    optax's order (the default): ``v̂ₘₐₓ ← max(v̂ₘₐₓ, v / (1 − β₂ᵗ))`` and
    ``u = m̂ / (√(v̂ₘₐₓ + eps_root) + eps)``.  ``correct_after_max=True`` is torch's
    order, ``vₘₐₓ ← max(vₘₐₓ, v)`` then ``v̂ = vₘₐₓ / (1 − β₂ᵗ)``, which
    [`jopt.adam`][jopt.adam] uses; the two differ while ``1 − β₂ᵗ`` grows.  The bias
    corrections can be switched off, as in optax.

    Args:
      b1: β₁, in [0, 1].
      b2: β₂, in [0, 1].
      eps: added outside the root, >= 0.
      eps_root: added inside the root, >= 0.
      mu_dtype: the storage dtype of m (default: the parameter's).
      bias_correction_mu: divide m by ``1 − β₁ᵗ``.
      bias_correction_nu: divide v by ``1 − β₂ᵗ``.
      correct_after_max: torch's order (maximum of v, then the correction).
      nu_dtype: the storage dtype of v and its maximum (default: the parameter's real
        dtype).

    Returns:
      The transformation; its state is a
      [`ScaleByAmsgradState`][jopt.transforms.ScaleByAmsgradState].
    """
    check(
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        mu_dtype=mu_dtype,
        bias_correction_mu=bias_correction_mu,
        bias_correction_nu=bias_correction_nu,
        correct_after_max=correct_after_max,
        nu_dtype=nu_dtype,
    )

    def rule(g, s):
        mu = b1 * s.mu + (1 - b1) * g
        nu = b2 * s.nu + (1 - b2) * abs_sq(g)
        mu_hat = mu / (1 - b1**s.count) if bias_correction_mu else mu
        correction = (1 - b2**s.count) if bias_correction_nu else 1
        if correct_after_max:
            nu_max = jnp.maximum(s.nu_max, nu)
            nu_hat = nu_max / correction
        else:
            nu_max = jnp.maximum(s.nu_max, nu / correction)
            nu_hat = nu_max
        u = mu_hat / (jnp.sqrt(nu_hat + eps_root) + eps)
        return u, s._replace(mu=mu, nu=nu, nu_max=nu_max)

    return block(
        ScaleByAmsgradState,
        rule,
        mu=Field.zeros(mu_dtype),
        nu=Field.zeros(nu_dtype, real=True),
        nu_max=Field.zeros(nu_dtype, real=True),
    )


class ScaleByAdamaxState(NamedTuple):
    """The state of [`scale_by_adamax`][jopt.transforms.scale_by_adamax].

    Attributes:
      count: t, the number of updates, int32.
      mu: the first moment m, shaped like the params (torch's ``exp_avg``).
      nu: u, the exponentially weighted infinity norm, real (torch's ``exp_inf``).
    """

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adamax(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adamax's scaling (Kingma & Ba, 2015, §7.1), Adam under the infinity norm.

    ``m ← β₁·m + (1 − β₁)·g``, ``u ← max(β₂·u, |g| + eps)``, and the update is
    ``m / ((1 − β₁ᵗ)·u)``.  Adding ``eps`` inside the max keeps ``u > 0`` (torch's and
    optax's form).

    Args:
      b1: β₁, in [0, 1].
      b2: β₂, in [0, 1].
      eps: ε >= 0.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of u (default: the parameter's real dtype).

    Returns:
      The transformation; its state is a
      [`ScaleByAdamaxState`][jopt.transforms.ScaleByAdamaxState].
    """
    check(b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype)

    def rule(g, s):
        mu = b1 * s.mu + (1 - b1) * g
        nu = jnp.maximum(b2 * s.nu, jnp.abs(g) + eps)
        return mu / (1 - b1**s.count) / nu, s._replace(mu=mu, nu=nu)

    return block(
        ScaleByAdamaxState, rule, mu=Field.zeros(mu_dtype), nu=Field.zeros(nu_dtype, real=True)
    )
