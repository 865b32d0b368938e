"""Per-coordinate adaptive scalings: Adagrad, RMSprop (plain and centered), Adadelta.

Where optax has a block of the same name, jopt's computes the same thing for the
same arguments and defaults.  Each also takes ``eps_root``, added inside the square
root in every mode (0 by default), so that the optimizers can offer torch's form
(ε outside) and the textbook form ``η / √(v + ε)`` (ε inside) alike.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation
from jopt._validation import check

__all__ = [
    "ScaleByAdadeltaState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByRssState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "scale_by_adadelta",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
]


def _scale(g, second_moment, eps, eps_root, eps_in_sqrt: bool):
    """``g / √(v + eps_root + eps)`` (ε inside), or ``g / (√(v + eps_root) + eps)``."""
    if eps_in_sqrt:
        return g * jax.lax.rsqrt(second_moment + eps_root + eps)
    return g / (jnp.sqrt(second_moment + eps_root) + eps)


class ScaleByRssState(NamedTuple):
    """The state of [`scale_by_rss`][jopt.transforms.scale_by_rss].

    Attributes:
      sum_of_squares: ``G = G₀ + Σ|g|²``, shaped like the params, real (torch's
        ``sum``).
    """

    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.1,
    *,
    eps: float = 1e-7,
    eps_in_sqrt: bool = True,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """Adagrad's scaling (Duchi et al., 2011): ``G ← G + |g|²``, ``u = g / √(G + ε)``.

    ``G`` starts at ``initial_accumulator_value``; where ``G = 0`` (nothing seen yet)
    ``u = 0``.  The defaults and ε's place are optax's; ``eps_in_sqrt=False`` gives
    torch's ``u = g / (√(G + eps_root) + ε)`` (and torch starts ``G`` at 0).

    Args:
      initial_accumulator_value: G₀ >= 0.
      eps: ε >= 0.
      eps_in_sqrt: ε inside the root (optax) or outside it (torch).
      eps_root: added inside the root in both forms, >= 0.

    Returns:
      The transformation; its state is a [`ScaleByRssState`][jopt.transforms.ScaleByRssState].
    """
    check(
        initial_accumulator_value=initial_accumulator_value,
        eps=eps,
        eps_in_sqrt=eps_in_sqrt,
        eps_root=eps_root,
    )

    def rule(g, s):
        total = s.sum_of_squares + abs_sq(g)
        u = jnp.where(total > 0, _scale(g, total, eps, eps_root, eps_in_sqrt), 0)
        return u, s._replace(sum_of_squares=total)

    return block(
        ScaleByRssState,
        rule,
        sum_of_squares=Field.full(initial_accumulator_value, real=True),
    )


class ScaleByRmsState(NamedTuple):
    """The state of [`scale_by_rms`][jopt.transforms.scale_by_rms] without bias correction.

    Attributes:
      nu: ``E[g²]``, the moving average of squared gradients, shaped like the params,
        real (torch's ``square_avg``).
    """

    nu: Any


class ScaleByRmsWithCountState(NamedTuple):
    """The state of [`scale_by_rms`][jopt.transforms.scale_by_rms] with ``bias_correction``.

    Attributes:
      count: t, the number of updates, int32.
      nu: ``E[g²]``, shaped like the params, real (torch's ``square_avg``).
    """

    count: jax.Array
    nu: Any


def scale_by_rms(
    decay: float = 0.9,
    *,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """RMSprop's scaling (Tieleman & Hinton, 2012).

    ``ν ← γ·ν + (1 − γ)·|g|²`` and ``u = g / √(ν̂ + ε)``, with ``ν̂ = ν / (1 − γᵗ)``
    under ``bias_correction`` and ``ν̂ = ν`` otherwise.  ``eps_in_sqrt=False`` gives
    ``u = g / (√(ν̂ + eps_root) + ε)``, torch's form.  ν starts at ``initial_scale``.
    Same as ``optax.scale_by_rms`` for the same arguments.

    Args:
      decay: γ, in [0, 1].
      eps: ε >= 0.
      initial_scale: ν₀ >= 0.
      eps_in_sqrt: ε inside the root (optax) or outside it (torch).
      bias_correction: divide ν by ``1 − γᵗ``.
      eps_root: added inside the root in both forms, >= 0.

    Returns:
      The transformation; its state is a
      [`ScaleByRmsState`][jopt.transforms.ScaleByRmsState], or a
      [`ScaleByRmsWithCountState`][jopt.transforms.ScaleByRmsWithCountState] with
      ``bias_correction``.
    """
    check(
        decay=decay,
        eps=eps,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction,
        eps_root=eps_root,
    )

    def rule(g, s):
        nu = decay * s.nu + (1 - decay) * abs_sq(g)
        nu_hat = nu / (1 - decay**s.count) if bias_correction else nu
        return _scale(g, nu_hat, eps, eps_root, eps_in_sqrt), s._replace(nu=nu)

    state = ScaleByRmsWithCountState if bias_correction else ScaleByRmsState
    return block(state, rule, nu=Field.full(initial_scale, real=True))


class ScaleByRStdDevState(NamedTuple):
    """The state of [`scale_by_stddev`][jopt.transforms.scale_by_stddev] without bias correction.

    Attributes:
      mu: ``E[g]``, shaped like the params (torch's ``grad_avg``).
      nu: ``E[g²]``, shaped like the params, real (torch's ``square_avg``).
    """

    mu: Any
    nu: Any


class ScaleByRStdDevWithCountState(NamedTuple):
    """The state of [`scale_by_stddev`][jopt.transforms.scale_by_stddev] with ``bias_correction``.

    Attributes:
      count: t, the number of updates, int32.
      mu: ``E[g]``, shaped like the params.
      nu: ``E[g²]``, shaped like the params, real.
    """

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_stddev(
    decay: float = 0.9,
    *,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """Centered RMSprop's scaling (Graves, 2013): divide by a standard deviation.

    ``μ ← γ·μ + (1 − γ)·g``, ``ν ← γ·ν + (1 − γ)·|g|²`` and
    ``u = g / √(ν̂ − |μ̂|² + ε)`` (ε outside the root with ``eps_in_sqrt=False``, as
    torch's ``RMSprop(centered=True)``).  Same as ``optax.scale_by_stddev``.

    ``ν − |μ|²`` can round below zero on coordinates whose gradient barely varies,
    which gives NaN with ε outside the root, as it does in torch.

    Args:
      decay: γ, in [0, 1].
      eps: ε >= 0.
      initial_scale: ν₀ >= 0 (μ starts at 0).
      eps_in_sqrt: ε inside the root (optax) or outside it (torch).
      bias_correction: divide μ and ν by ``1 − γᵗ``.
      eps_root: added inside the root in both forms, >= 0.

    Returns:
      The transformation; its state is a
      [`ScaleByRStdDevState`][jopt.transforms.ScaleByRStdDevState], or a
      [`ScaleByRStdDevWithCountState`][jopt.transforms.ScaleByRStdDevWithCountState]
      with ``bias_correction``.
    """
    check(
        decay=decay,
        eps=eps,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        bias_correction=bias_correction,
        eps_root=eps_root,
    )

    def rule(g, s):
        mu = decay * s.mu + (1 - decay) * g
        nu = decay * s.nu + (1 - decay) * abs_sq(g)
        mu_hat, nu_hat = mu, nu
        if bias_correction:
            mu_hat, nu_hat = mu / (1 - decay**s.count), nu / (1 - decay**s.count)
        u = _scale(g, nu_hat - abs_sq(mu_hat), eps, eps_root, eps_in_sqrt)
        return u, s._replace(mu=mu, nu=nu)

    state = ScaleByRStdDevWithCountState if bias_correction else ScaleByRStdDevState
    return block(state, rule, mu=Field.zeros(), nu=Field.full(initial_scale, real=True))


class ScaleByAdadeltaState(NamedTuple):
    """The state of [`scale_by_adadelta`][jopt.transforms.scale_by_adadelta]: two averages.

    Attributes:
      grad_sq_avg: ``E[g²]``, shaped like the params, real (torch's ``square_avg``,
        optax's ``e_g``).
      delta_sq_avg: ``E[Δθ²]``, shaped like the params, real (torch's ``acc_delta``,
        optax's ``e_x``).
    """

    grad_sq_avg: Any
    delta_sq_avg: Any


def scale_by_adadelta(rho: float = 0.9, *, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's unit-correct scaling (Zeiler, 2012).

    ``E[g²] ← ρ·E[g²] + (1 − ρ)·|g|²``,
    ``Δ = RMS[Δθ]ₜ₋₁ / RMS[g]ₜ · g`` with ``RMS[x] = √(E[x²] + ε)``,
    ``E[Δθ²] ← ρ·E[Δθ²] + (1 − ρ)·|Δ|²``, and ``u = Δ``.

    The ratio of RMS values carries the units of θ, approximating ``H⁻¹g``.  Same as
    ``optax.scale_by_adadelta``; the descent step is ``−η·u``.

    Args:
      rho: ρ, in [0, 1].
      eps: ε >= 0, inside both roots.

    Returns:
      The transformation; its state is a
      [`ScaleByAdadeltaState`][jopt.transforms.ScaleByAdadeltaState].
    """
    check(rho=rho, eps=eps)

    def rule(g, s):
        grad_sq_avg = rho * s.grad_sq_avg + (1 - rho) * abs_sq(g)
        delta = jnp.sqrt(s.delta_sq_avg + eps) / jnp.sqrt(grad_sq_avg + eps) * g
        delta_sq_avg = rho * s.delta_sq_avg + (1 - rho) * abs_sq(delta)
        return delta, s._replace(grad_sq_avg=grad_sq_avg, delta_sq_avg=delta_sq_avg)

    return block(
        ScaleByAdadeltaState,
        rule,
        grad_sq_avg=Field.zeros(real=True),
        delta_sq_avg=Field.zeros(real=True),
    )
