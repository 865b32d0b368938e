"""The optimizers, and the registry every tool loops over.

:data:`ALL` maps each optimizer's name to its factory, in a fixed order; the test
suite, ``python -m jopt``, the notebooks, the docs and the benchmarks all iterate over
it.  :data:`DEMO_LEARNING_RATES` holds the learning rate each one uses in the demos
(the digits MLP of ``python -m jopt``): a conventional rate, not tuned on the task.

Adding an optimizer: write its block in :mod:`jopt.transforms`, its alias in a module
here, and one line in ``_REGISTRY`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from jopt._core import GradientTransformation
from jopt.optimizers._lecture import (
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    momentum,
    nesterov,
    rmsprop,
    sgd,
)
from jopt.optimizers._tuning_free import prodigy, schedule_free_adamw, schedule_free_sgd

# (name, factory, demo learning rate).  The papers' defaults for the adaptive methods,
# 0.1 for SGD, and momentum and Nesterov at 0.01 with γ = 0.9: the same effective step
# η/(1 − γ) = 0.1 as SGD.
_REGISTRY: tuple[tuple[str, Callable[..., GradientTransformation], float], ...] = (
    ("sgd", sgd, 0.1),
    ("momentum", momentum, 0.01),
    ("nesterov", nesterov, 0.01),
    ("adagrad", adagrad, 0.01),
    ("adadelta", adadelta, 1.0),
    ("rmsprop", rmsprop, 1e-3),
    ("adam", adam, 1e-3),
    ("adamax", adamax, 2e-3),
    ("adamw", adamw, 1e-3),
    ("schedule_free_adamw", schedule_free_adamw, 2.5e-3),
    ("schedule_free_sgd", schedule_free_sgd, 1.0),
    ("prodigy", prodigy, 1.0),
)

ALL: Mapping[str, Callable[..., GradientTransformation]] = MappingProxyType(
    {name: factory for name, factory, _ in _REGISTRY}
)
"""Every optimizer, ``name -> factory``, in registry order (read-only)."""

DEMO_LEARNING_RATES: Mapping[str, float] = MappingProxyType(
    {name: rate for name, _, rate in _REGISTRY}
)
"""The learning rate each optimizer uses in the demos, ``name -> η`` (read-only)."""

__all__ = [*ALL, "ALL", "DEMO_LEARNING_RATES"]
