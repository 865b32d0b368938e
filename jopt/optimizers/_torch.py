"""The rest of torch.optim: NAdam, RAdam, ASGD, Rprop and Adafactor.

Each follows its torch.optim class step for step (golden float64 trajectories in the
tests), with torch's defaults.  Notation: θ parameters, g the gradient, η the learning
rate, λ ``weight_decay``.  ``weight_decay`` is L2 added to the gradient, ``g ← g + λθ``,
unless ``decoupled_weight_decay=True``, which shrinks the parameters instead,
``θ ← θ − η·λ·θ`` beside the step (AdamW's form).  Every argument after the first is
keyword-only.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt._validation import check, checked, is_static_zero
from jopt.optimizers._common import optional, weight_decay_block
from jopt.transforms import (
    add_decayed_weights,
    scale,
    scale_by_adafactor,
    scale_by_asgd,
    scale_by_irprop_minus,
    scale_by_learning_rate,
    scale_by_nadam,
    scale_by_radam,
    scale_by_schedule,
)

__all__ = ["adafactor", "asgd", "nadam", "radam", "rprop"]


def _with_decay(scaling, weight_decay, decoupled_weight_decay, learning_rate):
    """``[L2] → scaling → [decoupled decay] → −η``: torch's two kinds of weight decay."""
    check(weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay)
    if decoupled_weight_decay:
        decay = optional(add_decayed_weights, weight_decay)
        return chain(scaling, *decay, scale_by_learning_rate(learning_rate))
    return chain(*weight_decay_block(weight_decay), scaling, scale_by_learning_rate(learning_rate))


