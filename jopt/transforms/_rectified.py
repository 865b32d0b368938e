"""RAdam: Adam with its adaptive step switched on once its variance is tractable
(Liu et al., 2020)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation
from jopt._validation import check
from jopt.transforms._adam import _first_moment

__all__ = ["ScaleByRadamState", "scale_by_radam"]


class ScaleByRadamState(NamedTuple):
    """``count``: t (torch ``step``); ``mu``: m (``exp_avg``); ``nu``: v (``exp_avg_sq``)."""

    count: jax.Array
    mu: Any
    nu: Any


def _rectification(rho, rho_inf):
    """``r = √((ρ − 4)(ρ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ))``."""
    return jnp.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))


def scale_by_radam(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    nesterov: bool = False,
    eps_before_correction: bool = False,
    strict_threshold: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Rectified Adam's scaling (Liu et al., 2020, "On the variance of the adaptive
    learning rate and beyond").

    ``m ← β₁·m + (1 − β₁)·g``, ``v ← β₂·v + (1 − β₂)·|g|²``, ``m̂ = m / (1 − β₁ᵗ)``.
    The length of the approximated simple moving average,
    ``ρₜ = ρ∞ − 2t·β₂ᵗ / (1 − β₂ᵗ)`` with ``ρ∞ = 2 / (1 − β₂) − 1``, decides the step:

    * ``ρₜ ≥ threshold``: ``u = r·m̂ / (√(v̂ + eps_root) + ε)``, with ``v̂ = v / (1 − β₂ᵗ)``
      and the rectification ``r = √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))``;
    * otherwise ``u = m̂`` (momentum SGD).

    This is ``optax.scale_by_radam``, the same for the same arguments (``nesterov``
    uses NAdam's look-ahead ``m̂`` as [`jopt.scale_by_adam`][jopt.scale_by_adam]).  torch's
    ``RAdam`` differs in two places, each a jopt-only switch (both off by default):

    * ``eps_before_correction=True``: ``u = r·m̂·√(1 − β₂ᵗ) / (√(v + eps_root) + ε)``,
      ε added to the uncorrected root (the same as ε/√(1 − β₂ᵗ) on the corrected one);
    * ``strict_threshold=True``: the adaptive step needs ``ρₜ > threshold``.

    With β₂ = 0.999, ρₜ first exceeds 5 at t = 6, so the first five steps are
    momentum SGD.

    Args:
      b1: β₁ in [0, 1).
      b2: β₂ in [0, 1).
      eps: ε ≥ 0, outside the root.
      eps_root: ≥ 0, inside the root.
      threshold: the ρₜ above which the adaptive step is used.
      nesterov: NAdam's look-ahead for ``m̂``.
      eps_before_correction: torch's ε placement (above).
      strict_threshold: torch's strict comparison (above).
      mu_dtype: storage dtype of ``mu`` (default: the parameter's).
      nu_dtype: storage dtype of ``nu`` (default: the parameter's, real).

    Returns:
      The transformation; its state is a [`ScaleByRadamState`][jopt.transforms.ScaleByRadamState].
    """
    check(
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        threshold=threshold,
        nesterov=nesterov,
        eps_before_correction=eps_before_correction,
        strict_threshold=strict_threshold,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )

    def rule(g, s):
        t = s.count
        mu = b1 * s.mu + (1 - b1) * g
        nu = b2 * s.nu + (1 - b2) * abs_sq(g)
        mu_hat = _first_moment(g, mu, b1, t, nesterov)
        correction = 1 - b2**t
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / correction
        adaptive = rho > threshold if strict_threshold else rho >= threshold
        # r is NaN below ρ = 4: evaluate it where it is used only, so that gradients
        # through the update stay finite.
        r = _rectification(jnp.where(adaptive, rho, rho_inf), rho_inf)
        if eps_before_correction:
            scaled = mu_hat * jnp.sqrt(correction) / (jnp.sqrt(nu + eps_root) + eps)
        else:
            scaled = mu_hat / (jnp.sqrt(nu / correction + eps_root) + eps)
        return jnp.where(adaptive, r * scaled, mu_hat), s._replace(mu=mu, nu=nu)

    return block(
        ScaleByRadamState, rule, mu=Field.zeros(mu_dtype), nu=Field.zeros(nu_dtype, real=True)
    )
