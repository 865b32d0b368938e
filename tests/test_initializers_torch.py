"""Tests for jopt.initializers: the names and conventions jopt shares with torch.nn.init.

Fans in the JAX and torch layouts, the gain table written from torch's documented values,
and torch's untruncated normals (unlike jax's namesakes).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from initializer_support import FAST_KEY

from jopt import initializers as init

# ------------------------------------------------------------------------------- fans


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ((64, 10), {}, (64, 10)),  # dense, JAX (in, out)
        ((10, 64), {"in_axis": 1, "out_axis": 0}, (64, 10)),  # dense, torch (out, in)
        ((5, 16, 32), {}, (5 * 16, 5 * 32)),  # conv1d WIO
        ((32, 16, 5), {"in_axis": 1, "out_axis": 0}, (5 * 16, 5 * 32)),  # conv1d torch
        ((3, 3, 16, 32), {}, (144, 288)),  # conv2d HWIO
        ((32, 16, 3, 3), {"in_axis": 1, "out_axis": 0}, (144, 288)),  # conv2d torch
        ((2, 3, 4, 8, 6), {}, (24 * 8, 24 * 6)),  # conv3d DHWIO
        ((6, 8, 2, 3, 4), {"in_axis": 1, "out_axis": 0}, (24 * 8, 24 * 6)),  # conv3d torch
        ((16, 32, 3, 3), {"in_axis": 0, "out_axis": 1}, (144, 288)),  # torch ConvTranspose
        ((7, 64, 10), {"batch_axis": 0}, (64, 10)),  # stacked dense kernels
        ((7, 3, 3, 16, 32), {"batch_axis": 0}, (144, 288)),
        ((2, 7, 64, 10), {"batch_axis": (0, 1)}, (64, 10)),
        ((64, 10, 7), {"in_axis": 0, "out_axis": 1, "batch_axis": -1}, (64, 10)),
        ((4, 8, 10), {"in_axis": (0, 1), "out_axis": 2}, (32, 10)),  # several input axes
    ],
)
def test_compute_fans(shape, kwargs, expected):
    assert init.compute_fans(shape, **kwargs) == expected


def test_layouts_agree():
    """The layout keywords decide which axes are fans; the rest is receptive field."""
    torch_layout = init.kaiming_uniform(nonlinearity="relu", in_axis=1, out_axis=0)
    w = np.asarray(torch_layout(FAST_KEY, (128, 96, 3, 3)))  # fan_in 96 * 9
    bound = math.sqrt(2) * math.sqrt(3 / 864)
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.999 * bound
    # With the default layout the same shape would be read as HWIO: fan_in = 128 * 96 * 3.
    w = np.asarray(init.kaiming_uniform(nonlinearity="relu")(FAST_KEY, (128, 96, 3, 3)))
    bound = math.sqrt(2) * math.sqrt(3 / (128 * 96 * 3))
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.999 * bound


# ------------------------------------------------------------------------------ gains


def test_gain_table_exact():
    s2 = math.sqrt(2.0)
    for name in (
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "sigmoid",
    ):
        assert init.calculate_gain(name) == 1.0
    assert init.calculate_gain("tanh") == 5.0 / 3.0
    assert init.calculate_gain("relu") == s2
    assert init.calculate_gain("selu") == 3.0 / 4.0
    assert init.calculate_gain("leaky_relu") == math.sqrt(2.0 / (1.0 + 0.01**2))
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)
    assert init.calculate_gain("leaky_relu", 0) == s2
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1.0 / 3.0)
    assert init.calculate_gain("relu", 0.3) == s2  # param only matters for leaky_relu
    assert init.calculate_gain("leaky_relu", param=jnp.asarray(0.2, jnp.bfloat16)) == pytest.approx(
        math.sqrt(2.0 / (1 + 0.2001953125**2)), rel=1e-12
    )


def test_torch_names_keep_torch_distributions():
    """xavier_normal and kaiming_normal are untruncated; jax's namesakes are not."""
    for torch_name, jax_name in (
        ("xavier_normal", "glorot_normal"),
        ("kaiming_normal", "he_normal"),
    ):
        w = np.asarray(getattr(init, torch_name)()(FAST_KEY, (400, 250)), np.float64)
        v = np.asarray(getattr(init, jax_name)()(FAST_KEY, (400, 250)), np.float64)
        assert abs(w.std() / v.std() - 1) < 0.03  # the same variance
        assert np.abs(w).max() > 3.5 * w.std()  # tails beyond the cut
        assert np.abs(v).max() <= 2 / 0.8796256610342398 * v.std() * 1.01
