"""Values the validation vocabulary accepts and refuses, derived from its own specs.

Shared by the validation tests: for a factory's argument, the spec it is checked
against, values in range (in every numeric form: Python and NumPy scalars, 0-d arrays
of bfloat16, float16 and float32) and values out of range or of the wrong type with the
exception each must raise.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
from references import REFERENCES

import jopt
from jopt._validation import (
    VOCABULARY,
    Choice,
    DType,
    Flag,
    Function,
    Instance,
    Integer,
    Items,
    PerLeaf,
    Real,
    Spec,
)

NAN, INF = float("nan"), float("inf")


# --- the registry walk --------------------------------------------------------------------


def _spec(factory_name: str, argument: str) -> Spec:
    scoped = f"{factory_name}.{argument}"
    return VOCABULARY[scoped] if scoped in VOCABULARY else VOCABULARY[argument]


def _inside(spec: Real) -> float:
    """A value well inside a real range."""
    low, high = spec.low, spec.high
    if math.isfinite(low) and math.isfinite(high):
        return low + (high - low) / 2
    if math.isfinite(low):
        return low + 0.5
    return high - 0.5 if math.isfinite(high) else 0.5


def _numeric_forms(value: float) -> list:
    """The forms a number may take: all must be accepted alike."""
    forms = [value, np.float32(value), jnp.asarray(value, jnp.float32)]
    forms += [jnp.asarray(value, jnp.bfloat16), jnp.asarray(value, jnp.float16)]
    return forms


def good_values(spec: Spec) -> list:
    """Values the spec accepts, boundaries included."""
    if isinstance(spec, Real):
        values = _numeric_forms(_inside(spec))
        if math.isfinite(spec.low) and not spec.low_open:
            values += [spec.low, int(spec.low)] if spec.low == int(spec.low) else [spec.low]
        if math.isfinite(spec.high) and not spec.high_open:
            values.append(spec.high)
        if spec.schedule:
            values.append(lambda count: 0.5 * _inside(spec) / (1 + count))
        if spec.optional:
            values.append(None)
        return values
    if isinstance(spec, Flag):
        return [True, False, np.bool_(True)]
    if isinstance(spec, DType):
        return [None, jnp.float32, "bfloat16", np.dtype("float16")]
    if isinstance(spec, Integer):
        low = spec.low if spec.low is not None else 0
        return [low, low + 1, np.int64(low + 1)] + ([None] if spec.optional else [])
    if isinstance(spec, Choice):
        return list(spec.options)
    if isinstance(spec, Function):
        return [lambda *args: 0.0]
    if isinstance(spec, Items):
        each = [good_values(item) for item in spec.items]
        return [tuple(values[0] for values in each), [values[-1] for values in each]]
    if isinstance(spec, Instance):
        values = [None] if spec.optional else []
        if jax.sharding.Mesh in spec.types:
            values.append(jax.make_mesh((1,), ("data",)))
        if str in spec.types:
            values.append("data")
        return values
    if isinstance(spec, PerLeaf):
        # One value for every leaf, a tree of values, a function of the params.
        values = [v for v in good_values(spec.item) if v is not None]
        return values + [{"w": values[0]}, lambda params: params] + [None] * spec.optional
    raise AssertionError(f"no good values for {spec}")


def bad_values(spec: Spec) -> list[tuple]:
    """``(value, exception)`` pairs the spec refuses."""
    if isinstance(spec, Real):
        bad = [("0.1", TypeError), (True, TypeError), ([0.1], TypeError), (1j, TypeError)]
        bad += [(jnp.ones(2), TypeError), (NAN, ValueError), (jnp.asarray(NAN), ValueError)]
        if not spec.optional:
            bad.append((None, TypeError))
        if not spec.allow_inf:
            bad += [(INF, ValueError), (-INF, ValueError)]
        if math.isfinite(spec.low):
            below = spec.low if spec.low_open else spec.low - 0.5
            bad += [(below, ValueError), (jnp.asarray(below, jnp.bfloat16), ValueError)]
        if math.isfinite(spec.high):
            bad.append((spec.high if spec.high_open else spec.high + 0.5, ValueError))
        return bad
    if isinstance(spec, Flag):
        return [(1, TypeError), (None, TypeError), ("yes", TypeError), (0.0, TypeError)]
    if isinstance(spec, DType):
        return [("float13", TypeError), (jnp.int32, ValueError), (bool, ValueError)]
    if isinstance(spec, Integer):
        low = spec.low if spec.low is not None else 0
        return [(1.5, TypeError), (True, TypeError), (low - 1, ValueError), ("1", TypeError)]
    if isinstance(spec, Choice):
        return [(1, TypeError), ("no such option", ValueError)]
    if isinstance(spec, Function):
        return [(1, TypeError)]
    if isinstance(spec, Items):
        first = good_values(spec.items[0])[0]
        bad = [(first, TypeError), ((first,) * (len(spec.items) + 1), ValueError)]
        for i, item in enumerate(spec.items):
            rest = [good_values(other)[0] for other in spec.items]
            bad += [(tuple(rest[:i] + [value] + rest[i + 1 :]), e) for value, e in bad_values(item)]
        return bad
    if isinstance(spec, Instance):
        return [(1, TypeError)] + [(None, TypeError)] * (not spec.optional)
    if isinstance(spec, PerLeaf):
        # A bad value alone, and as a leaf of a tree.
        bad = [(v, e) for v, e in bad_values(spec.item) if v is not None or not spec.optional]
        return bad + [({"w": value}, e) for value, e in bad[:2]]
    raise AssertionError(f"no bad values for {spec}")


def _outcome(make):
    """The exception type ``make()`` raises (and its message), or ``(None, "")``."""
    try:
        make()
    except (TypeError, ValueError) as error:
        return type(error), str(error)
    return None, ""


def _expected(name: str, kwargs: dict, bad_exception=None):
    """What the factory must do with ``kwargs``: the spec's exception for a bad value,
    else ``ValueError`` where the reference refuses the combination, else accept."""
    if bad_exception is not None:
        return bad_exception
    try:
        REFERENCES[name].rule(**kwargs)
    except ValueError:
        return ValueError
    return None


def _arguments(name: str) -> list[str]:
    return list(inspect.signature(jopt.optimizers.ALL[name]).parameters)
