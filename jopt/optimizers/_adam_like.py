"""Adam's descendants of 2020–2025: AdaBelief, ADOPT and AdEMAMix.

Notation: θ parameters, g the gradient, η the learning rate (a number or a schedule
``step -> η``), λ the weight decay, t the step (1 on the first update).  Each keeps
Adam's two moments (AdEMAMix a third), whose storage dtypes ``mu_dtype`` and
``nu_dtype`` set (e.g. float32 moments for bfloat16 parameters).  Every argument
after the first is keyword-only.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt._validation import check
from jopt.optimizers._common import optional, weight_decay_block
from jopt.transforms import (
    add_decayed_weights,
    scale_by_ademamix,
    scale_by_adopt,
    scale_by_belief,
    scale_by_learning_rate,
)

__all__ = ["adabelief", "ademamix", "adopt"]


def adabelief(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al., 2020): Adam with the variance of g around its EMA.

    ``mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ``, ``sₜ = β₂·sₜ₋₁ + (1 − β₂)·(gₜ − mₜ)² + ε``,
    ``θₜ₊₁ = θₜ − η·(m̂ₜ / (√ŝₜ + ε) + λ·θₜ)`` with ``m̂ₜ = mₜ / (1 − β₁ᵗ)`` and
    ``ŝₜ = sₜ / (1 − β₂ᵗ)``.

    A step is large where the gradient follows its prediction m (small s, "belief")
    and small where it does not.  ε enters twice, inside sₜ and beside the root, as
    in the paper's Algorithm 2 and the authors' ``adabelief-pytorch``
    (``AdaBelief(rectify=False)``); the weight decay is decoupled, as that package's
    default ``weight_decouple=True``.  Defaults are the paper's (ε = 1e-16).
    State: ``ScaleByBeliefState`` (``mu``: ``exp_avg``; ``nu``: ``exp_avg_var``, ε
    included; ``count``: ``step``).

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁, the decay of m, in [0, 1).
      b2: β₂, the decay of s, in [0, 1).
      eps: ε >= 0.
      weight_decay: λ >= 0 (or a schedule), decoupled; a literal 0 leaves it out.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of s (default: the parameter's real dtype).

    Returns:
      The chain ``scale_by_belief → [add_decayed_weights(λ)] → scale_by_learning_rate(η)``.

    References:
      Zhuang, J. et al. (2020). AdaBelief Optimizer: Adapting Stepsizes by the Belief
      in Observed Gradients. *NeurIPS*.  arXiv:2010.07468.
    """
    check(weight_decay=weight_decay)
    return chain(
        scale_by_belief(b1, b2=b2, eps=eps, eps_root=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        *optional(add_decayed_weights, weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def adopt(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """ADOPT (Taniguchi et al., 2024): Adam that converges for any β₂.

    The first update only sets ``v₀ = g₀²`` (θ stays put).  Then, for t = 1, 2, …:

    ```text
    ĝₜ = clip(gₜ / max(√vₜ₋₁, ε), t^¼)
    mₜ = β₁·mₜ₋₁ + (1 − β₁)·ĝₜ,   θₜ₊₁ = θₜ − η·mₜ
    vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²
    ```

    Normalizing by vₜ₋₁, which has not seen gₜ, and taking the momentum after the
    normalization are the two changes to Adam that remove its dependence on β₂; the
    clip bound t^¼ (the authors' ``clip_lambda``) keeps the early steps stable.  No
    bias correction.  ``weight_decay`` λ is L2 in the gradient, ``g ← g + λθ``, the
    authors' default (``decouple=False``).  Defaults are the authors'.
    State: ``ScaleByAdoptState`` (``mu``: ``exp_avg``; ``nu``: ``exp_avg_sq``;
    ``count``: ``step``).  [`jopt.scale_by_adopt`][jopt.scale_by_adopt] exposes the
    clip bound.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁, the decay of m, in [0, 1).
      b2: β₂, the decay of v, in [0, 1).
      eps: the least normalizer ε >= 0.
      weight_decay: λ >= 0 (or a schedule), L2; a literal 0 leaves it out.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of v (default: the parameter's real dtype).

    Returns:
      The chain ``[add_decayed_weights(λ)] → scale_by_adopt → scale_by_learning_rate(η)``.

    References:
      Taniguchi, S. et al. (2024). ADOPT: Modified Adam Can Converge with Any β₂ with
      the Optimal Rate. *NeurIPS*.  arXiv:2411.02853.
    """
    return chain(
        *weight_decay_block(weight_decay),
        scale_by_adopt(b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def _half_life(beta: Any) -> Any:
    """The authors' ``f(β) = ln ½ / ln(β + 10⁻⁸) − 1``: β's half-life in steps, minus 1."""
    return math.log(0.5) / jnp.log(beta + 1e-8) - 1


def _alpha_warmup(alpha: Any, warmup: int):
    """``α(t) = α·t/T`` for t < T, then α (the paper's f_α; t = 1 on the first update)."""

    def schedule(earlier):
        t = jnp.asarray(earlier + 1, float)
        return jnp.where(t < warmup, t / warmup * alpha, alpha)

    return schedule


def _beta3_warmup(b1: Any, b3: Any, warmup: int):
    """β₃(t): from β₁ to β₃ over T steps, linearly in half-life (the paper's f_β₃)."""

    def schedule(earlier):
        t = jnp.asarray(earlier + 1, float)
        a = t / warmup
        mixed = (1 - a) * _half_life(b1) + a * _half_life(b3)
        return jnp.where(t < warmup, 0.5 ** (1 / (mixed + 1)), b3)

    return schedule


def ademamix(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float = 0.9999,
    alpha: float = 5.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    alpha_beta3_warmup: int | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix (Pagliardini et al., 2025): Adam plus a slow EMA of the gradients.

    ``m₁ = β₁·m₁ + (1 − β₁)·g``, ``m₂ = β₃(t)·m₂ + (1 − β₃(t))·g``,
    ``ν = β₂·ν + (1 − β₂)·g²``, and
    ``θₜ₊₁ = θₜ − η·((m₁ / (1 − β₁ᵗ) + α(t)·m₂) / (√(ν / (1 − β₂ᵗ)) + ε) + λ·θₜ)``.

    With β₃ = 0.9999 the slow EMA remembers gradients for ~10⁴ steps, which the
    paper finds Adam forgets too soon.  ``alpha_beta3_warmup`` T (the paper's
    T_α = T_β₃) warms both up from the start: ``α(t) = α·t/T`` and β₃(t) goes from β₁
    to β₃ linearly in half-life, ``β₃(t) = f⁻¹((1 − t/T)·f(β₁) + (t/T)·f(β₃))`` with
    ``f(β) = ln ½ / ln β − 1`` and ``f⁻¹(x) = ½^(1/(x+1))``, for t < T; then α and β₃.
    Without it (None) α and β₃ hold from the first step.  f takes ``ln(β + 10⁻⁸)``,
    as the authors' code does (it keeps β₁ = 0 finite).  The weight decay is
    decoupled (AdamW's), as the authors'.  ``mu_dtype`` stores both first moments
    m₁ and m₂; ``nu_dtype`` stores ν.
    Defaults are the paper's (β₃ = 0.9999, α = 5).
    State: ``ScaleByAdemamixState`` (``m1``: ``exp_avg_fast``; ``m2``:
    ``exp_avg_slow``; ``nu``: ``exp_avg_sq``; ``count``: ``step``).

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁, the decay of m₁, in [0, 1).
      b2: β₂, the decay of ν, in [0, 1).
      b3: β₃, the decay of m₂, in [0, 1).
      alpha: α >= 0, the weight of m₂.
      eps: ε >= 0.
      weight_decay: λ >= 0 (or a schedule), decoupled; a literal 0 leaves it out.
      alpha_beta3_warmup: T >= 1 steps of warmup for α and β₃, or None (none).
      mu_dtype: the storage dtype of m₁ and m₂ (default: the parameter's).
      nu_dtype: the storage dtype of ν (default: the parameter's real dtype).

    Returns:
      The chain ``scale_by_ademamix → [add_decayed_weights(λ)] → scale_by_learning_rate(η)``.

    References:
      Pagliardini, M., Ablin, P. & Grangier, D. (2025). The AdEMAMix Optimizer:
      Better, Faster, Older. *ICLR*.  arXiv:2409.03137.
    """
    check("ademamix", b1=b1, b3=b3, alpha=alpha, alpha_beta3_warmup=alpha_beta3_warmup)
    check(weight_decay=weight_decay)
    if alpha_beta3_warmup is not None:
        b3, alpha = (
            _beta3_warmup(b1, b3, alpha_beta3_warmup),
            _alpha_warmup(alpha, alpha_beta3_warmup),
        )
    return chain(
        scale_by_ademamix(
            b1, b2=b2, b3=b3, alpha=alpha, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype
        ),
        *optional(add_decayed_weights, weight_decay),
        scale_by_learning_rate(learning_rate),
    )
