"""Pieces the aliases share: blocks that a literal zero leaves out of the chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jopt._core import GradientTransformation
from jopt._validation import check, is_static_zero
from jopt.transforms import add_decayed_weights, trace


def optional(
    factory: Callable[..., GradientTransformation], value: Any, **kwargs: Any
) -> list[GradientTransformation]:
    """``[factory(value, **kwargs)]``, or ``[]`` when ``value`` is a literal zero.

    A literal Python zero leaves its block out: it costs nothing and keeps no state.
    Arrays are never left out, so an injected hyperparameter keeps the structure.
    """
    if is_static_zero(value):
        return []
    return [factory(value, **kwargs)]


def weight_decay_block(weight_decay: Any) -> list[GradientTransformation]:
    """``add_decayed_weights(λ)``, left out for a literal 0."""
    check(weight_decay=weight_decay)
    return optional(add_decayed_weights, weight_decay)


def momentum_block(momentum: Any, nesterov: bool = False) -> list[GradientTransformation]:
    """``trace(γ, nesterov=…)``, left out for a literal 0.

    Nesterov's look-ahead with γ = 0 is plain gradient descent, so ``nesterov=True``
    with ``momentum=0`` is accepted (torch refuses it): a live momentum set to 0 with
    [`jopt.set_hyperparams`][jopt.set_hyperparams] is then no different from one built
    that way.
    """
    check(momentum=momentum, nesterov=nesterov)
    return optional(trace, momentum, nesterov=nesterov)
