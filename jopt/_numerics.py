"""Numerics shared by every block: which leaves train, the dtype policy, counts.

* A leaf is *trainable* when it is an array of a floating or complex dtype.  ``None``
  leaves, integer and boolean leaves (step counters, masks) are not.
* Arithmetic runs in at least float32 (``compute_dtype``), so bfloat16 or float16
  parameters keep their moments and bias corrections; results are rounded once, to
  the storage dtype.
* Squares of complex numbers are squared magnitudes, real ([`abs_sq`][jopt.abs_sq]).
* Step counts are int32 and saturate at 2³¹ − 1 instead of wrapping.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

INT32_MAX = int(np.iinfo(np.int32).max)


def is_none(x: Any) -> bool:
    """``is_leaf`` for tree functions that must see ``None`` leaves."""
    return x is None


def dtype_of(x: Any):
    """The dtype of an array-like leaf (NumPy's result type for Python numbers)."""
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None else np.result_type(x)


def is_trainable(x: Any) -> bool:
    """True for array-like leaves of a floating or complex dtype."""
    if x is None or isinstance(x, (dict, list, tuple)):
        return False
    return bool(jnp.issubdtype(dtype_of(x), jnp.inexact))


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype arithmetic runs in: ``dtype`` promoted to at least float32."""
    return jnp.promote_types(dtype, jnp.float32)


def real_dtype(dtype) -> jnp.dtype:
    """float32 for complex64, float64 for complex128, ``dtype`` itself otherwise."""
    return jnp.finfo(dtype).dtype


def cast(x: jax.Array, dtype) -> jax.Array:
    """``x.astype(dtype)``, tracing nothing when ``x`` already has that dtype."""
    if getattr(x, "dtype", None) == dtype and getattr(x, "weak_type", True) is False:
        return x
    return jnp.asarray(x).astype(dtype)


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|² = x·conj(x)``, real even for complex ``x``.

    Args:
      x: an array (real or complex).

    Returns:
      ``x²`` for a real ``x``; ``re(x)² + im(x)²``, in the real dtype, for a complex one.
    """
    if jnp.iscomplexobj(x):
        return jnp.real(x) ** 2 + jnp.imag(x) ** 2
    return x * x


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` on int32, saturating at the largest int32 instead of wrapping."""
    return jnp.where(count < INT32_MAX, count + 1, INT32_MAX).astype(jnp.int32)
