"""Tests for jopt.initializers.

Expected values are restated independently in this file: closed-form bounds and standard
deviations written from the formulas, scipy.stats distributions for the goodness-of-fit
tests, and the lecture's variance arguments run on deep MLPs built here.  The names jopt
shares with ``jax.nn.initializers`` are compared with jax live: the same signature and
defaults, and the same samples for the same key.
"""

from __future__ import annotations

import inspect
import math
import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jopt import initializers as init

KEY = jax.random.key(20240601)
# The heavier statistical tests use the "rbg" key implementation: the initializers do not
# depend on the key's implementation, and it compiles about twice as fast as threefry on CPU,
# which keeps the suite quick. The default threefry and legacy keys are tested below as well.
FAST_KEY = jax.random.key(20240601, impl="rbg")
N_MIN = 100_000
# Kolmogorov-Smirnov significance level. The keys are fixed, so each test is deterministic;
# a small level keeps a correct initializer from failing on an unlucky key while a 5% error
# in the scale is still rejected (see test_ks_test_detects_a_wrong_scale).
KS_ALPHA = 1e-4


def tn_std(lower: float, upper: float) -> float:
    """Standard deviation of a standard normal truncated to [lower, upper], from scipy."""
    return float(stats.truncnorm(lower, upper).std())


# ------------------------------------------------------------------ distribution table
# Each case: (initializer, shape, target scipy distribution, (lowest, highest) allowed value).
# The targets are written from the formulas in the issue, never from jopt's own code.


def _uniform(bound):
    return stats.uniform(loc=-bound, scale=2 * bound), (-bound, bound)


def _normal(std, mean=0.0):
    return stats.norm(loc=mean, scale=std), (-np.inf, np.inf)


def _vs_truncated(target_std):
    # Normal cut at +-2 of its own std, widened so the variance after the cut is the target.
    s = target_std / tn_std(-2.0, 2.0)
    return stats.truncnorm(-2.0, 2.0, scale=s), (-2.0 * s, 2.0 * s)


