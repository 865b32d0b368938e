"""Initializers that ignore the layer's size: constants, normal, uniform, truncated normal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jopt._validation import checked
from jopt.initializers._checks import (
    Initializer,
    check_dtype,
    check_shape,
    sampling_dtype,
    sharded,
)

__all__ = ["constant", "normal", "ones", "truncated_normal", "uniform", "uniform_range", "zeros"]


def zeros(
    key: ArrayLike,
    shape: Sequence[int],
    dtype: DTypeLike | None = None,
    *,
    out_sharding: Any = None,
) -> jax.Array:
    """All zeros; ``key`` is ignored.  Use it for biases, never for a whole network's weights.

    With zero weights every unit of a layer computes the same output and receives the
    same gradient (and with ``W = 0`` the gradient ``Wᵀ·∂L/∂z`` reaching the layers below
    is zero), so the units never become different: the symmetry must be broken at init.
    As ``jax.nn.initializers.zeros``.

    Args:
      key: a PRNG key (ignored).
      shape: the array's shape.
      dtype: the array's dtype (default: JAX's default float dtype).
      out_sharding: the result's sharding, as in ``jax.nn.initializers``.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    del key
    dims, dt = check_shape(shape), check_dtype(dtype)
    return jnp.zeros(dims, dt, **sharded({}, out_sharding))


def ones(
    key: ArrayLike,
    shape: Sequence[int],
    dtype: DTypeLike | None = None,
    *,
    out_sharding: Any = None,
) -> jax.Array:
    """All ones; ``key`` is ignored.  Typical for the scale of a normalization layer.

    As ``jax.nn.initializers.ones``.

    Args:
      key: a PRNG key (ignored).
      shape: the array's shape.
      dtype: the array's dtype (default: JAX's default float dtype).
      out_sharding: the result's sharding, as in ``jax.nn.initializers``.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    del key
    dims, dt = check_shape(shape), check_dtype(dtype)
    return jnp.ones(dims, dt, **sharded({}, out_sharding))


def constant(value: ArrayLike, *, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with ``value``, a scalar or an array that broadcasts to the requested shape.

    Like [`zeros`][jopt.initializers.zeros], a constant weight matrix does not break the symmetry
    between units.  As ``jax.nn.initializers.constant``.

    Args:
      value: a real number or array (booleans count as 0 and 1).
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError: ``value`` is not numeric, or ``dtype`` not a dtype.
      ValueError: ``dtype`` is not a floating dtype; at init, a ``value`` that does not
        broadcast to ``shape``.
    """
    if not isinstance(value, jax.core.Tracer):
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"value must be a real number or array, got {value!r}")
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        del key
        dims, dt = check_shape(shape), check_dtype(dtype)
        try:
            fits = np.broadcast_shapes(np.shape(value), dims) == dims
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"value of shape {np.shape(value)} does not broadcast to shape={dims}")
        return jnp.full(dims, value, dt, **sharded({}, out_sharding))

    return init


def normal(
    stddev: float = 1e-2, *, dtype: DTypeLike | None = None, mean: float = 0.0
) -> Initializer:
    """Gaussian ``N(mean, stddev²)``, whatever the layer's size.

    ``jax.nn.initializers.normal`` (``mean`` is jopt's addition; torch's ``normal_``
    has ``mean=0, std=1`` by default).  It breaks the symmetry, but through a layer of
    width ``n`` the signal's variance is multiplied by ``n·stddev²``, so for a fixed
    ``stddev`` a deep network either vanishes (0.01 with ``n = 512`` gives 0.05 per
    layer) or explodes.  Prefer a fan-based initializer for weights.

    Args:
      stddev: the standard deviation, ``>= 0``.
      dtype: the initializer's default dtype; ``None``: the default float dtype.
      mean: the mean.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    stddev, mean = checked("stddev", stddev), checked("mean", mean)
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        dims, dt = check_shape(shape), check_dtype(dtype)
        z = jax.random.normal(key, dims, sampling_dtype(dt), **sharded({}, out_sharding))
        return (z * stddev + mean).astype(dt)

    return init


def uniform(scale: float = 1e-2, *, dtype: DTypeLike | None = None) -> Initializer:
    """Uniform on ``[0, scale)``, as ``jax.nn.initializers.uniform``.

    Mean ``scale / 2``, standard deviation ``scale / √12``.  For an interval centred on
    zero, or torch's ``uniform_(a, b)``, use [`uniform_range`][jopt.initializers.uniform_range].

    Args:
      scale: the width of the interval, ``>= 0``.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    scale = checked("scale", scale)
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        dims, dt = check_shape(shape), check_dtype(dtype)
        u = jax.random.uniform(key, dims, sampling_dtype(dt), **sharded({}, out_sharding))
        return (u * scale).astype(dt)

    return init


def uniform_range(
    low: float = -1e-2, *, high: float = 1e-2, dtype: DTypeLike | None = None
) -> Initializer:
    """Uniform on ``[low, high)``: torch's ``uniform_(a=low, b=high)``.

    Mean ``(low + high) / 2``, standard deviation ``(high − low) / √12``.  (Before jopt
    followed jax's names this was ``uniform(low, high)``; ``uniform`` is now jax's.)

    Args:
      low: the lower end.
      high: the upper end, ``> low``.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range, or
        ``low >= high``.
    """
    low, high = checked("low", low), checked("high", high)
    if not isinstance(low, jax.core.Tracer) and not isinstance(high, jax.core.Tracer):
        if not float(low) < float(high):
            raise ValueError(f"low must be below high, got low={low!r}, high={high!r}")
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        dims, dt = check_shape(shape), check_dtype(dtype)
        kwargs = sharded({"minval": low, "maxval": high}, out_sharding)
        return jax.random.uniform(key, dims, sampling_dtype(dt), **kwargs).astype(dt)

    return init


def truncated_normal(
    stddev: float = 1e-2,
    *,
    dtype: DTypeLike | None = None,
    lower: float = -2.0,
    upper: float = 2.0,
) -> Initializer:
    """``stddev·X`` with ``X`` a standard normal truncated to ``[lower, upper]``.

    As ``jax.nn.initializers.truncated_normal``: the cut-offs are in units of
    ``stddev``, so the values lie in ``[lower·stddev, upper·stddev]``, and ``stddev`` is
    that of the normal before truncation (the result's is about ``0.88·stddev`` for the
    default cut-offs of ±2).  torch's ``trunc_normal_(mean=0, std, a, b)`` takes
    absolute cut-offs: it is ``truncated_normal(std, lower=a / std, upper=b / std)``.

    Args:
      stddev: the standard deviation of the underlying normal, ``>= 0``.
      dtype: the initializer's default dtype; ``None``: the default float dtype.
      lower: the lower cut-off in units of ``stddev`` (may be ``-inf``).
      upper: the upper cut-off, ``> lower`` (may be ``inf``).

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range, or
        ``lower >= upper``.
    """
    stddev = checked("stddev", stddev)
    lower, upper = checked("lower", lower), checked("upper", upper)
    if not isinstance(lower, jax.core.Tracer) and not isinstance(upper, jax.core.Tracer):
        if not float(lower) < float(upper):
            raise ValueError(f"lower must be below upper, got lower={lower!r}, upper={upper!r}")
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        dims, dt = check_shape(shape), check_dtype(dtype)
        z = jax.random.truncated_normal(
            key, lower, upper, dims, sampling_dtype(dt), **sharded({}, out_sharding)
        )
        return (z * stddev).astype(dt)

    return init
