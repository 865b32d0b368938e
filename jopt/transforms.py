"""Building blocks: small gradient transformations that the optimizers chain.

Each block does one thing to the incoming updates ``g`` (of any pytree structure) and
keeps the state that needs.  Per-leaf state has the shape and dtype of the parameter
leaf (accumulators of squared magnitudes use the real dtype for complex parameters).
Arithmetic runs in at least float32; results are cast back to the storage dtype.

Conventions shared by all blocks:

* ``eps`` is added *outside* the square root and ``eps_root`` *inside* it, so
  ``g / (sqrt(v + eps_root) + eps)``: the papers' (and torch's) form is
  ``eps_root=0``, the lecture's literal form ``g / sqrt(v + ε)`` is ``eps=0,
  eps_root=ε``.
* Squares are squared magnitudes ``|g|² = g·conj(g)``, so complex parameters work:
  second moments are real and the update keeps the direction of ``g`` in the complex
  plane.  (torch's Adam views a complex tensor as pairs of reals and keeps a separate
  second moment for the real and imaginary parts, which gives different steps.)
* ``None`` leaves pass through; integer and boolean leaves are not trained: they get
  no state (``None`` in its place) and their update passes through unchanged.
* Step counts are int32 and saturate at 2³¹−1 instead of wrapping.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _checks, _tree
from jopt._core import GradientTransformation, ScalarOrSchedule, Schedule, init_empty_state

# --- the shared arithmetic: every update rule below is built from these ------------


def _ema(average: jax.Array, value: jax.Array, decay) -> jax.Array:
    """Exponential moving average: ``decay·average + (1 − decay)·value``."""
    return _tree.add(_tree.mul(decay, average), _tree.mul(1 - decay, value))


def _abs_sq(x: jax.Array) -> jax.Array:
    """``|x|²``, real even for complex ``x``."""
    if jnp.iscomplexobj(x):
        return jnp.real(x) ** 2 + jnp.imag(x) ** 2
    return _tree.mul(x, x)


def _over_root(numerator, second_moment, eps, eps_root):
    """``numerator / (sqrt(second_moment + eps_root) + eps)``."""
    # A literal zero adds no operation: every traced operation costs tracing and
    # compile time once per leaf, which adds up on trees of thousands of leaves.
    if not _checks.is_static_zero(eps_root):
        second_moment = _tree.add(second_moment, eps_root)
    root = jnp.sqrt(second_moment)
    return _tree.div(numerator, root if _checks.is_static_zero(eps) else _tree.add(root, eps))


def _bias_correction(decay, count: jax.Array, dtype) -> jax.Array:
    """``1 − decayᵗ`` for the step count ``t``, computed in (at least) float32."""
    dtype = _tree.real_dtype(dtype)
    return 1 - jnp.asarray(decay, dtype) ** count.astype(dtype)


def _bias_corrections(count: jax.Array, *decays):
    """``dtype -> (1 − decay₁ᵗ, …)``, computed once per real dtype and reused by every leaf.

    Per-leaf scalars would be merged by XLA anyway, but each costs tracing, lowering
    and compile-time work once per leaf.
    """
    computed = {}

    def corrections(dtype) -> tuple[jax.Array, ...]:
        key = _tree.real_dtype(dtype)
        if key not in computed:
            computed[key] = tuple(_bias_correction(decay, count, key) for decay in decays)
        return computed[key]

    return corrections


def _leafwise(fn):
    """Run ``fn(g, *state)`` in the compute dtype and cast each result back.

    ``fn`` receives the update and its state leaves upcast to at least float32 and
    returns ``(update, *state)``; the update is cast to the incoming update's dtype,
    each state leaf to its own storage dtype.
    """

    def leaf(g, *state):
        dtype = _tree.compute_dtype(g.dtype)
        results = fn(_tree.cast(g, dtype), *(_tree.cast(s, _cast_target(dtype, s)) for s in state))
        return (
            _tree.cast(results[0], g.dtype),
            *(_tree.cast(r, s.dtype) for r, s in zip(results[1:], state)),
        )

    return leaf


def _cast_target(compute_dtype, state_leaf):
    # Real-valued accumulators of a complex parameter stay real.
    if jnp.iscomplexobj(state_leaf):
        return compute_dtype
    return _tree.real_dtype(compute_dtype)


def _scale_leaves(updates: Any, factor) -> Any:
    """``factor · g`` for every trainable leaf, each kept in its own dtype."""
    return _tree.map_updates(lambda g: _tree.cast(_tree.mul(factor, g), g.dtype), updates)


def _shrink_factor(size: jax.Array, limit) -> jax.Array:
    """``min(1, limit / size)``, elementwise.

    The inner ``where`` keeps it finite, and differentiable, where ``size`` is 0.
    """
    over = size > limit
    return jnp.where(over, limit / jnp.where(over, size, 1), 1)


# --- stateless blocks ----------------------------------------------------------------


def scale(factor: float | jax.Array) -> GradientTransformation:
    """Multiply the updates by a constant: ``u = factor · g``."""
    _checks.check_finite(factor, "factor")

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is not None:
            _tree.check_matches(updates, "params", params)
        return _scale_leaves(updates, factor), state

    return GradientTransformation(init_empty_state, update)


def add_decayed_weights(
    weight_decay: float | jax.Array = 0.0, mask: Any = None
) -> GradientTransformation:
    """Add an L2 penalty's gradient: ``u = g + λ·θ``.

    Placed before an adaptive block this is torch's ``weight_decay`` (L2 in the
    gradient); placed after it, just before the learning rate, it is decoupled weight
    decay as in AdamW (Loshchilov & Hutter, 2019).  Needs ``params``.

    ``mask`` (a tree of bools with the structure of the params or a prefix of it, or a
    function ``params -> tree of bools``) limits the decay to the leaves where it is
    True; the others get ``u = g``.  This is :func:`jopt.masked` around the unmasked
    block, whose state is then a ``MaskedState``.
    """
    _checks.check_non_negative(weight_decay, "weight_decay")
    if mask is not None:
        # Imported here: the wrappers build on blocks, not the other way round.
        from jopt.wrappers import masked

        return masked(add_decayed_weights(weight_decay), mask)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "add_decayed_weights needs params: call update(updates, state, params)"
            )
        decayed = _tree.map_updates(
            lambda g, p: (g + weight_decay * p).astype(g.dtype), updates, ("params", params)
        )
        return decayed, state

    return GradientTransformation(init_empty_state, update)


# --- clipping ------------------------------------------------------------------------


def clip(max_delta: float | jax.Array) -> GradientTransformation:
    """Clip every entry: ``u = clip(g, −δ, δ)`` elementwise, with ``δ = max_delta >= 0``.

    A complex entry keeps its phase and has its magnitude clipped:
    ``u = g · min(1, δ / |g|)``.  No state.
    """
    _checks.check_non_negative(max_delta, "max_delta")

    def leaf(g):
        if jnp.iscomplexobj(g):
            return (g * _shrink_factor(jnp.abs(g), max_delta)).astype(g.dtype)
        return jnp.clip(g, -max_delta, max_delta).astype(g.dtype)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return _tree.map_updates(leaf, updates), state

    return GradientTransformation(init_empty_state, update)


def _global_norm(updates: Any) -> jax.Array:
    """``‖g‖ = √(Σ_leaves Σ |g|²)`` over the trainable leaves, in at least float32."""
    squares = [
        jnp.sum(_abs_sq(g.astype(_tree.compute_dtype(g.dtype))))
        for g in jax.tree.leaves(updates)
        if _tree.is_trainable(g)
    ]
    if not squares:
        return jnp.zeros([], jnp.float32)
    total = sum(squares)
    # √ only of positive sums: the norm is then differentiable (gradient 0) at g = 0 too.
    positive = total > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, total, 1)), 0)


def clip_by_global_norm(max_norm: float | jax.Array) -> GradientTransformation:
    """Rescale all updates together so that their global norm is at most ``c = max_norm``.

    ``u = g · min(1, c / ‖g‖)`` with ``‖g‖ = √(Σ_leaves Σ |g|²)`` (torch's
    ``clip_grad_norm_`` with the 2-norm, without its ``1e-6`` in the denominator).
    Updates whose norm is at most ``c`` pass unchanged, an all-zero update included
    (no ``0/0``).  ``c > 0``.  No state.
    """
    number = _checks._as_float("max_norm", max_norm)
    if number is not None and not number > 0:  # also catches NaN
        raise ValueError(f"max_norm must be > 0, got {number!r}")

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return _scale_leaves(updates, _shrink_factor(_global_norm(updates), max_norm)), state

    return GradientTransformation(init_empty_state, update)


# --- learning rates ------------------------------------------------------------------


class ScaleByScheduleState(NamedTuple):
    """``count``: the number of updates applied so far (int32, saturating)."""

    count: jax.Array


def scale_by_schedule(schedule: Schedule) -> GradientTransformation:
    """Multiply the updates by ``schedule(t)``, where ``t`` counts the earlier updates.

    The first update uses ``schedule(0)``, as optax does and as a torch
    ``LRScheduler`` stepped once per optimizer step.
    """
    _checks.check_callable(schedule, "schedule")

    def init(params):
        return ScaleByScheduleState(count=_tree.scalar_like(params, 0, jnp.int32))

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is not None:
            _tree.check_matches(updates, "params", params)
        scaled = _scale_leaves(updates, schedule(state.count))
        return scaled, ScaleByScheduleState(count=_tree.safe_increment(state.count))

    return GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """Multiply by ``−η``: the descent step ``θ ← θ − η·u`` once the updates are applied.

    ``learning_rate`` is a non-negative number, a 0-d array, or a schedule
    ``step -> η`` (see :func:`scale_by_schedule` for which step it sees).
    """
    _checks.check_learning_rate(learning_rate)
    if callable(learning_rate):
        return scale_by_schedule(lambda count: -learning_rate(count))
    return scale(-learning_rate)


# --- momentum ------------------------------------------------------------------------


class TraceState(NamedTuple):
    """``trace``: the momentum buffer ``v`` (torch's ``momentum_buffer``)."""

    trace: Any


def trace(decay: float | jax.Array, nesterov: bool = False) -> GradientTransformation:
    """Momentum (Polyak, 1964): ``v ← γ·v + g``, then ``u = v``.

    With ``nesterov=True`` the output is ``u = g + γ·v`` (Sutskever et al., 2013), the
    look-ahead form of Nesterov's accelerated gradient; see :func:`jopt.nesterov`.

    The buffer starts at zero, so the first step gives ``v = g`` exactly as torch's
    buffer initialised from the first gradient.
    """
    _checks.check_non_negative(decay, "decay")
    _checks.check_bool(nesterov, "nesterov")

    def init(params):
        return TraceState(trace=_tree.zeros_like(params))

    @_leafwise
    def leaf(g, v):
        v = decay * v + g
        return (g + decay * v if nesterov else v), v

    def update(updates, state, params=None, **extra_args):
        del extra_args
        updates, buffer = _tree.map_with_state(leaf, updates, state.trace, params=params)
        return updates, TraceState(trace=buffer)

    return GradientTransformation(init, update)


# --- adaptive scalings ---------------------------------------------------------------


class ScaleByRssState(NamedTuple):
    """``sum_of_squares``: ``G = Σ|g|²`` (torch's ``sum``)."""

    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.0, eps: float = 1e-10, eps_root: float = 0.0
) -> GradientTransformation:
    """Adagrad's scaling (Duchi et al., 2011).

    ``G ← G + |g|²`` and ``u = g / (√(G + eps_root) + eps)``.

    ``G`` starts at ``initial_accumulator_value`` (torch: 0; optax: 0.1).
    """
    _checks.check_non_negative(initial_accumulator_value, "initial_accumulator_value")
    _checks.check_non_negative(eps, "eps")
    _checks.check_non_negative(eps_root, "eps_root")

    def init(params):
        return ScaleByRssState(_tree.full_like(params, initial_accumulator_value, real=True))

    @_leafwise
    def leaf(g, total):
        total = total + _abs_sq(g)
        return _over_root(g, total, eps, eps_root), total

    def update(updates, state, params=None, **extra_args):
        del extra_args
        updates, total = _tree.map_with_state(leaf, updates, state.sum_of_squares, params=params)
        return updates, ScaleByRssState(total)

    return GradientTransformation(init, update)