def _cases():
    sqrt = math.sqrt
    yield "normal_default", init.normal(), (400, 250), *_normal(0.01)
    yield "normal_mean", init.normal(0.05, mean=0.3), (400, 250), *_normal(0.05, 0.3)
    # jax's uniform(scale): [0, scale).
    yield (
        "uniform_default",
        init.uniform(),
        (400, 250),
        stats.uniform(loc=0.0, scale=0.01),
        (0.0, 0.01),
    )
    yield (
        "uniform_range_asym",
        init.uniform_range(-0.2, high=0.5),
        (100_000,),
        stats.uniform(loc=-0.2, scale=0.7),
        (-0.2, 0.5),
    )
    yield (
        "truncated_normal_default",
        init.truncated_normal(),
        (400, 250),
        stats.truncnorm(-2.0, 2.0, scale=0.01),
        (-0.02, 0.02),
    )
    yield (
        "truncated_normal_asym",
        init.truncated_normal(0.5, lower=-1.0, upper=3.0),
        (400, 250),
        stats.truncnorm(-1.0, 3.0, scale=0.5),
        (-0.5, 1.5),
    )
    # torch's names: untruncated normals, gains.  Dense (in, out) = (400, 250).
    yield "xavier_uniform", init.xavier_uniform(), (400, 250), *_uniform(sqrt(6 / 650))
    # HWIO (3, 3, 96, 128): fan_in 864, fan_out 1152.
    yield (
        "xavier_uniform_gain_hwio",
        init.xavier_uniform(5 / 3),
        (3, 3, 96, 128),
        *_uniform(5 / 3 * sqrt(6 / (864 + 1152))),
    )
    # Torch layout (out, in, kh, kw) = (128, 96, 3, 3): the same fans.
    yield (
        "xavier_normal_gain_torch",
        init.xavier_normal(2.0, in_axis=1, out_axis=0),
        (128, 96, 3, 3),
        *_normal(2.0 * sqrt(2 / (864 + 1152))),
    )
    yield "xavier_normal", init.xavier_normal(), (400, 250), *_normal(sqrt(2 / 650))
    # Default a=0 leaky_relu is ReLU's gain sqrt(2): bound sqrt(2) * sqrt(3 / 400).
    yield "kaiming_uniform", init.kaiming_uniform(), (400, 250), *_uniform(sqrt(2) * sqrt(3 / 400))
    # torch's default: kaiming_uniform(a=sqrt(5)) in (out, in) layout is U(+-1/sqrt(fan_in)).
    yield (
        "kaiming_uniform_torch_default",
        init.kaiming_uniform(sqrt(5), in_axis=1, out_axis=0),
        (250, 400),
        *_uniform(1 / sqrt(400)),
    )
    yield (
        "kaiming_uniform_tanh_fan_out",
        init.kaiming_uniform(mode="fan_out", nonlinearity="tanh"),
        (400, 250),
        *_uniform(5 / 3 * sqrt(3 / 250)),
    )
    yield (
        "kaiming_normal_relu_fan_out",
        init.kaiming_normal(mode="fan_out", nonlinearity="relu"),
        (400, 250),
        *_normal(sqrt(2) / sqrt(250)),
    )
    # Conv1d WIO (5, 80, 256): fan_in 400; leaky slope 0.2.
    yield (
        "kaiming_normal_leaky_conv1d",
        init.kaiming_normal(0.2),
        (5, 80, 256),
        *_normal(sqrt(2 / (1 + 0.2**2)) / sqrt(400)),
    )
    yield (
        "kaiming_normal_selu",
        init.kaiming_normal(nonlinearity="selu"),
        (400, 250),
        *_normal(0.75 / sqrt(400)),
    )
    # jax's names: truncated normals, no gains.
    yield "glorot_uniform", init.glorot_uniform(), (400, 250), *_uniform(sqrt(6 / 650))
    yield "glorot_normal", init.glorot_normal(), (400, 250), *_vs_truncated(sqrt(2 / 650))
    yield "he_uniform", init.he_uniform(), (400, 250), *_uniform(sqrt(6 / 400))
    yield (
        "he_normal_conv1d",
        init.he_normal(),
        (5, 80, 256),
        *_vs_truncated(sqrt(2 / 400)),
    )
    yield "lecun_normal", init.lecun_normal(), (400, 250), *_vs_truncated(1 / sqrt(400))
    yield "lecun_uniform", init.lecun_uniform(), (400, 250), *_uniform(sqrt(3 / 400))
    # Batch axis 0 of (4, 200, 150): fans 200 and 150, fan_avg 175.
    yield (
        "variance_scaling_truncated_batch",
        init.variance_scaling(2.0, "fan_avg", "truncated_normal", batch_axis=0),
        (4, 200, 150),
        *_vs_truncated(sqrt(2.0 / 175)),
    )
    # Conv3d DHWIO (3, 3, 3, 32, 128): fan_out = 27 * 128.
    yield (
        "variance_scaling_uniform_conv3d",
        init.variance_scaling(0.5, "fan_out", "uniform"),
        (3, 3, 3, 32, 128),
        *_uniform(sqrt(3 * 0.5 / (27 * 128))),
    )
    yield (
        "variance_scaling_normal_geo_avg",
        init.variance_scaling(3.0, "fan_geo_avg", "normal", in_axis=0, out_axis=1),
        (400, 250),
        *_normal(sqrt(3.0 / sqrt(400 * 250))),
    )
    # torch Conv2d(64 -> 256, 3x3) weight (256, 64, 3, 3): fan_in 576.
    yield (
        "torch_default_kernel",
        init.torch_default_kernel(in_axis=1, out_axis=0),
        (256, 64, 3, 3),
        *_uniform(1 / 24),
    )
    yield "torch_default_bias", init.torch_default_bias(400), (100_000,), *_uniform(1 / 20)


CASES = list(_cases())


def ks_pvalue(samples: np.ndarray, dist) -> float:
    return float(stats.kstest(samples, dist.cdf).pvalue)


