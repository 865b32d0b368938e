"""Which optimizers the lecture shows, under which names, at which learning rate.

Every optimizer comes from the registry, [`jopt.optimizers.ALL`][jopt.optimizers.ALL]; this module
only says which of them the lecture's outline covers (``LECTURE_OPTIMIZERS``), how
its figures label them (``label``), and how to build one at a learning rate that
a demo sets for all of them alike (``build``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from jopt import optimizers
from jopt._core import GradientTransformation

LECTURE_OPTIMIZERS: tuple[str, ...] = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamax",
)
"""The eight optimizers of the lecture's outline, in its order (registry names)."""

LABELS: Mapping[str, str] = MappingProxyType(
    {
        "sgd": "SGD",
        "momentum": "Momentum",
        "nesterov": "Nesterov",
        "adagrad": "Adagrad",
        "adadelta": "Adadelta",
        "rmsprop": "RMSprop",
        "adam": "Adam",
        "adamax": "Adamax",
        "adamw": "AdamW",
    }
)
"""How the figures spell the optimizers' names; others show their registry name."""

SELF_SCALED: frozenset[str] = frozenset({"adadelta"})
"""Optimizers whose step sets its own scale, so their ``learning_rate`` is a mere
multiplier (Adadelta's ``Δθ = −RMS[Δθ]/RMS[g]·g``: 1 in the paper, Zeiler 2012).
A demo that runs every optimizer at one learning rate runs these at their default."""


def label(name: str) -> str:
    """The name a figure shows for the registry's optimizer ``name``."""
    return LABELS.get(name, name)


def build(name: str, *, learning_rate: float) -> GradientTransformation:
    """The registry's optimizer ``name`` at ``learning_rate``, its defaults otherwise.

    Optimizers of ``SELF_SCALED`` keep their default learning rate.

    Args:
        name: a key of [`jopt.optimizers.ALL`][jopt.optimizers.ALL].
        learning_rate: the rate the demo gives every optimizer.

    Returns:
        The optimizer.

    Raises:
        KeyError: ``name`` is not in the registry.
    """
    if name not in optimizers.ALL:
        raise KeyError(f"{name!r} is not in jopt.optimizers.ALL: {', '.join(optimizers.ALL)}")
    factory = optimizers.ALL[name]
    return factory() if name in SELF_SCALED else factory(learning_rate)
