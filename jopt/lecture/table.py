"""The lecture's summary table of optimizers, measured instead of asserted.

The lecture ends its tour of gradient descent with a table: for each method, whether
it adapts the learning rate per parameter, whether its update has consistent units,
and whether it easily handles saddle points.  Each column is measured here on a small
problem, by running the optimizer's own ``init``/``update``:

* **adaptive learning rate**: ``effective_lr_ratio``;
* **consistent units**: ``units_exponent``;
* **saddle points**: ``saddle_escape_steps``.

``lecture_table`` runs all three for any optimizers of the registry,
[`jopt.optimizers.ALL`][jopt.optimizers.ALL], each at ``SADDLE_LR`` (``race_optimizer``).  All
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

from jopt import _core, optimizers
from jopt._core import GradientTransformation, apply_updates
from jopt.lecture import roster
from jopt.training import _cache

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


def _step(optimizer, grads, state, params, loss):
    """``optimizer.update`` with the extra arguments a line search or a plateau
    schedule needs (``value``, ``grad``, ``value_fn``); others ignore them."""
    update = _core._as_transformation(optimizer, "optimizer").update
    return update(grads, state, params, value=loss(params), grad=grads, value_fn=loss)


def race_optimizer(name: str) -> GradientTransformation:
    """The registry's optimizer ``name`` with the hyperparameters the table measures:
    ``SADDLE_LR`` and its defaults (see ``jopt.lecture.roster.build``)."""
    return roster.build(name, learning_rate=SADDLE_LR)


# --- adaptive learning rate ----------------------------------------------------------

GRADIENT_SCALES = (1.0, 10.0, 100.0)
"""Three parameters, the shape of the units probe's too: the same compiled blocks
serve both measurements."""


def effective_lr_ratio(optimizer: GradientTransformation, *, steps: int = 3) -> float:
    """How differently the optimizer treats parameters whose gradients differ in scale.

    Three parameters see constant gradients ``g = (1, 10, 100)`` (the loss
    ``θ₁ + 10·θ₂ + 100·θ₃``) for `steps` updates.  Each parameter's *effective
    learning rate* at the last step is ``ηᵢ = −Δθᵢ / gᵢ``.  Returns
    ``max(ηᵢ) / min(ηᵢ)``: exactly 1 for a method that applies one learning rate to
    all parameters (SGD, with or without momentum, whose
    buffers are linear in ``g``), and far from 1 for a method that scales each
    parameter's step by its own gradient history (Adagrad: ``ηᵢ = η/√Gᵢᵢ``).
    """
    params = jnp.zeros(len(GRADIENT_SCALES), DTYPE)
    grads = jnp.asarray(GRADIENT_SCALES, DTYPE)
    state = optimizer.init(params)
    for _ in range(steps):
        updates, state = _step(optimizer, grads, state, params, lambda p: grads @ p)
        params = apply_updates(params, updates)
    lr = -np.asarray(updates, np.float64) / np.asarray(GRADIENT_SCALES)
    if not np.all(lr > 0):
        raise ValueError(f"the optimizer did not descend on a linear loss: effective rates {lr}")
    return float(lr.max() / lr.min())


def is_adaptive(ratio: float) -> bool:
    """A per-parameter learning rate: the effective rates differ by over 10%."""
    return ratio > 1.1


# --- consistent units ----------------------------------------------------------------

UNIT_SCALES = (4.0, 0.25)
STATE_EXPONENTS = (-2, -1, 0, 1, 2)
MAX_STATE_LEAVES = 6
"""States with more float leaves than this are not searched (5⁶ = 15,625 unit
assignments are tried at once; 5⁷ would be five times as many)."""
EAGER_ASSIGNMENTS = 125
"""Up to this many assignments are tried one by one, without compiling."""


def units_exponents(
    optimizer: GradientTransformation, *, seed: int = 0
) -> tuple[float, ...] | None:
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

    The assignments are tried all at once (``vmap``, one compiled update per ``k``);
    a state with more than ``MAX_STATE_LEAVES`` float leaves has too many to try,
    and gives ``None``.
    """
    rng = np.random.default_rng(seed)
    params = jnp.asarray(rng.uniform(0.5, 2.0, 3), DTYPE)
    grads = jnp.asarray(rng.uniform(0.5, 2.0, 3) * rng.choice([-1.0, 1.0], 3), DTYPE)
    state = optimizer.init(params)
    for _ in range(3):
        warm = jnp.asarray(rng.normal(size=3), DTYPE)
        _, state = _step(optimizer, warm, state, params, lambda p, w=warm: w @ p)
    leaves, treedef = jax.tree.flatten(state)
    floating = [i for i, leaf in enumerate(leaves) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    if len(floating) > MAX_STATE_LEAVES:
        return None
    for i in floating:
        leaves[i] = jnp.asarray(rng.uniform(0.5, 2.0, np.shape(leaves[i])), leaves[i].dtype)
    combos = np.asarray(list(itertools.product(STATE_EXPONENTS, repeat=len(floating))))
    combos = combos.reshape(len(combos), len(floating))
    probe = _UnitsProbe(optimizer, params, grads, leaves, treedef, floating, combos)
    consistent = np.ones(len(combos), bool)
    powers = []
    for k in UNIT_SCALES:
        fits, power = probe.powers(k)
        consistent &= fits
        powers.append(power)
    agree = consistent & np.isclose(powers[0], powers[1], atol=1e-3)
    found = (powers[0][agree] + powers[1][agree]) / 2
    return tuple(sorted({round(float(p), 2) + 0.0 for p in found}))


class _UnitsProbe:
    """One update on ``(g, s, θ)``, and for every assignment ``a`` one on
    ``(g/k, kᵃ·s, k·θ)`` (all assignments at once, under ``vmap``)."""

    def __init__(self, optimizer, params, grads, leaves, treedef, floating, combos):
        self.optimizer, self.params, self.grads = optimizer, params, grads
        self.leaves, self.treedef, self.floating, self.combos = leaves, treedef, floating, combos
        state = jax.tree.unflatten(treedef, leaves)
        step, new_state = _step(optimizer, grads, state, params, lambda p: grads @ p)
        self.step = np.asarray(step, np.float64)
        self.new_leaves = [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(new_state)]

    def _scaled(self, factors, k):
        scaled = list(self.leaves)
        for j, i in enumerate(self.floating):
            scaled[i] = (self.leaves[i] * factors[j]).astype(self.leaves[i].dtype)
        g, p = (self.grads / k).astype(DTYPE), (self.params * k).astype(DTYPE)
        state = jax.tree.unflatten(self.treedef, scaled)
        return _step(self.optimizer, g, state, p, lambda q: g @ q)

    def powers(self, k: float) -> tuple[np.ndarray, np.ndarray]:
        """Per assignment: whether the scaled update is consistent, and its power."""
        combos = self.combos
        factors = jnp.asarray(float(k) ** combos, DTYPE)
        if len(combos) <= EAGER_ASSIGNMENTS:
            # A few assignments: op by op, cheaper than compiling the batched update.
            runs = [self._scaled(row, k) for row in factors]
            step_k, state_k = jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)
        else:
            step_k, state_k = jax.jit(jax.vmap(self._scaled, in_axes=(0, None)))(factors, k)
        fits = np.ones(len(combos), bool)
        for i, (leaf, new) in enumerate(
            zip(jax.tree.leaves(state_k), self.new_leaves, strict=True)
        ):
            expected = new[None] * _leaf_factor(i, self.floating, combos, k, np.ndim(new))
            close = np.isclose(np.asarray(leaf, np.float64), expected, rtol=1e-3, atol=0)
            fits &= close.reshape(len(combos), -1).all(axis=1)
        ratio = np.asarray(step_k, np.float64) / self.step[None]
        fits &= np.all(ratio > 0, axis=1)
        fits &= np.all(np.isclose(ratio, ratio[:, :1], rtol=1e-3), axis=1)
        return fits, np.log(np.abs(ratio[:, 0])) / math.log(k)


