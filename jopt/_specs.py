"""The kinds of argument the validation vocabulary checks: numbers in a range, integers,
flags, dtypes, choices, callables, transformations, PRNG keys and fixed-length sequences.

Each ``Spec`` is called as ``spec(name, value)``: it returns the value, normalized,
or raises a ``TypeError`` (wrong type) or ``ValueError`` (out of range) that names the
argument and shows the value.  The table of names is ``jopt._validation.VOCABULARY``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(value: Any) -> bool:
    """False for a JAX tracer, whose value is unknown until run time."""
    return not isinstance(value, jax.core.Tracer)


def is_static_zero(value: Any) -> bool:
    """True when ``value`` is a Python number equal to 0, so a block can be left out.

    Arrays never count, even a concrete ``jnp.array(0.0)``: hyperparameters injected as
    arrays (see [`jopt.inject_hyperparams`][jopt.inject_hyperparams]) must give the
    same chain, and so the same state structure, at ``init`` (concrete) and at
    ``update`` (traced).
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _real_dtype(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def as_number(name: str, value: Any) -> float | None:
    """``value`` as a Python float (``None`` for a tracer), or a TypeError naming ``name``.

    A number is a real Python or NumPy scalar, or a 0-d array of a real dtype: any
    floating dtype (bfloat16 and float16 included) or an integer one.
    """
    if _is_bool(value):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    if isinstance(value, numbers.Real):
        return float(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    if np.shape(value) != ():
        raise TypeError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
    if not _real_dtype(dtype):
        raise TypeError(f"{name} must be a real number, got an array of dtype {dtype}")
    if not is_concrete(value):
        return None
    return float(np.asarray(value, np.float64))


class Spec:
    """How one argument is checked: ``spec(name, value)`` returns the value, normalized."""

    def __call__(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """The range in words, for error messages and the docs."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Real(Spec):
    """A real number in ``[low, high]`` (ends open where asked); finite unless ``allow_inf``.

    ``optional``: ``None`` is accepted.  ``schedule``: a callable ``step -> value`` is
    accepted (its values are not checked).
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    allow_inf: bool = False
    optional: bool = False
    schedule: bool = False

    def describe(self) -> str:
        if self.low == -math.inf and self.high == math.inf:
            text = "a finite number" if not self.allow_inf else "a number"
        elif self.high == math.inf:
            text = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        elif self.low == -math.inf:
            text = f"a number {'<' if self.high_open else '<='} {self.high:g}"
        else:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            text = f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.schedule:
            text += ", or a schedule"
        if self.optional:
            text += ", or None"
        return text

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if self.schedule and callable(value) and not hasattr(value, "dtype"):
            return value
        number = as_number(name, value)
        if number is None:
            return value
        below = number <= self.low if self.low_open else number < self.low
        above = number >= self.high if self.high_open else number > self.high
        infinite = math.isinf(number) and not self.allow_inf
        if math.isnan(number) or infinite or below or above:
            raise ValueError(f"{name} must be {self.describe()}, got {number!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Integer(Spec):
    """A Python or NumPy integer (not a bool) in ``[low, high]``; returned as an ``int``."""

    low: int | None = None
    high: int | None = None
    optional: bool = False

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"an integer in [{self.low}, {self.high}]"
        elif self.low is not None:
            text = f"an integer >= {self.low}"
        else:
            text = "an integer"
        return text + (", or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if _is_bool(value) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return int(value)


@dataclasses.dataclass(frozen=True)
class Flag(Spec):
    """A real boolean.  ``sgd(0.1, 0.9, 1e-4)`` must not turn a flag on by position."""

    def describe(self) -> str:
        return "a bool"

    def __call__(self, name: str, value: Any) -> Any:
        if not _is_bool(value):
            raise TypeError(f"{name} must be a bool, got {_show(value)}")
        return bool(value)


@dataclasses.dataclass(frozen=True)
class DType(Spec):
    """``None`` or a floating-point dtype, in any form.

    ``storage=True`` (the default): the dtype some state is stored in, ``None`` keeping
    the parameter's.  ``storage=False``: the dtype some arithmetic runs in (no state
    holds it), ``None`` meaning the update's dtype promoted to at least float32.
    """

    storage: bool = True

    def describe(self) -> str:
        return "None or a floating-point dtype"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            dtype = jnp.dtype(value)
        except TypeError:
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}") from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"{name} must be {self.describe()}, got {dtype}")
        return dtype


@dataclasses.dataclass(frozen=True)
class Choice(Spec):
    """One of the listed strings (or ``None`` when ``optional``)."""

    options: tuple[str, ...]
    optional: bool = False

    def describe(self) -> str:
        text = "one of " + ", ".join(repr(o) for o in self.options)
        return text + (", or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if value not in self.options:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Function(Spec):
    """A callable (or ``None`` when ``optional``)."""

    optional: bool = False

    def describe(self) -> str:
        return "callable" + (" or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not callable(value):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Transformation(Spec):
    """A gradient transformation: anything with callable ``init`` and ``update``."""

    def describe(self) -> str:
        return "a GradientTransformation (callable init and update)"

    def __call__(self, name: str, value: Any) -> Any:
        if not (
            callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))
        ):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Key(Spec):
    """A JAX PRNG key: new-style (``jax.random.key``) or raw ``uint32[2]``; or ``None``."""

    optional: bool = True

    def describe(self) -> str:
        return "a JAX PRNG key (jax.random.key(seed))" + (" or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        dtype = getattr(value, "dtype", None)
        is_key = dtype is not None and (
            jnp.issubdtype(dtype, jax.dtypes.prng_key)
            or (np.dtype(dtype) == np.uint32 and np.shape(value)[-1:] == (2,))
        )
        if not is_key:
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class StepsPerCall(Spec):
    """An integer >= 1, or ``"epoch"``."""

    def describe(self) -> str:
        return "an integer >= 1 or 'epoch'"

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            return Choice(("epoch",))(name, value)
        return Integer(low=1)(name, value)


@dataclasses.dataclass(frozen=True)
class Items(Spec):
    """A tuple or list of fixed length whose entries follow ``items`` (named ``name[i]``).

    Returned as a tuple.
    """

    items: tuple[Spec, ...]

    def describe(self) -> str:
        return f"a sequence of {len(self.items)}: " + ", ".join(s.describe() for s in self.items)

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if len(value) != len(self.items):
            raise ValueError(f"{name} must have {len(self.items)} entries, got {value!r}")
        return tuple(
            spec(f"{name}[{i}]", v)
            for i, (spec, v) in enumerate(zip(self.items, value, strict=True))
        )


@dataclasses.dataclass(frozen=True)
class Instance(Spec):
    """An instance of one of ``types`` (or ``None`` when ``optional``), described in words."""

    types: tuple[type, ...]
    text: str
    optional: bool = False

    def describe(self) -> str:
        return self.text + (" or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, self.types) or (isinstance(value, str) and not value):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Command(Spec):
    """A program and its arguments: a non-empty list or tuple of strings or paths."""

    def describe(self) -> str:
        return "a non-empty list of strings (a program and its arguments)"

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if not value or not all(isinstance(v, (str, os.PathLike)) for v in value):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return [os.fspath(v) for v in value]


def _is_function(value: Any) -> bool:
    """A callable that is a pytree leaf (a callable pytree node is a tree of values)."""
    return callable(value) and jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


@dataclasses.dataclass(frozen=True)
class PerLeaf(Spec):
    """A value for each parameter leaf, following ``item``.

    One value for every leaf; a tree of values with the structure of the params or of
    a prefix of it (``{"blocks": 1, "embed": 0}``); or a function ``params -> such a
    tree``.  A single value and the leaves of a tree are checked now (named
    ``name['key']...`` for a tree); a function's values when it is called, by whoever
    calls it, with ``jopt._validation.checked`` and the leaf's path.  ``optional``:
    ``None`` (the whole argument) is accepted.
    """

    item: Spec
    optional: bool = False

    def describe(self) -> str:
        text = f"{self.item.describe()}, a tree of such values, or a function of the params"
        return text + (", or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if _is_function(value):
            return value
        if value is None or jax.tree_util.treedef_is_leaf(jax.tree.structure(value)):
            return self.item(name, value)
        for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
            self.item(f"{name}{jax.tree_util.keystr(path)}", leaf)
        return value