def nadam(
    learning_rate: ScalarOrSchedule = 2e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """NAdam (Dozat, 2016): Adam with Nesterov's look-ahead and a momentum schedule.

    ``μₜ = β₁·(1 − ½·0.96^(t·ψ))`` (ψ = ``momentum_decay``), ``Πₜ = μ₁·…·μₜ``,
    ``mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ``, ``vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²``,
    ``θₜ₊₁ = θₜ − η·[(1 − μₜ)/(1 − Πₜ)·gₜ + μₜ₊₁/(1 − Πₜμₜ₊₁)·mₜ] / (√(vₜ/(1 − β₂ᵗ)) + ε)``.

    torch.optim.NAdam's rule and defaults.  optax's ``nadam`` has no momentum
    schedule: it is ``jopt.chain(jopt.scale_by_adam(b1, b2=b2, eps=eps,
    nesterov=True), jopt.scale_by_learning_rate(lr))``.  State:
    [`jopt.ScaleByNadamState`][jopt.ScaleByNadamState] (``mu``: torch ``exp_avg``, ``nu``:
    ``exp_avg_sq``, ``mu_product``: ``mu_product``, ``count``: ``step``).  ``mu_dtype``/``nu_dtype``
    store the moments in another dtype.
    """
    scaling = scale_by_nadam(
        b1, b2=b2, eps=eps, momentum_decay=momentum_decay, mu_dtype=mu_dtype, nu_dtype=nu_dtype
    )
    return _with_decay(scaling, weight_decay, decoupled_weight_decay, learning_rate)


def radam(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """RAdam (Liu et al., 2020): Adam switched on once its variance is tractable.

    ``ρ∞ = 2/(1 − β₂) − 1``, ``ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ)``, ``m̂ₜ = mₜ/(1 − β₁ᵗ)``;
    while ``ρₜ ≤ 5`` the step is ``θ ← θ − η·m̂ₜ`` (momentum SGD), then
    ``θ ← θ − η·rₜ·m̂ₜ·√(1 − β₂ᵗ)/(√vₜ + ε)`` with
    ``rₜ = √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))``.

    torch.optim.RAdam's rule (ε added to the uncorrected √v, strict ``ρₜ > 5``) and
    defaults: [`jopt.scale_by_radam`][jopt.scale_by_radam] with ``eps_before_correction=True,
    strict_threshold=True``; optax's ``radam`` is that block with both off.  State:
    [`jopt.ScaleByRadamState`][jopt.ScaleByRadamState] (``mu``: torch ``exp_avg``, ``nu``:
    ``exp_avg_sq``, ``count``: ``step``).
    """
    scaling = scale_by_radam(
        b1,
        b2=b2,
        eps=eps,
        eps_before_correction=True,
        strict_threshold=True,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )
    return _with_decay(scaling, weight_decay, decoupled_weight_decay, learning_rate)


def asgd(
    learning_rate: ScalarOrSchedule = 1e-2,
    *,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Averaged SGD (Polyak & Juditsky, 1992), as torch.optim.ASGD.

    ``θₜ₊₁ = θₜ − ηₜ·(gₜ + λ·θₜ)`` (λ = ``lambd``; ``weight_decay`` adds its own L2 to
    g) with ``η₁ = η``, ``ηₜ₊₁ = η / (1 + λ·η·t)^α``, and the average
    ``ax ← ax + μₜ·(θₜ₊₁ − ax)``, ``μ₁ = 1``, ``μₜ₊₁ = 1 / max(1, t − t₀)``.

    The training parameters are the SGD iterates; evaluate with the average,
    [`jopt.asgd_averaged_params`][jopt.asgd_averaged_params] (``optimizer.state[p]["ax"]`` in
    torch).  With torch's default ``t0=1e6`` averaging never starts in practice and the average is
    the latest iterate.  State: [`jopt.ScaleByAsgdState`][jopt.ScaleByAsgdState] (``eta``,
    ``avg_weight``: torch ``mu``, ``ax``, ``count``: ``step``).
    """
    return chain(
        *weight_decay_block(weight_decay),
        scale_by_asgd(learning_rate, lambd=lambd, alpha=alpha, t0=t0),
    )


def rprop(
    learning_rate: ScalarOrSchedule = 1e-2,
    *,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
) -> GradientTransformation:
    """Rprop (Riedmiller & Braun, 1993) in torch's iRprop⁻ form (Igel & Hüsken, 2000).

    Each coordinate has its own step size Δ, starting at ``learning_rate``: it grows by
    η⁺ while the gradient keeps its sign and shrinks by η⁻ when the sign flips, within
    ``step_sizes = (Δmin, Δmax)``; ``θ ← θ − sign(g)·Δ``, and after a flip that
    coordinate rests one step (its gradient is forgotten).  Only the sign of the
    gradient matters, so Rprop suits full-batch training.

    torch.optim.Rprop's rule and defaults; a schedule for ``learning_rate`` is read once, at step 0
    (torch's learning rate only sets the initial step sizes).  See
    [`jopt.scale_by_irprop_minus`][jopt.scale_by_irprop_minus].  State:
    [`jopt.ScaleByIrpropMinusState`][jopt.ScaleByIrpropMinusState] (``step_size``, ``prev_grad``:
    torch ``prev``, ``count``: ``step``).
    """
    return chain(
        scale_by_irprop_minus(learning_rate, etas=etas, step_sizes=step_sizes), scale(-1.0)
    )


def _relative_step_size(learning_rate):
    """``count -> min(η(count), 1/√(count + 1))``: Adafactor's ρₜ at update t = count + 1."""

    def rho(count):
        eta = learning_rate(count) if callable(learning_rate) else learning_rate
        return jnp.minimum(eta, 1 / jnp.sqrt(jnp.asarray(count, jnp.result_type(float)) + 1))

    return rho


def _times(learning_rate, weight_decay):
    """η·λ as a number or, when either follows a schedule, as a schedule."""
    if not callable(learning_rate) and not callable(weight_decay):
        return learning_rate * weight_decay

    def value(x, count):
        return x(count) if callable(x) else x

    return lambda count: value(learning_rate, count) * value(weight_decay, count)


def adafactor(
    learning_rate: ScalarOrSchedule = 1e-2,
    *,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adafactor (Shazeer & Stern, 2018), as torch.optim.Adafactor.

    Second moments of a matrix (or of the last two axes of a larger leaf) are kept as
    row and column averages, so an n×m matrix costs n + m numbers of state where Adam
    keeps 2·n·m; vectors and scalars keep a full average.  With ``1 − β̂₂ₜ = t^τ``
    (τ = ``beta2_decay``), ``(ε₁, ε₂) = eps``, ``ρₜ = min(η, 1/√t)`` and ``û`` the
    gradient over the root of the (factored) second moment, clipped to RMS ≤ d
    ([`jopt.scale_by_adafactor`][jopt.scale_by_adafactor]):

    ```text
    θₜ₊₁ = θₜ − ρₜ·max(ε₂, RMS(θₜ))·û − η·λ·θₜ
    ```

    torch's relative step size, parameter scaling and decoupled weight decay (the
    decay is η·λ·θ, not ρₜ·λ·θ); there is no first moment.  ``eps[0]=None`` is the
    machine epsilon.  Complex parameters are refused.  State:
    [`jopt.ScaleByAdafactorState`][jopt.ScaleByAdafactorState] (``nu_row``: torch ``row_var``,
    ``nu_col``: ``col_var``, ``nu``: ``variance``, ``count``: ``step``).
    """
    check(learning_rate=learning_rate, weight_decay=weight_decay)
    eps = checked("eps", eps, owner="adafactor")
    decay = [] if is_static_zero(weight_decay) else [_times(learning_rate, weight_decay)]
    return chain(
        scale_by_adafactor(beta2_decay, eps=eps, d=d),
        scale_by_schedule(_relative_step_size(learning_rate)),
        *[add_decayed_weights(rate) for rate in decay],
        scale(-1.0),
    )