def _leaf_factor(i, floating, combos, k, ndim) -> np.ndarray:
    """``kᵃ`` of state leaf ``i`` for every assignment, shaped to broadcast."""
    if i not in floating:
        factor = np.ones(len(combos))
    else:
        factor = float(k) ** combos[:, floating.index(i)].astype(np.float64)
    return factor.reshape(len(combos), *([1] * ndim))


def has_consistent_units(exponents: tuple[float, ...] | None) -> bool | None:
    """The step can scale like θ itself: ``p = 1`` is among the consistent powers
    (``None`` when the powers were not measured)."""
    if exponents is None:
        return None
    return any(abs(p - 1.0) < 1e-2 for p in exponents)


# --- saddle points -------------------------------------------------------------------

SADDLE_STARTS = (1e-6, 1e-2)
SADDLE_MAX_STEPS = 20_000


def saddle_escape_steps(
    optimizer: GradientTransformation,
    *,
    starts: tuple[float, ...] = SADDLE_STARTS,
    max_steps: int = SADDLE_MAX_STEPS,
    x0: tuple[float, ...] | None = None,
) -> tuple[int, ...]:
    """Steps to leave the saddle of ``f(x, y) = x² − y²`` from ``(1, y₀)``, per ``y₀``.

    The gradient is ``(2x, −2y)``: along ``y`` the slope is ``2y₀``, nearly zero, the
    lecture's plateau around a saddle.  The run has escaped once ``|y| ≥ 1`` (``f`` has
    fallen by at least 1 from the saddle's level).  Plain gradient descent needs
    ``log(1/y₀)/log(1 + 2η)`` steps: the smaller the slope, the longer.  A method
    that divides the step by the gradient's own scale takes a step of about η from
    the start.  Every start is run in one compiled loop (``vmap`` over the starts); a
    run that has not escaped after `max_steps` reports `max_steps`.  `x0` gives
    each start its own ``x₀`` (default 1).
    """
    (steps,) = _escape_steps((optimizer,), starts, max_steps, x0)
    return tuple(int(s) for s in steps)


