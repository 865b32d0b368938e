"""Schedule-free learning (Defazio et al., 2024): averaging and interpolation in place of
a learning-rate schedule.

Three sequences share one update.  The base step moves ``z``, the weighted average of
the ``z``'s is ``x``, and the gradient is taken at ``y``, between the two:

```text
zₜ₊₁ = zₜ − γₜ·dₜ
xₜ₊₁ = (1 − cₜ)·xₜ + cₜ·zₜ₊₁
yₜ₊₁ = (1 − β)·zₜ₊₁ + β·xₜ₊₁
```

``dₜ`` is the base direction at ``yₜ`` (the gradient for SGD, ``g/(√v̂ + ε) + λ·y`` for
AdamW).  The parameters a training loop holds, and differentiates at, are ``y``.  The
state keeps ``mₜ₊₁ = zₜ₊₁ − xₜ``, z's distance from the average before the average
takes it in.  It starts at 0 and is a decaying sum of past steps, like a momentum
buffer, and the step of y is a momentum step:

```text
mₜ₊₁ = (1 − cₜ₋₁)·mₜ − γₜ·dₜ,        yₜ₊₁ − yₜ = β·cₜ·mₜ₊₁ − (1 − β)·γₜ·dₜ
```

z and x follow from y: ``z = y + β·(1 − cₜ)·mₜ₊₁`` and ``x = y − (1 − β)·(1 − cₜ)·mₜ₊₁``
([`schedule_free_eval_params`][jopt.transforms.schedule_free_eval_params]).  The reference
implementation keeps z itself. Keeping m loses no digits to the cancellation in ``z − y``; a narrow
storage dtype rounds a momentum-sized quantity, not a copy of the parameters; and the step of y
reads only the new state, so a compiled step needs no copy of a donated state buffer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _align, _numerics
from jopt._block import Field, abs_sq, block
from jopt._core import GradientTransformation, ScalarOrSchedule, tree_get_all
from jopt._validation import check, checked, is_static_zero

__all__ = [
    "ScaleByScheduleFreeAdamwState",
    "ScaleByScheduleFreeState",
    "scale_by_schedule_free",
    "scale_by_schedule_free_adamw",
    "schedule_free_eval_params",
]


class ScaleByScheduleFreeState(NamedTuple):
    """The state of [`scale_by_schedule_free`][jopt.transforms.scale_by_schedule_free] (names of
    ``schedulefree`` in brackets).

    Attributes:
      count: t, the number of updates (``k`` after the update).
      z_minus_previous_x: ``mₜ₊₁ = zₜ₊₁ − xₜ``, shaped like the parameters; the package
        keeps ``z = y + β·(1 − cₜ)·mₜ₊₁`` (``state[p]['z']``).
      b1: β, kept so that
        [`schedule_free_eval_params`][jopt.transforms.schedule_free_eval_params] needs
        only the state.
      lr_max: the largest learning rate used so far (``lr_max``; 0 before the first).
      weight_sum: ``Σ wₜ``, the total averaging weight (``weight_sum``).
      scheduled_lr: γₜ, the learning rate of the latest update, warmup included
        (``scheduled_lr``).
      ckp1: cₜ, the weight of z in the latest average (the package's ``ckp1``).
      previous_ckp1: cₜ₋₁, the one before.
    """

    count: jax.Array
    z_minus_previous_x: Any
    b1: jax.Array
    lr_max: jax.Array
    weight_sum: jax.Array
    scheduled_lr: jax.Array
    ckp1: jax.Array
    previous_ckp1: jax.Array


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

    Chain it last, in place of [`scale_by_learning_rate`][jopt.transforms.scale_by_learning_rate]:
    the incoming updates are the base direction ``dₜ``, the output is the step of the training
    parameters y. With the t-th update (t = 1, 2, …):

    ```text
    γₜ = η(t − 1)·min(1, t / warmup_steps)       (no warmup when warmup_steps = 0)
    γₘₐₓ ← max(γₘₐₓ, γₜ),  wₜ = tʳ·γₘₐₓ^p,  Wₜ = Wₜ₋₁ + wₜ,  cₜ = wₜ / Wₜ
    mₜ₊₁ = (1 − cₜ₋₁)·mₜ − γₜ·dₜ,   u = β·cₜ·mₜ₊₁ − (1 − β)·γₜ·dₜ
    ```

    with m = z − x (before the average moves), m₁ = 0 and c₀ = 0.  ``u`` is
    ``yₜ₊₁ − yₜ`` for the three sequences of the module docstring, with
    p = ``weight_lr_power`` and ``z₁ = x₁ = y₁`` the initial parameters.  The weights
    and their order of operations are those of the ``schedulefree`` package (1.4),
    whose ``AdamWScheduleFree`` and ``SGDScheduleFree`` this reproduces step for step
    (to float64 rounding: it keeps m where the package keeps z).

    Args:
      learning_rate: η ≥ 0, or a schedule evaluated at the number of earlier updates
        (the warmup multiplies it).
      b1: β, the interpolation between z (β = 0, Polyak averaging) and x (β → 1);
        ``momentum`` in ``SGDScheduleFree``.
      warmup_steps: length of the linear warmup, ``γₜ = η·t / warmup_steps``.
      r: the averaging weights grow as ``tʳ``.
      weight_lr_power: the weights grow as ``γₘₐₓ^p``, so that warmup steps count less.
      mu_dtype: the storage dtype of m (``None``: the parameter's), the state that
        takes the place of Adam's first moment.

    Returns:
      The transformation; its state is a
      [`ScaleByScheduleFreeState`][jopt.transforms.ScaleByScheduleFreeState].
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

    def rule(d, s):
        m = _new_m(s, d)
        return _step_of_y(s, m, d, b1), s._replace(z_minus_previous_x=m)

    return block(
        ScaleByScheduleFreeState,
        rule,
        step=_averaging_step(learning_rate, b1, warmup_steps, r, weight_lr_power, scalar),
        z_minus_previous_x=Field.zeros(mu_dtype),
        **_scalar_fields(b1, scalar),
    )


def _averaging_step(learning_rate, b1, warmup_steps, r, weight_lr_power, scalar):
    """``step(s)`` of the blocks: γₜ, γₘₐₓ, Wₜ and cₜ once per update (cₜ₋₁ kept)."""

    def step(s):
        rate = _warmed_up(learning_rate, warmup_steps, s.count, scalar)
        lr_max = jnp.maximum(s.lr_max, rate)
        weight = s.count.astype(scalar) ** r * lr_max**weight_lr_power
        weight_sum = (s.weight_sum + weight).astype(scalar)
        positive = weight_sum > 0  # the package's ZeroDivisionError: c = 0
        ckp1 = jnp.where(positive, weight / jnp.where(positive, weight_sum, 1), 0)
        return s._replace(
            b1=jnp.asarray(b1, scalar),
            lr_max=lr_max,
            weight_sum=weight_sum,
            scheduled_lr=rate,
            ckp1=ckp1.astype(scalar),
            previous_ckp1=s.ckp1,
        )

    return step


def _scalar_fields(b1, scalar) -> dict[str, Field]:
    names = ("lr_max", "weight_sum", "scheduled_lr", "ckp1", "previous_ckp1")
    return {"b1": Field.scalar(b1, scalar), **{n: Field.scalar(0.0, scalar) for n in names}}


def _new_m(s, d):
    """``mₜ₊₁ = (1 − cₜ₋₁)·mₜ − γₜ·dₜ``, materialized.

    The step of y then reads the new m, not the old one: the old buffer has a single
    reader, and a donated state is updated in place instead of being copied first.
    """
    m = (1 - s.previous_ckp1) * s.z_minus_previous_x - s.scheduled_lr * d
    return jax.lax.optimization_barrier(m)


def _step_of_y(s, m, d, b1):
    """``yₜ₊₁ − yₜ = β·cₜ·mₜ₊₁ − (1 − β)·γₜ·dₜ``."""
    return b1 * s.ckp1 * m - (1 - b1) * s.scheduled_lr * d


class ScaleByScheduleFreeAdamwState(NamedTuple):
    """The state of [`scale_by_schedule_free_adamw`][jopt.transforms.scale_by_schedule_free_adamw]:
    that of [`ScaleByScheduleFreeState`][jopt.transforms.ScaleByScheduleFreeState] and ``nu``, v
    (the package's ``exp_avg_sq``)."""

    count: jax.Array
    nu: Any
    z_minus_previous_x: Any
    b1: jax.Array
    lr_max: jax.Array
    weight_sum: jax.Array
    scheduled_lr: jax.Array
    ckp1: jax.Array
    previous_ckp1: jax.Array


def scale_by_schedule_free_adamw(
    learning_rate: ScalarOrSchedule = 2.5e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free AdamW in one block:
    [`scale_by_schedule_free`][jopt.transforms.scale_by_schedule_free] on the direction ``dₜ = gₜ /
    (√(vₜ / (1 − β₂ᵗ)) + ε) + λ·yₜ``, ``vₜ = β₂·vₜ₋₁ + (1 − β₂)·|gₜ|²``.

    The arguments and the computation are [`jopt.schedule_free_adamw`][jopt.schedule_free_adamw]'s.
    One block rather than a chain, so that dₜ is computed where each of its two uses is (the new m
    and the step of y): shared, it would be a third array written and read back at every step.
    Needs ``params`` when ``weight_decay`` is not a literal 0; a ``weight_decay`` schedule is
    evaluated, as a float, at the number of earlier updates.

    Returns:
      The transformation; its state is a
      [`ScaleByScheduleFreeAdamwState`][jopt.transforms.ScaleByScheduleFreeAdamwState].
    """
    check(
        learning_rate=learning_rate,
        b1=b1,
        b2=b2,
        eps=eps,
        weight_decay=weight_decay,
        r=r,
        weight_lr_power=weight_lr_power,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )
    warmup_steps = checked("warmup_steps", warmup_steps)
    scalar = jnp.result_type(float)
    decays = not is_static_zero(weight_decay)

    def direction(g, nu, count, y, s):
        d = g / (jnp.sqrt(nu / (1 - b2**count)) + eps)
        if decays:
            wd = weight_decay(s.count - 1) if callable(weight_decay) else weight_decay
            d = d + wd * y
        return d

    def rule(g, s, y=None):
        nu = b2 * s.nu + (1 - b2) * abs_sq(g)
        m = _new_m(s, direction(g, nu, s.count, y, s))
        # The same dₜ again, from values the barrier makes distinct: computed inside
        # the kernel of y's step instead of read back from memory.
        g, nu, count = jax.lax.optimization_barrier((g, nu, s.count))
        u = _step_of_y(s, m, direction(g, nu, count, y, s), b1)
        return u, s._replace(nu=nu, z_minus_previous_x=m)

    return block(
        ScaleByScheduleFreeAdamwState,
        rule,
        needs_params=decays,
        step=_averaging_step(learning_rate, b1, warmup_steps, r, weight_lr_power, scalar),
        nu=Field.zeros(nu_dtype, real=True),
        z_minus_previous_x=Field.zeros(mu_dtype),
        **_scalar_fields(b1, scalar),
    )


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    """The parameters to evaluate a schedule-free model at: x, from y and the state.

    ``x = y − (1 − β)·(1 − cₜ)·mₜ₊₁``, which is ``(y − (1 − β)·z) / β``, leaf by leaf, in
    each parameter's dtype (``schedulefree``'s ``optimizer.eval()``; optax.contrib's
    function of the same name).  Training continues from ``params`` (y), not from the
    result.  Models with batch normalization must recompute its statistics at x (a
    forward pass over some training batches with the returned parameters): the
    running averages collected at y do not fit x.

    Args:
      state: the optimizer state, or any tree holding it (a chain, ``partition``,
        ``inject_hyperparams``); every
        [`ScaleByScheduleFreeState`][jopt.transforms.ScaleByScheduleFreeState] inside is used, each
        for the leaves it keeps m for.
      params: the training parameters y, with the structure the state was built for.

    Returns:
      x, with the structure and dtypes of ``params``; leaves no schedule-free state
      covers (``None``, integer, or trained by another optimizer) are returned as given.

    Raises:
      ValueError: if the state holds no schedule-free state, or two cover one leaf.
    """
    found = [
        entry
        for state_type in (ScaleByScheduleFreeState, ScaleByScheduleFreeAdamwState)
        for entry in tree_get_all(state, state_type.__name__)
    ]
    if not found:
        raise ValueError(
            f"state holds no ScaleByScheduleFreeState (got {type(state).__name__}): pass "
            f"the state of a schedule-free optimizer"
        )
    named = [(f"state{path}.z_minus_previous_x", s.z_minus_previous_x) for path, s in found]
    try:
        leaves, treedef, columns = _align.align(params, named)
    except ValueError as error:  # align names its first tree "updates": here the params
        raise ValueError(str(error).replace("updates", "params")) from None
    out = list(leaves)
    covered = [None] * len(leaves)
    for (path, s), column in zip(found, columns, strict=True):
        for i, (y, m) in enumerate(zip(leaves, column, strict=True)):
            if m is None or not _numerics.is_trainable(y):
                continue
            if covered[i] is not None:
                raise ValueError(
                    f"params{_align.paths(params)[i]}: covered by two schedule-free states, "
                    f"at state{covered[i]} and state{path}"
                )
            covered[i] = path
            out[i] = _evaluation_point(y, m, s)
    return treedef.unflatten(out)


def _evaluation_point(y, m, s: ScaleByScheduleFreeState):
    """``x = y − (1 − β)·(1 − c)·m`` for one leaf, computed in at least float32."""
    y = jnp.asarray(y)
    compute = _numerics.compute_dtype(y.dtype)
    real = _numerics.real_dtype(compute)
    b1, ckp1 = _numerics.cast(s.b1, real), _numerics.cast(s.ckp1, real)
    x = _numerics.cast(y, compute) - (1 - b1) * (1 - ckp1) * _numerics.cast(m, compute)
    return _numerics.cast(x, y.dtype)
