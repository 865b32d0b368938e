"""L-BFGS: the two-loop recursion and a strong-Wolfe line search, as one transformation.

One ``update`` is one L-BFGS iteration (Nocedal & Wright, *Numerical Optimization*,
2nd ed., 2006, algorithm 7.4 for the direction, algorithms 3.5 and 3.6 for the step
length), in the form ``torch.optim.LBFGS`` runs it, so that a torch script calling
``step(closure)`` with ``max_iter=1`` follows the same trajectory.

The parameters are seen as one vector: the trainable (floating) leaves, flattened in
tree order and concatenated in the compute dtype (at least float32).  Integer and
boolean leaves are not trained; their updates pass through unchanged.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from jopt import _align, _numerics, _placement
from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt._validation import check
from jopt.transforms._line_search import LineSearchResult, _where, strong_wolfe

__all__ = ["LbfgsState", "scale_by_lbfgs_step"]

# torch's threshold below which a curvature pair is not stored.
CURVATURE_EPS = 1e-10


class LbfgsState(NamedTuple):
    """The state of [`scale_by_lbfgs_step`][jopt.transforms.scale_by_lbfgs_step].

    torch's names are in brackets.  Vectors have ``n`` entries, the number of trained
    parameters, in the compute dtype.

    Attributes:
      count: int32, iterations taken [``n_iter``]; the first uses the scaled step.
      direction: ``d``, the last search direction [``d``].
      step_size: ``t``, the last step length [``t``]; the last update is ``t·d``.
      s_history: ``(m, n)`` ring buffer of steps ``sₖ = tₖ·dₖ`` [``old_stps``].
      y_history: ``(m, n)`` ring buffer of gradient changes ``yₖ`` [``old_dirs``].
      rho_history: ``(m,)``, ``ρₖ = 1/(yₖᵀsₖ)`` [``ro``].
      history_length: int32, the number of stored pairs (at most ``m``).
      history_next: int32, the slot of the next pair; the newest is the one before it.
      h_diag: ``γ = sᵀy / yᵀy`` of the newest pair, the initial inverse Hessian
        ``H₀ = γ·I`` [``H_diag``].
      prev_grad: the gradient at the start of the last iteration [``prev_flat_grad``].
      prev_value: the loss there [``prev_loss``]; NaN when no ``value`` was given.
      evaluations: int32, ``value_fn`` evaluations made by the line search; torch's
        ``func_evals`` also counts its closure call at the start of every ``step``.
      value: the loss where the last update lands (at ``params + update``), from the
        line search; ``None`` without a line search.
      grad: the gradient there, a tree like ``params`` (``None`` at the leaves that
        are not trained); ``None`` without a line search.
    """

    count: jax.Array
    direction: jax.Array
    step_size: jax.Array
    s_history: jax.Array
    y_history: jax.Array
    rho_history: jax.Array
    history_length: jax.Array
    history_next: jax.Array
    h_diag: jax.Array
    prev_grad: jax.Array
    prev_value: jax.Array
    evaluations: jax.Array
    value: jax.Array | None
    grad: Any


# --- the parameters as one vector -------------------------------------------------------


def _leaves(tree: Any) -> tuple[list, Any]:
    leaves, treedef = jax.tree.flatten(tree, is_leaf=_numerics.is_none)
    if any(_numerics.is_trainable(x) and jnp.iscomplexobj(x) for x in leaves):
        raise TypeError(
            "lbfgs: complex parameters are not supported; store the real and imaginary "
            "parts as separate real parameters"
        )
    return leaves, treedef


def _explicitly_split(x: Any) -> bool:
    """Whether ``x`` is split over explicit mesh axes (its layout is part of its type,
    and flattening or reshaping it needs the layout of the result spelled out)."""
    return any(axis is not None for axis in jax.typeof(x).sharding.spec)


def _whole(x: jax.Array) -> jax.Array:
    """``x``, replicated first when it is explicitly split, so that it can be flattened."""
    if not _explicitly_split(x):
        return x
    return jax.sharding.reshard(x, NamedSharding(jax.typeof(x).sharding.mesh, PartitionSpec()))


def ravel(tree: Any, dtype: Any = None) -> jax.Array:
    """The trainable leaves of ``tree``, flattened and concatenated, in ``dtype`` (by
    default their result type, at least float32); one replicated vector."""
    leaves = [jnp.asarray(x) for x in _leaves(tree)[0] if _numerics.is_trainable(x)]
    if dtype is None:
        dtype = _numerics.compute_dtype(jnp.result_type(*leaves) if leaves else jnp.float32)
    flat = [jnp.ravel(_whole(x)).astype(dtype) for x in leaves]
    return jnp.concatenate(flat or [jnp.zeros([0], dtype)])


def unravel(vector: jax.Array, like: Any, others: str = "keep") -> Any:
    """``like`` with each trainable leaf replaced by its slice of ``vector``, in its
    dtype; the other leaves are kept (or ``None`` with ``others="none"``)."""
    leaves, treedef = _leaves(like)
    out, start = [], 0
    for leaf in leaves:
        if not _numerics.is_trainable(leaf):
            out.append(leaf if others == "keep" else None)
            continue
        size = math.prod(jnp.shape(leaf))
        piece = vector[start : start + size].reshape(jnp.shape(leaf))
        if _explicitly_split(leaf):  # back to the leaf's layout
            piece = jax.sharding.reshard(piece, jax.typeof(leaf).sharding)
        out.append(piece.astype(_numerics.dtype_of(leaf)))
        start += size
    return treedef.unflatten(out)


# --- the direction -------------------------------------------------------------------------


def _store_pair(state: LbfgsState, g: jax.Array, relative: bool) -> LbfgsState:
    """Store ``(s, y) = (t·d, g − g_prev)`` when ``yᵀs > 1e-10`` (or ``> ε·yᵀy`` when
    ``relative``), with ``γ = yᵀs/yᵀy``."""
    y = g - state.prev_grad
    s = state.direction * state.step_size
    ys = y @ s
    if relative:
        keep = ys > jnp.finfo(ys.dtype).eps * (y @ y)
    else:
        keep = ys > CURVATURE_EPS
    slot, m, safe_ys = state.history_next, state.rho_history.shape[0], jnp.where(keep, ys, 1)
    return state._replace(
        y_history=state.y_history.at[slot].set(jnp.where(keep, y, state.y_history[slot])),
        s_history=state.s_history.at[slot].set(jnp.where(keep, s, state.s_history[slot])),
        rho_history=state.rho_history.at[slot].set(
            jnp.where(keep, 1.0 / safe_ys, state.rho_history[slot])
        ),
        history_next=jnp.where(keep, (slot + 1) % m, slot).astype(jnp.int32),
        history_length=jnp.where(
            keep, jnp.minimum(state.history_length + 1, m), state.history_length
        ).astype(jnp.int32),
        h_diag=jnp.where(keep, safe_ys / jnp.where(keep, y @ y, 1), state.h_diag),
    )


def two_loop(state: LbfgsState, g: jax.Array) -> jax.Array:
    """``d = −H·g`` by the two-loop recursion over the stored pairs, ``H₀ = γ·I``.

    Newest to oldest: ``αᵢ = ρᵢ·sᵢᵀq``, ``q ← q − αᵢ·yᵢ`` from ``q = −g``; then
    ``r = γ·q`` and, oldest to newest, ``βᵢ = ρᵢ·yᵢᵀr``, ``r ← r + (αᵢ − βᵢ)·sᵢ``.
    Both loops run over all ``m`` slots (a fixed trip count, so ``jax.grad`` and
    ``vmap`` go through): a slot not yet written holds ``ρ = 0`` and zero vectors and
    leaves ``q`` and ``r`` exactly as they are.
    """
    m = state.rho_history.shape[0]
    newest = state.history_next - 1

    def backward(i, carry):
        q, alpha = carry
        j = (newest - i) % m
        a = (state.s_history[j] @ q) * state.rho_history[j]
        return q - a * state.y_history[j], alpha.at[j].set(a)

    q, alpha = lax.fori_loop(0, m, backward, (-g, jnp.zeros_like(state.rho_history)))

    def forward(i, r):
        j = (state.history_next + i) % m
        b = (state.y_history[j] @ r) * state.rho_history[j]
        return r + (alpha[j] - b) * state.s_history[j]

    return lax.fori_loop(0, m, forward, q * state.h_diag)


# --- the transformation ------------------------------------------------------------------


def _init_state(params: Any, history_size: int, with_value: bool) -> LbfgsState:
    """Vectors and scalars replicated over the params' devices, ``grad`` laid out like
    the params (``_placement``)."""
    flat = ravel(params)
    (n,), dtype = flat.shape, flat.dtype

    def full(shape, value=0, dtype=dtype):
        return _placement.scalar_like(params, np.full(shape, value, dtype), dtype)

    vector, count = full([n]), full([], dtype=jnp.int32)
    return LbfgsState(
        count=count,
        direction=vector,
        step_size=full([]),
        s_history=full([history_size, n]),
        y_history=full([history_size, n]),
        rho_history=full([history_size]),
        history_length=count,
        history_next=count,
        h_diag=full([], 1),
        prev_grad=vector,
        prev_value=full([], jnp.nan),
        evaluations=count,
        value=full([], jnp.nan) if with_value else None,
        grad=_placement.zeros_like(params) if with_value else None,
    )


def _direction(state: LbfgsState, g, value, learning_rate, relative: bool) -> LbfgsState:
    """Store the last pair, then ``d = −H·g``; the first trial step goes in ``step_size``."""
    new = _store_pair(state, g, relative)
    first = state.count == 0
    scale = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))), 1.0)
    return new._replace(
        count=_numerics.safe_increment(state.count),
        direction=two_loop(new, g),
        step_size=(scale * learning_rate).astype(g.dtype),
        prev_grad=g,
        prev_value=jnp.asarray(jnp.nan if value is None else value, g.dtype),
    )


def _search(new: LbfgsState, move, x, params, value, g, value_fn, tolerance_change):
    """The line search where ``move``; otherwise ``t₀`` and the values at ``x``."""
    d = new.direction

    def value_and_grad(t):
        return jax.value_and_grad(lambda v: value_fn(unravel(v, params)))(x + t * d)

    def run(_):
        return strong_wolfe(
            value_and_grad, d, new.step_size, value, g, tolerance_change=tolerance_change
        )

    def stay(_):
        return LineSearchResult(new.step_size, jnp.asarray(value, g.dtype), g, jnp.int32(0))

    return lax.cond(move, run, stay, None)


def scale_by_lbfgs_step(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    history_size: int = 100,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    line_search: str | None = "strong_wolfe",
    curvature_test: str = "absolute",
) -> GradientTransformation:
    """One L-BFGS iteration per update (Liu & Nocedal, 1989), as ``torch.optim.LBFGS``.

    With ``g`` the incoming update (the gradient at ``params``), η the learning rate:

    1. Memory: the last step ``s = t·d`` and ``y = g − g_prev`` are stored when
       ``yᵀs > 1e-10`` (beyond ``history_size`` pairs the oldest goes), and
       ``γ = yᵀs / yᵀy``.
    2. Direction: ``d = −H·g`` by ``two_loop`` with ``H₀ = γ·I`` (``−g`` at first).
    3. Step: from ``t₀ = min(1, 1/‖g‖₁)·η`` on the first iteration, ``η`` after,
       ``strong_wolfe`` on ``value_fn`` finds ``t``; ``line_search=None`` keeps
       ``t = t₀``.  The update is ``t·d``.

    Stopping, as torch's: when ``max|g| ≤ tolerance_grad`` the update is zero and the
    state unchanged (but ``value`` and ``grad``, set to those at ``params``); when
    ``gᵀd > −tolerance_change`` the update is zero, and the state keeps the new pair
    and direction.

    ``update(updates, state, params, *, value, grad, value_fn)``: ``updates`` is
    ∇f at ``params``, ``value`` is f there and ``value_fn`` is ``params -> f`` (the
    line search differentiates it); the three are needed with the line search.
    ``grad`` is accepted for optax's calling convention and not read (the gradient
    is ``updates``).  The line search's f and ∇f where the update lands are kept in
    ``state.value`` and ``state.grad`` (a tree like ``params``), so a loop can pass
    them to the next update instead of evaluating them again.

    Args:
      learning_rate: η ≥ 0, or a schedule of the iteration count: the first trial step.
      history_size: m ≥ 1, the number of pairs kept.
      tolerance_grad: no step once ``max|g| ≤ tolerance_grad``.
      tolerance_change: no step once ``gᵀd > −tolerance_change``; the line search
        also stops when its bracket ``|Δt|·max|d|`` is shorter.
      line_search: ``"strong_wolfe"`` or ``None``.
      curvature_test: ``"absolute"``, torch's ``yᵀs > 1e-10``; or ``"relative"``,
        ``yᵀs > ε·yᵀy`` with ε the machine epsilon (the test of Byrd, Lu, Nocedal &
        Zhu's L-BFGS-B), which does not depend on the scale of f.  torch's absolute
        test stops storing pairs once steps are small, which stalls long solves.

    Returns:
      A transformation whose state is an [`LbfgsState`][jopt.transforms.LbfgsState].
    """
    check(
        learning_rate=learning_rate,
        history_size=history_size,
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        line_search=line_search,
        curvature_test=curvature_test,
    )
    relative, searching = curvature_test == "relative", line_search is not None

    def init(params):
        return _init_state(params, history_size, searching)

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        del grad, extra
        if not isinstance(state, LbfgsState):
            raise ValueError(f"lbfgs: state must be the LbfgsState of init, got {state!r}")
        for name, given in (("params", params), ("value", value), ("value_fn", value_fn)):
            if searching and given is None:
                raise ValueError(
                    f"lbfgs with line_search='strong_wolfe' needs {name}: call "
                    "update(grads, state, params, value=loss, value_fn=loss_fn)"
                )
        for name, tree in (("params", params), ("state", state.grad)):  # state.grad: a tree
            if tree is not None:
                _align.check_matches(updates, name, tree)
        g = ravel(updates, state.direction.dtype)
        if g.shape != state.direction.shape:
            raise ValueError(
                f"lbfgs: updates hold {g.shape[0]} trainable entries, the state "
                f"{state.direction.shape[0]}"
            )
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        new = _direction(state, g, value, lr, relative)
        converged = jnp.max(jnp.abs(g), initial=0.0) <= tolerance_grad
        move = ~converged & (g @ new.direction <= -tolerance_change)
        if searching:
            x = ravel(params, g.dtype)
            found = _search(new, move, x, params, value, g, value_fn, tolerance_change)
            new = new._replace(
                step_size=found.step_size,
                evaluations=state.evaluations + found.evaluations,
                value=found.value,
                grad=unravel(found.grad, params, "none"),
            )
        step = jnp.where(move, new.step_size * new.direction, 0)
        kept = state._replace(value=new.value, grad=new.grad)
        return unravel(step, updates), _where(converged, kept, new)

    return GradientTransformation(init, update)