def _escape_steps(optimizers_, starts, max_steps, x0) -> list[np.ndarray]:
    """``saddle_escape_steps`` for several optimizers in one compiled program."""

    def loss(params):
        return params[0] ** 2 - params[1] ** 2

    def escape(optimizer, start):
        def cond(carry):
            params, _, t = carry
            return (jnp.abs(params[1]) < 1.0) & (t < max_steps)

        def body(carry):
            params, state, t = carry
            updates, state = _step(optimizer, jax.grad(loss)(params), state, params, loss)
            return apply_updates(params, updates), state, t + 1

        init = (start, optimizer.init(start), jnp.asarray(0, jnp.int32))
        return jax.lax.while_loop(cond, body, init)[2]

    def run(points):
        return [jax.vmap(lambda p, o=o: escape(o, p))(points) for o in optimizers_]

    xs = (1.0,) * len(starts) if x0 is None else x0
    points = jnp.asarray(np.stack([xs, starts], axis=1), DTYPE)
    program = _cache.program(lambda: jax.jit(run), "saddle race", optimizers_, max_steps)
    executable, _ = program.executable(_cache.signature(points), points)
    return [np.asarray(steps) for steps in executable(points)]


def saddle_starts(seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """The saddle race's starts for `seeds` seeds: ``(x0, y0)``, each ``(starts, seeds)``.

    Seed 0 starts from the nominal ``(1, y₀)`` of ``SADDLE_STARTS``; seed
    ``s > 0`` from ``x₀ ~ U(0.5, 1.5)`` and ``y₀`` scaled by ``10^U(−½, ½)`` (half a
    decade either way), drawn by ``np.random.default_rng(s)``: the same starts for
    every optimizer.
    """
    x0 = np.ones((len(SADDLE_STARTS), seeds))
    y0 = np.tile(np.asarray(SADDLE_STARTS)[:, None], (1, seeds))
    for seed in range(1, seeds):
        rng = np.random.default_rng(seed)
        x0[:, seed] = rng.uniform(0.5, 1.5, len(SADDLE_STARTS))
        y0[:, seed] *= 10.0 ** rng.uniform(-0.5, 0.5, len(SADDLE_STARTS))
    return x0, y0


def saddle_spread(optimizer: GradientTransformation, *, seeds: int) -> np.ndarray:
    """Steps to escape from every start of ``saddle_starts``: ``(starts, seeds)``."""
    return _spreads((optimizer,), seeds)[0]


def _spreads(optimizers_, seeds: int) -> list[np.ndarray]:
    x0, y0 = saddle_starts(seeds)
    steps = _escape_steps(optimizers_, tuple(y0.ravel()), SADDLE_MAX_STEPS, tuple(x0.ravel()))
    return [s.reshape(x0.shape) for s in steps]


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
    """One method's measured row; see the module docstring for each column.

    ``saddle_steps`` are from the nominal starts; ``saddle_mean`` and ``saddle_std``
    over the seeds' starts (``saddle_starts``), one entry per nominal start.  A
    measurement that could not be made is ``None``, with the reason in ``note``.
    """

    method: str
    effective_lr_ratio: float | None
    adaptive: bool | None
    units_exponents: tuple[float, ...] | None
    consistent_units: bool | None
    saddle_steps: tuple[int, ...] | None
    handles_saddle: bool | None
    saddle_mean: tuple[float, ...] | None = None
    saddle_std: tuple[float, ...] | None = None
    note: str = ""


def lecture_table(methods: tuple[str, ...] | None = None, *, seeds: int = 1) -> list[Row]:
    """Measure every column of the lecture's table for `methods`.

    Args:
        methods: registry names (keys of
            [`jopt.optimizers.ALL`][jopt.optimizers.ALL]); default: all of them, in
            registry order.  Each runs as ``race_optimizer`` builds it.
        seeds: starts of the saddle race per nominal start (``saddle_starts``).

    Returns:
        One ``Row`` per method, in the order given.  A measurement that fails
        for a method (one that cannot run on these toy problems) is ``None`` in its
        row, and ``note`` says why; the other methods are measured as usual.

    Raises:
        ValueError: a name that is not in the registry.
    """
    names = tuple(optimizers.ALL) if methods is None else tuple(methods)
    unknown = [name for name in names if name not in optimizers.ALL]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}, choose from {list(optimizers.ALL)}")
    try:  # every method's saddle race in one program: one compilation
        spreads = dict(zip(names, _spreads([race_optimizer(n) for n in names], seeds), strict=True))
    except Exception:  # each on its own, to name the one that fails
        spreads = {}
    return [_row(name, seeds, spreads.get(name)) for name in names]


