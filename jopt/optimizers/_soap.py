"""SOAP (Vyas et al., 2025): Adam in the eigenbasis of Shampoo's preconditioner."""

from __future__ import annotations

from typing import Any

from jopt._core import GradientTransformation, ScalarOrSchedule, chain
from jopt._validation import check, is_static_zero
from jopt.transforms import scale_by_learning_rate, scale_by_soap, soap_descent

__all__ = ["soap"]


def soap(
    learning_rate: ScalarOrSchedule = 3e-3,
    *,
    b1: float = 0.95,
    b2: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    precondition_1d: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    mesh: Any = None,
    axis: str = "data",
) -> GradientTransformation:
    """SOAP (Vyas et al., 2025, "SOAP: Improving and Stabilizing Shampoo using Adam").

    Shampoo preconditions a matrix gradient ``G`` with ``L^(−1/4)·G·R^(−1/4)``, where
    ``L = E[G·Gᵀ]`` and ``R = E[Gᵀ·G]``.  SOAP runs Adam in the eigenbasis of ``L`` and
    ``R`` instead (``Q_L``, ``Q_R``), and refreshes that basis only every
    ``precondition_frequency`` steps, by one power iteration and a QR decomposition:

    ```text
    G' = Q_Lᵀ·G·Q_R
    m ← β₁·m + (1 − β₁)·G',   v ← β₂·v + (1 − β₂)·G'²
    θ ← θ − η·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · Q_L·(m / (√v + ε))·Q_Rᵀ
    θ ← (1 − η·λ)·θ
    L ← β₂·L + (1 − β₂)·G·Gᵀ,   R ← β₂·R + (1 − β₂)·Gᵀ·G
    if t mod f = 0:  Q ← qr(L·Q) (columns sorted by qᵀ·L·q first, v permuted alike)
    ```

    Tensors of any rank get one statistic and one basis per axis; an axis longer than
    ``max_precond_dim`` keeps the identity; 1-D parameters (biases, norms) are plain
    Adam unless ``precondition_1d``.  The first update only gathers ``L``, ``R`` and
    their eigenvectors and leaves the parameters where they are; ``t`` counts the
    updates after it.  The decay multiplies the parameters after the step, as in the
    authors' implementation.  Defaults are the paper's and the authors' code's.

    Chain: ``scale_by_soap(β₁, β₂, ε, …) → soap_descent(η, λ)``
    (``scale_by_learning_rate(η)`` when λ is a literal 0).

    State: [`jopt.ScaleBySoapState`][jopt.ScaleBySoapState] with ``mu`` (``exp_avg``), ``nu``
    (``exp_avg_sq``), ``stats`` (``GG``: per parameter a tuple of ``(dᵢ, dᵢ)``
    matrices, ``None`` for an axis without one) and ``bases`` (``Q``), plus
    ``count``s.  Per matrix parameter of shape ``(m, n)``: ``2·m·n`` moment entries and
    ``2·(m² + n²)`` matrix entries (the matrices in at least float32).

    Args:
      learning_rate: η, or a schedule (default 3e-3).
      b1: β₁ (default 0.95).
      b2: β₂, also the decay of ``L`` and ``R`` (default 0.95).
      eps: ε, added to √v (default 1e-8).
      weight_decay: λ, decoupled (default 0.01).
      precondition_frequency: f, steps between basis refreshes (default 10).
      max_precond_dim: the longest axis that is preconditioned (default 10000).
      precondition_1d: precondition 1-D parameters too (default False).
      mu_dtype: storage dtype of ``m`` (default: the parameter's).
      nu_dtype: storage dtype of ``v`` (default: the parameter's).
      mesh: the ``jax.sharding.Mesh`` the params and state are split on (for instance
        by [`jopt.sharding.fsdp_shardings`][jopt.sharding.fsdp_shardings]), or ``None``.
        Given, each preconditioned matrix's whole update (rotations, moments,
        statistics, eigendecomposition or refresh) runs once, on one device of ``axis``
        ([`jopt.sharding.owner_map`][jopt.sharding.owner_map]), instead of every
        device gathering the matrices and eigendecomposing every statistic.  Same values.
      axis: the mesh axis whose devices own the matrices (default ``"data"``).
    """
    check(weight_decay=weight_decay)
    check("soap", mesh=mesh)
    direction = scale_by_soap(
        b1,
        b2=b2,
        eps=eps,
        precondition_frequency=precondition_frequency,
        max_precond_dim=max_precond_dim,
        precondition_1d=precondition_1d,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
        mesh=mesh,
        axis=axis,
    )
    if is_static_zero(weight_decay):
        return chain(direction, scale_by_learning_rate(learning_rate))
    return chain(direction, soap_descent(learning_rate, weight_decay=weight_decay))
