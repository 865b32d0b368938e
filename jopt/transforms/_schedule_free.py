"""Schedule-free learning (Defazio et al., 2024): averaging and interpolation in place of
a learning-rate schedule.

Three sequences share one update.  The base step moves ``z``, the weighted average of
the ``z``'s is ``x``, and the gradient is taken at ``y``, between the two::

    zₜ₊₁ = zₜ − γₜ·dₜ
    xₜ₊₁ = (1 − cₜ)·xₜ + cₜ·zₜ₊₁
    yₜ₊₁ = (1 − β)·zₜ₊₁ + β·xₜ₊₁

``dₜ`` is the base direction at ``yₜ`` (the gradient for SGD, ``g/(√v̂ + ε) + λ·y`` for
AdamW).  The parameters a training loop holds, and differentiates at, are ``y``.  The
state keeps ``z − y``, which starts at exactly 0 and, like a momentum buffer, is a
decaying sum of past steps: ``zₜ₊₁ − yₜ₊₁ = (1 − cₜ)·(zₜ − yₜ − β·γₜ·dₜ)``.  (Keeping z
itself, as the reference implementation does, loses digits to cancellation in
``z − y`` in float32, and a z stored narrower than y would move y by its rounding.)
``x = y − (1/β − 1)·(z − y)``, where the model is evaluated, is computed from the two
by :func:`schedule_free_eval_params`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _align, _numerics
from jopt._block import Field, block
from jopt._core import GradientTransformation, ScalarOrSchedule, tree_get_all
from jopt._validation import check, checked, is_concrete

__all__ = [
    "ScaleByScheduleFreeState",
    "scale_by_schedule_free",
    "schedule_free_eval_params",
]


class ScaleByScheduleFreeState(NamedTuple):
    """The state of :func:`scale_by_schedule_free` (names of ``schedulefree`` in brackets).

    Attributes:
      count: t, the number of updates (``k`` after the update).
      z_minus_y: ``z − y``, shaped like the parameters; ``schedulefree`` keeps
        ``z = y + z_minus_y`` (``state[p]['z']``).
      b1: β, kept so that :func:`schedule_free_eval_params` needs only the state.
      lr_max: the largest learning rate used so far (``lr_max``; 0 before the first).
      weight_sum: ``Σ wₜ``, the total averaging weight (``weight_sum``).
      scheduled_lr: γₜ, the learning rate of the latest update, warmup included
        (``scheduled_lr``).
    """

    count: jax.Array
    z_minus_y: Any
    b1: jax.Array
    lr_max: jax.Array
    weight_sum: jax.Array
    scheduled_lr: jax.Array


def _warmed_up(learning_rate: ScalarOrSchedule, warmup_steps: int, t: jax.Array, dtype):
    """γₜ = η(t − 1)·min(1, t / warmup_steps) for the t-th update (t = 1, 2, …)."""
    rate = learning_rate(t - 1) if callable(learning_rate) else learning_rate
    rate = jnp.asarray(rate, dtype)
    if warmup_steps:
        rate = rate * jnp.minimum(1, t.astype(dtype) / warmup_steps)
    return rate


def scale_by_schedule_free(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    b1: float = 0.9,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """The schedule-free step on a base direction (Defazio et al., 2024).

    Chain it last, in place of :func:`scale_by_learning_rate`: the incoming updates are
    the base direction ``dₜ``, the output is the step of the training parameters y.
    With the t-th update (t = 1, 2, …)::

        γₜ = η(t − 1)·min(1, t / warmup_steps)       (no warmup when warmup_steps = 0)
        γₘₐₓ ← max(γₘₐₓ, γₜ),  wₜ = tʳ·γₘₐₓ^p,  Wₜ = Wₜ₋₁ + wₜ,  cₜ = wₜ / Wₜ
        u = cₜ·δₜ + γₜ·(β·(1 − cₜ) − 1)·dₜ,   δₜ₊₁ = (1 − cₜ)·(δₜ − β·γₜ·dₜ)

    with δ = z − y (δ₀ = 0).  ``u`` is ``yₜ₊₁ − yₜ`` for the three sequences of the
    module docstring, with p = ``weight_lr_power`` and ``z₀ = x₀ = y₀`` the initial
    parameters.  The weights and their order of operations are those of the
    ``schedulefree`` package (1.4), whose ``AdamWScheduleFree`` and ``SGDScheduleFree``
    this reproduces step for step (to float64 rounding: it keeps z − y where the
    package keeps z).

    Args:
      learning_rate: η ≥ 0, or a schedule evaluated at the number of earlier updates
        (the warmup multiplies it).
      b1: β, the interpolation between z (β = 0) and x (β → 1); ``momentum`` in
        ``SGDScheduleFree``.  With β = 0, x cannot be recovered from y and z.
      warmup_steps: length of the linear warmup, ``γₜ = η·t / warmup_steps``.
      r: the averaging weights grow as ``tʳ``.
      weight_lr_power: the weights grow as ``γₘₐₓ^p``, so that warmup steps count less.
      mu_dtype: the storage dtype of z − y (``None``: the parameter's), the state that
        takes the place of Adam's first moment.

    Returns:
      The transformation; its state is a :class:`ScaleByScheduleFreeState`.
    """
    check(
        learning_rate=learning_rate,
        b1=b1,
        r=r,
        weight_lr_power=weight_lr_power,
        mu_dtype=mu_dtype,
    )
    warmup_steps = checked("warmup_steps", warmup_steps)
    scalar = jnp.result_type(float)  # the default float: float64 with 64-bit types on

    def step(s):
        rate = _warmed_up(learning_rate, warmup_steps, s.count, scalar)
        lr_max = jnp.maximum(s.lr_max, rate)
        weight = s.count.astype(scalar) ** r * lr_max**weight_lr_power
        return s._replace(
            b1=jnp.asarray(b1, scalar),
            lr_max=lr_max,
            weight_sum=(s.weight_sum + weight).astype(scalar),
            scheduled_lr=rate,
        )

    def rule(d, s):
        weight = s.count**r * s.lr_max**weight_lr_power
        positive = s.weight_sum > 0
        c = jnp.where(positive, weight / jnp.where(positive, s.weight_sum, 1), 0)
        rate = s.scheduled_lr
        u = c * s.z_minus_y + rate * (b1 * (1 - c) - 1) * d
        return u, s._replace(z_minus_y=(1 - c) * (s.z_minus_y - b1 * rate * d))

    return block(
        ScaleByScheduleFreeState,
        rule,
        step=step,
        z_minus_y=Field.zeros(mu_dtype),
        b1=Field.scalar(b1, scalar),
        lr_max=Field.scalar(0.0, scalar),
        weight_sum=Field.scalar(0.0, scalar),
        scheduled_lr=Field.scalar(0.0, scalar),
    )


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    """The parameters to evaluate a schedule-free model at: x, from y and the state.

    ``x = y + (1 − 1/β)·(z − y)``, that is ``(y − (1 − β)·z) / β``, leaf by leaf, in
    each parameter's dtype (``schedulefree``'s ``optimizer.eval()``; optax.contrib's
    function of the same name).  Training continues from ``params`` (y), not from the
    result.  Models with batch normalization must recompute its statistics at x (a
    forward pass over some training batches with the returned parameters): the
    running averages collected at y do not fit x.

    Args:
      state: the optimizer state, or any tree holding it (a chain, ``partition``,
        ``inject_hyperparams``); every :class:`ScaleByScheduleFreeState` inside is
        used, each for the leaves it keeps ``z − y`` for.
      params: the training parameters y, with the structure the state was built for.

    Returns:
      x, with the structure and dtypes of ``params``; leaves no schedule-free state
      covers (``None``, integer, or trained by another optimizer) are returned as given.

    Raises:
      ValueError: if the state holds no schedule-free state, if two cover one leaf,
        or if β = 0 (x is then not determined by y and z).
    """
    found = tree_get_all(state, ScaleByScheduleFreeState.__name__)
    if not found:
        raise ValueError(
            f"state holds no ScaleByScheduleFreeState (got {type(state).__name__}): pass "
            f"the state of a schedule-free optimizer"
        )
    try:
        leaves, treedef, columns = _align.align(
            params, [(f"state{path}.z_minus_y", s.z_minus_y) for path, s in found]
        )
    except ValueError as error:  # align names its first tree "updates": here the params
        raise ValueError(str(error).replace("updates", "params")) from None
    out = list(leaves)
    covered = [None] * len(leaves)
    for (path, s), column in zip(found, columns, strict=True):
        if is_concrete(s.b1) and np.any(np.asarray(s.b1) == 0):
            raise ValueError(
                f"state{path}.b1 is 0: y = z, and x (the average) is not kept in the state"
            )
        for i, (y, z_minus_y) in enumerate(zip(leaves, column, strict=True)):
            if z_minus_y is None or not _numerics.is_trainable(y):
                continue
            if covered[i] is not None:
                raise ValueError(
                    f"params{_align.paths(params)[i]}: covered by two schedule-free states, "
                    f"at state{covered[i]} and state{path}"
                )
            covered[i] = path
            out[i] = _evaluation_point(y, z_minus_y, s.b1)
    return treedef.unflatten(out)


def _evaluation_point(y, z_minus_y, b1):
    y = jnp.asarray(y)
    compute = _numerics.compute_dtype(y.dtype)
    weight = 1 - 1 / _numerics.cast(b1, _numerics.real_dtype(compute))
    x = _numerics.cast(y, compute) + weight * _numerics.cast(z_minus_y, compute)
    return _numerics.cast(x, y.dtype)