@pytest.mark.parametrize(
    "initializer, shape, dist, bounds", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_statistics_match_formula(initializer, shape, dist, bounds):
    w = initializer(FAST_KEY, shape)
    assert w.shape == shape and w.dtype == jnp.float32
    x = np.asarray(w, np.float64).ravel()
    assert x.size >= N_MIN
    mean, std = float(dist.mean()), float(dist.std())
    assert abs(x.mean() - mean) <= 0.03 * std
    assert abs(x.std() / std - 1) <= 0.03
    lo, hi = bounds
    tol = 1e-6 * max(abs(lo) if np.isfinite(lo) else 0, abs(hi) if np.isfinite(hi) else 0)
    assert x.min() >= lo - tol and x.max() <= hi + tol
    if dist.dist.name == "uniform":  # and the samples must come close to both ends
        assert x.min() <= lo + 1e-3 * (hi - lo) and x.max() >= hi - 1e-3 * (hi - lo)
    assert ks_pvalue(x, dist) > KS_ALPHA


def test_ks_test_detects_a_wrong_scale():
    """The goodness-of-fit check has the power to reject a 5% error in the scale."""
    x = np.asarray(init.xavier_uniform()(FAST_KEY, (400, 250)), np.float64).ravel()
    bound = math.sqrt(6 / 650)
    assert ks_pvalue(x, stats.uniform(-bound, 2 * bound)) > KS_ALPHA
    assert ks_pvalue(x, stats.uniform(-1.05 * bound, 2.1 * bound)) < 1e-10
    x = np.asarray(init.kaiming_normal()(FAST_KEY, (400, 250)), np.float64).ravel()
    assert ks_pvalue(x, stats.norm(scale=math.sqrt(2 / 400))) > KS_ALPHA
    assert ks_pvalue(x, stats.norm(scale=1.05 * math.sqrt(2 / 400))) < 1e-10
    # ... and to tell a truncated normal from an untruncated one of the same variance.
    truncated = np.asarray(init.he_normal()(FAST_KEY, (400, 250)), np.float64).ravel()
    assert ks_pvalue(truncated, stats.norm(scale=math.sqrt(2 / 400))) < 1e-10
    # lecun_normal without the 0.8796 correction (the truncated variance) is rejected too.
    x = np.asarray(init.lecun_normal()(FAST_KEY, (400, 250)), np.float64).ravel()
    assert ks_pvalue(x, stats.truncnorm(-2, 2, scale=1 / 20)) < 1e-10


def test_truncated_normal_matches_torch_absolute_cutoffs():
    # torch: trunc_normal_(w, std=0.02, a=-0.03, b=0.05) (absolute cut-offs).
    std, a, b = 0.02, -0.03, 0.05
    f = init.truncated_normal(std, lower=a / std, upper=b / std)
    x = np.asarray(f(FAST_KEY, (400, 250)), np.float64).ravel()
    assert x.min() >= a * (1 + 1e-6) and x.max() <= b * (1 + 1e-6)
    assert ks_pvalue(x, stats.truncnorm(a / std, b / std, scale=std)) > KS_ALPHA


def test_lecun_normal_correction_constant():
    assert tn_std(-2.0, 2.0) == pytest.approx(0.87962566103423978, rel=1e-12)


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


# ------------------------------------------------------------------------- orthogonal


@pytest.mark.parametrize(
    "shape, kwargs, out_axis",
    [
        ((300, 100), {}, -1),  # tall: orthonormal columns
        ((100, 300), {}, -1),  # wide: orthonormal rows
        ((3, 3, 16, 32), {}, -1),  # HWIO: a (144, 32) matrix
        ((32, 16, 3, 3), {"column_axis": 0}, 0),  # torch layout: (144, 32) too
        ((3, 3, 2, 32), {}, -1),  # (18, 32): wide
    ],
)
def test_orthogonal_is_orthogonal(shape, kwargs, out_axis):
    gain = 2.0
    w = np.asarray(init.orthogonal(gain, **kwargs)(FAST_KEY, shape), np.float64)
    m = np.moveaxis(w, out_axis, -1).reshape(-1, shape[out_axis])
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-5 * gain**2)


@pytest.mark.float64
def test_orthogonal_batch_axis_gives_independent_matrices():
    w = np.asarray(init.orthogonal(batch_axis=0)(FAST_KEY, (4, 64, 32), jnp.float64))
    for i in range(4):
        np.testing.assert_allclose(w[i].T @ w[i], np.eye(32), atol=1e-12)
    assert not np.allclose(w[0], w[1])


