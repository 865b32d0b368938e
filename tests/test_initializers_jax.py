"""Tests for jopt.initializers: the names jopt shares with ``jax.nn.initializers``.

Compared with jax live: the same signature and defaults, and the same samples for the same
key; out_sharding honoured; and flax layers built with jopt's initializers.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from initializer_support import FAST_KEY, KEY

from jopt import initializers as init

# ------------------------------------------------------------------- jax, live

# name -> (jopt factory call, jax factory call); the same arguments, jax's spelling.
JAX_SAME = {
    "glorot_uniform": (init.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    "glorot_normal": (init.glorot_normal(), jax.nn.initializers.glorot_normal()),
    "he_uniform": (init.he_uniform(), jax.nn.initializers.he_uniform()),
    "he_normal": (init.he_normal(), jax.nn.initializers.he_normal()),
    "lecun_uniform": (init.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
    "lecun_normal": (init.lecun_normal(), jax.nn.initializers.lecun_normal()),
    "lecun_normal_torch_layout": (
        init.lecun_normal(1, out_axis=0, batch_axis=()),
        jax.nn.initializers.lecun_normal(1, 0, ()),
    ),
    "variance_scaling_geo": (
        init.variance_scaling(1.5, "fan_geo_avg", "truncated_normal"),
        jax.nn.initializers.variance_scaling(1.5, "fan_geo_avg", "truncated_normal"),
    ),
    "normal": (init.normal(0.3), jax.nn.initializers.normal(0.3)),
    "uniform": (init.uniform(2.0), jax.nn.initializers.uniform(2.0)),
    "truncated_normal": (
        init.truncated_normal(0.3, lower=-1.0, upper=3.0),
        jax.nn.initializers.truncated_normal(0.3, lower=-1.0, upper=3.0),
    ),
    "orthogonal": (init.orthogonal(1.5), jax.nn.initializers.orthogonal(1.5)),
    "orthogonal_column_0": (
        init.orthogonal(column_axis=0),
        jax.nn.initializers.orthogonal(column_axis=0),
    ),
    "constant": (init.constant(-0.5), jax.nn.initializers.constant(-0.5)),
    "zeros": (init.zeros, jax.nn.initializers.zeros),
    "ones": (init.ones, jax.nn.initializers.ones),
}


SAME_CASES = [(name, jnp.float32) for name in sorted(JAX_SAME)] + [
    pytest.param(name, jnp.float64, marks=pytest.mark.float64, id=f"{name}-float64")
    for name in ("glorot_normal", "he_uniform", "normal", "orthogonal_column_0")
]


@pytest.mark.parametrize("name, dtype", SAME_CASES)
def test_jax_names_give_jax_samples(name, dtype):
    """The same algorithm as jax: the same samples for the same key, to rounding."""
    ours, theirs = JAX_SAME[name]
    shape = (3, 4, 7, 2)  # a receptive field of 12, in 3 and out 2 (or 4·7·2 rows, 3 columns)
    expected = theirs(FAST_KEY, shape, dtype)
    got = ours(FAST_KEY, shape, dtype)
    assert got.dtype == expected.dtype == dtype and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=4 * float(jnp.finfo(dtype).eps), atol=0)
    # Without a dtype: jax's default.
    assert ours(FAST_KEY, shape).dtype == theirs(FAST_KEY, shape).dtype


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "orthogonal"])
def test_jax_names_in_16_bit_are_jax_float32_samples_rounded(name):
    """jax draws bfloat16 samples in bfloat16 arithmetic (a coarser law: its truncated
    normal fails a KS test against the exact one); jopt draws in float32 and rounds once,
    so its bfloat16 sample is jax's float32 sample, correctly rounded."""
    ours, theirs = JAX_SAME[name]
    expected = theirs(FAST_KEY, (40, 25), jnp.float32).astype(jnp.bfloat16)
    np.testing.assert_array_equal(ours(FAST_KEY, (40, 25), jnp.bfloat16), expected)


JAX_NAMES = [
    "constant", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
    "lecun_uniform", "normal", "ones", "orthogonal", "truncated_normal", "uniform",
    "variance_scaling", "zeros",
]  # fmt: skip


@pytest.mark.parametrize("name", JAX_NAMES)
def test_jax_names_have_jax_signatures(name):
    """Every jax argument, with jax's default; jopt's additions are keyword-only."""
    ours = inspect.signature(getattr(init, name)).parameters
    theirs = inspect.signature(getattr(jax.nn.initializers, name)).parameters
    assert list(ours)[: len(theirs)] == list(theirs) or set(theirs) <= set(ours)
    for arg, p in theirs.items():
        assert arg in ours, arg
        assert ours[arg].default == p.default, arg
    for arg in set(ours) - set(theirs):
        assert ours[arg].kind is inspect.Parameter.KEYWORD_ONLY, arg


def test_out_sharding_is_honoured():
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((1,), ("x",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        for ours, theirs in (JAX_SAME["he_normal"], JAX_SAME["zeros"], JAX_SAME["orthogonal"]):
            w = ours(KEY, (4, 6), jnp.float32, out_sharding=P("x"))
            assert w.sharding.spec == P("x", None)
            if ours is not init.orthogonal:
                np.testing.assert_allclose(w, theirs(KEY, (4, 6), jnp.float32), rtol=1e-6)
        w = init.uniform_range()(KEY, (4, 6), jnp.bfloat16, out_sharding=P(None, "x"))
        assert w.sharding.spec == P(None, "x") and w.dtype == jnp.bfloat16


# ------------------------------------------------------------------------------ flax


def test_flax_dense_kernel_init():
    import flax.linen as nn

    layer = nn.Dense(300, kernel_init=init.xavier_uniform(), bias_init=init.torch_default_bias(400))
    params = layer.init(jax.random.PRNGKey(0), jnp.ones((1, 400)))["params"]
    kernel, bias = np.asarray(params["kernel"]), np.asarray(params["bias"])
    assert kernel.shape == (400, 300) and kernel.dtype == np.float32
    bound = math.sqrt(6 / (400 + 300))
    assert np.abs(kernel).max() <= bound * (1 + 1e-6) and np.abs(kernel).max() > 0.999 * bound
    assert abs(kernel.std() / (bound / math.sqrt(3)) - 1) <= 0.03
    assert np.abs(bias).max() <= 1 / 20 and np.abs(bias).max() > 0.04


def test_flax_conv_kernel_init_uses_hwio_fans():
    import flax.linen as nn

    layer = nn.Conv(64, (3, 3), kernel_init=init.kaiming_uniform(nonlinearity="relu"))
    params = layer.init(jax.random.PRNGKey(1), jnp.ones((1, 8, 8, 32)))["params"]
    kernel = np.asarray(params["kernel"])
    assert kernel.shape == (3, 3, 32, 64)
    bound = math.sqrt(2) * math.sqrt(3 / (9 * 32))  # fan_in = 3 * 3 * 32
    assert np.abs(kernel).max() <= bound * (1 + 1e-6) and np.abs(kernel).max() > 0.99 * bound
