"""Tests for jopt.initializers: the initializer protocol.

Constants, zero-size shapes, determinism by key (new-style and legacy keys), jit and vmap
over keys, every floating dtype, and bad input failing with a message that names it.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from initializer_support import FAST_KEY, KEY, tn_std

from jopt import initializers as init

# ------------------------------------------------------------------------ simple ones


@pytest.mark.float64
def test_zeros_ones_constant_values():
    for dt in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        z = init.zeros(KEY, (3, 4), dt)
        o = init.ones(KEY, (3, 4), dt)
        c = init.constant(-0.25)(KEY, (2, 5), dt)
        assert z.dtype == o.dtype == c.dtype == dt
        np.testing.assert_array_equal(np.asarray(z, np.float64), np.zeros((3, 4)))
        np.testing.assert_array_equal(np.asarray(o, np.float64), np.ones((3, 4)))
        np.testing.assert_array_equal(np.asarray(c, np.float64), np.full((2, 5), -0.25))
    row = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(init.constant(row)(KEY, (2, 3)), np.tile(row, (2, 1)))
    # jax's default dtype: float64 with 64-bit types on (as here), float32 otherwise.
    assert init.zeros(KEY, (2,)).dtype == jax.nn.initializers.zeros(KEY, (2,)).dtype
    assert init.zeros(KEY, (2,)).dtype == jnp.float64
    assert init.constant(1.0, dtype=jnp.bfloat16)(KEY, (2,)).dtype == jnp.bfloat16


def test_zero_size_shapes():
    for f in (init.xavier_uniform(), init.kaiming_normal(), init.lecun_normal(), init.orthogonal()):
        for shape in ((0, 5), (3, 3, 0, 4), (0, 4, 4)):
            w = f(KEY, shape)
            assert w.shape == shape and w.dtype == jnp.float32


# ----------------------------------------------------------- determinism, jit, vmap, dtypes

# One initializer per code path (the fan-based ones all end in variance_scaling, whose three
# distributions are covered by xavier_uniform, kaiming_normal and lecun_normal).
PROTOCOL_INITS = {
    "zeros": init.zeros,
    "constant": init.constant(0.5),
    "uniform": init.uniform(),
    "uniform_range": init.uniform_range(),
    "xavier_uniform": init.xavier_uniform(),
    "kaiming_normal": init.kaiming_normal(),
    "lecun_normal": init.lecun_normal(),
    "orthogonal": init.orthogonal(),
}
RANDOM = [name for name in PROTOCOL_INITS if name not in ("zeros", "constant")]
SHAPE = (12, 6)


@pytest.mark.parametrize("name", RANDOM)
def test_determinism_by_key(name):
    f = PROTOCOL_INITS[name]
    np.testing.assert_array_equal(f(KEY, SHAPE), f(KEY, SHAPE))
    k1, k2 = jax.random.split(KEY)
    a, b = np.asarray(f(k1, SHAPE)), np.asarray(f(k2, SHAPE))
    assert np.mean(a == b) < 0.05


@pytest.mark.parametrize("name", ["uniform_range", "xavier_uniform", "orthogonal"])
def test_legacy_uint32_keys(name):
    f = PROTOCOL_INITS[name]  # flax passes jax.random.PRNGKey keys
    k1, k2 = jax.random.PRNGKey(3), jax.random.PRNGKey(4)
    np.testing.assert_array_equal(f(k1, SHAPE), f(k1, SHAPE))
    assert np.mean(np.asarray(f(k1, SHAPE)) == np.asarray(f(k2, SHAPE))) < 0.05


@pytest.mark.parametrize(
    "name", ["zeros", "xavier_uniform", "kaiming_normal", "lecun_normal", "orthogonal"]
)
def test_jit_and_vmap_over_keys(name, trace_counter):
    f = PROTOCOL_INITS[name]
    keys = jax.random.split(KEY, 3)
    # Shape and dtype static, keys traced and batched.
    batched = jax.jit(
        jax.vmap(trace_counter.wrap(f), in_axes=(0, None, None)), static_argnums=(1, 2)
    )
    out = batched(keys, SHAPE, jnp.float32)
    assert out.shape == (3, *SHAPE) and out.dtype == jnp.float32
    for i in range(3):
        np.testing.assert_allclose(out[i], f(keys[i], SHAPE), rtol=1e-6, atol=1e-7)
    batched(keys, SHAPE, jnp.float32)
    assert trace_counter.count == 1  # traced once per (shape, dtype), not once per call


DTYPES = [
    jnp.bfloat16,
    jnp.float16,
    jnp.float32,
    pytest.param(jnp.float64, marks=pytest.mark.float64),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["bfloat16", "float16", "float32", "float64"])
@pytest.mark.parametrize(
    "name, initializer, shape, std, bound",
    [
        ("normal", init.normal(0.05), (256, 400), 0.05, None),
        (
            "xavier_uniform",
            init.xavier_uniform(),
            (256, 400),
            math.sqrt(2 / 656),
            math.sqrt(6 / 656),
        ),
        (
            "lecun_normal",
            init.lecun_normal(),
            (256, 400),
            math.sqrt(1 / 256),
            2 / 16 / tn_std(-2.0, 2.0),  # the +-2 cut of a normal widened to std 1/16
        ),
        # (100, 160) is wide: 100 orthonormal rows of length 160, times 1.5.
        ("orthogonal", init.orthogonal(1.5), (100, 160), 1.5 / math.sqrt(160), None),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_dtypes(name, initializer, shape, std, bound, dtype):
    w = initializer(FAST_KEY, shape, dtype)
    assert w.dtype == dtype and w.shape == shape
    x = np.asarray(w, np.float64)
    assert np.isfinite(x).all()
    assert abs(x.std() / std - 1) <= 0.03
    assert abs(x.mean()) <= 0.03 * std
    if bound is not None:
        assert np.abs(x).max() <= bound * (1 + float(jnp.finfo(dtype).eps))
    if jnp.dtype(dtype).itemsize < 4:
        # A 16-bit result is the float32 one rounded: same key, same values.
        ref = np.asarray(initializer(FAST_KEY, shape, jnp.float32), np.float64)
        tiny = float(jnp.finfo(dtype).smallest_subnormal)  # f16 has subnormals near 1e-5
        np.testing.assert_allclose(x, ref, rtol=float(jnp.finfo(dtype).eps), atol=tiny)


# ----------------------------------------------------------------------- bad inputs

BAD_INPUTS = [
    ("1-d shape", lambda: init.xavier_uniform()(KEY, (5,)), ValueError, "shape=(5,)"),
    ("0-d shape", lambda: init.kaiming_normal()(KEY, ()), ValueError, "shape=()"),
    ("int shape", lambda: init.lecun_uniform()(KEY, 7), ValueError, "shape=(7,)"),
    ("0-d orthogonal", lambda: init.orthogonal()(KEY, ()), ValueError, "shape=()"),
    ("negative dim", lambda: init.uniform()(KEY, (3, -1)), ValueError, "shape[1]"),
    ("float dim", lambda: init.uniform()(KEY, (3, 2.0)), TypeError, "shape[1]"),
    ("string shape", lambda: init.uniform()(KEY, "3"), TypeError, "shape"),
    ("gain name", lambda: init.calculate_gain("softplus"), ValueError, "nonlinearity"),
    ("gain type", lambda: init.calculate_gain(3), TypeError, "nonlinearity"),
    ("kaiming nonlin", lambda: init.kaiming_uniform(nonlinearity="gelu"), ValueError,
     "nonlinearity"),
    ("mode", lambda: init.variance_scaling(1.0, "fan_sum", "normal"), ValueError, "mode"),
    ("kaiming mode", lambda: init.kaiming_normal(mode="fan_avg"), ValueError, "mode"),
    ("distribution", lambda: init.variance_scaling(1.0, "fan_in", "cauchy"), ValueError,
     "distribution"),
    ("scale", lambda: init.variance_scaling(-2.0, "fan_in", "normal"), ValueError, "scale"),
    ("scale type", lambda: init.variance_scaling("2", "fan_in", "normal"), TypeError, "scale"),
    ("stddev", lambda: init.normal(stddev=-0.1), ValueError, "stddev"),
    ("stddev nan", lambda: init.normal(stddev=float("nan")), ValueError, "stddev"),
    ("stddev type", lambda: init.normal(stddev="wide"), TypeError, "stddev"),
    ("trunc stddev", lambda: init.truncated_normal(stddev=-1.0), ValueError, "stddev"),
    ("uniform scale", lambda: init.uniform(-1.0), ValueError, "scale"),
    ("xavier gain", lambda: init.xavier_normal(gain=-1.0), ValueError, "gain"),
    ("ortho scale", lambda: init.orthogonal(scale=-0.5), ValueError, "scale"),
    ("ortho column", lambda: init.orthogonal(column_axis=2)(KEY, (3, 4)), ValueError,
     "column_axis"),
    ("ortho column type", lambda: init.orthogonal(column_axis=1.0), TypeError, "column_axis"),
    ("low > high", lambda: init.uniform_range(low=0.5, high=-0.5), ValueError,
     "low=0.5, high=-0.5"),
    ("low == high", lambda: init.uniform_range(low=1.0, high=1.0), ValueError, "low=1.0, high=1.0"),
    ("lower > upper", lambda: init.truncated_normal(lower=2.0, upper=-2.0), ValueError,
     "lower=2.0"),
    ("int dtype", lambda: init.normal()(KEY, (3, 3), jnp.int32), ValueError, "dtype"),
    ("complex dtype", lambda: init.xavier_uniform()(KEY, (3, 3), jnp.complex64), ValueError,
     "dtype"),
    ("zeros uint8", lambda: init.zeros(KEY, (3,), jnp.uint8), ValueError, "dtype"),
    ("dtype name", lambda: init.ones(KEY, (3,), "not-a-dtype"), TypeError, "dtype"),
    ("factory dtype", lambda: init.he_normal(dtype=jnp.int8), ValueError, "dtype"),
    ("in_axis range", lambda: init.compute_fans((3, 4), in_axis=2), ValueError, "in_axis=2"),
    ("same axis", lambda: init.compute_fans((3, 4), in_axis=0, out_axis=0), ValueError,
     "out_axis=0"),
    ("batch overlap", lambda: init.compute_fans((3, 3, 4, 5), batch_axis=-1), ValueError,
     "batch_axis=-1"),
    ("out_axis range", lambda: init.kaiming_uniform(out_axis=-4)(KEY, (4, 4, 4)), ValueError,
     "out_axis=-4"),
    ("axis type", lambda: init.lecun_normal(in_axis="0"), TypeError, "in_axis"),
    ("axis item type", lambda: init.lecun_normal(in_axis=(0, 1.0)), TypeError, "in_axis[1]"),
    ("leaky param", lambda: init.calculate_gain("leaky_relu", param="x"), TypeError, "param"),
    ("kaiming a", lambda: init.kaiming_uniform(a="big"), TypeError, "a"),
    ("bias fan_in", lambda: init.torch_default_bias(0), ValueError, "fan_in"),
    ("bias fan_in type", lambda: init.torch_default_bias(4.0), TypeError, "fan_in"),
    ("constant shape", lambda: init.constant(np.ones(3))(KEY, (2, 2)), ValueError, "value"),
    ("constant type", lambda: init.constant("one"), TypeError, "value"),
    ("positional dtype", lambda: init.normal(0.1, jnp.float32), TypeError, "positional"),
    ("positional axes", lambda: init.he_normal(-2, -1), TypeError, "positional"),
]  # fmt: skip


@pytest.mark.parametrize(
    "make, error, message", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_fails_naming_it(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()
