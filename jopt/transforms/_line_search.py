"""A strong-Wolfe line search in one ``lax.while_loop``, as torch.optim.LBFGS runs it.

Bracketing and zoom by cubic interpolation (Nocedal & Wright, *Numerical
Optimization*, 2nd ed., 2006, algorithms 3.5 and 3.6), in torch's variant; used by
[`scale_by_lbfgs_step`][jopt.transforms.scale_by_lbfgs_step].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

# torch's Wolfe constants, and the number of evaluations after the first.
C1, C2 = 1e-4, 0.9
MAX_LINE_SEARCH = 25

_BRACKET, _ZOOM, _DONE = 0, 1, 2


class LineSearchResult(NamedTuple):
    """``step_size`` t, ``value`` f(x + t·d), ``grad`` ∇f(x + t·d), ``evaluations``."""

    step_size: jax.Array
    value: jax.Array
    grad: jax.Array
    evaluations: jax.Array


class _Search(NamedTuple):
    phase: jax.Array  # _BRACKET, _ZOOM or _DONE
    evals: jax.Array  # evaluations so far
    t: jax.Array  # the next trial step
    prev: tuple  # (t, f, gtd, g) of the last trial, while bracketing
    bracket: tuple  # (t, f, gtd, g), each stacked over the two ends
    low: jax.Array  # the end with the lower value
    insufficient: jax.Array  # the last zoom trial fell near an end


def _where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _cubic_minimum(x1, f1, g1, x2, f2, g2, lo, hi):
    """The minimizer of the cubic through ``(x, f, f')`` at two points, clipped to
    ``[lo, hi]``; the midpoint of ``[lo, hi]`` when the cubic has no minimum
    (Nocedal & Wright, eq. 3.59)."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    real = d2_square >= 0
    d2 = jnp.sqrt(jnp.where(real, d2_square, 0))
    right = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    left = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    pos = jnp.where(x1 <= x2, right, left)
    return jnp.where(real, jnp.minimum(jnp.maximum(pos, lo), hi), (lo + hi) / 2)


def _after_bracket_trial(c, point, start, ls_iter, max_steps):
    """Bracketing (algorithm 3.5): stop, bracket, or extrapolate past the trial."""
    t, f, gtd, _ = point
    f0, gtd0 = start[1], start[2]
    out = ls_iter >= max_steps
    armijo_fails = (f > f0 + C1 * t * gtd0) | ((ls_iter > 1) & (f >= c.prev[1]))
    wolfe = jnp.abs(gtd) <= -C2 * gtd0
    rising = gtd >= 0
    extrapolate = ~out & ~armijo_fails & ~wolfe & ~rising
    found = ~out & ~armijo_fails & wolfe
    # The other end: the start when out of evaluations, the trial itself when it
    # satisfies the strong Wolfe conditions, the previous trial otherwise.
    other = _where(out, start, _where(found, point, c.prev))
    bracket = tuple(jnp.stack([a, b]) for a, b in zip(other, point, strict=True))
    low = jnp.where(other[1] <= f, 0, 1).astype(jnp.int32)
    t_prev, f_prev, gtd_prev, _ = c.prev
    t_next = _cubic_minimum(t_prev, f_prev, gtd_prev, t, f, gtd, t + 0.01 * (t - t_prev), t * 10)
    phase = jnp.where(out | found, _DONE, jnp.where(extrapolate, _BRACKET, _ZOOM))
    moved = c._replace(phase=phase.astype(jnp.int32), bracket=bracket, low=low)
    kept = c._replace(t=t_next, prev=point)
    return _where(extrapolate, kept, moved)


def _set(bracket, i, point):
    return tuple(x.at[i].set(p) for x, p in zip(bracket, point, strict=True))


def _after_zoom_trial(c, point, start):
    """Zoom (algorithm 3.6): the trial replaces one end of the bracket."""
    t, f, gtd, _ = point
    f0, gtd0 = start[1], start[2]
    low, high = c.low, 1 - c.low
    b_t, b_f = c.bracket[0], c.bracket[1]
    worse = (f > f0 + C1 * t * gtd0) | (f >= b_f[low])
    as_high = _set(c.bracket, high, point)
    low_if_worse = jnp.where(as_high[1][0] <= as_high[1][1], 0, 1).astype(jnp.int32)
    done = jnp.abs(gtd) <= -C2 * gtd0
    flip = ~done & (gtd * (b_t[high] - b_t[low]) >= 0)
    old_low = tuple(x[low] for x in c.bracket)
    as_low = _set(_where(flip, _set(c.bracket, high, old_low), c.bracket), low, point)
    phase = jnp.where(~worse & done, _DONE, _ZOOM).astype(jnp.int32)
    return c._replace(
        phase=phase,
        bracket=_where(worse, as_high, as_low),
        low=jnp.where(worse, low_if_worse, low),
    )


def _next_zoom_trial(c, ls_iter, d_norm, tolerance_change, max_steps):
    """The next trial inside the bracket, kept 10% of its width away from its ends."""
    b_t, b_f, b_gtd, _ = c.bracket
    lo, hi = jnp.minimum(b_t[0], b_t[1]), jnp.maximum(b_t[0], b_t[1])
    stop = (ls_iter >= max_steps) | (jnp.abs(b_t[1] - b_t[0]) * d_norm < tolerance_change)
    t = _cubic_minimum(b_t[0], b_f[0], b_gtd[0], b_t[1], b_f[1], b_gtd[1], lo, hi)
    eps = 0.1 * (hi - lo)
    near = jnp.minimum(hi - t, t - lo) < eps
    at_end = c.insufficient | (t >= hi) | (t <= lo)
    pushed = jnp.where(jnp.abs(t - hi) < jnp.abs(t - lo), hi - eps, lo + eps)
    zoom = c.phase == _ZOOM
    return c._replace(
        phase=jnp.where(zoom & stop, _DONE, c.phase).astype(jnp.int32),
        t=jnp.where(zoom, jnp.where(near & at_end, pushed, t), c.t),
        insufficient=jnp.where(zoom, near & ~at_end, c.insufficient),
    )


def strong_wolfe(
    value_and_grad: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    direction: jax.Array,
    step_size: jax.Array,
    value: jax.Array,
    grad: jax.Array,
    *,
    tolerance_change: float = 1e-9,
    max_steps: int = MAX_LINE_SEARCH,
) -> LineSearchResult:
    """A step length satisfying the strong Wolfe conditions along ``d``.

    ``f(x + t·d) ≤ f(x) + c₁·t·∇fᵀd`` and ``|∇f(x + t·d)ᵀd| ≤ c₂·|∇fᵀd|`` with
    c₁ = 1e-4, c₂ = 0.9: bracketing from ``t = step_size`` with cubic extrapolation
    into ``[t + 0.01·(t − t_prev), 10·t]``, then zoom by cubic interpolation (Nocedal
    & Wright, algorithms 3.5 and 3.6), in torch's variant: the zoom stops when the
    bracket is shorter than ``tolerance_change / max|d|``, and a trial that lands
    within 10% of an end twice in a row is pushed to 10%.  One ``lax.while_loop``,
    one evaluation per iteration, at most ``1 + max_steps`` evaluations; when they
    run out the best point seen among the start and the last trial is returned (the
    start, ``t = 0``, if nothing decreased ``f``).

    Args:
      value_and_grad: ``t -> (f(x + t·d), ∇f(x + t·d))``, the gradient a vector.
      direction: ``d``, a descent direction (``∇fᵀd < 0``).
      step_size: the first trial step.
      value, grad: ``f(x)`` and ``∇f(x)``.

    Returns:
      A ``LineSearchResult``.
    """
    dtype = grad.dtype
    t0 = jnp.asarray(step_size, dtype)
    gtd0 = grad @ direction
    start = (jnp.zeros([], dtype), jnp.asarray(value, dtype), gtd0, grad)
    d_norm = jnp.max(jnp.abs(direction))
    zeros2 = jnp.zeros([2], dtype)
    init = _Search(
        phase=jnp.asarray(_BRACKET, jnp.int32),
        evals=jnp.zeros([], jnp.int32),
        t=t0,
        prev=start,
        bracket=(zeros2, zeros2, zeros2, jnp.zeros((2,) + grad.shape, dtype)),
        low=jnp.zeros([], jnp.int32),
        insufficient=jnp.asarray(False),
    )

    def body(c: _Search) -> _Search:
        f, g = value_and_grad(c.t)
        point = (c.t, jnp.asarray(f, dtype), g @ direction, g)
        ls_iter = c.evals  # torch's count of evaluations after the first
        c = c._replace(evals=c.evals + 1)
        c = _where(
            c.phase == _BRACKET,
            _after_bracket_trial(c, point, start, ls_iter, max_steps),
            _after_zoom_trial(c, point, start),
        )
        return _next_zoom_trial(c, ls_iter, d_norm, tolerance_change, max_steps)

    c = lax.while_loop(lambda c: c.phase != _DONE, body, init)
    t, f, _, g = (x[c.low] for x in c.bracket)
    return LineSearchResult(t, f, g, c.evals)
