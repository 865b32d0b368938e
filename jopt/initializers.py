"""Parameter initializers as pure functions of a PRNG key.

Every initializer here follows the protocol of `jax.nn.initializers`:

    init(key, shape, dtype=jnp.float32) -> Array

so it can be passed wherever JAX code expects one, e.g. flax's `kernel_init=`. `shape` and
`dtype` are treated as static (they are validated in Python, so they must be concrete), the
`key` may be traced, so an initializer can be `jax.jit`-ed with `static_argnums=(1, 2)` and
`jax.vmap`-ed over a batch of keys. The same key always gives the same values.

Factories (`normal(...)`, `xavier_uniform(...)`, ...) validate their own arguments when they
are called, and the returned initializer validates `shape` and `dtype` when it is called.
Bad input raises a `ValueError` that names the offending argument and its value.

**Layout.** The fan-based initializers follow JAX's layout by default: a dense kernel is
`(in, out)` and a convolution kernel is `(*spatial, in, out)` (HWIO). Each of them takes
`in_axis`, `out_axis` and `batch_axis`; every remaining axis is a receptive-field axis (see
`compute_fans`). PyTorch's `(out, in, *spatial)` layout is `in_axis=1, out_axis=0`.

**Why the scales.** For a layer `z[l] = W[l] a[l-1]` with zero-mean i.i.d. weights,
independent of zero-mean inputs,

    Var(z[l]) = n[l-1] Var(W[l]) Var(a[l-1]),

so across `L` layers the signal is multiplied by `prod_l n[l-1] Var(W[l])`: it vanishes when
the factor is below one, explodes when it is above one, and is preserved when
`Var(W) = 1 / fan_in`. Backpropagation gives the same rule with `fan_out`; Xavier/Glorot
compromise with the harmonic mean of the two, `Var(W) = 2 / (fan_in + fan_out)`. For ReLU
only half of a symmetric pre-activation survives, `E[relu(y)^2] = Var(y) / 2`, so
He/Kaiming double it: `Var(W) = 2 / fan_in`. All of these are `variance_scaling` with a
different `scale` and `mode`; `calculate_gain` tabulates the correction for each
nonlinearity.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

__all__ = [
    "Initializer",
    "calculate_gain",
    "compute_fans",
    "constant",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "torch_default_bias",
    "torch_default_kernel",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Axes = int | Sequence[int]


class Initializer(Protocol):
    """The `jax.nn.initializers` protocol: `init(key, shape, dtype=jnp.float32) -> Array`."""

    def __call__(
        self, key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32
    ) -> jax.Array: ...


# Standard deviation of a standard normal truncated to [-2, 2]. Dividing by it makes a
# truncated normal sample have the variance asked for (the convention of jax and keras).
_TRUNCATED_NORMAL_STD = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
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
_NONLINEARITIES = (*_UNIT_GAIN, "tanh", "relu", "leaky_relu", "selu")


# --------------------------------------------------------------------------- validation


def _check_number(
    name: str, value: Any, *, nonnegative: bool = False, allow_inf: bool = False
) -> Any:
    """Validates a real scalar hyperparameter; returns it as a float when it is concrete.

    Traced values (a factory called inside `jit`) cannot be inspected and are passed through.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, bool) or np.ndim(value) != 0:
        raise ValueError(f"{name} must be a real number, got {name}={value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {name}={value!r}") from None
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {name}={value!r}")
    if nonnegative and number < 0:
        raise ValueError(f"{name} must be non-negative, got {name}={value!r}")
    return number


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name}={value!r}; expected one of {', '.join(choices)}")
    return value


def _check_axes_type(name: str, axes: Any, *, allow_empty: bool) -> tuple[int, ...]:
    """Turns an int or a sequence of ints into a tuple; the range is checked later."""
    if isinstance(axes, Sequence) and not isinstance(axes, str):
        items = tuple(axes)
    else:
        items = (axes,)
    try:
        if any(isinstance(a, bool) for a in items):
            raise TypeError
        result = tuple(operator.index(a) for a in items)
    except TypeError:
        raise ValueError(
            f"{name} must be an int or a sequence of ints, got {name}={axes!r}"
        ) from None
    if not result and not allow_empty:
        raise ValueError(f"{name} must name at least one axis, got {name}={axes!r}")
    return result