class ScaleByRmsState(NamedTuple):
    """``nu``: ``E[g²]``, the moving average of squared gradients (torch's ``square_avg``)."""

    nu: Any


class ScaleByCenteredRmsState(NamedTuple):
    """``mu``: ``E[g]`` (torch's ``grad_avg``); ``nu``: ``E[g²]`` (``square_avg``)."""

    mu: Any
    nu: Any


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, eps_root: float = 0.0, centered: bool = False
) -> GradientTransformation:
    """RMSprop's scaling (Tieleman & Hinton, 2012).

    ``E[g²] ← γ·E[g²] + (1 − γ)·|g|²`` and ``u = g / (√(E[g²] + eps_root) + eps)``.

    With ``centered=True`` the second moment is replaced by the variance estimate
    ``E[g²] − |E[g]|²`` (Graves, 2013), keeping ``E[g] ← γ·E[g] + (1 − γ)·g`` too.
    Both averages start at zero, as in torch.
    """
    _checks.check_decay(decay, "decay")
    _checks.check_non_negative(eps, "eps")
    _checks.check_non_negative(eps_root, "eps_root")
    _checks.check_bool(centered, "centered")

    @_leafwise
    def leaf(g, nu):
        nu = _ema(nu, _abs_sq(g), decay)
        return _over_root(g, nu, eps, eps_root), nu

    @_leafwise
    def centered_leaf(g, mu, nu):
        mu = _ema(mu, g, decay)
        nu = _ema(nu, _abs_sq(g), decay)
        return _over_root(g, nu - _abs_sq(mu), eps, eps_root), mu, nu

    def init(params):
        nu = _tree.zeros_like(params, real=True)
        if centered:
            return ScaleByCenteredRmsState(mu=_tree.zeros_like(params), nu=nu)
        return ScaleByRmsState(nu=nu)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if centered:
            updates, mu, nu = _tree.map_with_state(
                centered_leaf, updates, state.mu, state.nu, params=params, names=("mu", "nu")
            )
            return updates, ScaleByCenteredRmsState(mu=mu, nu=nu)
        updates, nu = _tree.map_with_state(leaf, updates, state.nu, params=params)
        return updates, ScaleByRmsState(nu=nu)

    return GradientTransformation(init, update)