def test_orthogonal_statistics_and_haar():
    # Entries of a uniformly random orthonormal column of length n: x^2 ~ Beta(1/2, (n-1)/2).
    n, m, gain = 400, 250, 1.5
    x = np.asarray(init.orthogonal(gain)(FAST_KEY, (n, m)), np.float64).ravel()
    assert x.size >= N_MIN
    assert abs(x.std() / (gain / math.sqrt(n)) - 1) <= 0.03
    assert abs(x.mean()) <= 0.03 * gain / math.sqrt(n)
    beta = stats.beta(0.5, (n - 1) / 2)

    def cdf(v):
        return 0.5 + 0.5 * np.sign(v) * beta.cdf((v / gain) ** 2)

    assert float(stats.kstest(x, cdf).pvalue) > KS_ALPHA
    # Haar: no preferred sign on the diagonal (a bare QR gives E[Q_ii] of about -0.07 here).
    keys = jax.random.split(KEY, 100)
    diag = jax.jit(jax.vmap(lambda k: jnp.diagonal(init.orthogonal()(k, (64, 64)))))(keys)
    assert abs(float(diag.mean())) < 0.01  # 6 standard errors of the mean


# ---------------------------------------------------------------- the lecture's claims


def _mlp_forward(params, x):
    hidden = []
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
        hidden.append(x)
    w, b = params[-1]
    return x @ w + b, hidden


def _mlp_loss(params, x, y):
    return jnp.mean((_mlp_forward(params, x)[0] - y) ** 2)


@jax.jit
def _gd_steps(params, x, y):
    """25 steps of plain gradient descent, lr 0.1, on the mean squared error."""

    def step(p, _):
        grads = jax.grad(_mlp_loss)(p, x, y)
        return jax.tree.map(lambda a, g: a - 0.1 * g, p, grads), None

    trained, _ = jax.lax.scan(step, params, None, length=25)
    return trained, _mlp_loss(params, x, y), _mlp_loss(trained, x, y), _mlp_forward(trained, x)[1]


def _train(kernel_init):
    """A 4-16-16-1 tanh MLP with zero biases, fitted to a smooth target."""
    sizes = [4, 16, 16, 1]
    keys = jax.random.split(jax.random.key(7), len(sizes))
    params = [
        (kernel_init(k, (n_in, n_out), jnp.float64), jnp.zeros(n_out, jnp.float64))
        for k, n_in, n_out in zip(keys[:-1], sizes[:-1], sizes[1:], strict=True)
    ]
    x = jax.random.normal(keys[-1], (64, 4), jnp.float64)
    y = jnp.sin(x @ jnp.array([1.0, -2.0, 0.5, 1.5]))[:, None]
    trained, loss0, loss1, hidden = _gd_steps(params, x, y)
    return params, trained, hidden, float(loss0), float(loss1)


def _unit_spread(h):
    """Largest difference between any hidden unit and the first one, over the data."""
    return float(jnp.max(jnp.abs(h - h[:, :1])))


@pytest.mark.float64
def test_zero_init_keeps_hidden_units_identical():
    _, trained, hidden, loss0, loss1 = _train(init.zeros)
    assert loss1 < loss0  # training did something (the output bias learns the mean)
    for h in hidden:
        assert _unit_spread(h) == 0.0
    # With W = 0 the gradient W^T dL/dz reaching the layers below is zero: they never move.
    for w, b in trained[:-1]:
        assert float(jnp.max(jnp.abs(w))) == 0.0 and float(jnp.max(jnp.abs(b))) == 0.0


@pytest.mark.float64
def test_constant_init_units_move_but_stay_identical():
    initial, trained, hidden, loss0, loss1 = _train(init.constant(0.1))
    assert loss1 < loss0
    assert float(jnp.max(jnp.abs(trained[0][0] - initial[0][0]))) > 1e-3  # weights do move
    for h in hidden:
        assert _unit_spread(h) <= 1e-12 * float(jnp.max(jnp.abs(h)))
    for w, b in trained[:-1]:  # but every unit (column) keeps the same weights and bias
        assert float(jnp.max(jnp.abs(w - w[:, :1]))) <= 1e-12
        assert float(jnp.max(jnp.abs(b - b[0]))) <= 1e-12


