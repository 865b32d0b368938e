"""The step a schedule is evaluated at, and the exact integer arithmetic on it.

A schedule does its integer work (how far past a boundary, which cycle, where in the
cycle) on the step as an integer, so that it stays exact at any step, and only then
turns the small results into floats.  Two integer forms are used:

* a concrete step (a Python int, a NumPy integer or integer array) becomes NumPy
  int64, clamped to ``[0, 2⁶³ − 1]``;
* a JAX integer array, traced or not, keeps its own signed integer type (int32 for an
  optimizer's step count), clamped below at 0.

Constants such as boundaries and periods are Python ints of any size up to 2⁶³ − 1; the
helpers below compare them with the step exactly, even when they do not fit the step's
integer type (a boundary past the largest int32 is never reached by an int32 count).
The float part always runs in JAX, in the default float dtype, so a concrete step and
the same step traced give the same value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jopt._validation import as_number, checked

INT64_MAX = int(np.iinfo(np.int64).max)


def float_dtype():
    """float64 when 64-bit types are enabled, float32 otherwise."""
    return jnp.result_type(float)


def _step_error(step: Any) -> TypeError:
    return TypeError(
        f"step must be an integer (a Python int or an integer array), got "
        f"{type(step).__name__} {step!r}"
    )


class Steps:
    """A step (or an array of steps) in integer form; see the module docstring.

    Attributes:
      t: the steps, ``>= 0``, as NumPy int64 or a JAX signed integer array.
      imax: the largest value of ``t``'s integer type.
      shape: the shape of ``t``.
    """

    def __init__(self, step: Any):
        if isinstance(step, (jax.Array, jax.core.Tracer)):
            self.t = self._from_jax(step)
        else:
            self.t = self._from_concrete(step)
        self.imax = int(np.iinfo(self.t.dtype).max)
        self.shape = np.shape(self.t)

    @staticmethod
    def _from_jax(step):
        dtype = step.dtype
        if dtype == jnp.bool_ or not jnp.issubdtype(dtype, jnp.integer):
            raise _step_error(step)
        if jnp.issubdtype(dtype, jnp.unsignedinteger):
            signed = jnp.dtype(jnp.result_type(int))  # int64 with x64, int32 without
            step = jnp.minimum(step, np.iinfo(signed).max).astype(signed)
        return jnp.maximum(step, 0)

    @staticmethod
    def _from_concrete(step):
        if isinstance(step, (bool, np.bool_)):
            raise _step_error(step)
        if isinstance(step, int):
            return np.int64(min(max(step, 0), INT64_MAX))
        array = np.asarray(step)
        if array.dtype.kind == "u":
            return np.minimum(array, INT64_MAX).astype(np.int64)
        if array.dtype.kind != "i":
            raise _step_error(step)
        return np.maximum(array.astype(np.int64), 0)

    @property
    def traced(self) -> bool:
        """True when the step is a JAX array (so every result must be one too)."""
        return not isinstance(self.t, (np.ndarray, np.generic))

    def _xp(self):
        return jnp if self.traced else np

    def _const(self, value: int):
        return self._xp().asarray(min(value, self.imax), dtype=self.t.dtype)

    def since(self, begin: int, length: int | None = None):
        """``clip(t − begin, 0, length)`` as an integer array (no upper clip without length)."""
        xp = self._xp()
        elapsed = xp.maximum(self.t - self._const(begin), 0)
        return elapsed if length is None else xp.minimum(elapsed, self._const(length))

    def at_least(self, boundary: int, x=None):
        """``x >= boundary`` for ``x = t`` (or an integer array from these helpers), exactly."""
        x = self.t if x is None else x
        if boundary > self.imax:
            return self._xp().zeros(np.shape(x), bool)
        return x >= self._const(boundary)

    def lookup(self, table: Sequence[int], index):
        """``table[index]``, for a table of integers that fit the step's integer type."""
        return self._xp().asarray(table, dtype=self.t.dtype)[index]

    def count_reached(self, boundaries: Sequence[int]):
        """``#{i : t >= boundaries[i]}`` for boundaries in any order, repeats counted."""
        xp = self._xp()
        reachable = sorted(b for b in boundaries if b <= self.imax)
        if not reachable:
            return xp.zeros(self.shape, np.int32)
        table = xp.asarray(reachable, dtype=self.t.dtype)
        return xp.searchsorted(table, self.t, side="right").astype(np.int32)

    def divmod(self, period: int, offset=None):
        """``divmod(x, period)`` for ``x = t`` (or the integer array ``offset``), exactly."""
        x = self.t if offset is None else offset
        if period > self.imax:
            return self._xp().zeros(self.shape, self.t.dtype), x
        p = self._const(period)
        return x // p, x % p

    def as_float(self, x) -> jax.Array:
        """An integer array from the helpers above as a float array (default float dtype)."""
        if isinstance(x, (np.ndarray, np.generic)):
            return jnp.asarray(np.asarray(x, np.float64), dtype=float_dtype())
        return jnp.asarray(x).astype(float_dtype())

    def float_t(self) -> jax.Array:
        """The step itself as a float array."""
        return self.as_float(self.t)

    def full(self, value) -> jax.Array:
        """``value`` broadcast to the step's shape, in the default float dtype."""
        return jnp.broadcast_to(jnp.asarray(value, float_dtype()), self.shape)


def make_schedule(body: Callable[[Steps], Any], name: str) -> Callable[[Any], jax.Array]:
    """The schedule ``step -> value`` that evaluates ``body`` on the step's integer form.

    The value has the step's shape and the default float dtype.
    """

    def schedule(step):
        steps = Steps(step)
        value = jnp.asarray(body(steps))
        return jnp.broadcast_to(value, steps.shape).astype(float_dtype())

    schedule.__name__ = schedule.__qualname__ = name
    return schedule


def value(name: str, x: Any, *, owner: str | None = None) -> Any:
    """A checked numeric hyperparameter: a Python float, or the tracer itself."""
    x = checked(name, x, owner=owner)
    if x is None:
        return None
    number = as_number(name, x)
    return x if number is None else number


def boundaries(name: str, items: Any, *, increasing: bool) -> tuple[int, ...]:
    """A sequence of step counts, each checked as ``name[i]``; strictly increasing if asked."""
    if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of integers, got {items!r}")
    bounds = tuple(checked(f"{name}[{i}]", b, owner="schedule") for i, b in enumerate(list(items)))
    if increasing:
        for i in range(1, len(bounds)):
            if bounds[i] <= bounds[i - 1]:
                raise ValueError(
                    f"{name} must be strictly increasing, got {name}[{i - 1}]={bounds[i - 1]} "
                    f"and {name}[{i}]={bounds[i]}"
                )
    return bounds


def steps_arg(name: str, x: Any) -> int:
    """A checked step-count argument (``transition_steps``, ``warmup_steps``, ...)."""
    return checked(name, x, owner="schedule")