class ScaleByAdadeltaState(NamedTuple):
    """Adadelta's two averages.

    ``grad_sq_avg``: ``E[g²]`` (torch ``square_avg``); ``delta_sq_avg``: ``E[Δθ²]``
    (torch ``acc_delta``).
    """

    grad_sq_avg: Any
    delta_sq_avg: Any


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's unit-correct scaling (Zeiler, 2012), the lecture's second form.

    ``E[g²] ← ρ·E[g²] + (1 − ρ)·|g|²``,
    ``Δθ = RMS[Δθ]ₜ₋₁ / RMS[g]ₜ · g`` with ``RMS[x] = √(E[x²] + ε)``,
    ``E[Δθ²] ← ρ·E[Δθ²] + (1 − ρ)·|Δθ|²``, and ``u = Δθ``.

    The ratio of RMS values carries the units of θ, approximating ``H⁻¹g``.
    """
    _checks.check_decay(rho, "rho")
    _checks.check_non_negative(eps, "eps")

    def init(params):
        return ScaleByAdadeltaState(
            grad_sq_avg=_tree.zeros_like(params, real=True),
            delta_sq_avg=_tree.zeros_like(params, real=True),
        )

    @_leafwise
    def leaf(g, grad_sq_avg, delta_sq_avg):
        grad_sq_avg = _ema(grad_sq_avg, _abs_sq(g), rho)
        delta = jnp.sqrt(delta_sq_avg + eps) * _over_root(g, grad_sq_avg, 0.0, eps)
        delta_sq_avg = _ema(delta_sq_avg, _abs_sq(delta), rho)
        return delta, grad_sq_avg, delta_sq_avg

    def update(updates, state, params=None, **extra_args):
        del extra_args
        updates, grad_sq_avg, delta_sq_avg = _tree.map_with_state(
            leaf,
            updates,
            state.grad_sq_avg,
            state.delta_sq_avg,
            params=params,
            names=("grad_sq_avg", "delta_sq_avg"),
        )
        return updates, ScaleByAdadeltaState(grad_sq_avg, delta_sq_avg)

    return GradientTransformation(init, update)


class ScaleByAdamState(NamedTuple):
    """``count``: t; ``mu``: m (torch ``exp_avg``); ``nu``: v (torch ``exp_avg_sq``)."""

    count: jax.Array
    mu: Any
    nu: Any


class ScaleByAmsgradState(NamedTuple):
    """Adam's state plus ``nu_max``: max over time of v (torch ``max_exp_avg_sq``)."""

    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    amsgrad: bool = False,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam's scaling (Kingma & Ba, 2015), bias-corrected.

    ``m ← β₁·m + (1 − β₁)·g``, ``v ← β₂·v + (1 − β₂)·|g|²``,
    ``m̂ = m / (1 − β₁ᵗ)``, ``v̂ = v / (1 − β₂ᵗ)``, ``u = m̂ / (√(v̂ + eps_root) + eps)``.

    With ``amsgrad=True`` (Reddi et al., 2018) ``v̂`` uses ``v_max ← max(v_max, v)``
    before the bias correction, as torch does.  ``mu_dtype``/``nu_dtype`` set the
    moments' storage dtype (e.g. float32 moments for bfloat16 parameters; a complex
    parameter's ``mu`` becomes the complex dtype of that precision); the update keeps
    the incoming update's dtype.  Bias corrections are computed in at least float32,
    so ``1 − β₂ᵗ`` does not round to 0 as it would in bfloat16.
    """
    _checks.check_decay(b1, "b1")
    _checks.check_decay(b2, "b2")
    _checks.check_non_negative(eps, "eps")
    _checks.check_non_negative(eps_root, "eps_root")
    _checks.check_bool(amsgrad, "amsgrad")
    _checks.check_dtype(mu_dtype, "mu_dtype")
    _checks.check_dtype(nu_dtype, "nu_dtype")

    def init(params):
        mu = _tree.zeros_like(params, mu_dtype)
        nu = _tree.zeros_like(params, nu_dtype, real=True)
        count = _tree.scalar_like(params, 0, jnp.int32)
        if amsgrad:
            return ScaleByAmsgradState(
                count, mu, nu, nu_max=_tree.zeros_like(params, nu_dtype, real=True)
            )
        return ScaleByAdamState(count, mu, nu)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        count = _tree.safe_increment(state.count)
        corrections = _bias_corrections(count, b1, b2)

        def moments(g, mu, nu):
            return _ema(mu, g, b1), _ema(nu, _abs_sq(g), b2)

        def direction(g, mu, nu):
            bc1, bc2 = corrections(g.dtype)
            return _over_root(_tree.div(mu, bc1), _tree.div(nu, bc2), eps, eps_root)

        @_leafwise
        def leaf(g, mu, nu):
            mu, nu = moments(g, mu, nu)
            return direction(g, mu, nu), mu, nu

        @_leafwise
        def amsgrad_leaf(g, mu, nu, nu_max):
            mu, nu = moments(g, mu, nu)
            nu_max = jnp.maximum(nu_max, nu)
            return direction(g, mu, nu_max), mu, nu, nu_max

        if amsgrad:
            updates, mu, nu, nu_max = _tree.map_with_state(
                amsgrad_leaf,
                updates,
                state.mu,
                state.nu,
                state.nu_max,
                params=params,
                names=("mu", "nu", "nu_max"),
            )
            return updates, ScaleByAmsgradState(count, mu, nu, nu_max)
        updates, mu, nu = _tree.map_with_state(
            leaf, updates, state.mu, state.nu, params=params, names=("mu", "nu")
        )
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


class ScaleByAdamaxState(NamedTuple):
    """``count``: t; ``mu``: m (torch ``exp_avg``); ``nu``: u, the infinity norm (``exp_inf``)."""

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adamax(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adamax's scaling (Kingma & Ba, 2015, §7.1), Adam under the infinity norm.

    ``m ← β₁·m + (1 − β₁)·g``, ``u ← max(β₂·u, |g| + eps)``, and the update is
    ``m / ((1 − β₁ᵗ)·u)``.  Adding ``eps`` inside the max keeps ``u > 0`` (torch's form).
    ``mu_dtype``/``nu_dtype`` set the storage dtypes as in :func:`scale_by_adam`.
    """
    _checks.check_decay(b1, "b1")
    _checks.check_decay(b2, "b2")
    _checks.check_non_negative(eps, "eps")
    _checks.check_dtype(mu_dtype, "mu_dtype")
    _checks.check_dtype(nu_dtype, "nu_dtype")

    def init(params):
        return ScaleByAdamaxState(
            count=_tree.scalar_like(params, 0, jnp.int32),
            mu=_tree.zeros_like(params, mu_dtype),
            nu=_tree.zeros_like(params, nu_dtype, real=True),
        )

    def update(updates, state, params=None, **extra_args):
        del extra_args
        count = _tree.safe_increment(state.count)
        corrections = _bias_corrections(count, b1)

        @_leafwise
        def leaf(g, mu, nu):
            mu = _ema(mu, g, b1)
            nu = jnp.maximum(b2 * nu, jnp.abs(g) + eps)
            (bc1,) = corrections(g.dtype)
            return mu / (bc1 * nu), mu, nu

        updates, mu, nu = _tree.map_with_state(
            leaf, updates, state.mu, state.nu, params=params, names=("mu", "nu")
        )
        return updates, ScaleByAdamaxState(count, mu, nu)

    return GradientTransformation(init, update)
