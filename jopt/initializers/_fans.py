"""Variance scaling and jax's fan-based initializers: glorot, he, lecun."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jopt._validation import checked
from jopt.initializers._checks import (
    TRUNCATED_NORMAL_STD,
    Axes,
    Initializer,
    check_axes,
    check_dtype,
    check_shape,
    compute_fans,
    sampling_dtype,
    sharded,
)

__all__ = [
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "variance_scaling",
]


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """Zero-mean weights with variance ``scale / n``: the rule beneath every fan-based init.

    ``n`` is ``fan_in``, ``fan_out``, ``(fan_in + fan_out) / 2`` or ``√(fan_in·fan_out)``
    according to ``mode`` (see [`compute_fans`][jopt.initializers.compute_fans] for the axes).  For
    a layer ``z = W·a`` with zero-mean i.i.d. weights, ``Var(z) = fan_in·Var(W)·Var(a)``, so ``scale
    = 1`` with ``fan_in`` keeps a linear signal steady (LeCun et al., 1998) and ``scale = 2``
    compensates ReLU's halving (He et al., 2015); Glorot & Bengio (2010) average the
    forward and backward conditions with ``fan_avg``.

    =====================  ========================================================
    distribution           samples, with ``σ² = scale / n``
    =====================  ========================================================
    ``"truncated_normal"``  ``σ / 0.8796…·X``, ``X`` a standard normal cut at ±2
    ``"normal"``            ``N(0, σ²)``
    ``"uniform"``           ``U(−b, b)`` with ``b = √3·σ``
    =====================  ========================================================

    0.87962566103423978 is the standard deviation of a standard normal truncated to
    ``[−2, 2]``: dividing by it makes the truncated sample's variance ``σ²`` as well.
    The same distributions, and for float32 and float64 the same samples for the same
    key, as ``jax.nn.initializers.variance_scaling``; 16-bit dtypes are drawn in float32
    and rounded once.  Real dtypes only.

    Args:
      scale: the variance multiplier, ``>= 0``.
      mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.
      in_axis: the input axis or axes, as in [`compute_fans`][jopt.initializers.compute_fans].
      out_axis: the output axis or axes.
      batch_axis: axes of independent weights, in neither fan.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)`` for shapes of at least 2
      dimensions.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range; at
        init, a bad shape or axes (see [`compute_fans`][jopt.initializers.compute_fans]).
    """
    scale = checked("scale", scale)
    mode = checked("mode", mode, owner="variance_scaling")
    distribution = checked("distribution", distribution)
    check_axes("in_axis", in_axis, allow_empty=False)
    check_axes("out_axis", out_axis, allow_empty=False)
    check_axes("batch_axis", batch_axis, allow_empty=True)
    default = checked("dtype", dtype)

    def init(key, shape, dtype=default, *, out_sharding=None):
        dims, dt = check_shape(shape), check_dtype(dtype)
        fan_in, fan_out = compute_fans(
            dims, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis
        )
        if math.prod(dims) == 0:
            return jnp.zeros(dims, dt, **sharded({}, out_sharding))
        n = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out),
        }[mode]
        sdt, extra = sampling_dtype(dt), sharded({}, out_sharding)
        variance = jnp.asarray(scale / n, sdt)
        if distribution == "truncated_normal":
            w = jax.random.truncated_normal(key, -2.0, 2.0, dims, sdt, **extra)
            w = w * (jnp.sqrt(variance) / TRUNCATED_NORMAL_STD)
        elif distribution == "normal":
            w = jax.random.normal(key, dims, sdt, **extra) * jnp.sqrt(variance)
        else:
            w = jax.random.uniform(key, dims, sdt, -1.0, 1.0, **extra) * jnp.sqrt(3 * variance)
        return w.astype(dt)

    return init


def _fan_based(scale: float, mode: str, distribution: str):
    """jax's ``glorot_*``, ``he_*`` and ``lecun_*``: ``variance_scaling`` with fixed settings."""

    def factory(
        in_axis: Axes = -2,
        *,
        out_axis: Axes = -1,
        batch_axis: Axes = (),
        dtype: DTypeLike | None = None,
    ) -> Initializer:
        return variance_scaling(
            scale,
            mode,
            distribution,
            in_axis=in_axis,
            out_axis=out_axis,
            batch_axis=batch_axis,
            dtype=dtype,
        )

    return factory


