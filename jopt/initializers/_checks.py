"""Shared by the initializers: argument checks, fans, gains and the sampling dtype."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jopt._validation import checked

__all__ = ["Initializer", "calculate_gain", "compute_fans"]

Axes = int | Sequence[int]

# Standard deviation of a standard normal truncated to [-2, 2]: dividing by it gives a
# truncated sample the variance asked for (the convention of jax and keras).
TRUNCATED_NORMAL_STD = 0.87962566103423978

_UNIT_GAIN = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


class Initializer(Protocol):
    """The ``jax.nn.initializers`` protocol.

    ``init(key, shape, dtype=None, *, out_sharding=None) -> Array``; ``dtype=None``
    is the initializer's own dtype, else the default float dtype (float32, or float64
    with 64-bit types on).
    """

    def __call__(
        self,
        key: ArrayLike,
        shape: Sequence[int],
        dtype: DTypeLike | None = None,
        *,
        out_sharding: Any = None,
    ) -> jax.Array: ...


# --- arguments --------------------------------------------------------------------------


def check_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of ints >= 0 (an int is a 1-d shape), each checked as ``shape[i]``."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
        raise TypeError(
            f"shape must be a sequence of integers, got {type(shape).__name__} {shape!r}"
        )
    return tuple(checked(f"shape[{i}]", d) for i, d in enumerate(shape))


def check_dtype(dtype: Any) -> np.dtype:
    """A floating dtype; ``None`` is the default float dtype, as in jax."""
    dtype = checked("dtype", dtype)
    return jnp.dtype(jnp.result_type(float)) if dtype is None else dtype


def check_axes(name: str, axes: Any, *, allow_empty: bool) -> tuple[int, ...]:
    """An int or a sequence of ints (each checked as ``name[i]``); ranges are checked later."""
    if isinstance(axes, (Sequence, np.ndarray)) and not isinstance(axes, (str, bytes)):
        items = tuple(checked(f"{name}[{i}]", a) for i, a in enumerate(axes))
    else:
        items = (checked(name, axes),)
    if not items and not allow_empty:
        raise ValueError(f"{name} must name at least one axis, got {name}={axes!r}")
    return items


def normalize_axes(name: str, axes: Any, ndim: int, *, allow_empty: bool) -> tuple[int, ...]:
    """The axes as non-negative, distinct indices into an array of ``ndim`` dimensions."""
    out = []
    for a in check_axes(name, axes, allow_empty=allow_empty):
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={axes!r} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axes!r} names the same axis twice")
    return tuple(out)


def sampling_dtype(dtype: np.dtype) -> np.dtype:
    """16-bit samples are drawn in float32 and rounded once, so every value is reachable."""
    return dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)


def sharded(kwargs: dict, out_sharding: Any) -> dict:
    """``kwargs`` plus ``out_sharding`` for a jax sampler, only when one is asked for."""
    return kwargs if out_sharding is None else {**kwargs, "out_sharding": out_sharding}


# --- fans and gains ------------------------------------------------------------------------


def compute_fans(
    shape: Sequence[int],
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of the given shape.

    Every axis that is neither an input, an output nor a batch axis is a receptive-field
    axis and multiplies both fans (a unit of a convolution sees ``in·∏spatial`` inputs):

    ```text
    fan_in  = ∏ shape[in_axis]  · receptive_field
    fan_out = ∏ shape[out_axis] · receptive_field
    ```

    Batch axes (a stack of per-head or per-layer kernels) count in neither.  A dense
    kernel ``(in, out) = (64, 10)`` has fans ``(64, 10)``; an HWIO conv kernel
    ``(3, 3, 16, 32)`` has ``(144, 288)``; the same kernel in torch's layout
    ``(32, 16, 3, 3)`` needs ``in_axis=1, out_axis=0``.

    Args:
      shape: the weight's shape, at least 2-d.
      in_axis: the input axis or axes; negative values count from the end.
      out_axis: the output axis or axes.
      batch_axis: axes that index independent weights.

    Returns:
      ``(fan_in, fan_out)`` as Python ints.

    Raises:
      TypeError: a shape or axis is not an integer.
      ValueError: the shape has fewer than 2 dimensions, or the axes are out of range
        or overlap.
    """
    dims = check_shape(shape)
    ndim = len(dims)
    if ndim < 2:
        raise ValueError(
            "fan-based initializers need a weight with at least 2 dimensions (an input and an "
            f"output axis), got shape={dims}"
        )
    ins = normalize_axes("in_axis", in_axis, ndim, allow_empty=False)
    outs = normalize_axes("out_axis", out_axis, ndim, allow_empty=False)
    batch = normalize_axes("batch_axis", batch_axis, ndim, allow_empty=True)
    if set(ins) & set(outs):
        raise ValueError(
            f"in_axis={in_axis!r} and out_axis={out_axis!r} name the same axis of shape={dims}"
        )
    if set(batch) & (set(ins) | set(outs)):
        raise ValueError(
            f"batch_axis={batch_axis!r} overlaps in_axis={in_axis!r} or out_axis={out_axis!r} "
            f"for shape={dims}"
        )
    special = set(ins) | set(outs) | set(batch)
    receptive = math.prod(d for i, d in enumerate(dims) if i not in special)
    return math.prod(dims[i] for i in ins) * receptive, math.prod(dims[i] for i in outs) * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain (a factor on the weights' standard deviation) for a nonlinearity.

    The gain undoes the change a nonlinearity makes to the second moment of its input,
    so that a ``fan_in``-scaled init keeps the signal's variance from layer to layer
    (He et al., 2015):

    ==================================================  ===========================
    nonlinearity                                        gain
    ==================================================  ===========================
    ``linear``, ``conv{1,2,3}d``,                       1
    ``conv_transpose{1,2,3}d``, ``sigmoid``
    ``tanh``                                            5/3
    ``relu``                                            √2
    ``leaky_relu``                                      √(2 / (1 + slope²))
    ``selu``                                            3/4
    ==================================================  ===========================

    ReLU's √2 is He's factor 2 on the variance: only the positive half of a symmetric
    pre-activation survives, ``E[relu(y)²] = Var(y) / 2``.  The names and values are
    those of ``torch.nn.init.calculate_gain``, whose calling convention (``param``
    positional) this keeps.

    Args:
      nonlinearity: one of the names above.
      param: the negative slope of ``leaky_relu`` (default 0.01); ignored by the others.

    Returns:
      The gain, a float (an array if ``param`` is traced).

    Raises:
      TypeError: ``nonlinearity`` is not a string or ``param`` not a number.
      ValueError: an unknown ``nonlinearity`` or a non-finite ``param``.
    """
    nonlinearity = checked("nonlinearity", nonlinearity)
    slope = 0.01 if param is None else checked("param", param)
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 0.75
    if isinstance(slope, jax.core.Tracer):
        return jnp.sqrt(2.0 / (1.0 + slope**2))
    return math.sqrt(2.0 / (1.0 + float(slope) ** 2))
