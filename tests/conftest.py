"""Fixtures shared by the whole suite.

64-bit types are off, as for users: most tests see the float32 path that users run.
A test (or a module, with ``pytestmark``) marked ``float64`` runs with 64-bit types
enabled, for comparisons with float64 NumPy restatements at rtol 1e-10.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from support import make_nested_tree


@pytest.fixture(autouse=True)
def _float64_when_marked(request):
    if request.node.get_closest_marker("float64") is None:
        yield
        return
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def nested_tree(rng):
    """Float64 nested parameters: dict / list / tuple / 0-d leaves."""
    return make_nested_tree(rng)


class TraceCounter:
    """Counts how often a Python function is traced by ``jax.jit``."""

    def __init__(self):
        self.count = 0

    def wrap(self, fn):
        def counted(*args, **kwargs):
            self.count += 1
            return fn(*args, **kwargs)

        return counted


@pytest.fixture
def trace_counter() -> TraceCounter:
    return TraceCounter()
