"""Optimizers that need no schedule or no learning rate: schedule-free AdamW and SGD
(Defazio et al., 2024), and Prodigy (Mishchenko & Defazio, 2024).

Each follows its authors' reference implementation step for step (``schedulefree``
1.4's ``AdamWScheduleFree`` and ``SGDScheduleFree``, ``prodigyopt`` 1.1's
``Prodigy``), with the same defaults.  Every argument after the first is keyword-only.
"""

from __future__ import annotations

import math
from typing import Any

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt._validation import check
from jopt.optimizers._common import weight_decay_block
from jopt.transforms import scale_by_prodigy, scale_by_schedule_free, scale_by_schedule_free_adamw

__all__ = ["prodigy", "schedule_free_adamw", "schedule_free_sgd"]


def schedule_free_adamw(
    learning_rate: ScalarOrSchedule = 2.5e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free AdamW (Defazio et al., 2024, "The Road Less Scheduled").

    The parameters are y, where the gradient is taken; evaluate at x,
    ``jopt.schedule_free_eval_params(state, params)`` (recompute batch-norm statistics
    there).  With t = 1, 2, … and γₜ = η·min(1, t / warmup_steps):

    ```text
    vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²,   dₜ = gₜ / (√(vₜ / (1 − β₂ᵗ)) + ε) + λ·yₜ
    zₜ₊₁ = zₜ − γₜ·dₜ,   xₜ₊₁ = (1 − cₜ)·xₜ + cₜ·zₜ₊₁,   yₜ₊₁ = (1 − β₁)·zₜ₊₁ + β₁·xₜ₊₁
    cₜ = wₜ / Σᵢ≤ₜ wᵢ,   wₜ = tʳ·(maxᵢ≤ₜ γᵢ)^weight_lr_power
    ```

    There is no first moment: β₁ interpolates between z and x.  The weight decay is
    taken at y and scaled by γₜ, and the bias correction divides v (not the learning
    rate, as the paper's Algorithm 1 writes it): ``schedulefree``'s
    ``AdamWScheduleFree``, reproduced step for step, with its defaults.  No schedule
    is needed; ``learning_rate`` may still be one (evaluated at the number of earlier
    updates, then warmed up).

    Block: [`jopt.scale_by_schedule_free_adamw`][jopt.scale_by_schedule_free_adamw].  State:
    ``ScaleByScheduleFreeAdamwState`` (``nu``: ``exp_avg_sq``, stored in ``nu_dtype``;
    ``z_minus_previous_x``: z − x before the average moves, stored in ``mu_dtype``;
    ``lr_max``, ``weight_sum``, ``scheduled_lr``, ``ckp1``; ``count``: ``k``).  Same
    memory as AdamW: m takes the place of the first moment.
    """
    return scale_by_schedule_free_adamw(
        learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )


def schedule_free_sgd(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free SGD (Defazio et al., 2024).

    [`schedule_free_adamw`][jopt.optimizers.schedule_free_adamw] with the base direction ``dₜ = gₜ +
    λ·yₜ`` (no second moment) and β = ``momentum``:

    ```text
    zₜ₊₁ = zₜ − γₜ·dₜ,   xₜ₊₁ = (1 − cₜ)·xₜ + cₜ·zₜ₊₁,   yₜ₊₁ = (1 − β)·zₜ₊₁ + β·xₜ₊₁
    ```

    with γₜ, cₜ as there.  Evaluate at x with ``jopt.schedule_free_eval_params`` (and
    recompute batch-norm statistics there).  ``schedulefree``'s ``SGDScheduleFree``
    step for step, with its defaults (η = 1.0, β = 0.9); it refuses ``momentum=0``,
    which jopt accepts (y = z: Polyak averaging, with x its average).

    Chain: ``[add_decayed_weights(λ)] → scale_by_schedule_free(η, b1=momentum, …)``.
    State: ``ScaleByScheduleFreeState`` (``z_minus_previous_x``: z − x before the
    average moves, stored in ``mu_dtype``, the memory of a momentum buffer; ``lr_max``,
    ``weight_sum``, ``scheduled_lr``, ``ckp1``; ``count``: ``k``).
    """
    check(momentum=momentum)
    return chain(
        *weight_decay_block(weight_decay),
        scale_by_schedule_free(
            learning_rate,
            b1=momentum,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            mu_dtype=mu_dtype,
        ),
    )


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float | None = None,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    d0: float = 1e-6,
    d_coef: float = 1.0,
    growth_rate: float = math.inf,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Prodigy (Mishchenko & Defazio, 2024): Adam with an estimated step size d·η.

    With xₖ the parameters, x₀ the initial ones, η the learning rate (a multiplier,
    1.0 by default), ρₖ = √(1 − β₂ᵏ⁺¹)/(1 − β₁ᵏ⁺¹) with ``use_bias_correction`` (else
    1), γₖ = dₖ·η·ρₖ, and β₃ = √β₂ unless given:

    ```text
    mₖ₊₁ = β₁·mₖ + (1 − β₁)·dₖ·gₖ,     vₖ₊₁ = β₂·vₖ + (1 − β₂)·dₖ²·gₖ²
    sₖ₊₁ = β₃·sₖ + (dₖ/d₀)·γₖ·gₖ        (dₖ/d₀)·dₖ·gₖ with ``safeguard_warmup``
    rₖ₊₁ = β₃·rₖ + (dₖ/d₀)·γₖ·⟨gₖ, x₀ − xₖ⟩
    d̂ = d_coef·rₖ₊₁ / ‖sₖ₊₁‖₁,   d̂ₘₐₓ ← max(d̂ₘₐₓ, d̂),   dₖ₊₁ = min(d̂ₘₐₓ, dₖ·growth_rate)
    xₖ₊₁ = xₖ − γₖ·(mₖ₊₁ / (√vₖ₊₁ + dₖ₊₁·ε) + λ·xₖ)
    ```

    with d̂ₘₐₓ starting at d₀, and dₖ first raised to max(d₀, d̂) while it is still d₀
    (so the first growth is not limited by ``growth_rate``).  The sums ⟨·,·⟩ and ‖·‖₁ run over
    every parameter leaf, so d is one number for the whole tree.  ``jopt.prodigy_d``
    reads it from the state.  While ‖sₖ₊₁‖₁ = 0 (no gradient yet) or η = 0 no step is
    taken and d keeps its value, as in ``prodigyopt``.  The weight decay is decoupled
    (``prodigyopt``'s default ``decouple=True``); with ``b1=0`` no m is kept and the
    step is along ``dₖ₊₁·gₖ``.  ``prodigyopt``'s ``Prodigy`` step for step, with its
    defaults.  For complex parameters ⟨g, x⟩ = Re Σ conj(g)·x, |g|² and |s| are
    moduli.

    ``mu_dtype`` and ``nu_dtype`` set the storage dtypes of m and v.  m and v hold
    d·g and d²·g², about 1e-6 and 1e-12 times the gradient's scale while d is near d₀:
    float16 storage underflows there; use float32 (bfloat16 has float32's range).

    Block: [`jopt.scale_by_prodigy`][jopt.scale_by_prodigy].  State: ``ScaleByProdigyState``
    (``mu``: ``exp_avg``, ``nu``: ``exp_avg_sq``, ``s``, ``p0``, ``d``, ``d_max``, ``d_numerator``,
    ``k``, and ``count``, the number of updates).

    Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
    Learner", ICML 2024.
    """
    return scale_by_prodigy(
        learning_rate,
        b1=b1,
        b2=b2,
        b3=b3,
        eps=eps,
        weight_decay=weight_decay,
        d0=d0,
        d_coef=d_coef,
        growth_rate=growth_rate,
        use_bias_correction=use_bias_correction,
        safeguard_warmup=safeguard_warmup,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )
