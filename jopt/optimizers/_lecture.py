"""The classic optimizers, from SGD to Adamax, each a short chain of building blocks.

Notation: θ parameters, g = ∇θ J the gradient, η the learning rate, t the step (1 on
the first update).  ``learning_rate`` is a number or a schedule ``step -> η``.
``weight_decay`` λ is an L2 penalty added to the gradient, ``g ← g + λθ``, as in
torch.optim (except [`adamw`][jopt.adamw], whose decay is decoupled); a literal 0
leaves its block out of the chain.  Every argument after the first is keyword-only,
and the defaults are torch.optim's unless a docstring says otherwise.
"""

from __future__ import annotations

from typing import Any

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt._validation import check
from jopt.optimizers._common import momentum_block, optional, weight_decay_block
from jopt.transforms import (
    add_decayed_weights,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "momentum",
    "nesterov",
    "rmsprop",
    "sgd",
]


def sgd(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Stochastic gradient descent: ``θ ← θ − η·∇θ J(θ; x⁽ⁱ:ⁱ⁺ⁿ⁾)``.

    Batch, stochastic and mini-batch gradient descent differ only in the data the
    gradient is taken on; the rule is the same.  ``momentum > 0`` gives
    [`momentum`][jopt.momentum] (heavy ball), adding ``nesterov=True`` gives
    [`nesterov`][jopt.nesterov].  Matches ``torch.optim.SGD`` (``dampening=0``).

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      momentum: γ in [0, 1]; 0 leaves the momentum buffer out.
      nesterov: Nesterov's look-ahead (needs ``momentum > 0`` to differ).
      weight_decay: λ >= 0, L2 in the gradient.

    Returns:
      The chain ``[add_decayed_weights(λ)] → [trace(γ, nesterov)] →
      scale_by_learning_rate(η)``; with momentum its state holds a ``TraceState``
      whose ``trace`` is torch's ``momentum_buffer``.

    References:
      Robbins, H. & Monro, S. (1951). A Stochastic Approximation Method. *The Annals
      of Mathematical Statistics* 22(3), 400–407.
    """
    return chain(
        *weight_decay_block(weight_decay),
        *momentum_block(momentum, nesterov),
        scale_by_learning_rate(learning_rate),
    )


def momentum(
    learning_rate: ScalarOrSchedule = 1e-3, *, momentum: float = 0.9, weight_decay: float = 0.0
) -> GradientTransformation:
    """Momentum (Polyak, 1964): ``v ← γ·v + g``, ``θ ← θ − η·v``.

    Some texts write ``vₜ = γ·vₜ₋₁ + η·∇θJ``, ``θ ← θ − vₜ``: the same path for a
    constant η (that v is η times this one); keeping η out of the buffer, as torch
    and optax do, lets a schedule change the step at once.  ``sgd(momentum=γ)``.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      momentum: γ in [0, 1].
      weight_decay: λ >= 0, L2 in the gradient.

    Returns:
      The chain ``[add_decayed_weights(λ)] → trace(γ) → scale_by_learning_rate(η)``;
      its ``TraceState.trace`` is torch's ``momentum_buffer``.

    References:
      Polyak, B. T. (1964). Some methods of speeding up the convergence of iteration
      methods. *USSR Computational Mathematics and Mathematical Physics* 4(5), 1–17.
    """
    return sgd(learning_rate, momentum=momentum, weight_decay=weight_decay)


def nesterov(
    learning_rate: ScalarOrSchedule = 1e-3, *, momentum: float = 0.9, weight_decay: float = 0.0
) -> GradientTransformation:
    """Nesterov's accelerated gradient (Nesterov, 1983; Sutskever et al., 2013).

    With the gradient taken at the look-ahead point:

    ```text
    vₜ = γ·vₜ₋₁ + η·∇J(θ − γ·vₜ₋₁),   θ ← θ − vₜ.
    ```

    jopt's parameters are that look-ahead point ``φ = θ − γ·v`` itself, so the
    gradient is taken where the parameters are, and the rule becomes:

    ```text
    buf ← γ·buf + g,   φ ← φ − η·(g + γ·buf)
    ```

    with ``buf = v/η``.  This is the form torch and optax use; the two recursions give
    the same sequence of look-ahead points.  ``sgd(momentum=γ, nesterov=True)``.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      momentum: γ in [0, 1].
      weight_decay: λ >= 0, L2 in the gradient.

    Returns:
      The chain ``[add_decayed_weights(λ)] → trace(γ, nesterov=True) →
      scale_by_learning_rate(η)``; its ``TraceState.trace`` is ``buf``.

    References:
      Nesterov, Y. (1983). A method for solving the convex programming problem with
      convergence rate O(1/k²). *Soviet Mathematics Doklady* 27, 372–376.

      Sutskever, I., Martens, J., Dahl, G. & Hinton, G. (2013). On the importance of
      initialization and momentum in deep learning. *ICML*.
    """
    return sgd(learning_rate, momentum=momentum, nesterov=True, weight_decay=weight_decay)


def adagrad(
    learning_rate: ScalarOrSchedule = 1e-2,
    *,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adagrad (Duchi, Hazan & Singer, 2011): per-coordinate steps from summed squares.

    ``Gₜ = G₀ + Σ_τ≤t g_τ²`` and ``θₜ₊₁ = θₜ − η·gₜ / (√(Gₜ + eps_root) + eps)``,
    coordinate by coordinate.

    Rarely updated parameters keep a small G and take larger steps; the price is a
    step size that decays forever.  torch's defaults (η = 0.01, ε = 1e-10 outside the
    root, G₀ = 0); the form ``η / √(G + ε)`` is ``eps=0, eps_root=ε``.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      initial_accumulator_value: G₀ >= 0.
      eps: ε >= 0, outside the root.
      eps_root: >= 0, inside the root.
      weight_decay: λ >= 0, L2 in the gradient.

    Returns:
      The chain ``[add_decayed_weights(λ)] → scale_by_rss → scale_by_learning_rate(η)``;
      its ``ScaleByRssState.sum_of_squares`` is torch's ``sum``.

    References:
      Duchi, J., Hazan, E. & Singer, Y. (2011). Adaptive Subgradient Methods for
      Online Learning and Stochastic Optimization. *JMLR* 12, 2121–2159.
    """
    return chain(
        *weight_decay_block(weight_decay),
        scale_by_rss(initial_accumulator_value, eps=eps, eps_in_sqrt=False, eps_root=eps_root),
        scale_by_learning_rate(learning_rate),
    )


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adadelta (Zeiler, 2012), the unit-correct form.

    ``E[g²]ₜ = ρ·E[g²]ₜ₋₁ + (1 − ρ)·gₜ²``,
    ``Δθₜ = −RMS[Δθ]ₜ₋₁ / RMS[g]ₜ · gₜ`` with ``RMS[x] = √(E[x²] + ε)``,
    ``E[Δθ²]ₜ = ρ·E[Δθ²]ₜ₋₁ + (1 − ρ)·Δθₜ²``, ``θₜ₊₁ = θₜ + η·Δθₜ``.

    ``learning_rate`` is only a multiplier, 1.0 (the paper's rule) by default: every
    step points downhill, coordinate by coordinate (optax's ``adadelta()`` with its
    default ``learning_rate=None`` ascends).  Near a minimum the multiplier
    ``RMS[Δθ]/RMS[g]`` does not shrink, so on stiff problems (curvature L > 2) the loss
    can oscillate: use ``learning_rate < 2/L``.  ε sits inside the root, as in the
    paper and torch.  ρ = 0.9 and ε = 1e-6 are torch's defaults.

    Args:
      learning_rate: η >= 0, a multiplier of the step, or a schedule ``step -> η``.
      rho: ρ in [0, 1].
      eps: ε >= 0, inside both roots.
      weight_decay: λ >= 0, L2 in the gradient.

    Returns:
      The chain ``[add_decayed_weights(λ)] → scale_by_adadelta → scale_by_learning_rate(η)``;
      its ``ScaleByAdadeltaState`` holds torch's ``square_avg`` and ``acc_delta``.

    References:
      Zeiler, M. D. (2012). ADADELTA: An Adaptive Learning Rate Method.
      arXiv:1212.5701.
    """
    return chain(
        *weight_decay_block(weight_decay),
        scale_by_adadelta(rho, eps=eps),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    decay: float = 0.9,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    centered: bool = False,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """RMSprop (Tieleman & Hinton, 2012, lecture 6e).

    ``E[g²]ₜ = γ·E[g²]ₜ₋₁ + (1 − γ)·gₜ²``,
    ``θₜ₊₁ = θₜ − η·gₜ / (√(E[g²]ₜ + eps_root) + eps)``.

    Defaults γ = 0.9, η = 0.001 (torch's are α = 0.99, η = 0.01).  The form
    ``η / √(E[g²] + ε)`` is ``eps=0, eps_root=ε``.  ``centered=True`` divides by the
    variance estimate ``E[g²] − E[g]²`` (Graves, 2013;
    [`jopt.scale_by_stddev`][jopt.scale_by_stddev]).  ``momentum`` μ > 0 keeps η
    outside the buffer, as torch does: ``buf ← μ·buf + g / √(…)``, ``θ ← θ − η·buf``.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      decay: γ in [0, 1] (torch's ``alpha``).
      eps: ε >= 0, outside the root.
      eps_root: >= 0, inside the root.
      centered: divide by the standard deviation instead of the RMS.
      momentum: μ in [0, 1]; 0 leaves the buffer out.
      weight_decay: λ >= 0, L2 in the gradient.

    Returns:
      The chain ``[add_decayed_weights(λ)] → scale_by_rms (scale_by_stddev) →
      [trace(μ)] → scale_by_learning_rate(η)``; ``nu`` is torch's ``square_avg``,
      ``mu`` its ``grad_avg``, ``trace`` its ``momentum_buffer``.

    References:
      Tieleman, T. & Hinton, G. (2012). Lecture 6.5, RMSProp: divide the gradient by
      a running average of its recent magnitude. *COURSERA: Neural Networks for
      Machine Learning*.

      Graves, A. (2013). Generating Sequences With Recurrent Neural Networks.
      arXiv:1308.0850.
    """
    check(centered=centered)
    scaling = scale_by_stddev if centered else scale_by_rms
    return chain(
        *weight_decay_block(weight_decay),
        scaling(decay, eps=eps, eps_in_sqrt=False, eps_root=eps_root),
        *momentum_block(momentum),
        scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    amsgrad: bool = False,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam (Kingma & Ba, 2015): momentum on g and RMSprop on g², both bias-corrected.

    ``mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ``, ``vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²``,
    ``m̂ₜ = mₜ / (1 − β₁ᵗ)``, ``v̂ₜ = vₜ / (1 − β₂ᵗ)``,
    ``θₜ₊₁ = θₜ − η·m̂ₜ / (√(v̂ₜ + eps_root) + eps)``.

    The form ``η / √(v̂ + ε)`` is ``eps=0, eps_root=ε``.  ``amsgrad=True`` uses the
    running maximum of vₜ (torch's order: maximum, then bias correction;
    [`jopt.scale_by_amsgrad`][jopt.scale_by_amsgrad]).  ``weight_decay`` is L2 in the
    gradient, as torch's Adam; [`adamw`][jopt.adamw] decouples it.

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁ in [0, 1].
      b2: β₂ in [0, 1].
      eps: ε >= 0, outside the root.
      eps_root: >= 0, inside the root.
      amsgrad: use the running maximum of v (Reddi et al., 2018).
      weight_decay: λ >= 0, L2 in the gradient.
      mu_dtype: the storage dtype of m (default: the parameter's), e.g. float32
        moments for bfloat16 parameters.
      nu_dtype: the storage dtype of v (default: the parameter's real dtype).

    Returns:
      The chain ``[add_decayed_weights(λ)] → scale_by_adam (scale_by_amsgrad) →
      scale_by_learning_rate(η)``; its ``ScaleByAdamState`` holds ``mu`` (torch's
      ``exp_avg``), ``nu`` (``exp_avg_sq``) and ``count`` (t).

    References:
      Kingma, D. P. & Ba, J. (2015). Adam: A Method for Stochastic Optimization.
      *ICLR*.  arXiv:1412.6980.

      Reddi, S. J., Kale, S. & Kumar, S. (2018). On the Convergence of Adam and
      Beyond. *ICLR*.
    """
    check(amsgrad=amsgrad)
    moments = dict(b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    scaling = (
        scale_by_amsgrad(b1, correct_after_max=True, **moments)
        if amsgrad
        else scale_by_adam(b1, **moments)
    )
    return chain(*weight_decay_block(weight_decay), scaling, scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    ``θₜ₊₁ = θₜ − η·(m̂ₜ / (√v̂ₜ + eps) + λ·θₜ)`` with Adam's ``m̂`` and ``v̂``: the decay
    bypasses the adaptive scaling, unlike [`adam`][jopt.adam]'s L2 ``weight_decay``.
    Matches ``torch.optim.AdamW``, whose default λ is also 0.01 (optax's is 1e-4).

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁ in [0, 1].
      b2: β₂ in [0, 1].
      eps: ε >= 0, outside the root.
      weight_decay: λ >= 0 (or a schedule), decoupled; a literal 0 leaves it out.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of v (default: the parameter's real dtype).

    Returns:
      The chain ``scale_by_adam → [add_decayed_weights(λ)] → scale_by_learning_rate(η)``.

    References:
      Loshchilov, I. & Hutter, F. (2019). Decoupled Weight Decay Regularization.
      *ICLR*.  arXiv:1711.05101.
    """
    check(weight_decay=weight_decay)
    return chain(
        scale_by_adam(b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        *optional(add_decayed_weights, weight_decay),
        scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule = 2e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adamax (Kingma & Ba, 2015, §7.1): Adam with the infinity norm in place of √v.

    ``mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ``, ``uₜ = max(β₂·uₜ₋₁, |gₜ| + eps)``,
    ``θₜ₊₁ = θₜ − η / (1 − β₁ᵗ) · mₜ / uₜ``.

    No bias correction is needed for u.  Defaults are the paper's (η = 0.002).

    Args:
      learning_rate: η >= 0, or a schedule ``step -> η``.
      b1: β₁ in [0, 1].
      b2: β₂ in [0, 1].
      eps: ε >= 0, inside the max.
      weight_decay: λ >= 0, L2 in the gradient.
      mu_dtype: the storage dtype of m (default: the parameter's).
      nu_dtype: the storage dtype of u (default: the parameter's real dtype).

    Returns:
      The chain ``[add_decayed_weights(λ)] → scale_by_adamax → scale_by_learning_rate(η)``;
      its ``ScaleByAdamaxState`` holds ``mu`` (torch's ``exp_avg``) and ``nu``
      (``exp_inf``).

    References:
      Kingma, D. P. & Ba, J. (2015). Adam: A Method for Stochastic Optimization,
      section 7.1. *ICLR*.  arXiv:1412.6980.
    """
    return chain(
        *weight_decay_block(weight_decay),
        scale_by_adamax(b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )
