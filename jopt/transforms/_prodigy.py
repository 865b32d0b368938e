"""Prodigy (Mishchenko & Defazio, 2024): Adam whose step size estimates itself.

The estimate d of the distance ``‖x₀ − x*‖`` is one number for the whole tree: its
numerator and denominator are sums over every parameter leaf.  So this is a tree-level
transformation, written on the same leaf rules as [`jopt.block`][jopt.block]: ``None``,
integer and boolean leaves pass through without state, arithmetic runs in at least
float32 and is rounded once to each field's storage dtype, mismatched trees raise
errors naming the path, and the counts are saturating int32.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _align, _numerics, _placement
from jopt._block import Field
from jopt._core import GradientTransformation, ScalarOrSchedule, tree_get
from jopt._validation import check, is_static_zero

__all__ = ["ScaleByProdigyState", "prodigy_d", "scale_by_prodigy"]


class ScaleByProdigyState(NamedTuple):
    """The state of [`scale_by_prodigy`][jopt.transforms.scale_by_prodigy] (``prodigyopt``'s names
    in brackets).

    Attributes:
      count: the number of updates so far; a schedule is evaluated at it.
      k: the number of steps taken (``k``): an update that takes no step (no gradient
        seen yet, or η = 0) leaves it, d and the numerator unchanged.
      d: the current estimate d (``d``).
      d_max: the largest estimate d̂ so far, and d₀ (``d_max``).
      d_numerator: the weighted sum ``Σ β₃^{k−i}·(dᵢ/d₀)·γᵢ·⟨gᵢ, x₀ − xᵢ⟩`` (``d_numerator``).
      mu: m, the first moment of d·g (``exp_avg``); an empty tuple when ``b1`` is a
        literal 0 (no first moment is kept, as in ``prodigyopt``).
      nu: v, the second moment of d·g (``exp_avg_sq``); real for complex parameters.
      s: the weighted sum of the gradients that makes d's denominator (``s``).
      p0: the initial parameters x₀ (``p0``).
    """

    count: jax.Array
    k: jax.Array
    d: jax.Array
    d_max: jax.Array
    d_numerator: jax.Array
    mu: Any
    nu: Any
    s: Any
    p0: Any


def prodigy_d(state: Any) -> jax.Array:
    """Prodigy's current estimate d of the distance to the solution ``‖x₀ − x*‖``.

    The next step size is ``d·η`` (times the bias correction when it is on): log it to watch the
    estimate grow.  ``state`` is the state of [`jopt.prodigy`][jopt.prodigy] or of
    [`scale_by_prodigy`][jopt.transforms.scale_by_prodigy], or any tree holding exactly one of them.
    Read-only: prodigyopt's ``optimizer.param_groups[0]["d"]``.

    Raises:
      ValueError: if there is no Prodigy state in ``state``.
      KeyError: if there are several (pick one with [`jopt.tree_get_all`][jopt.tree_get_all]).
    """
    found = tree_get(state, ScaleByProdigyState.__name__)
    if found is None:
        raise ValueError(
            f"state holds no ScaleByProdigyState (got {type(state).__name__}): pass the "
            f"state of jopt.prodigy"
        )
    return found.d


def _real_dot(g, x):
    """``Re Σ conj(g)·x``: the inner product of ℝⁿ (ℂ ≅ ℝ²) in g's real dtype."""
    product = jnp.conj(g) * x if jnp.iscomplexobj(g) else g * x
    return jnp.sum(jnp.real(product))


def _leaf_map(fn):
    """``fn`` eagerly, or compiled once per leaf signature under an outer ``jit``."""
    compiled = jax.jit(fn)

    def run(*args):
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args))
        return (compiled if traced else fn)(*args)

    return run


class _Hyper(NamedTuple):
    """Prodigy's hyperparameters as given (numbers, traced arrays or schedules)."""

    learning_rate: Any
    b1: Any
    b2: Any
    b3: Any
    eps: Any
    weight_decay: Any
    d0: Any
    d_coef: Any
    growth_rate: Any
    use_bias_correction: bool
    safeguard_warmup: bool


def scale_by_prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float | None = None,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    d0: float = 1e-6,
    d_coef: float = 1.0,
    growth_rate: float = math.inf,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """The whole Prodigy step, learning rate and sign included (see [`jopt.prodigy`][jopt.prodigy]).

    The learning rate enters the estimate of d, so this block returns the update to add to the
    parameters, ``−γₖ·(mₖ/(√vₖ + dₖ₊₁·ε) + λ·xₖ)``, as
    [`scale_by_learning_rate`][jopt.transforms.scale_by_learning_rate] does.  Needs ``params``.  The
    arguments are [`jopt.prodigy`][jopt.prodigy]'s; ``mu_dtype`` and ``nu_dtype`` set the storage
    dtypes of m and v (``None``: each parameter's).

    Returns:
      The transformation; its state is a
      [`ScaleByProdigyState`][jopt.transforms.ScaleByProdigyState].
    """
    hyper = dict(learning_rate=learning_rate, b1=b1, b2=b2, b3=b3, eps=eps)
    hyper.update(weight_decay=weight_decay, d0=d0, d_coef=d_coef, growth_rate=growth_rate)
    hyper.update(use_bias_correction=use_bias_correction, safeguard_warmup=safeguard_warmup)
    check(**hyper, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    h = _Hyper(**{**hyper, "b3": b2**0.5 if b3 is None else b3})
    first_moment = not is_static_zero(b1)
    leaf_fns = (
        _leaf_map(functools.partial(_accumulate, h)),
        _leaf_map(functools.partial(_apply, h, not is_static_zero(weight_decay))),
    )

    def init(params):
        scalar = jnp.result_type(float)  # the default float: float64 with 64-bit types on
        return ScaleByProdigyState(
            count=_placement.scalar_like(params, 0, jnp.int32),
            k=_placement.scalar_like(params, 0, jnp.int32),
            d=_placement.scalar_like(params, d0, scalar),
            d_max=_placement.scalar_like(params, d0, scalar),
            d_numerator=_placement.scalar_like(params, 0.0, scalar),
            mu=Field.zeros(mu_dtype).build(params) if first_moment else (),
            nu=Field.zeros(nu_dtype, real=True).build(params),
            s=Field.zeros().build(params),
            # A copy, not the params' own buffers: both can then be donated to a step.
            p0=jax.tree.map(jnp.copy, Field.params().build(params)),
        )

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("scale_by_prodigy needs params: call update(updates, state, params)")
        if not isinstance(state, ScaleByProdigyState):
            raise ValueError(
                f"scale_by_prodigy: state must be the ScaleByProdigyState that init "
                f"returned, got {type(state).__name__}"
            )
        return _update(h, leaf_fns, updates, state, params)

    return GradientTransformation(init, update)


def _update(h: _Hyper, leaf_fns, updates, state: ScaleByProdigyState, params):
    """One Prodigy update over the tree: moments and d's sums leaf by leaf, then d, then
    the steps."""
    accumulate, apply = leaf_fns
    first_moment = not (type(state.mu) is tuple and not state.mu)
    named = [("state.nu", state.nu), ("state.s", state.s), ("state.p0", state.p0)]
    named += [("state.mu", state.mu)] if first_moment else []
    leaves, treedef, columns = _align.align(updates, [*named, ("params", params)])
    nu, s, p0, p = columns[0], columns[1], columns[2], columns[-1]
    mu = columns[3] if first_moment else [None] * len(leaves)
    trained = [
        i
        for i, g in enumerate(leaves)
        if _numerics.is_trainable(g) and _numerics.is_trainable(p[i]) and nu[i] is not None
    ]
    scalars = _scalars(h, state)
    dtype = state.d.dtype
    moments, numerator, denominator = {}, state.d_numerator * h.b3, jnp.zeros((), dtype)
    for i in trained:
        args = (leaves[i], p[i], p0[i], mu[i], nu[i], s[i], scalars["coefficients"])
        moments[i], part_num, part_den = accumulate(*args, scalars["active"])
        numerator = numerator + part_num.astype(dtype)
        denominator = denominator + part_den.astype(dtype)
    new = _estimate(h, state, scalars["active"], numerator.astype(dtype), denominator)
    outputs, new_columns = list(leaves), {"mu": list(mu), "nu": list(nu), "s": list(s)}
    for i in trained:
        m, v, acc = moments[i]
        u = apply(leaves[i], p[i], m, v, (scalars["dlr"], new.d, scalars["wd"]), new.taken)
        outputs[i] = _numerics.cast(u, leaves[i].dtype)
        for name, value, old in (("mu", m, mu[i]), ("nu", v, nu[i]), ("s", acc, s[i])):
            if value is not None:
                new_columns[name][i] = _numerics.cast(value, old.dtype)
    trees = {name: treedef.unflatten(column) for name, column in new_columns.items()}
    return treedef.unflatten(outputs), state._replace(
        count=_numerics.safe_increment(state.count),
        k=jnp.where(new.taken, _numerics.safe_increment(state.k), state.k),
        d=jnp.where(new.taken, new.d, state.d),
        d_max=jnp.where(new.taken, new.d_max, state.d_max),
        d_numerator=jnp.where(new.taken, numerator, state.d_numerator).astype(dtype),
        mu=trees["mu"] if first_moment else (),
        nu=trees["nu"],
        s=trees["s"],
    )


def _scalars(h: _Hyper, state: ScaleByProdigyState) -> dict[str, Any]:
    """The update's η (schedules at ``count``), λ, step ``dlr = d·η·bias correction``,
    and the coefficients of the numerator and of s."""
    dtype = state.d.dtype
    lr = h.learning_rate(state.count) if callable(h.learning_rate) else h.learning_rate
    lr = jnp.asarray(lr, dtype)
    wd = h.weight_decay(state.count) if callable(h.weight_decay) else h.weight_decay
    correction = 1.0
    if h.use_bias_correction:
        k = _numerics.safe_increment(state.k).astype(dtype)
        correction = jnp.sqrt(1 - h.b2**k) / (1 - h.b1**k)
    dlr = (state.d * lr * correction).astype(dtype)
    ratio = state.d / jnp.asarray(h.d0, dtype)
    s_coef = ratio * (state.d if h.safeguard_warmup else dlr)
    return {
        "active": lr > 0,
        "dlr": dlr,
        "wd": jnp.asarray(wd, dtype),
        "coefficients": (state.d, ratio * dlr, s_coef),
    }


def _accumulate(h: _Hyper, g, p, p0, mu, nu, s, coefficients, active):
    """New m, v, s of one leaf (compute dtype; unchanged unless ``active``) and the
    leaf's terms of d's numerator, ``(d/d₀)·γ·⟨g, x₀ − x⟩``, and denominator, ``Σ|s|``."""
    compute = _numerics.compute_dtype(g.dtype)
    real = _numerics.real_dtype(compute)
    g, p, p0 = (_numerics.cast(x, compute) for x in (g, p, p0))
    d, numerator_coef, s_coef = (_numerics.cast(x, real) for x in coefficients)
    new_mu = None if mu is None else h.b1 * _numerics.cast(mu, compute) + d * (1 - h.b1) * g
    new_nu = h.b2 * _numerics.cast(nu, real) + d * d * (1 - h.b2) * _numerics.abs_sq(g)
    new_s = h.b3 * _numerics.cast(s, compute) + s_coef * g
    kept = tuple(
        None if new is None else jnp.where(active, new, _numerics.cast(old, new.dtype))
        for new, old in ((new_mu, mu), (new_nu, nu), (new_s, s))
    )
    denominator = jnp.sum(jnp.abs(kept[2])) * active
    return kept, numerator_coef * _real_dot(g, p0 - p) * active, denominator


def _apply(h: _Hyper, decays: bool, g, p, mu, nu, scalars, taken):
    """One leaf's step ``−γ·(m/(√v + d·ε) + λ·x)`` from the new moments, 0 if not taken.

    With β₁ = 0 prodigyopt keeps no m and steps along ``d·g`` with the new d.
    """
    compute = _numerics.compute_dtype(g.dtype)
    real = _numerics.real_dtype(compute)
    dlr, d, wd = (_numerics.cast(x, real) for x in scalars)
    g, p = _numerics.cast(g, compute), _numerics.cast(p, compute)
    direction = (mu if mu is not None else d * g) / (jnp.sqrt(nu) + d * h.eps)
    if decays:
        direction = direction + wd * p
    return jnp.where(taken, -dlr * direction, 0)


def _estimate(h: _Hyper, state: ScaleByProdigyState, active, numerator, denominator):
    """``d̂ = d_coef·numerator / denominator``; the new d and d_max, and whether the
    update takes a step (η > 0 and a non-zero denominator)."""
    positive = denominator > 0
    d_hat = h.d_coef * numerator / jnp.where(positive, denominator, 1)
    d = state.d
    d_first = jnp.where(d == jnp.asarray(h.d0, d.dtype), jnp.maximum(d, d_hat), d)
    d_max = jnp.maximum(state.d_max, d_hat)
    if isinstance(h.growth_rate, (int, float)) and math.isinf(h.growth_rate):
        d_new = d_max
    else:  # the where keeps the gradient finite for an infinite traced growth rate
        unbounded = jnp.isinf(h.growth_rate)
        rate = jnp.where(unbounded, 1, h.growth_rate)
        d_new = jnp.where(unbounded, d_max, jnp.minimum(d_max, d_first * rate))
    return _Estimate(d_new.astype(d.dtype), d_max.astype(d.dtype), active & positive)


class _Estimate(NamedTuple):
    d: jax.Array
    d_max: jax.Array
    taken: jax.Array
