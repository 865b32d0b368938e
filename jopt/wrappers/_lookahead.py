"""Lookahead's slow weights, kept in the state (Zhang et al., 2019)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _align, _core, _numerics, _placement
from jopt._core import GradientTransformation
from jopt._validation import checked
from jopt.wrappers._plateau import find_state

__all__ = ["SlowWeightsState", "slow_params", "lookahead"]


class SlowWeightsState(NamedTuple):
    """The state of [`lookahead`][jopt.wrappers.lookahead].

    Attributes:
      steps_since_sync: int32 in ``[0, sync_period)``, the updates since the last
        synchronization.
      slow_params: the slow weights φ, shaped and typed like the parameters
        (pytorch-optimizer's ``slow_params``); ``None`` for ``None``, integer and
        boolean leaves.
      inner_state: the wrapped optimizer's state.
    """

    steps_since_sync: jax.Array
    slow_params: Any
    inner_state: Any


def slow_params(state: Any) -> Any:
    """The slow weights φ kept by the [`lookahead`][jopt.wrappers.lookahead] inside ``state``.

    Right after a synchronization they equal the parameters; in between they are the
    point the next synchronization starts from (Lookahead evaluates there).

    Args:
      state: an optimizer state holding one ``SlowWeightsState``, at any depth.

    Returns:
      φ, a tree like the params (``None`` at untrained leaves).

    Raises:
      ValueError: ``state`` holds no ``SlowWeightsState``, or several.
    """
    return find_state(state, SlowWeightsState, "lookahead").slow_params


def _copy(p: Any) -> Any:
    # A copy, not the parameter's own buffer: donating params and state together must work.
    return jnp.array(p, copy=True) if _numerics.is_trainable(p) else None


def _pull(sync, alpha, u, p, fast, slow):
    """``(update, φ')``: at a sync ``φ' = φ + α·(θ_fast − φ)`` and the update lands on φ'."""
    if slow is None or not _numerics.is_trainable(u):
        return u, slow
    dtype = _numerics.compute_dtype(slow.dtype)
    phi = _numerics.cast(slow, dtype)
    new_slow = phi + alpha * (_numerics.cast(fast, dtype) - phi)
    onto_slow = (new_slow - _numerics.cast(p, dtype)).astype(u.dtype)
    return jnp.where(sync, onto_slow, u), jnp.where(sync, new_slow.astype(slow.dtype), slow)


def lookahead(
    inner: GradientTransformation,
    *,
    sync_period: int = 5,
    alpha: float = 0.5,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead (Zhang et al., 2019, "Lookahead Optimizer: k steps forward, 1 step back").

    The parameters are the *fast* weights θ, trained by ``inner``; the state keeps
    the *slow* weights φ, which start at the initial parameters.  Every
    ``k = sync_period`` updates, after ``inner``'s step:

    ```text
    φ ← φ + α·(θ − φ),   θ ← φ,
    ```

    so that the update returned that step is ``φ − θ_before``: the parameters land on
    the new slow weights, as in Algorithm 1 and pytorch-optimizer's ``Lookahead``
    (with ``pullback_momentum='none'``: ``inner``'s state carries on untouched).
    The other updates are ``inner``'s.  φ is computed in at least float32 and stored
    in the parameters' dtype; after a sync the parameters equal φ up to one rounding
    of ``θ + (φ − θ)``.  Read φ with [`slow_params`][jopt.wrappers.slow_params] (evaluate there
    between syncs).  ``update`` needs ``params``.

    The algorithm is optax's ``lookahead``; the layout is not: optax keeps the slow
    weights in the parameters (``LookaheadParams(fast, slow)``) and names the arguments
    ``sync_period`` and ``slow_step_size``, while here the parameters stay plain (so
    ``fit``, checkpoints and every other wrapper see an ordinary tree) and the slow
    weights live in the state.

    Args:
      inner: the fast optimizer (jopt's or optax's).
      sync_period: k, the updates between two synchronizations, an integer >= 1.
      alpha: α, the slow weights' step towards the fast ones, in [0, 1] (optax's
        ``slow_step_size``).
      reset_state: start ``inner``'s state afresh at every synchronization, as optax's
        ``reset_state``.

    Returns:
      A transformation whose state is a [`SlowWeightsState`][jopt.wrappers.SlowWeightsState].
    """
    inner = _core._as_transformation(inner, "inner")
    sync_period = checked("sync_period", sync_period)
    alpha = checked("alpha", alpha, owner="lookahead")
    reset_state = checked("reset_state", reset_state)
    period = min(sync_period, _numerics.INT32_MAX)

    def init(params):
        return SlowWeightsState(
            steps_since_sync=_placement.scalar_like(params, 0, jnp.int32),
            slow_params=jax.tree.map(_copy, params, is_leaf=_numerics.is_none),
            inner_state=inner.init(params),
        )

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("lookahead needs the parameters: update(updates, state, params)")
        proposed, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        steps = state.steps_since_sync + 1
        sync = steps >= period
        fast = _core.apply_updates(params, proposed)
        leaves, treedef, (ps, fs, slows) = _align.align(
            proposed,
            [("params", params), ("params", fast), ("state.slow_params", state.slow_params)],
        )
        pairs = [_pull(sync, alpha, *leaf) for leaf in zip(leaves, ps, fs, slows, strict=True)]
        new_updates = treedef.unflatten([u for u, _ in pairs])
        new_slow = treedef.unflatten([slow for _, slow in pairs])
        steps = jnp.where(sync, 0, steps).astype(jnp.int32)
        if reset_state:
            fresh = inner.init(params)
            inner_state = jax.tree.map(lambda a, b: jnp.where(sync, a, b), fresh, inner_state)
        return new_updates, SlowWeightsState(steps, new_slow, inner_state)

    return GradientTransformation(init, update)
