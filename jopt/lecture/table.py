"""The lecture's summary table of optimizers, measured instead of asserted.

The lecture ends its tour of gradient descent with a table: for each method, whether
it adapts the learning rate per parameter, whether its update has consistent units,
and whether it easily handles saddle points.  Each column is measured here on a small
problem, by running the optimizer's own ``init``/``update``:

* **adaptive learning rate**: :func:`effective_lr_ratio`;
* **consistent units**: :func:`units_exponent`;
* **saddle points**: :func:`saddle_escape_steps`.

:func:`lecture_table` runs all three for any optimizers of the registry,
:data:`jopt.optimizers.ALL`, each at :data:`SADDLE_LR` (:func:`race_optimizer`).  All
arithmetic is float32 whatever ``jax_enable_x64`` says, so the table reads the same in
a script and under the test suite.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jopt import optimizers
from jopt._core import GradientTransformation, apply_updates
from jopt.lecture import roster

DTYPE = jnp.float32

SADDLE_LR = 0.05
"""The learning rate of the saddle race, the same for every method that has one.

``f = x² − y²`` has curvature 2, so plain gradient descent is stable along ``x`` for
η < 1; 0.05 is well inside that and small enough that the flat direction, not the
rate, decides the race.  Adadelta's rule has no learning rate (its ``learning_rate``
is a multiplier, 1 in the paper), so it runs at its default.  Measured from
``y₀ = 1e-6``: at η = 0.01 Adagrad's shrinking steps (about ``η·√3/√t`` once ``y``
grows) take 1263 steps against SGD's 698, and from η ≈ 0.2 SGD (42) catches up with
Adadelta (37, whatever η).  The ordering of the lecture's table holds in between.
"""


def race_optimizer(name: str) -> GradientTransformation:
    """The registry's optimizer ``name`` with the hyperparameters the table measures:
    :data:`SADDLE_LR` and its defaults (see :func:`jopt.lecture.roster.build`)."""
    return roster.build(name, learning_rate=SADDLE_LR)


# --- adaptive learning rate ----------------------------------------------------------

GRADIENT_SCALES = (1.0, 100.0)


def effective_lr_ratio(optimizer: GradientTransformation, *, steps: int = 3) -> float:
    """How differently the optimizer treats two parameters whose gradients differ in scale.

    Two parameters see constant gradients ``g = (1, 100)`` (the loss ``θ₁ + 100·θ₂``)
    for `steps` updates.  Each parameter's *effective learning rate* at the last step
    is ``ηᵢ = −Δθᵢ / gᵢ``.  Returns ``max(ηᵢ) / min(ηᵢ)``: exactly 1 for a method that
    applies one learning rate to all parameters (SGD, with or without momentum, whose
    buffers are linear in ``g``), and far from 1 for a method that scales each
    parameter's step by its own gradient history (Adagrad: ``ηᵢ = η/√Gᵢᵢ``).
    """
    params = jnp.zeros(len(GRADIENT_SCALES), DTYPE)
    grads = jnp.asarray(GRADIENT_SCALES, DTYPE)
    state = optimizer.init(params)
    for _ in range(steps):
        updates, state = optimizer.update(grads, state, params)
        params = apply_updates(params, updates)
    lr = -np.asarray(updates, np.float64) / np.asarray(GRADIENT_SCALES)
    if not np.all(lr > 0):
        raise ValueError(f"the optimizer did not descend on a linear loss: effective rates {lr}")
    return float(lr.max() / lr.min())


def is_adaptive(ratio: float) -> bool:
    """A per-parameter learning rate: the two effective rates differ by over 10%."""
    return ratio > 1.1


# --- consistent units ----------------------------------------------------------------

UNIT_SCALES = (4.0, 0.25)
STATE_EXPONENTS = (-2, -1, 0, 1, 2)


def units_exponents(optimizer: GradientTransformation, *, seed: int = 0) -> tuple[float, ...]:
    """The powers ``p`` with which the optimizer's step can scale when θ's unit changes.

    Measure θ in a unit ``k`` times smaller: ``θ' = k·θ``, so the loss
    ``J'(θ') = J(θ'/k)`` has the gradient ``g' = g/k``.  A rule with *consistent
    units* (Newton's ``Δθ = −H⁻¹g``, Adadelta's ``Δθ = −RMS[Δθ]/RMS[g]·g``) then takes
    the step ``Δθ' = k·Δθ``; SGD takes ``Δθ' = −η·g/k = Δθ/k``, the lecture's
    "units of Δθ ∝ units of g ∝ 1/units of θ".

    An optimizer's state has units too (a momentum buffer those of ``g``, a second
    moment those of ``g²``), so the state must be expressed in the new unit as well.
    This function finds those units by measurement.  It draws a state (every float
    leaf uniform in ``[0.5, 2]``, counters after three warm-up steps), and for every
    assignment of exponents ``aⱼ ∈ {−2, …, 2}`` to the state's float leaves it runs
    one update on ``(g, s, θ)`` and one on ``(g/k, kᵃ·s, k·θ)``.  The assignment is
    *consistent* when the second update's new state is again ``kᵃ`` times the first's,
    and its step ``Δθ'/Δθ = kᵖ`` is one power for every coordinate, for ``k = 4`` and
    ``k = 1/4``.  Returns the sorted powers ``p`` of all consistent assignments: ``(−1,)``
    for SGD and momentum, ``(0,)`` for Adagrad, RMSprop, Adam and Adamax, and ``()``
    for a rule mixing units (AdamW's ``m̂/√v̂ + λθ``).

    Adadelta's ``E[Δθ²]`` is fed only by its own steps, so any unit for it is
    consistent and its step takes that unit's square root: ``p`` ranges over
    ``{−1, −½, 0, ½, 1}``, and with ``E[Δθ²]`` in units of θ² its step has θ's.  Its
    units are set by the state, not by the rule.  (Both runs starting from a zero
    state would not show this: the first step, ``√ε/√((1 − ρ)g² + ε)·g``, is then set
    by ε, a constant with no unit to change with θ's.  ε and the like are kept fixed;
    they are negligible against the drawn state.)
    """
    rng = np.random.default_rng(seed)
    params = jnp.asarray(rng.uniform(0.5, 2.0, 3), DTYPE)
    grads = jnp.asarray(rng.uniform(0.5, 2.0, 3) * rng.choice([-1.0, 1.0], 3), DTYPE)
    state = optimizer.init(params)
    for _ in range(3):
        warm = jnp.asarray(rng.normal(size=3), DTYPE)
        _, state = optimizer.update(warm, state, params)
    leaves, treedef = jax.tree.flatten(state)
    floating = [i for i, leaf in enumerate(leaves) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    for i in floating:
        leaves[i] = jnp.asarray(rng.uniform(0.5, 2.0, np.shape(leaves[i])), leaves[i].dtype)
    state = jax.tree.unflatten(treedef, leaves)
    step, new_state = optimizer.update(grads, state, params)
    step = np.asarray(step, np.float64)
    new_leaves = [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(new_state)]

    found = set()
    for exponents in itertools.product(STATE_EXPONENTS, repeat=len(floating)):
        powers = []
        for k in UNIT_SCALES:
            scaled = list(leaves)
            expected = list(new_leaves)
            for i, a in zip(floating, exponents, strict=True):
                scaled[i] = (leaves[i] * k**a).astype(leaves[i].dtype)
                expected[i] = new_leaves[i] * k**a
            step_k, state_k = optimizer.update(
                (grads / k).astype(DTYPE),
                jax.tree.unflatten(treedef, scaled),
                (params * k).astype(DTYPE),
            )
            state_k = [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(state_k)]
            if not all(
                np.allclose(s, e, rtol=1e-3, atol=0) for s, e in zip(state_k, expected, strict=True)
            ):
                break
            ratio = np.asarray(step_k, np.float64) / step
            if not (np.all(ratio > 0) and np.allclose(ratio, ratio[0], rtol=1e-3)):
                break
            powers.append(math.log(float(ratio[0])) / math.log(k))
        else:
            if math.isclose(powers[0], powers[1], abs_tol=1e-3):
                found.add(round(float(np.mean(powers)), 2) + 0.0)
    return tuple(sorted(found))


def has_consistent_units(exponents: tuple[float, ...]) -> bool:
    """The step can scale like θ itself: ``p = 1`` is among the consistent powers."""
    return any(abs(p - 1.0) < 1e-2 for p in exponents)


# --- saddle points -------------------------------------------------------------------

SADDLE_STARTS = (1e-6, 1e-2)
SADDLE_MAX_STEPS = 20_000


def saddle_escape_steps(
    optimizer: GradientTransformation,
    *,
    starts: tuple[float, ...] = SADDLE_STARTS,
    max_steps: int = SADDLE_MAX_STEPS,
) -> tuple[int, ...]:
    """Steps to leave the saddle of ``f(x, y) = x² − y²`` from ``(1, y₀)``, per ``y₀``.

    The gradient is ``(2x, −2y)``: along ``y`` the slope is ``2y₀``, nearly zero, the
    lecture's plateau around a saddle.  The run has escaped once ``|y| ≥ 1`` (``f`` has
    fallen by at least 1 from the saddle's level).  Plain gradient descent needs
    ``log(1/y₀)/log(1 + 2η)`` steps: the smaller the slope, the longer.  A method
    that divides the step by the gradient's own scale takes a step of about η from
    the start.  Every start is run in one compiled loop (``vmap`` over ``y₀``); a run
    that has not escaped after `max_steps` reports `max_steps`.
    """

    def run(y0):
        params = jnp.stack([jnp.asarray(1.0, DTYPE), y0.astype(DTYPE)])
        grad = jax.grad(lambda p: p[0] ** 2 - p[1] ** 2)

        def cond(carry):
            params, _, t = carry
            return (jnp.abs(params[1]) < 1.0) & (t < max_steps)

        def body(carry):
            params, state, t = carry
            updates, state = optimizer.update(grad(params), state, params)
            return apply_updates(params, updates), state, t + 1

        init = (params, optimizer.init(params), jnp.asarray(0, jnp.int32))
        return jax.lax.while_loop(cond, body, init)[2]

    steps = jax.jit(jax.vmap(run))(jnp.asarray(starts, DTYPE))
    return tuple(int(s) for s in np.asarray(steps))


def handles_saddle(steps: tuple[int, ...]) -> bool:
    """The plateau does not slow the escape: from ``y₀ = 1e-6`` it takes at most 1.5
    times the steps it takes from ``y₀ = 1e-2``.

    For gradient descent the ratio is ``log(1e6)/log(1e2) = 3``, with or without
    momentum (both are linear in the gradient); a rule that normalises the step by
    the gradient's scale leaves the flat start at once and its ratio is about 1.
    """
    return steps[0] <= 1.5 * steps[1]


# --- the table -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One method's measured row; see the module docstring for each column."""

    method: str
    effective_lr_ratio: float
    adaptive: bool
    units_exponents: tuple[float, ...]
    consistent_units: bool
    saddle_steps: tuple[int, ...]
    handles_saddle: bool


def lecture_table(methods: tuple[str, ...] | None = None) -> list[Row]:
    """Measure every column of the lecture's table for `methods`.

    Args:
        methods: registry names (keys of :data:`jopt.optimizers.ALL`); default: all of
            them, in registry order.  Each runs as :func:`race_optimizer` builds it.

    Returns:
        One :class:`Row` per method, in the order given.

    Raises:
        ValueError: a name that is not in the registry.
    """
    names = tuple(optimizers.ALL) if methods is None else tuple(methods)
    unknown = [name for name in names if name not in optimizers.ALL]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}, choose from {list(optimizers.ALL)}")
    rows = []
    for name in names:
        ratio = effective_lr_ratio(race_optimizer(name))
        exponents = units_exponents(race_optimizer(name))
        escape = saddle_escape_steps(race_optimizer(name))
        rows.append(
            Row(
                method=name,
                effective_lr_ratio=ratio,
                adaptive=is_adaptive(ratio),
                units_exponents=exponents,
                consistent_units=has_consistent_units(exponents),
                saddle_steps=escape,
                handles_saddle=handles_saddle(escape),
            )
        )
    return rows
