"""Rprop: per-coordinate step sizes driven by the sign of the gradient alone.

Riedmiller & Braun (1993) introduced Rprop; Igel & Hüsken (2000) named the variant
that forgets the gradient after a sign change, without backtracking, iRprop⁻.  It is
the rule of ``torch.optim.Rprop``.

optax's ``scale_by_rprop`` (0.2.8) returns each step's update one step late (the first
update is zero), so this block does not share its name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt._block import Field, block
from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt._validation import check, checked

__all__ = ["ScaleByIrpropMinusState", "scale_by_irprop_minus"]


class ScaleByIrpropMinusState(NamedTuple):
    """iRprop⁻'s state.

    ``count``: t (torch ``step``); ``step_size``: Δ, one per coordinate (torch
    ``step_size``); ``prev_grad``: the gradient of the previous update, zero where its
    sign had flipped (torch ``prev``).
    """

    count: jax.Array
    step_size: Any
    prev_grad: Any


def _irprop(g, prev, size, etas, step_sizes):
    """One real coordinate set: ``(direction, new step size, gradient to remember)``."""
    product = g * prev
    factor = jnp.where(product > 0, etas[1], jnp.where(product < 0, etas[0], 1.0))
    size = jnp.clip(size * factor, step_sizes[0], step_sizes[1])
    g = jnp.where(product < 0, 0.0, g)
    return jnp.sign(g) * size, size, g


def scale_by_irprop_minus(
    learning_rate: ScalarOrSchedule = 1e-2,
    *,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
) -> GradientTransformation:
    """iRprop⁻ (Igel & Hüsken, 2000), the rule of ``torch.optim.Rprop``.

    Per coordinate, with ``s = g·g_prev`` and ``(η⁻, η⁺) = etas``:

    ```text
    Δ ← clip(Δ·η⁺, Δmin, Δmax)   where s > 0
    Δ ← clip(Δ·η⁻, Δmin, Δmax)   where s < 0, and then g ← 0
    Δ ← clip(Δ, Δmin, Δmax)      where s = 0
    u = sign(g)·Δ,   g_prev ← g
    ```

    The descent step is ``θ ← θ − u``.  Step sizes start at ``learning_rate`` on the
    first update: like torch, which creates them from the learning rate at its first
    step, a schedule is read there only (at step 0) and a later learning rate has no
    effect.  Complex coordinates are two real ones, as torch views them.

    Args:
      learning_rate: the initial step size Δ₀ ≥ 0 (a schedule: its value at 0).
      etas: ``(η⁻, η⁺)`` with ``0 < η⁻ < 1 < η⁺``.
      step_sizes: ``(Δmin, Δmax)``, both ≥ 0 (where Δmin > Δmax, Δmax wins, as in
        torch's clamp).

    Returns:
      The transformation; its state is a
      [`ScaleByIrpropMinusState`][jopt.transforms.ScaleByIrpropMinusState].
    """
    check(learning_rate=learning_rate)
    etas = checked("etas", etas)
    step_sizes = checked("step_sizes", step_sizes)
    initial = learning_rate(0) if callable(learning_rate) else learning_rate

    def rule(g, s):
        # The first update takes its step sizes from the learning rate given now.
        size = jnp.where(s.count == 1, jnp.asarray(initial, g.real.dtype), s.step_size)
        if not jnp.iscomplexobj(g):
            u, size, g = _irprop(g, s.prev_grad, size, etas, step_sizes)
            return u, s._replace(step_size=size, prev_grad=g)
        size = jnp.where(s.count == 1, size * (1 + 1j), size)
        parts = [
            _irprop(part(g), part(s.prev_grad), part(size), etas, step_sizes)
            for part in (jnp.real, jnp.imag)
        ]
        u, size, g = (re + 1j * im for re, im in zip(*parts, strict=True))
        return u, s._replace(step_size=size, prev_grad=g)

    return block(
        ScaleByIrpropMinusState,
        rule,
        step_size=Field.full(initial),
        prev_grad=Field.zeros(),
    )
