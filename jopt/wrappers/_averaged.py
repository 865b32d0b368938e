"""Weight averaging: SWA's equal average or an EMA of the parameters after each update."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _core, _numerics, _placement
from jopt._core import GradientTransformation
from jopt._validation import checked
from jopt.wrappers._plateau import find_state

__all__ = ["AveragedState", "averaged", "averaged_params"]


class AveragedState(NamedTuple):
    """The state of [`averaged`][jopt.wrappers.averaged].

    Attributes:
      count: int32, the updates so far (saturating).
      n_averaged: int32, how many parameter sets are in the average (torch's
        ``AveragedModel.n_averaged``).
      averaged_params: the average, shaped and typed like the parameters; integer,
        boolean and ``None`` leaves hold the latest parameters.
      inner_state: the wrapped optimizer's state.
    """

    count: jax.Array
    n_averaged: jax.Array
    averaged_params: Any
    inner_state: Any


def averaged_params(state: Any) -> Any:
    """The averaged parameters kept by the [`averaged`][jopt.wrappers.averaged] inside ``state``.

    Before the first averaged update they are the parameters ``init`` saw.

    Args:
      state: an optimizer state holding one ``AveragedState``, at any depth.

    Returns:
      The average, a tree like the params.

    Raises:
      ValueError: ``state`` holds no ``AveragedState``, or several.
    """
    return find_state(state, AveragedState, "averaged").averaged_params


def _copy(p: Any) -> Any:
    # A copy, not the parameter's own buffer: donating params and state together must work.
    return jnp.array(p, copy=True) if p is not None else None


def averaged(
    inner: GradientTransformation,
    *,
    decay: float | None = None,
    start_step: int = 0,
    every: int = 1,
) -> GradientTransformation:
    """Keep an average of the parameters after each update: SWA or an EMA.

    ``update`` runs ``inner``, and with ``θ' = apply_updates(θ, u)`` the parameters
    after this update (``θ`` the ``params`` passed in, ``u`` what ``inner`` returns:
    exactly what [`jopt.apply_updates`][jopt.apply_updates] will give), the average takes ``θ'``
    after update ``k`` when ``k > start_step`` and ``(k − start_step)`` is a multiple of
    ``every``.  With ``n`` sets averaged so far, ``θ̄ ← θ'`` when ``n = 0`` (the first
    one is copied), else

    * ``decay=None``: ``θ̄ ← θ̄ + (θ' − θ̄) / (n + 1)``, the equal average of stochastic
      weight averaging (Izmailov et al., 2018; torch's ``AveragedModel`` default);
    * ``decay=d``: ``θ̄ ← θ̄ + (1 − d)·(θ' − θ̄)``, an exponential moving average (Polyak
      & Juditsky, 1992; torch's ``get_ema_multi_avg_fn(d)``).

    The average is computed in at least float32 and stored in the parameters' dtype.
    ``averaged`` must be the outermost transformation, so that ``u`` is the update the
    parameters receive: wrap the whole optimizer, schedule and clipping included.  The
    updates themselves pass through unchanged.  Read the average with
    [`averaged_params`][jopt.wrappers.averaged_params]; pair SWA with the schedule
    [`jopt.schedules.swa`][jopt.schedules.swa].

    Args:
      inner: the optimizer whose parameters are averaged (jopt's or optax's).
      decay: ``None`` for the equal average, or the EMA's decay in ``[0, 1]``.
      start_step: updates before averaging starts, an integer ``>= 0``.
      every: updates between two averaged ones, an integer ``>= 1``.

    Returns:
      A transformation whose state is an [`AveragedState`][jopt.wrappers.AveragedState]; its
      ``update`` needs ``params``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    inner = _core._as_transformation(inner, "inner")
    decay = checked("decay", decay, owner="averaged")
    start_step = checked("start_step", start_step)
    every = checked("every", every)

    def init(params):
        return AveragedState(
            count=_placement.scalar_like(params, 0, jnp.int32),
            n_averaged=_placement.scalar_like(params, 0, jnp.int32),
            averaged_params=jax.tree.map(_copy, params, is_leaf=_numerics.is_none),
            inner_state=inner.init(params),
        )

    def due(count):
        if start_step >= _numerics.INT32_MAX or every > _numerics.INT32_MAX:
            return jnp.zeros((), bool)  # the int32 count never gets there
        return (count > start_step) & ((count - start_step) % every == 0)

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("averaged needs the parameters: update(updates, state, params)")
        new_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        count = _numerics.safe_increment(state.count)
        take, n = due(count), state.n_averaged
        after = _core.apply_updates(params, new_updates)

        def mix(average, p):
            if average is None or not _numerics.is_trainable(average):
                return p
            dtype = _numerics.compute_dtype(average.dtype)
            a, x = average.astype(dtype), p.astype(dtype)
            if decay is None:
                mixed = a + (x - a) / (n + 1).astype(_numerics.real_dtype(dtype))
            else:
                mixed = a + (1.0 - decay) * (x - a)
            new = jnp.where(n == 0, x, mixed)
            return jnp.where(take, new, a).astype(average.dtype)

        average = jax.tree.map(mix, state.averaged_params, after, is_leaf=_numerics.is_none)
        n = jnp.where(take, _numerics.safe_increment(n), n).astype(jnp.int32)
        return new_updates, AveragedState(count, n, average, inner_state)

    return GradientTransformation(init, update)
