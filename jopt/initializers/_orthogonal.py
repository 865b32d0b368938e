"""Orthogonal initialization: Haar-random (semi-)orthogonal matrices."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jopt._validation import checked
from jopt.initializers._checks import (
    Axes,
    Initializer,
    check_axes,
    check_dtype,
    check_shape,
    normalize_axes,
    sampling_dtype,
)

__all__ = ["orthogonal"]


def orthogonal(
    scale: float = 1.0,
    *,
    column_axis: int = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """A (semi-)orthogonal matrix times ``scale``, drawn uniformly (the Haar measure).

    The weight is viewed as a matrix ``M`` of shape ``(rows, cols)``: ``cols`` is the
    size of ``column_axis`` and ``rows`` the product of the other (non-batch) axes.  If
    ``rows >= cols`` the columns are orthonormal, ``MᵀM = scale²·I``; otherwise the rows
    are, ``MMᵀ = scale²·I``.  An orthogonal layer preserves the norm of every vector,
    not only on average, which suits deep linear and recurrent stacks (Saxe et al.,
    2014).  Sampled as ``jax.random.orthogonal`` does (Mezzadri, 2007): the same
    distribution, and for float32 and float64 the same samples for the same key, as
    ``jax.nn.initializers.orthogonal``.  ``batch_axis`` is jopt's addition: each index
    of those axes gets its own matrix (stacked layers).  torch's ``orthogonal_(w, gain)``
    on an ``(out, in, *kernel)`` weight is ``orthogonal(gain, column_axis=0)``.

    Args:
      scale: multiplies the matrix, ``>= 0`` (torch's ``gain``).
      column_axis: the axis whose entries index the columns.
      batch_axis: axes of independent matrices.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)`` for shapes of at least 2
      dimensions.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range; at
        init, a shape of fewer than 2 dimensions or axes out of range.
    """
    scale = checked("scale", scale)
    checked("column_axis", column_axis)
    check_axes("batch_axis", batch_axis, allow_empty=True)
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        dims, dt = check_shape(shape), check_dtype(dtype)
        ndim = len(dims)
        if ndim < 2:
            raise ValueError(
                f"orthogonal needs a shape with at least 2 dimensions, got shape={dims}"
            )
        (col,) = normalize_axes("column_axis", column_axis, ndim, allow_empty=False)
        batch = normalize_axes("batch_axis", batch_axis, ndim, allow_empty=True)
        if col in batch:
            raise ValueError(f"batch_axis={batch_axis!r} contains column_axis={column_axis!r}")
        if math.prod(dims) == 0:
            w = jnp.zeros(dims, dt)
        else:
            w = _sample(key, dims, col, batch, sampling_dtype(dt))
            w = (w * jnp.asarray(scale, w.dtype)).astype(dt)
        return w if out_sharding is None else jax.sharding.reshard(w, out_sharding)

    return init


def _sample(key, dims: tuple[int, ...], col: int, batch: tuple[int, ...], dtype) -> jax.Array:
    """Haar matrices ``(*batch, rows, cols)`` laid out in ``dims``."""
    rest = tuple(i for i in range(len(dims)) if i != col and i not in batch)
    rows, cols = math.prod(dims[i] for i in rest), dims[col]
    q = jax.random.orthogonal(key, rows, tuple(dims[i] for i in batch), dtype, cols)
    order = batch + rest + (col,)
    q = q.reshape(tuple(dims[i] for i in order))
    return jnp.transpose(q, tuple(int(i) for i in np.argsort(order)))