@pytest.mark.float64
def test_xavier_breaks_symmetry():
    _, _, hidden, loss0, loss1 = _train(init.xavier_uniform())
    assert loss1 < loss0
    for h in hidden:
        spreads = jnp.max(jnp.abs(h[:, 1:] - h[:, :1]), axis=0)  # each unit against unit 0
        assert float(jnp.min(spreads)) > 1e-2


DEPTH = 30


@partial(jax.jit, static_argnums=(0, 1, 2))
def _deep_mlp(kernel_init, act, width, net_keys, x):
    """Runs x through DEPTH square layers `act(a @ W)` for each network key.

    Returns E[a_l^2] for l = 1..DEPTH averaged over the networks (the expectation over the
    weights that the lecture's derivation takes), and the last activations of network 0.
    """

    def one_network(net_key):
        def layer(a, k):
            a = act(a @ kernel_init(k, (width, width), jnp.float32))
            return a, jnp.mean(a**2)

        return jax.lax.scan(layer, x, jax.random.split(net_key, DEPTH))

    last, moments = jax.vmap(one_network)(net_keys)
    return jnp.mean(moments, axis=0), last[0]


def _run_deep(kernel_init, act, *, width=512, batch=256, n_nets=1, input_std=1.0):
    """Second moments relative to the input's E[x^2], and the last layer's activations."""
    x = input_std * jax.random.normal(jax.random.key(11), (batch, width), jnp.float32)
    keys = jax.random.split(jax.random.key(12, impl="rbg"), n_nets)
    moments, last = _deep_mlp(kernel_init, act, width, keys, x)
    return np.asarray(moments, np.float64) / float(jnp.mean(x**2)), np.asarray(last)


def test_tanh_xavier_keeps_variance():
    # The lecture's derivation assumes the linear regime of tanh (small inputs), where
    # Var(a[l]) = n Var(W) Var(a[l-1]) and Xavier's n Var(W) = 1 keeps it.
    r, last = _run_deep(init.xavier_uniform(), jnp.tanh, input_std=0.1)
    assert r.min() >= 0.5 and r.max() <= 2.0
    assert np.mean(np.abs(last) > 0.99) == 0.0  # nowhere near saturation


def test_tanh_small_normal_vanishes():
    # normal(0.01) at width 512: n Var(W) = 0.0512 per layer.
    r, _ = _run_deep(init.normal(0.01), jnp.tanh, input_std=0.1)
    assert r[-1] < 1e-3
    assert r[1] < 0.01  # already gone after two layers (0.0512**2 = 0.0026)


def test_tanh_large_scale_saturates():
    # normal(1.0) at width 512: n Var(W) = 512, the pre-activations are huge.
    _, last = _run_deep(init.normal(1.0), jnp.tanh, input_std=0.1)
    assert np.mean(np.abs(last) > 0.99) > 0.9


def test_relu_he_keeps_second_moment():
    # He: Var(y_l) = n Var(W) E[x_{l-1}^2] = 2 E[x_{l-1}^2] and E[relu(y)^2] = Var(y) / 2,
    # so E[a_l^2] = E[x^2] in expectation over the weights (averaged over 8 networks).
    he = init.kaiming_uniform(nonlinearity="relu")
    r, _ = _run_deep(he, jax.nn.relu, batch=64, n_nets=8)
    assert r.min() >= 0.5 and r.max() <= 2.0


def test_relu_xavier_shrinks_by_orders_of_magnitude():
    # Xavier on square layers: n Var(W) = 1, so each ReLU halves E[a^2]: 2**-30 after 30.
    r, _ = _run_deep(init.xavier_uniform(), jax.nn.relu, batch=64, n_nets=4)
    assert r[-1] < 1e-6
    assert 2.0**-30 / 3 < r[-1] < 3 * 2.0**-30


def test_relu_too_large_explodes():
    # variance_scaling(8) instead of He's 2: E[a^2] is multiplied by 4 in every layer.
    r, _ = _run_deep(init.variance_scaling(8.0, "fan_in", "uniform"), jax.nn.relu, batch=64)
    assert r[9] > 0.2 * 4.0**10
    assert r[-1] > 1e15


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
