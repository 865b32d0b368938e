"""Sign and trust-ratio optimizers: Lion, LAMB and LARS.

Notation: θ parameters, g the gradient, η the learning rate (a number or a schedule
``step -> η``), λ the weight decay.  Every argument after the first is keyword-only.
"""

from __future__ import annotations

from typing import Any

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt.optimizers._common import momentum_block, weight_decay_block
from jopt.transforms import (
    scale_by_adam,
    scale_by_lars,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_trust_ratio,
)

__all__ = ["lamb", "lars", "lion"]


def lion(
    learning_rate: ScalarOrSchedule = 1e-4,
    *,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

    ``cₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ``, ``θₜ = θₜ₋₁ − η·(sign(cₜ) + λ·θₜ₋₁)``,
    ``mₜ = β₂·mₜ₋₁ + (1 − β₂)·gₜ``.

    Every coordinate moves by ±η (plus the decay), so Lion wants a learning rate 3–10
    times smaller than AdamW's and a weight decay 3–10 times larger (the paper's
    advice).  The decay is decoupled and multiplied by η, as in lion-pytorch's
    ``Lion(weight_decay=λ)``, whose trajectories this reproduces; optax's ``lion``
    is the same chain with a default λ of 1e-3.  Defaults are the paper's.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁ in [0, 1), the interpolation of the update.
      b2: β₂ in [0, 1), the decay of the momentum.
      weight_decay: λ >= 0, decoupled and multiplied by η.

    Returns:
      The chain ``scale_by_lion(β₁, β₂) → [add_decayed_weights(λ)] →
      scale_by_learning_rate(η)``; its ``ScaleByLionState`` holds ``mu``
      (lion-pytorch's ``exp_avg``) and ``count`` (t).

    References:
      Chen, X. et al. (2023). Symbolic Discovery of Optimization Algorithms.
      *NeurIPS*.  arXiv:2302.06675.
    """
    return chain(
        scale_by_lion(b1, b2=b2),
        *weight_decay_block(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def lamb(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning", Algorithm 2).

    Adam's direction plus decoupled decay, scaled per leaf by its trust ratio:

    ```text
    mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ,   vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²,
    rₜ = m̂ₜ / (√v̂ₜ + ε) + λ·θₜ    (m̂, v̂ bias-corrected),
    θₜ₊₁ = θₜ − η·(‖θₜ‖ / ‖rₜ‖)·rₜ,
    ```

    the norms taken over each leaf, and the ratio 1 when either norm is 0.  This is
    the authors' form (bias correction on, ε outside the root, φ the identity) and
    optax's ``lamb``.  pytorch-optimizer's ``Lamb`` differs: no bias correction, ε
    added to ‖rₜ‖, ‖θₜ‖ clipped at 10, and (by default) the decay applied to θ
    before the ratio is taken; see the porting guide.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁ in [0, 1].
      b2: β₂ in [0, 1].
      eps: ε >= 0, outside the root.
      weight_decay: λ >= 0, decoupled, inside the trust ratio.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of v (default: the parameter's real dtype).

    Returns:
      The chain ``scale_by_adam(β₁, β₂, ε) → [add_decayed_weights(λ)] →
      scale_by_trust_ratio() → scale_by_learning_rate(η)``; its ``ScaleByAdamState``
      holds ``mu`` (``exp_avg``), ``nu`` (``exp_avg_sq``) and ``count``.

    References:
      You, Y. et al. (2020). Large Batch Optimization for Deep Learning: Training
      BERT in 76 minutes. *ICLR*.  arXiv:1904.00962.
    """
    return chain(
        scale_by_adam(b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        *weight_decay_block(weight_decay),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    trust_coefficient: float = 1e-3,
    eps: float = 0.0,
    nesterov: bool = False,
) -> GradientTransformation:
    """LARS (You, Gitman & Ginsburg, 2017, "Large Batch Training of Convolutional Networks").

    Algorithm 1, per leaf (layer) l, with trust coefficient c and weight decay β:

    ```text
    λˡ = c·‖θˡ‖ / (‖gˡ‖ + β·‖θˡ‖ + ε),
    vₜ = μ·vₜ₋₁ + η·λˡ·(gˡ + β·θˡ),   θˡ ← θˡ − vₜ,
    ```

    with ``λˡ = 1`` where ``‖θˡ‖ = 0`` or the denominator is 0.  η sits inside the
    momentum buffer, as in the paper (and optax): for a constant η this is the same
    path as torch-style ports that keep η outside (pytorch-optimizer's ``LARS``).
    ``nesterov=True`` steps by ``η·λˡ·(g + βθ) + μ·vₜ``.  Every leaf is scaled,
    biases included, as in the paper; pytorch-optimizer's ``LARS`` leaves vectors and
    scalars to plain momentum SGD, and optax's ``lars`` divides by ‖g + βθ‖ (see the
    porting guide).

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      momentum: μ in [0, 1]; 0 leaves the buffer out.
      weight_decay: β >= 0 (or a schedule).
      trust_coefficient: c >= 0.
      eps: >= 0, added to the denominator of λˡ.
      nesterov: step by the look-ahead momentum.

    Returns:
      The chain ``scale_by_lars(c, β, ε) → scale_by_learning_rate(η) →
      [trace(μ, nesterov)]``; with momentum its ``TraceState.trace`` is −η times
      pytorch-optimizer's ``momentum_buffer``.

    References:
      You, Y., Gitman, I. & Ginsburg, B. (2017). Large Batch Training of
      Convolutional Networks. arXiv:1708.03888.
    """
    return chain(
        scale_by_lars(trust_coefficient, weight_decay=weight_decay, eps=eps),
        scale_by_learning_rate(learning_rate),
        *momentum_block(momentum, nesterov),
    )
