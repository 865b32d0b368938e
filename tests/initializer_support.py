"""Keys, sample sizes and statistics shared by the initializer tests."""

from __future__ import annotations

import jax
import numpy as np
from scipy import stats

KEY = jax.random.key(20240601)
# The heavier statistical tests use the "rbg" key implementation: the initializers do not
# depend on the key's implementation, and it compiles about twice as fast as threefry on CPU,
# which keeps the suite quick. The default threefry and legacy keys are tested as well
# (test_initializers_protocol.py).
FAST_KEY = jax.random.key(20240601, impl="rbg")
N_MIN = 100_000
# Kolmogorov-Smirnov significance level. The keys are fixed, so each test is deterministic;
# a small level keeps a correct initializer from failing on an unlucky key while a 5% error
# in the scale is still rejected (see test_ks_test_detects_a_wrong_scale).
KS_ALPHA = 1e-4


def tn_std(lower: float, upper: float) -> float:
    """Standard deviation of a standard normal truncated to [lower, upper], from scipy."""
    return float(stats.truncnorm(lower, upper).std())


def ks_pvalue(samples: np.ndarray, dist) -> float:
    return float(stats.kstest(samples, dist.cdf).pvalue)
