"""AdEMAMix: Adam with a second, slow momentum mixed in (Pagliardini et al., 2025)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt._validation import check

__all__ = ["ScaleByAdemamixState", "scale_by_ademamix"]


class ScaleByAdemamixState(NamedTuple):
    """The state of [`scale_by_ademamix`][jopt.transforms.scale_by_ademamix].

    Attributes:
      count: t, the number of updates, int32.
      m1: the fast EMA of the gradients, shaped like the params (``exp_avg_fast``).
      m2: the slow EMA (``exp_avg_slow``).
      nu: the second moment ν, real (``exp_avg_sq``).
    """

    count: jax.Array
    m1: Any
    m2: Any
    nu: Any


def _value(hyperparameter: Any, earlier: jax.Array) -> Any:
    """A number, or a schedule's value after ``earlier`` updates."""
    return hyperparameter(earlier) if callable(hyperparameter) else hyperparameter


def scale_by_ademamix(
    b1: float = 0.9,
    *,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix's scaling (Pagliardini et al., 2025, Algorithm 1).

    Adam's fast momentum m₁ plus α times a slow one m₂, whose decay β₃ keeps
    gradients for thousands of steps:

    ```text
    m₁ ← β₁·m₁ + (1 − β₁)·g,   m₂ ← β₃·m₂ + (1 − β₃)·g,   ν ← β₂·ν + (1 − β₂)·|g|²
    u = (m₁ / (1 − β₁ᵗ) + α·m₂) / (√(ν / (1 − β₂ᵗ) + eps_root) + eps)
    ```

    m₂ is not bias-corrected.  ``b3`` and ``alpha`` may be schedules ``n -> value``,
    called with the number of earlier updates ``n`` (an int32, 0 on the first
    update); [`jopt.ademamix`][jopt.ademamix] builds the paper's warmups from them.
    Same as ``optax.contrib.scale_by_ademamix`` (whose defaults these are, α = 6), plus
    ``nu_dtype``; ``mu_dtype`` stores both first moments m₁ and m₂, ``nu_dtype`` the
    second moment ν (optax starts all three in ``mu_dtype``, then keeps the update's).

    Args:
      b1: β₁, the decay of the fast EMA, in [0, 1).
      b2: β₂, the decay of the second moment, in [0, 1).
      b3: β₃, the decay of the slow EMA, in [0, 1), or a schedule.
      alpha: α >= 0, the weight of the slow EMA, or a schedule.
      eps: ε added to the root, >= 0.
      eps_root: ε added under the root, >= 0.
      mu_dtype: the storage dtype of m₁ and m₂ (default: the parameter's).
      nu_dtype: the storage dtype of ν (default: the parameter's real dtype).

    Returns:
      The transformation; its state is a
      [`ScaleByAdemamixState`][jopt.transforms.ScaleByAdemamixState].
    """
    check(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check("scale_by_ademamix", b3=b3, alpha=alpha)

    def rule(g, s):
        earlier = s.count.astype(jnp.int32) - 1  # an int32, as optax's count_m2
        b3_t, alpha_t = _value(b3, earlier), _value(alpha, earlier)
        m1 = b1 * s.m1 + (1 - b1) * g
        m2 = b3_t * s.m2 + (1 - b3_t) * g
        nu = b2 * s.nu + (1 - b2) * abs_sq(g)
        m1_hat = m1 / (1 - b1**s.count)
        nu_hat = nu / (1 - b2**s.count)
        u = (m1_hat + alpha_t * m2) / (jnp.sqrt(nu_hat + eps_root) + eps)
        return u, s._replace(m1=m1, m2=m2, nu=nu)

    return block(
        ScaleByAdemamixState,
        rule,
        m1=Field.zeros(mu_dtype),
        m2=Field.zeros(mu_dtype),
        nu=Field.zeros(nu_dtype, real=True),
    )