def _row(name: str, seeds: int, spread: np.ndarray | None) -> Row:
    notes = []

    def measure(what, fn):
        try:
            return fn(race_optimizer(name))
        except Exception as error:
            notes.append(f"{what}: {type(error).__name__}: {error}".splitlines()[0])
            return None

    ratio = measure("adaptive lr", effective_lr_ratio)
    exponents = measure("units", units_exponents)
    if exponents is None and not any(note.startswith("units") for note in notes):
        notes.append(f"units: more than {MAX_STATE_LEAVES} float state leaves, not searched")
    if spread is None:
        spread = measure("saddle", lambda optimizer: saddle_spread(optimizer, seeds=seeds))
    steps = None if spread is None else tuple(int(s) for s in spread[:, 0])
    std = None
    if spread is not None:
        std = tuple(
            float(v) for v in (spread.std(axis=1, ddof=1) if seeds > 1 else 0 * spread[:, 0])
        )
    return Row(
        method=name,
        effective_lr_ratio=ratio,
        adaptive=None if ratio is None else is_adaptive(ratio),
        units_exponents=exponents,
        consistent_units=has_consistent_units(exponents),
        saddle_steps=steps,
        handles_saddle=None if steps is None else handles_saddle(steps),
        saddle_mean=None if spread is None else tuple(float(v) for v in spread.mean(axis=1)),
        saddle_std=std,
        note="; ".join(notes),
    )
