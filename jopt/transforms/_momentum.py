"""Momentum: the heavy ball and Nesterov's look-ahead."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from jopt._block import Field, block
from jopt._core import GradientTransformation
from jopt._validation import check

__all__ = ["TraceState", "trace"]


class TraceState(NamedTuple):
    """The state of [`trace`][jopt.transforms.trace].

    Attributes:
      trace: the momentum buffer ``v``, shaped like the params (torch's
        ``momentum_buffer``).
    """

    trace: Any


def trace(
    decay: float | jax.Array, *, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Momentum (Polyak, 1964): ``v ← γ·v + g``, then ``u = v``.

    With ``nesterov=True`` the output is ``u = g + γ·v`` (Sutskever et al., 2013), the
    look-ahead form of Nesterov's accelerated gradient; see
    [`jopt.nesterov`][jopt.nesterov].  The buffer starts at zero, so the first step
    gives ``v = g``, as torch's buffer initialised from the first gradient.  Same as
    ``optax.trace``.

    Args:
      decay: γ, in [0, 1].
      nesterov: use the look-ahead output.
      accumulator_dtype: the buffer's storage dtype (default: the parameter's).

    Returns:
      The transformation; its state is a [`TraceState`][jopt.transforms.TraceState].
    """
    check(decay=decay, nesterov=nesterov, accumulator_dtype=accumulator_dtype)

    def rule(g, s):
        v = decay * s.trace + g
        return (g + decay * v if nesterov else v), s._replace(trace=v)

    return block(TraceState, rule, trace=Field.zeros(accumulator_dtype))
