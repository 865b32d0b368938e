"""torch.nn.init's fan-based initializers, with torch's distributions and gains."""

from __future__ import annotations

import math

from jax.typing import DTypeLike

from jopt._validation import checked
from jopt.initializers._basic import uniform_range
from jopt.initializers._checks import Axes, Initializer, calculate_gain
from jopt.initializers._fans import variance_scaling

__all__ = [
    "kaiming_normal",
    "kaiming_uniform",
    "torch_default_bias",
    "torch_default_kernel",
    "xavier_normal",
    "xavier_uniform",
]


def xavier_uniform(
    gain: float = 1.0,
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """torch's ``xavier_uniform_``: ``U(−b, b)`` with ``b = gain·√(6 / (fan_in + fan_out))``.

    Keeping the forward signal needs ``Var(W) = 1 / fan_in``, keeping the backward
    gradient ``1 / fan_out``; Glorot & Bengio (2010) take the harmonic mean of the two,
    ``Var(W) = 2 / (fan_in + fan_out)``, for the linear regime of a symmetric activation
    such as tanh.  ``variance_scaling(gain², "fan_avg", "uniform")``; with ``gain = 1``
    the same distribution as [`glorot_uniform`][jopt.initializers.glorot_uniform].  jax's
    ``xavier_uniform`` is an alias of its ``glorot_uniform`` and takes no gain.

    Args:
      gain: multiplies the bound, ``>= 0``; see
        [`calculate_gain`][jopt.initializers.calculate_gain].
      in_axis: the input axis or axes, as in
        [`compute_fans`][jopt.initializers.compute_fans] (torch's
        ``(out, in, *kernel)`` layout: ``in_axis=1, out_axis=0``).
      out_axis: the output axis or axes.
      batch_axis: axes of independent weights, in neither fan.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    gain = checked("gain", gain)
    return variance_scaling(gain**2, "fan_avg", "uniform", in_axis=in_axis, out_axis=out_axis,
                            batch_axis=batch_axis, dtype=dtype)  # fmt: skip


def xavier_normal(
    gain: float = 1.0,
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """torch's ``xavier_normal_``: untruncated ``N(0, σ²)``, ``σ = gain·√(2/(fan_in + fan_out))``.

    The variance of [`xavier_uniform`][jopt.initializers.xavier_uniform].  jax's ``xavier_normal``
    is its ``glorot_normal``, a *truncated* normal:
    [`glorot_normal`][jopt.initializers.glorot_normal] here.

    Args:
      gain: multiplies the standard deviation, ``>= 0``; see
        [`calculate_gain`][jopt.initializers.calculate_gain].
      in_axis: the input axis or axes, as in [`compute_fans`][jopt.initializers.compute_fans].
      out_axis: the output axis or axes.
      batch_axis: axes of independent weights, in neither fan.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    gain = checked("gain", gain)
    return variance_scaling(gain**2, "fan_avg", "normal", in_axis=in_axis, out_axis=out_axis,
                            batch_axis=batch_axis, dtype=dtype)  # fmt: skip


def _kaiming(distribution, a, mode, nonlinearity, in_axis, out_axis, batch_axis, dtype):
    a = checked("a", a)
    mode = checked("mode", mode, owner="kaiming")
    gain = calculate_gain(nonlinearity, a)
    return variance_scaling(gain**2, mode, distribution, in_axis=in_axis, out_axis=out_axis,
                            batch_axis=batch_axis, dtype=dtype)  # fmt: skip


def kaiming_uniform(
    a: float = 0.0,
    *,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """torch's ``kaiming_uniform_``: ``U(−b, b)``, ``b = gain·√(3 / n)``, ``Var(W) = gain² / n``.

    He et al. (2015): behind a ReLU, ``E[a²] = Var(z) / 2``, so ``Var(W) = 2 / fan_in``
    keeps ``Var(z)`` the same in every layer; ``gain = calculate_gain(nonlinearity, a)``
    generalizes the factor 2 (for the default ``leaky_relu`` with ``a = 0`` it is √2,
    ReLU's, and this is [`he_uniform`][jopt.initializers.he_uniform]'s distribution).  ``n`` is
    ``fan_in`` or ``fan_out`` per ``mode``.  torch's default for ``nn.Linear`` and ``nn.Conv*``
    weights is ``kaiming_uniform_(a=√5)``, ``U(±1/√fan_in)``:
    [`torch_default_kernel`][jopt.initializers.torch_default_kernel].

    Args:
      a: the negative slope of the leaky ReLU after the layer (for ``"leaky_relu"``).
      mode: ``"fan_in"`` (keeps the forward signal) or ``"fan_out"`` (the gradient).
      nonlinearity: a name accepted by [`calculate_gain`][jopt.initializers.calculate_gain].
      in_axis: the input axis or axes, as in
        [`compute_fans`][jopt.initializers.compute_fans] (torch's layout:
        ``in_axis=1, out_axis=0``).
      out_axis: the output axis or axes.
      batch_axis: axes of independent weights, in neither fan.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    return _kaiming("uniform", a, mode, nonlinearity, in_axis, out_axis, batch_axis, dtype)


def kaiming_normal(
    a: float = 0.0,
    *,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """torch's ``kaiming_normal_``: an *untruncated* ``N(0, σ²)``, ``σ = gain / √n``.

    The variance of [`kaiming_uniform`][jopt.initializers.kaiming_uniform] (``2 / fan_in`` for
    ReLU).  jax's ``kaiming_normal`` is its ``he_normal``, a *truncated* normal:
    [`he_normal`][jopt.initializers.he_normal] here.

    Args:
      a: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].
      mode: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].
      nonlinearity: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].
      in_axis: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].
      out_axis: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].
      batch_axis: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].
      dtype: as for [`kaiming_uniform`][jopt.initializers.kaiming_uniform].

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    return _kaiming("normal", a, mode, nonlinearity, in_axis, out_axis, batch_axis, dtype)


