"""Muon for a whole model: Newton–Schulz-orthogonalized momentum on the matrices, AdamW
on every other leaf."""

from __future__ import annotations

from typing import Any

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt._validation import check
from jopt.optimizers._common import optional, weight_decay_block
from jopt.optimizers._lecture import adamw
from jopt.transforms import (
    ema_momentum,
    muon_labels,
    scale_by_learning_rate,
    scale_by_newton_schulz,
)
from jopt.transforms._muon import NS_COEFFICIENTS
from jopt.wrappers import partition

__all__ = ["muon"]


def muon(
    learning_rate: ScalarOrSchedule = 1e-3,
    *,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    adam_learning_rate: ScalarOrSchedule | None = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps: float = 1e-8,
    adam_weight_decay: float | None = None,
    labels: Any = None,
    stack_axes: Any = 0,
    layout: str = "in_out",
    ns_dtype: Any = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    mesh: Any = None,
    axis: str = "data",
) -> GradientTransformation:
    """Muon (Jordan et al., 2024) on the weight matrices, AdamW on every other leaf.

    On each matrix ``W`` (fan_in × fan_out), torch's ``Muon`` rule:

        ``B ← μ·B + (1 − μ)·G``,  ``M = (1 − μ)·G + μ·B`` (Nesterov) or ``B``,
        ``O = NS(M)``,  ``W ← W − η·λ·W − η·s·O``

    where ``NS`` is [`jopt.newton_schulz`][jopt.newton_schulz]'s orthogonalization (``ns_steps``
    steps of the polynomial ``ns_coefficients``, after dividing by
    ``max(‖M‖_F, eps)``) and ``s`` the shape's factor: ``√max(1, fan_out/fan_in)``
    for ``adjust_lr_fn=None`` or ``"original"``, ``0.2·√max(fan_in, fan_out)`` for
    ``"match_rms_adamw"`` (Liu et al., 2025, "Muon is Scalable for LLM Training": an
    update RMS like AdamW's, so the two share learning rate and weight decay).  Every
    other leaf takes [`jopt.adamw`][jopt.adamw]'s step with the ``adam_*`` settings; the
    defaults are torch's ``AdamW`` (β = (0.9, 0.999), ε = 1e-8) with
    ``adam_learning_rate`` and ``adam_weight_decay`` following ``learning_rate`` and
    ``weight_decay`` when ``None``.

    Which leaves are matrices: by default every real leaf with at least two axes after its stack
    axes ([`jopt.muon_labels`][jopt.muon_labels]).  The Muon papers give the embeddings and the
    output head to AdamW: pass ``labels`` (see ``docs/porting.md``).  Convolution kernels are
    matrices of their flattened input axes: HWIO is ``(H·W·I, O)``. Layers stacked for a ``scan``
    carry ``stack_axes`` leading axes, orthogonalized layer by layer; their stacked biases and norms
    (2-d then) are vectors under it.

    Args:
      learning_rate: η for the matrices (a number or a schedule ``step -> η``).
      weight_decay: λ, decoupled (``W ← W − η·λ·W``), on the matrices.
      momentum: μ.
      nesterov: the look-ahead ``(1 − μ)·G + μ·B`` in place of ``B``.
      ns_coefficients: (a, b, c) of the Newton–Schulz polynomial.
      eps: the smallest norm the iteration divides by.
      ns_steps: Newton–Schulz steps.
      adjust_lr_fn: ``None``/``"original"`` or ``"match_rms_adamw"``, as torch.
      adam_learning_rate: η for the other leaves; ``None``: ``learning_rate``.
      adam_b1: AdamW's β₁.
      adam_b2: AdamW's β₂.
      adam_eps: AdamW's ε.
      adam_weight_decay: AdamW's decoupled λ; ``None``: ``weight_decay``.
      labels: ``"muon"`` or ``"adam"`` per leaf, as a tree (the params' structure or a
        prefix of it) or a function ``params -> tree``; ``None``: by shape.
      stack_axes: leading axes that stack independent matrices: an integer, a tree of
        them, or a function of the params (default 0).
      layout: ``"in_out"`` (flax, default; HWIO) or ``"out_in"`` (torch, equinox;
        OIHW): which axis of a matrix is the output, for the flattening and ``s``.
      ns_dtype: the iteration's dtype; ``None`` is float32 (float64 for float64
        params).  torch's ``Muon`` runs it in ``bfloat16``: pass ``jnp.bfloat16``.
      mu_dtype: storage dtype of the momentum buffer and of AdamW's first moment.
      nu_dtype: storage dtype of AdamW's second moment.
      mesh: the ``jax.sharding.Mesh`` the params are split on (for instance by
        [`jopt.sharding.fsdp_shardings`][jopt.sharding.fsdp_shardings]), or ``None``.
        Given, each matrix is orthogonalized once, whole, on one device of ``axis``
        and its result split again ([`jopt.sharding.owner_map`][jopt.sharding.owner_map]),
        instead of the compiler's all-gathers around every product of the iteration.
        Same values.
      axis: the mesh axis whose devices own the matrices (default ``"data"``).

    Returns:
      ``jopt.partition({"muon": …, "adam": …}, labels=labels)``.  State: the ``"muon"``
      group holds an [`jopt.EmaMomentumState`][jopt.EmaMomentumState] (``mu``: torch's
      ``momentum_buffer``; left out for a literal ``momentum=0``), the ``"adam"`` group
      AdamW's ``ScaleByAdamState``.
    """
    check(
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        adam_learning_rate=adam_learning_rate,
        adam_b1=adam_b1,
        adam_b2=adam_b2,
        adam_eps=adam_eps,
        adam_weight_decay=adam_weight_decay,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )
    check("muon", labels=labels, mesh=mesh)
    matrices = chain(
        *optional(ema_momentum, momentum, nesterov=nesterov, mu_dtype=mu_dtype),
        scale_by_newton_schulz(
            ns_coefficients,
            ns_steps=ns_steps,
            eps=eps,
            adjust_lr_fn=adjust_lr_fn,
            stack_axes=stack_axes,
            layout=layout,
            ns_dtype=ns_dtype,
            mesh=mesh,
            axis=axis,
        ),
        *weight_decay_block(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
    others = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        b1=adam_b1,
        b2=adam_b2,
        eps=adam_eps,
        weight_decay=weight_decay if adam_weight_decay is None else adam_weight_decay,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )

    def route(params):
        return muon_labels(params, labels=labels, stack_axes=stack_axes)

    return partition({"muon": matrices, "adam": others}, labels=route)
