"""The optimizers, and the registry every tool loops over.

[`ALL`][jopt.optimizers.ALL] maps each optimizer's name to its factory, in a fixed
order; the test suite, ``python -m jopt``, the notebooks, the docs and the benchmarks
all iterate over it.  [`DEMO_LEARNING_RATES`][jopt.optimizers.DEMO_LEARNING_RATES]
holds the learning rate each one uses in the demos (the digits MLP of
``python -m jopt``): a conventional rate, not tuned on the task.

Every optimizer is also a top-level name: ``jopt.adam is jopt.optimizers.adam``.
Adding an optimizer: write its block in [`jopt.transforms`][jopt.transforms], its alias
in a module here, and one line in ``_REGISTRY`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from jopt._core import GradientTransformation
from jopt.optimizers._adam_like import adabelief, ademamix, adopt
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
from jopt.optimizers._modern import lamb, lars, lion
from jopt.optimizers._muon import muon
from jopt.optimizers._quasi_newton import lbfgs
from jopt.optimizers._soap import soap
from jopt.optimizers._torch import adafactor, asgd, nadam, radam, rprop
from jopt.optimizers._tuning_free import prodigy, schedule_free_adamw, schedule_free_sgd

# (name, factory, demo learning rate).  The papers' defaults for the adaptive methods,
# 0.1 for SGD, and momentum and Nesterov at 0.01 with γ = 0.9: the same effective step
# η/(1 − γ) = 0.1 as SGD.  Lion: AdamW's rate divided by 3 (Chen et al. advise 3–10×
# smaller).  LAMB: its default.  LARS: η = 1 with trust coefficient 1e-3 moves each
# layer by about 1e-3·‖θ‖/(1 − μ) per step (the paper's global rates are 2 to 30).
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
    ("lion", lion, 3e-4),
    ("lamb", lamb, 1e-3),
    ("lars", lars, 1.0),
    ("adabelief", adabelief, 1e-3),
    ("adopt", adopt, 1e-3),
    ("ademamix", ademamix, 1e-3),
    ("muon", muon, 0.02),
    ("nadam", nadam, 2e-3),
    ("radam", radam, 1e-3),
    ("asgd", asgd, 1e-2),
    ("rprop", rprop, 1e-2),
    ("adafactor", adafactor, 1e-2),
    ("soap", soap, 3e-3),
    ("schedule_free_adamw", schedule_free_adamw, 2.5e-3),
    ("schedule_free_sgd", schedule_free_sgd, 1.0),
    ("prodigy", prodigy, 1.0),
    ("lbfgs", lbfgs, 1.0),
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