def torch_default_kernel(
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    """torch's default weight init for ``nn.Linear`` and ``nn.Conv*``: ``U(±1/√fan_in)``.

    torch writes it ``kaiming_uniform_(w, a=√5)``: the leaky-ReLU gain with slope √5
    is ``√(2/6)``, and ``√(1/3)·√(3 / fan_in) = 1/√fan_in``, a variance of ``1 /
    (3·fan_in)``, a third of LeCun's.  For torch-layout weights ``(out, in, *kernel)``
    pass ``in_axis=1, out_axis=0``.

    Args:
      in_axis: the input axis or axes, as in [`compute_fans`][jopt.initializers.compute_fans].
      out_axis: the output axis or axes.
      batch_axis: axes of independent weights, in neither fan.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.
    """
    return kaiming_uniform(math.sqrt(5.0), in_axis=in_axis, out_axis=out_axis,
                           batch_axis=batch_axis, dtype=dtype)  # fmt: skip


def torch_default_bias(fan_in: int, *, dtype: DTypeLike | None = None) -> Initializer:
    """torch's default bias init for ``nn.Linear`` and ``nn.Conv*``: ``U(±1/√fan_in)``.

    A bias has no fan of its own, so the layer's ``fan_in`` (the weight's,
    ``compute_fans(kernel_shape)[0]``: ``in_channels·∏kernel_size`` for a conv) must be
    given:

    ```python
    flax.linen.Dense(out, kernel_init=torch_default_kernel(),
                     bias_init=torch_default_bias(in_features))
    ```

    Args:
      fan_in: the layer's fan-in, an integer ``>= 1``.
      dtype: the initializer's default dtype; ``None``: the default float dtype.

    Returns:
      An initializer ``init(key, shape, dtype=dtype)``.

    Raises:
      TypeError, ValueError: ``fan_in`` is not an integer, or below 1.
    """
    bound = 1.0 / math.sqrt(checked("fan_in", fan_in))
    return uniform_range(-bound, high=bound, dtype=dtype)