def _normalize_axes(name: str, axes: Any, ndim: int, *, allow_empty: bool) -> tuple[int, ...]:
    items = _check_axes_type(name, axes, allow_empty=allow_empty)
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={axes!r} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axes!r} names the same axis twice")
    return tuple(out)


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        if isinstance(shape, str) or any(isinstance(d, bool) for d in shape):
            raise TypeError
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise ValueError(
            f"shape must be a sequence of non-negative ints, got shape={shape!r}"
        ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative sizes, got shape={dims}")
    return dims


def _check_dtype(dtype: Any) -> np.dtype:
    if dtype is None:
        return jnp.dtype(jnp.float32)
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a floating-point dtype, got dtype={dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating-point dtype, got dtype={dt.name}")
    return dt


def _sampling_dtype(dtype: np.dtype) -> np.dtype:
    """Samples for 16-bit (and narrower) types are drawn in float32 and rounded once."""
    return dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)


# ------------------------------------------------------------------------------- fans


def compute_fans(
    shape: Sequence[int],
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of the given shape.

    Every axis that is neither an input, an output nor a batch axis is a receptive-field axis
    and multiplies both fans: a unit of a convolution sees `in * prod(spatial)` inputs.

        fan_in  = prod(shape[in_axis])  * receptive_field
        fan_out = prod(shape[out_axis]) * receptive_field

    Batch axes (e.g. a stack of per-head or per-layer kernels) are ignored.

    Examples: a dense kernel `(in, out) = (64, 10)` has fans `(64, 10)`; an HWIO conv kernel
    `(3, 3, 16, 32)` has `(144, 288)`; the same kernel in torch layout `(32, 16, 3, 3)` needs
    `in_axis=1, out_axis=0`.

    **Arguments:**

    - `shape`: the weight's shape, at least 2-d.
    - `in_axis`, `out_axis`: the input and output axis (or axes); negative values count from
      the end. Defaults are JAX's `(in, out)` / HWIO layout.
    - `batch_axis`: axes that index independent weights; they count in neither fan.

    **Returns:** `(fan_in, fan_out)` as Python ints.
    """
    dims = _check_shape(shape)
    ndim = len(dims)
    if ndim < 2:
        raise ValueError(
            "fan-based initializers need a weight with at least 2 dimensions (an input and an "
            f"output axis), got shape={dims}"
        )
    ins = _normalize_axes("in_axis", in_axis, ndim, allow_empty=False)
    outs = _normalize_axes("out_axis", out_axis, ndim, allow_empty=False)
    batch = _normalize_axes("batch_axis", batch_axis, ndim, allow_empty=True)
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
    fan_in = math.prod(dims[i] for i in ins) * receptive
    fan_out = math.prod(dims[i] for i in outs) * receptive
    return fan_in, fan_out


# ---------------------------------------------------------------------------- gains


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain (factor on the weights' standard deviation) for a nonlinearity.

    The gain undoes the change a nonlinearity makes to the second moment of its input, so
    that a `fan_in`-scaled init keeps the signal's variance from layer to layer:

    | nonlinearity                                   | gain                      |
    |------------------------------------------------|---------------------------|
    | `linear`, `conv{1,2,3}d`, `conv_transpose{1,2,3}d`, `sigmoid` | 1          |
    | `tanh`                                         | 5/3                       |
    | `relu`                                         | sqrt(2)                   |
    | `leaky_relu`                                   | sqrt(2 / (1 + slope**2))  |
    | `selu`                                         | 3/4                       |

    ReLU's sqrt(2) is He's factor 2 on the variance: only the positive half of a symmetric
    pre-activation survives, so `E[relu(y)^2] = Var(y) / 2`. Leaky ReLU keeps `slope**2` of
    the negative half. The names and values are those of `torch.nn.init.calculate_gain`.

    **Arguments:**

    - `nonlinearity`: one of the names above.
    - `param`: the negative slope of `leaky_relu` (default 0.01); ignored by the others.

    **Returns:** the gain as a float.
    """
    _check_choice("nonlinearity", nonlinearity, _NONLINEARITIES)
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 0.75
    slope = 0.01 if param is None else _check_number("param", param)
    if isinstance(slope, jax.core.Tracer):
        return jnp.sqrt(2.0 / (1.0 + slope**2))
    return math.sqrt(2.0 / (1.0 + slope**2))


# ------------------------------------------------------------------ simple initializers


def zeros(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """All zeros; `key` is ignored. Use it for biases, never for a whole network's weights.

    With zero weights every unit of a layer computes the same output and receives the same
    gradient (and with `W[l] = 0` the gradient `W[l]^T dL/dz[l]` reaching the layers below is
    zero), so the units never become different: the symmetry must be broken at init.
    """
    dims, dt = _check_shape(shape), _check_dtype(dtype)
    return jnp.zeros(dims, dt)


def ones(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """All ones; `key` is ignored. Typical for the scale of a normalization layer."""
    dims, dt = _check_shape(shape), _check_dtype(dtype)
    return jnp.ones(dims, dt)


def constant(value: ArrayLike) -> Initializer:
    """Fills with `value` (a scalar, or an array that broadcasts to the requested shape).

    Like `zeros`, a constant weight matrix does not break the symmetry between units.
    """
    if not isinstance(value, jax.core.Tracer):
        arr = np.asarray(value)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise ValueError(f"value must be numeric, got value={value!r}")

    def init(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        dims, dt = _check_shape(shape), _check_dtype(dtype)
        try:
            fits = np.broadcast_shapes(np.shape(value), dims) == dims
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"value of shape {np.shape(value)} does not broadcast to shape={dims}")
        return jnp.broadcast_to(jnp.asarray(value, dt), dims)

    return init


def normal(stddev: float = 1e-2, mean: float = 0.0) -> Initializer:
    """Gaussian `N(mean, stddev**2)`, independent of the layer's size.

    The lecture's "small random numbers": it breaks the symmetry, but through a layer of
    width `n` the signal's variance is multiplied by `n * stddev**2`, so for a fixed stddev a
    deep network either vanishes (0.01 with n = 512 gives a factor 0.05 per layer) or
    explodes. Prefer a fan-based init for weights.

    **Arguments:**

    - `stddev`: standard deviation, `>= 0`.
    - `mean`: mean.
    """
    stddev = _check_number("stddev", stddev, nonnegative=True)
    mean = _check_number("mean", mean)

    def init(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        dims, dt = _check_shape(shape), _check_dtype(dtype)
        z = jax.random.normal(key, dims, _sampling_dtype(dt))
        return (mean + stddev * z).astype(dt)

    return init


def uniform(low: float = -1e-2, high: float = 1e-2) -> Initializer:
    """Uniform on `[low, high)`: mean `(low + high) / 2`, std `(high - low) / sqrt(12)`.

    Note that `jax.nn.initializers.uniform(scale)` samples `[0, scale)` instead.

    **Arguments:**

    - `low`, `high`: the interval; `low < high`.
    """
    low = _check_number("low", low)
    high = _check_number("high", high)
    if not isinstance(low, jax.core.Tracer) and not isinstance(high, jax.core.Tracer):
        if not low < high:
            raise ValueError(f"low must be below high, got low={low!r}, high={high!r}")

    def init(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        dims, dt = _check_shape(shape), _check_dtype(dtype)
        return jax.random.uniform(key, dims, _sampling_dtype(dt), low, high).astype(dt)

    return init


def truncated_normal(stddev: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> Initializer:
    """`stddev * X` with `X` a standard normal truncated to `[lower, upper]`.

    The cut-offs are in units of `stddev` (as in `jax.random.truncated_normal`), so the
    values lie in `[lower * stddev, upper * stddev]`. PyTorch's `trunc_normal_(std, a, b)`
    takes absolute cut-offs `a, b` instead: it equals `truncated_normal(std, a / std, b / std)`.
    `stddev` is that of the normal before truncation; the result's standard deviation is
    smaller (about 0.88 * stddev for the default cut-offs of +-2).

    **Arguments:**

    - `stddev`: standard deviation of the underlying normal, `>= 0`.
    - `lower`, `upper`: cut-offs in units of `stddev`, `lower < upper` (may be infinite).
    """
    stddev = _check_number("stddev", stddev, nonnegative=True)
    lower = _check_number("lower", lower, allow_inf=True)
    upper = _check_number("upper", upper, allow_inf=True)
    if not isinstance(lower, jax.core.Tracer) and not isinstance(upper, jax.core.Tracer):
        if not lower < upper:
            raise ValueError(f"lower must be below upper, got lower={lower!r}, upper={upper!r}")

    def init(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        dims, dt = _check_shape(shape), _check_dtype(dtype)
        z = jax.random.truncated_normal(key, lower, upper, dims, _sampling_dtype(dt))
        return (stddev * z).astype(dt)

    return init


# ------------------------------------------------------------------- variance scaling


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> Initializer:
    """Zero-mean weights with variance `scale / fan`: the rule beneath every fan-based init.

    `fan` is `fan_in`, `fan_out` or `(fan_in + fan_out) / 2` according to `mode` (see
    `compute_fans` for the axes). With `Var(W) = scale / fan_in` a layer multiplies the
    variance of its input by `scale` (`Var(z) = fan_in Var(W) Var(a)`), so `scale` = 1 keeps
    a linear signal steady and `scale` = 2 compensates ReLU's halving.

    | distribution       | samples                                                     |
    |--------------------|-------------------------------------------------------------|
    | `normal`           | `N(0, s**2)` with `s = sqrt(scale / fan)`                   |
    | `truncated_normal` | `s / 0.8796... * X`, `X` a standard normal cut at +-2       |
    | `uniform`          | `U(-b, b)` with `b = sqrt(3 scale / fan)`                   |

    0.87962566103423978 is the standard deviation of a standard normal truncated to
    `[-2, 2]`; dividing by it makes the truncated sample's variance `scale / fan` as well.

    **Arguments:**

    - `scale`: variance multiplier, `>= 0`.
    - `mode`: `"fan_in"` (preserves the forward signal), `"fan_out"` (preserves the
      backpropagated gradient) or `"fan_avg"` (Xavier's compromise).
    - `distribution`: `"normal"`, `"truncated_normal"` or `"uniform"`.
    - `in_axis`, `out_axis`, `batch_axis`: the weight's layout, as in `compute_fans`.

    **Returns:** an initializer; it needs a shape with at least 2 dimensions.
    """
    scale = _check_number("scale", scale, nonnegative=True)
    _check_choice("mode", mode, _MODES)
    _check_choice("distribution", distribution, _DISTRIBUTIONS)
    _check_axes_type("in_axis", in_axis, allow_empty=False)
    _check_axes_type("out_axis", out_axis, allow_empty=False)
    _check_axes_type("batch_axis", batch_axis, allow_empty=True)

    def init(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        dims, dt = _check_shape(shape), _check_dtype(dtype)
        fan_in, fan_out = compute_fans(dims, in_axis, out_axis, batch_axis)
        if math.prod(dims) == 0:
            return jnp.zeros(dims, dt)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / fan
        sdt = _sampling_dtype(dt)
        if distribution == "normal":
            w = variance**0.5 * jax.random.normal(key, dims, sdt)
        elif distribution == "truncated_normal":
            std = variance**0.5 / _TRUNCATED_NORMAL_STD
            w = std * jax.random.truncated_normal(key, -2.0, 2.0, dims, sdt)
        else:
            bound = (3.0 * variance) ** 0.5
            w = bound * jax.random.uniform(key, dims, sdt, -1.0, 1.0)
        return w.astype(dt)

    return init


def xavier_uniform(
    gain: float = 1.0, *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> Initializer:
    """Xavier/Glorot uniform: `U(-b, b)` with `b = gain * sqrt(6 / (fan_in + fan_out))`.

    Keeping the forward signal needs `Var(W) = 1 / fan_in`, keeping the backward gradient
    needs `1 / fan_out`; Glorot and Bengio (2010) take the harmonic mean of the two,
    `Var(W) = 2 / (fan_in + fan_out)`, i.e. the reciprocal of the mean fan. It assumes the
    linear regime of a symmetric activation such as tanh. Same as
    `variance_scaling(gain**2, "fan_avg", "uniform")`.

    **Arguments:**

    - `gain`: multiplies the bound, `>= 0`; see `calculate_gain`.
    - `in_axis`, `out_axis`, `batch_axis`: the weight's layout, as in `compute_fans`.
    """
    gain = _check_number("gain", gain, nonnegative=True)
    return variance_scaling(gain**2, "fan_avg", "uniform", in_axis, out_axis, batch_axis)


def xavier_normal(
    gain: float = 1.0, *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> Initializer:
    """Xavier/Glorot normal: `N(0, std**2)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.

    The same variance as `xavier_uniform` (the harmonic compromise between the forward and
    backward conditions), from an untruncated normal as in `torch.nn.init.xavier_normal_`.
    `jax.nn.initializers.glorot_normal` uses a truncated normal instead; for that write
    `variance_scaling(1.0, "fan_avg", "truncated_normal")`.

    **Arguments:**

    - `gain`: multiplies the standard deviation, `>= 0`; see `calculate_gain`.
    - `in_axis`, `out_axis`, `batch_axis`: the weight's layout, as in `compute_fans`.
    """
    gain = _check_number("gain", gain, nonnegative=True)
    return variance_scaling(gain**2, "fan_avg", "normal", in_axis, out_axis, batch_axis)


def _kaiming_scale(a: float, mode: str, nonlinearity: str) -> float:
    a = _check_number("a", a)
    _check_choice("mode", mode, ("fan_in", "fan_out"))
    return calculate_gain(nonlinearity, a) ** 2


def kaiming_uniform(
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> Initializer:
    """Kaiming/He uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan)`, `Var(W) = gain**2 / fan`.

    He et al. (2015): behind a ReLU, `E[a^2] = Var(z) / 2`, so `Var(W) = 2 / fan_in` keeps
    `Var(z)` the same in every layer; `gain = calculate_gain(nonlinearity, a)` generalizes
    the factor 2 (for the default `leaky_relu` with `a = 0` it is sqrt(2), i.e. ReLU).

    PyTorch's default for `nn.Linear` and `nn.Conv*` weights is
    `kaiming_uniform(a=math.sqrt(5))`, which works out to `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`;
    its bias is drawn from the same interval (`torch_default_bias`). In torch's layout:

        kernel_init = kaiming_uniform(a=math.sqrt(5), in_axis=1, out_axis=0)  # (out, in, kh, kw)

    **Arguments:**

    - `a`: negative slope of the leaky ReLU that follows the layer (used by `leaky_relu`).
    - `mode`: `"fan_in"` preserves the forward signal, `"fan_out"` the backward gradient.
    - `nonlinearity`: a name accepted by `calculate_gain`.
    - `in_axis`, `out_axis`, `batch_axis`: the weight's layout, as in `compute_fans`.
    """
    scale = _kaiming_scale(a, mode, nonlinearity)
    return variance_scaling(scale, mode, "uniform", in_axis, out_axis, batch_axis)


def kaiming_normal(
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> Initializer:
    """Kaiming/He normal: `N(0, std**2)` with `std = gain / sqrt(fan)`.

    The variance of `kaiming_uniform` (`gain**2 / fan`, i.e. `2 / fan_in` for ReLU: He's
    factor 2 for the half of the signal a ReLU zeroes), from an untruncated normal as in
    `torch.nn.init.kaiming_normal_`. `jax.nn.initializers.he_normal` is truncated instead;
    for that write `variance_scaling(2.0, "fan_in", "truncated_normal")`.

    **Arguments:** as for `kaiming_uniform`.
    """
    scale = _kaiming_scale(a, mode, nonlinearity)
    return variance_scaling(scale, mode, "normal", in_axis, out_axis, batch_axis)


def lecun_normal(*, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()) -> Initializer:
    """LeCun normal: truncated normal with variance `1 / fan_in` (as in jax and keras).

    The forward condition alone, `fan_in Var(W) = 1`: the natural choice for SELU networks
    and for linear layers. Same as `variance_scaling(1.0, "fan_in", "truncated_normal")`.
    """
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis)


def lecun_uniform(*, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()) -> Initializer:
    """LeCun uniform: `U(-b, b)` with `b = sqrt(3 / fan_in)`, so `Var(W) = 1 / fan_in`."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal
he_uniform = kaiming_uniform
he_normal = kaiming_normal


# ------------------------------------------------------------------------ orthogonal


def orthogonal(
    gain: float = 1.0, *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> Initializer:
    """A (semi-)orthogonal matrix times `gain`, drawn uniformly (Haar measure).

    The weight is viewed as a matrix `M` of shape `(rows, cols)`, where `cols` is the size
    of the output axis and `rows` the product of all the other non-batch axes (input and
    receptive field). If `rows >= cols` the columns are orthonormal, `M^T M = gain**2 I`;
    otherwise the rows are, `M M^T = gain**2 I`. An orthogonal layer preserves the norm of
    every vector exactly rather than only on average, which is why it suits deep linear and
    recurrent stacks. Each index of the batch axes gets an independent matrix.

    Sampled as the Q of a QR decomposition of a Gaussian matrix with the signs of `diag(R)`
    made positive (without this Q is not uniformly distributed). 16-bit dtypes are computed
    in float32 and rounded.

    **Arguments:**

    - `gain`: multiplies the matrix, `>= 0`.
    - `in_axis`, `out_axis`, `batch_axis`: the weight's layout, as in `compute_fans`. Only
      `out_axis` and `batch_axis` change the result; `in_axis` is accepted (and checked) so
      that the same layout keywords work for every fan-based initializer.
    """
    gain = _check_number("gain", gain, nonnegative=True)
    _check_axes_type("in_axis", in_axis, allow_empty=False)
    _check_axes_type("out_axis", out_axis, allow_empty=False)
    _check_axes_type("batch_axis", batch_axis, allow_empty=True)

    def init(key: ArrayLike, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
        dims, dt = _check_shape(shape), _check_dtype(dtype)
        compute_fans(dims, in_axis, out_axis, batch_axis)  # validates shape and axes
        if math.prod(dims) == 0:
            return jnp.zeros(dims, dt)
        ndim = len(dims)
        outs = _normalize_axes("out_axis", out_axis, ndim, allow_empty=False)
        batch = _normalize_axes("batch_axis", batch_axis, ndim, allow_empty=True)
        rest = tuple(i for i in range(ndim) if i not in outs and i not in batch)
        sample = _orthogonal_sample(key, gain, dims, _sampling_dtype(dt), batch, rest, outs)
        return sample.astype(dt)

    return init


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _orthogonal_sample(
    key: ArrayLike,
    gain: ArrayLike,
    dims: tuple[int, ...],
    dtype: np.dtype,
    batch: tuple[int, ...],
    rest: tuple[int, ...],
    outs: tuple[int, ...],
) -> jax.Array:
    """Haar-random (semi-)orthogonal matrices laid out in `dims`; one compilation per layout."""
    perm = batch + rest + outs
    n_batch = math.prod(dims[i] for i in batch)
    rows = math.prod(dims[i] for i in rest)
    cols = math.prod(dims[i] for i in outs)
    a = jax.random.normal(key, (n_batch, max(rows, cols), min(rows, cols)), dtype)
    q, r = jnp.linalg.qr(a)
    diag = jnp.diagonal(r, axis1=-2, axis2=-1)
    q = q * jnp.where(diag < 0, -1.0, 1.0).astype(dtype)[..., None, :]
    if rows < cols:
        q = jnp.swapaxes(q, -1, -2)
    w = (gain * q).reshape(tuple(dims[i] for i in perm))
    return jnp.transpose(w, tuple(int(i) for i in np.argsort(perm)))


# -------------------------------------------------------------------- torch defaults


def torch_default_kernel(
    *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> Initializer:
    """PyTorch's default weight init for `nn.Linear` / `nn.Conv*`: `U(+-1 / sqrt(fan_in))`.

    Torch writes it as `kaiming_uniform_(w, a=math.sqrt(5))`: the leaky-ReLU gain with slope
    sqrt(5) is sqrt(2 / 6), and `sqrt(1/3) * sqrt(3 / fan_in) = 1 / sqrt(fan_in)`. That is a
    variance of `1 / (3 fan_in)`, a third of LeCun's. For torch-layout weights
    `(out, in, *kernel)` pass `in_axis=1, out_axis=0`.
    """
    return kaiming_uniform(
        math.sqrt(5.0), in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis
    )


def torch_default_bias(fan_in: int) -> Initializer:
    """PyTorch's default bias init for `nn.Linear` / `nn.Conv*`: `U(+-1 / sqrt(fan_in))`.

    A bias has no fan of its own, so the layer's `fan_in` (the weight's, e.g.
    `compute_fans(kernel_shape)[0]`, which is `in_channels * prod(kernel_size)` for a conv)
    must be given.

        nn = flax.linen.Dense(out, kernel_init=torch_default_kernel(),
                              bias_init=torch_default_bias(in_features))

    **Arguments:**

    - `fan_in`: the layer's fan-in, a positive int.
    """
    if isinstance(fan_in, bool) or not isinstance(fan_in, (int, np.integer)) or fan_in <= 0:
        raise ValueError(f"fan_in must be a positive int, got fan_in={fan_in!r}")
    bound = 1.0 / math.sqrt(int(fan_in))
    return uniform(-bound, bound)
