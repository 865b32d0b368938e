"""Validation of hyperparameters at construction time.

Each check raises a ``ValueError`` (or ``TypeError``) that names the argument and
its value.  Values that are JAX tracers, i.e. hyperparameters injected under ``jit``,
cannot be inspected and are let through.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import numpy as np


def is_concrete(value: Any) -> bool:
    """False for a JAX tracer, whose value is unknown until run time."""
    return not isinstance(value, jax.core.Tracer)


def _as_float(name: str, value: Any) -> float | None:
    """The value as a Python float, ``None`` for tracers; TypeError for non-numbers."""
    if not is_concrete(value):
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if np.shape(value) != ():
            raise TypeError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
        if not np.issubdtype(np.dtype(value.dtype), np.number) or np.iscomplexobj(value):
            raise TypeError(f"{name} must be a real number, got dtype {value.dtype}")
        return float(value)
    raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")


def is_static_zero(value: Any) -> bool:
    """True when ``value`` is a Python number equal to 0, so a block can be left out.

    Arrays never count, even a concrete ``jnp.array(0.0)``: hyperparameters injected
    as arrays (see ``inject_hyperparams``) must give the same chain, and so the same
    state structure, at ``init`` (concrete) and at ``update`` (traced).
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def check_learning_rate(value: Any, name: str = "learning_rate") -> None:
    """A learning rate is a non-negative number, a 0-d array, or a schedule."""
    if callable(value):
        return
    number = _as_float(name, value)
    # NaN and inf would turn every parameter into NaN on the first step.
    if number is not None and not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite non-negative number, got {number!r}")


def check_callable(value: Any, name: str) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__} {value!r}")


def check_int(value: Any, name: str, minimum: int) -> int:
    """A Python or NumPy integer (not a bool) ``>= minimum``, returned as an ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_non_negative(value: Any, name: str) -> None:
    number = _as_float(name, value)
    if number is not None and not number >= 0:  # also catches NaN
        raise ValueError(f"{name} must be >= 0, got {number!r}")


def check_decay(value: Any, name: str) -> None:
    """Decay rates (betas, rho, momentum decay) lie in [0, 1)."""
    number = _as_float(name, value)
    if number is not None and not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {number!r}")


def check_finite(value: Any, name: str) -> None:
    number = _as_float(name, value)
    if number is not None and not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number!r}")


def check_bool(value: Any, name: str) -> None:
    """Flags are real booleans.

    Otherwise ``sgd(0.1, 0.9, 1e-4)`` would silently turn ``nesterov`` on with the
    weight decay meant for the fourth argument.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def check_dtype(value: Any, name: str) -> None:
    """``None`` (keep the parameter's dtype) or a floating-point dtype."""
    if value is None:
        return
    try:
        dtype = jax.numpy.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be None or a dtype, got {value!r}") from None
    if not jax.numpy.issubdtype(dtype, jax.numpy.floating):
        raise ValueError(f"{name} must be a floating-point dtype, got {dtype}")
