"""Tests for jopt.initializers: the distributions, against their formulas.

Expected values are restated independently in this file: closed-form bounds and standard
deviations written from the formulas, and scipy.stats distributions for the goodness-of-fit
tests (the orthogonal initializer's entries included).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from initializer_support import FAST_KEY, KEY, KS_ALPHA, N_MIN, ks_pvalue, tn_std
from scipy import stats

from jopt import initializers as init

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
