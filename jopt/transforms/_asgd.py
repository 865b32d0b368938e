"""Averaged SGD: SGD with a decaying step and a running average of the iterates
(Polyak & Juditsky, 1992), in the form of ``torch.optim.ASGD``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _numerics
from jopt._block import Field, block
from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt._validation import check
from jopt.wrappers._plateau import find_state

__all__ = ["ScaleByAsgdState", "asgd_averaged_params", "scale_by_asgd"]


class ScaleByAsgdState(NamedTuple):
    """ASGD's state.

    ``count``: t (torch ``step``); ``eta``: the step size the next update takes
    (torch ``eta``); ``avg_weight``: the weight of the next iterate in the average
    (torch ``mu``); ``ax``: the averaged parameters (torch ``ax``).
    """

    count: jax.Array
    eta: jax.Array
    avg_weight: jax.Array
    ax: Any


def scale_by_asgd(
    learning_rate: ScalarOrSchedule = 1e-2,
    *,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
) -> GradientTransformation:
    """Averaged SGD's step (Polyak & Juditsky, 1992), as ``torch.optim.ASGD``.

    Update t (1-based) with the step size ηₜ and the averaging weight μₜ in the state:

    ```text
    θ' = θ − ηₜ·(g + λ·θ)                            (u = θ' − θ is returned)
    ax ← θ'  if μₜ = 1,  else  ax + μₜ·(θ' − ax)
    ηₜ₊₁ = η / (1 + λ·η·t)^α,     μₜ₊₁ = 1 / max(1, t − t₀)
    ```

    with η₁ = η (the learning rate) and μ₁ = 1.  The decay term λ·θ shrinks the parameters;
    averaging starts after ``t₀`` updates (torch's default 1e6: in practice never, and ``ax`` copies
    θ).  Read the average with [`asgd_averaged_params`][jopt.transforms.asgd_averaged_params].

    The output is the whole step, sign included (``θ ← θ + u``), and ``ax`` is formed from ``θ +
    u``: nothing may follow this block in a chain (torch's L2 ``weight_decay``,
    [`jopt.add_decayed_weights`][jopt.add_decayed_weights], goes before it).  A scheduled
    ``learning_rate`` is read at the count of earlier updates, where it enters ηₜ₊₁, and torch's
    first step takes η from the learning rate of that moment, as here.

    Args:
      learning_rate: η ≥ 0, or a schedule.
      lambd: λ ≥ 0, the decay term.
      alpha: α ≥ 0, the power of the step size's decay.
      t0: t₀ ≥ 0, the update after which averaging starts.

    Returns:
      The transformation; its state is a [`ScaleByAsgdState`][jopt.transforms.ScaleByAsgdState].  It
      needs params.
    """
    check(learning_rate=learning_rate, lambd=lambd, alpha=alpha, t0=t0)

    def rate(count):
        return learning_rate(count) if callable(learning_rate) else learning_rate

    def rule(g, s, p):
        u = -s.eta * (g + lambd * p)
        # θ + u as apply_updates forms it: the average takes the parameters the caller
        # gets, and under jit the two sums are one (no buffer for a second θ').
        new_p = p + u
        ax = jnp.where(s.avg_weight == 1, new_p, s.ax + s.avg_weight * (new_p - s.ax))
        return u, s._replace(ax=ax)

    inner = block(
        ScaleByAsgdState,
        rule,
        needs_params=True,
        # Scalars at the widest float precision jax has, as torch keeps them at its
        # default dtype's.
        eta=Field.scalar(rate(0), jnp.result_type(float)),
        avg_weight=Field.scalar(1.0, None),
        ax=Field.zeros(),
    )

    def update(updates, state, params=None, **extra_args):
        del extra_args
        count = _numerics.safe_increment(state.count)
        eta_dtype, weight_dtype = state.eta.dtype, state.avg_weight.dtype
        current = rate(count - 1)
        # The first update takes η from the learning rate given now.
        eta = jnp.where(count == 1, jnp.asarray(current, eta_dtype), state.eta)
        updates, state = inner.update(updates, state._replace(eta=eta), params)
        t = count.astype(eta_dtype)
        next_eta = current / (1 + lambd * current * t) ** alpha
        next_weight = 1 / jnp.maximum(1, t.astype(weight_dtype) - t0)
        return updates, state._replace(
            eta=jnp.asarray(next_eta, eta_dtype), avg_weight=next_weight.astype(weight_dtype)
        )

    return GradientTransformation(inner.init, update)


def asgd_averaged_params(state: Any) -> Any:
    """The averaged parameters ``ax`` of the [`scale_by_asgd`][jopt.transforms.scale_by_asgd] (or
    [`jopt.asgd`][jopt.asgd]) inside ``state``: torch's ``optimizer.state[p]["ax"]``, for every
    parameter.

    After update t it is the mean of the iterates θ₍ₜ₀₊₂₎ … θₜ (for an integer t₀),
    and the latest iterate while t ≤ t₀ + 2; before the first update it is zero, as
    in torch.

    Raises:
      ValueError: ``state`` holds no ``ScaleByAsgdState``, or several.
    """
    return find_state(state, ScaleByAsgdState, "jopt.asgd").ax