def _named(factory: Any, name: str, doc: str) -> Any:
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc + _ARGS
    return factory


_ARGS = """

    Args:
      in_axis: the input axis or axes, as in [`compute_fans`][jopt.initializers.compute_fans].
      out_axis: the output axis or axes.
      batch_axis: axes of independent weights, in neither fan.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)`` for shapes of at least 2 dimensions.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """

glorot_uniform = _named(
    _fan_based(1.0, "fan_avg", "uniform"),
    "glorot_uniform",
    """Glorot/Xavier uniform: ``U(−b, b)`` with ``b = √(6 / (fan_in + fan_out))``.

    Glorot & Bengio (2010): ``Var(W) = 2 / (fan_in + fan_out)``, the compromise between
    keeping the forward signal (``1 / fan_in``) and the backward gradient
    (``1 / fan_out``).  As ``jax.nn.initializers.glorot_uniform``:
    ``variance_scaling(1.0, "fan_avg", "uniform")``.  torch's ``xavier_uniform_`` (with a
    gain) is [`xavier_uniform`][jopt.initializers.xavier_uniform].""",
)
glorot_normal = _named(
    _fan_based(1.0, "fan_avg", "truncated_normal"),
    "glorot_normal",
    """Glorot/Xavier normal, *truncated*: variance ``2 / (fan_in + fan_out)`` after a cut at ±2σ.

    As ``jax.nn.initializers.glorot_normal``: ``variance_scaling(1.0, "fan_avg",
    "truncated_normal")``.  torch's ``xavier_normal_`` draws an untruncated normal: that
    is [`xavier_normal`][jopt.initializers.xavier_normal].""",
)
he_uniform = _named(
    _fan_based(2.0, "fan_in", "uniform"),
    "he_uniform",
    """He/Kaiming uniform (He et al., 2015): ``U(−b, b)``, ``b = √(6 / fan_in)``.

    ``Var(W) = 2 / fan_in``: behind a ReLU, ``E[a²] = Var(z) / 2``, and the factor 2 keeps
    ``Var(z)`` the same in every layer.  As ``jax.nn.initializers.he_uniform``:
    ``variance_scaling(2.0, "fan_in", "uniform")``, the same distribution as torch's
    ``kaiming_uniform_`` with its defaults
    ([`kaiming_uniform`][jopt.initializers.kaiming_uniform]).""",
)
he_normal = _named(
    _fan_based(2.0, "fan_in", "truncated_normal"),
    "he_normal",
    """He/Kaiming normal, *truncated*: variance ``2 / fan_in`` after a cut at ±2σ.

    As ``jax.nn.initializers.he_normal``: ``variance_scaling(2.0, "fan_in",
    "truncated_normal")``.  torch's ``kaiming_normal_`` draws an untruncated normal: that
    is [`kaiming_normal`][jopt.initializers.kaiming_normal].""",
)
lecun_uniform = _named(
    _fan_based(1.0, "fan_in", "uniform"),
    "lecun_uniform",
    """LeCun uniform: ``U(−b, b)`` with ``b = √(3 / fan_in)``, so ``Var(W) = 1 / fan_in``.

    LeCun et al. (1998).  As ``jax.nn.initializers.lecun_uniform``:
    ``variance_scaling(1.0, "fan_in", "uniform")``.""",
)
lecun_normal = _named(
    _fan_based(1.0, "fan_in", "truncated_normal"),
    "lecun_normal",
    """LeCun normal, truncated: variance ``1 / fan_in`` after a cut at ±2σ (SELU networks).

    The forward condition alone, ``fan_in·Var(W) = 1`` (Klambauer et al., 2017, for
    SELU).  As ``jax.nn.initializers.lecun_normal``: ``variance_scaling(1.0, "fan_in",
    "truncated_normal")``.""",
)
