"""Smith's learning-rate range test: [`lr_range_test`][jopt.training.lr_range_test]."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jopt._core import GradientTransformation
from jopt._validation import check, checked
from jopt.training import _cache
from jopt.training._batches import check_batch_size, check_key, num_examples
from jopt.training._scan import Plan, batch_at, orders
from jopt.training._step import (
    LossFn,
    PyTree,
    check_optimizer,
    fresh_arrays,
    train_step,
    with_extra_args,
)


class LRRangeTest(NamedTuple):
    """The result of [`lr_range_test`][jopt.training.lr_range_test]; every array has shape
    ``(steps_taken,)``.

    Attributes:
        learning_rates: ``ηₜ`` of each step, increasing geometrically.
        smoothed_losses: `losses` smoothed without lag (see
            [`lr_range_test`][jopt.training.lr_range_test]); ``nan`` where the loss was
            not finite.
        suggested_lr: the learning rate at which the smoothed loss fell fastest,
            relative to its value, per decade of learning rate, before it diverged.
        losses: the raw loss of each step, taken before its update.
    """

    learning_rates: np.ndarray
    smoothed_losses: np.ndarray
    suggested_lr: float
    losses: np.ndarray


def lr_range_test(
    loss_fn: LossFn,
    params: PyTree,
    optimizer_factory: Callable[[Any], GradientTransformation]
    | Mapping[str, Callable[[Any], GradientTransformation]],
    data: PyTree,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    shuffle: bool = True,
    smoothing: float = 0.98,
    divergence: float = 4.0,
) -> LRRangeTest | dict[str, LRRangeTest]:
    """Smith's learning-rate range test (Smith, 2017, "Cyclical learning rates", §3.3).

    Train from `params` for `steps` steps while the learning rate grows
    geometrically, ``ηₜ = η_min·(η_max/η_min)^(t/(steps−1))``, and record the loss
    ``Jₜ`` of each step (before its update).  The test stops early, as soon as the
    loss is not finite or its running average ``aₜ = β·aₜ₋₁ + (1 − β)·Jₜ``,
    bias-corrected to ``âₜ = aₜ/(1 − βᵗ⁺¹)``, exceeds `divergence` times its minimum
    so far.

    **Smoothing.**  A running average lags by about ``β/(1 − β)`` steps, which in a
    sweep is a shift in learning rate (at the default β = 0.98, up to 49 steps, four
    decades of the default sweep).  So the returned `smoothed_losses` are that
    bias-corrected average run forward and then backward over the recorded losses:
    the backward pass's lead offsets the forward pass's lag (exactly, for a linear
    trend, away from the ends of the sweep, where the averages cover fewer steps).
    Positive losses are averaged as logarithms, so that a loss falling by orders of
    magnitude keeps its slope.

    **Several optimizers** at once: pass a mapping ``name -> factory``; every one of
    them takes its own steps on the same batches at the same learning rates, all in
    one compiled program, and the result is a dict ``name -> LRRangeTest``.  The
    whole sweep is one ``lax.scan`` (the steps after a divergence are computed and
    discarded).

    **The suggestion** is the learning rate of the steepest descent of the smoothed
    loss on log-log axes, ``argminₜ (log Ĵₜ₊₁ − log Ĵₜ) / (log ηₜ₊₁ − log ηₜ)``, taken
    over the steps up to the minimum of ``Ĵ``, i.e. before divergence.  For one
    quadratic mode of curvature ``h`` under SGD, ``log J`` falls by
    ``2·log|1 − ηh|`` per step, fastest at ``η = 1/h``, its best fixed learning rate;
    too small a rate barely moves the loss, too large a rate makes it fluctuate and
    diverge.  For a non-positive loss the slope of ``Ĵ`` itself is used.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``, as for
            [`fit`][jopt.training.fit].
        params: the starting parameters (not modified: the test trains a copy).
        optimizer_factory: ``learning_rate -> GradientTransformation``, e.g.
            ``jopt.adam`` or ``lambda lr: jopt.sgd(lr, momentum=0.9)``, or a mapping
            ``name -> factory``.  It is called with a traced scalar inside the
            compiled program (the learning rate changes every step without
            recompiling), so it must not branch on the value in Python; jopt's and
            optax's optimizers do not.
        data: a pytree of arrays sharing a leading example axis.
        min_lr: the first learning rate, ``> 0``.
        max_lr: the last learning rate, ``> min_lr``.
        steps: the number of steps (and learning rates), ``>= 3``.
        batch_size: as for [`fit`][jopt.training.fit].  Batches cycle through epochs
            as needed; a ragged last batch is dropped so that every step sees the
            same number of examples.
        key: the PRNG key mini-batches are shuffled with; needed only to shuffle.
        shuffle: shuffle the mini-batches of every epoch.
        smoothing: β of the running average, in ``[0, 1)``; ``0`` does not smooth.
            The default 0.98 is fast.ai's; on noisy least-squares problems
            (condition 4, full and mini-batches, 6 seeds) it kept the suggestion
            within a factor of 0.46 to 2.7 of the best fixed SGD rate, where 0.9 let
            mini-batch noise pull it down to 0.22.
        divergence: the factor over the best averaged loss that counts as
            divergence, ``> 1``.

    Returns:
        An [`LRRangeTest`][jopt.training.LRRangeTest], or a dict of them by name.

    Raises:
        TypeError: an argument of the wrong type (each error names it).
        ValueError: an argument out of range, or ``key=None`` when shuffling
            mini-batches.
    """
    options = check(
        loss_fn=loss_fn,
        min_lr=min_lr,
        max_lr=max_lr,
        steps=steps,
        shuffle=shuffle,
        smoothing=smoothing,
        divergence=divergence,
    )
    factories = _factories(optimizer_factory, min_lr)
    if not max_lr > min_lr:
        raise ValueError(f"max_lr must be > min_lr={min_lr!r}, got {max_lr!r}")
    n = num_examples(data)
    batch_size = check_batch_size(batch_size, n)
    shuffle = options["shuffle"] and batch_size is not None
    check_key(key, needed=shuffle)

    lrs = np.geomspace(min_lr, max_lr, options["steps"])
    plan = Plan.make(n, batch_size, "epoch", shuffle)
    losses = _run(loss_fn, factories, params, data, plan, lrs, key)
    results = {
        name: _result(lrs, curve, smoothing, divergence)
        for name, curve in zip(factories, losses.T, strict=True)
    }
    return results if isinstance(optimizer_factory, Mapping) else results[None]


def _factories(optimizer_factory: Any, min_lr: float) -> dict[Any, Callable]:
    """The factories by name (``None`` for a single one), each checked at `min_lr`."""
    if isinstance(optimizer_factory, Mapping):
        if not optimizer_factory:
            raise ValueError("optimizer_factory must name at least one factory, got {}")
        factories = dict(optimizer_factory)
    else:
        factories = {None: optimizer_factory}
    for name, factory in factories.items():
        label = "optimizer_factory" if name is None else f"optimizer_factory[{name!r}]"
        checked(label, factory)
        check_optimizer(factory(min_lr), f"{label}(min_lr)")
    return factories


def _run(loss_fn, factories, params, data, plan: Plan, lrs: np.ndarray, key) -> np.ndarray:
    """The loss of every step for every factory: shape ``(steps, factories)``.

    One program: a ``lax.scan`` over the steps in which every optimizer takes its own
    step on the same batch.  Batches cycle through epochs, the ragged last batch of
    each dropped (``N // n`` steps per epoch).
    """
    lr_dtype = jnp.asarray(0.0).dtype  # float64 under x64, else float32
    params = fresh_arrays(params)
    # Each state is built with an array learning rate, as the step will see it, so that
    # a transformation whose state depends on the rate's type gets the step's structure.
    first_lr = jnp.asarray(lrs[0], lr_dtype)
    states = tuple(fresh_arrays(f(first_lr).init(params)) for f in factories.values())
    per_epoch = 1 if plan.full_batch else plan.examples // plan.batch
    epochs = -(-len(lrs) // per_epoch)
    args = (
        params,
        states,
        jax.tree.map(jnp.asarray, data),
        orders(plan, key, range(epochs)),
        jnp.asarray(lrs, lr_dtype),
    )
    program = _program(loss_fn, tuple(factories.values()), plan, per_epoch)
    executable, _ = program.executable(_cache.signature(*args), *args)
    return np.asarray(executable(*args), dtype=np.float64)


def _program(loss_fn, factories: tuple, plan: Plan, per_epoch: int) -> _cache.Program:
    def make():
        def run(params, states, data, epoch_orders, lrs):
            def body(carry, inputs):
                t, lr = inputs
                batch = batch_at(plan, data, epoch_orders[t // per_epoch], t % per_epoch)
                new_carry, losses = [], []
                for factory, (p, s) in zip(factories, carry, strict=True):
                    optimizer = with_extra_args(factory(lr))
                    p, s, loss = train_step(loss_fn, optimizer, False, p, s, batch)
                    new_carry.append((p, s))
                    losses.append(loss)
                return tuple(new_carry), jnp.stack(losses)

            carry = tuple((params, state) for state in states)
            steps = jnp.arange(lrs.shape[0])
            _, losses = lax.scan(body, carry, (steps, lrs))
            return losses

        return jax.jit(run)

    return _cache.program(make, "range test", loss_fn, factories, plan, per_epoch)


def _result(lrs: np.ndarray, losses: np.ndarray, smoothing: float, divergence: float):
    """The [`LRRangeTest`][jopt.training.LRRangeTest] of one optimizer's losses, cut at the stopping
    rule."""
    taken = _stop(losses, smoothing, divergence)
    losses, lrs = losses[:taken], lrs[:taken]
    smoothed = zero_phase_average(losses, smoothing)
    return LRRangeTest(
        learning_rates=lrs,
        smoothed_losses=smoothed,
        suggested_lr=steepest_descent(lrs, smoothed),
        losses=losses,
    )


def _stop(losses: np.ndarray, smoothing: float, divergence: float) -> int:
    """The number of steps up to the first sign of divergence (that step included)."""
    average, best = 0.0, math.inf
    for t, loss in enumerate(losses):
        if not math.isfinite(loss):
            return t + 1
        average = smoothing * average + (1 - smoothing) * loss
        corrected = average / (1 - smoothing ** (t + 1))
        best = min(best, corrected)
        if corrected > divergence * best:
            return t + 1
    return len(losses)


def running_average(values: np.ndarray, beta: float) -> np.ndarray:
    """``âₜ = aₜ/(1 − βᵗ⁺¹)`` with ``aₜ = β·aₜ₋₁ + (1 − β)·vₜ``, ``a₋₁ = 0``."""
    out = np.empty_like(values)
    average = 0.0
    for t, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out[t] = average / (1 - beta ** (t + 1))
    return out


def zero_phase_average(losses: np.ndarray, beta: float) -> np.ndarray:
    """The running average forward, then backward: its lag offset by an equal lead.

    Positive losses are averaged as logarithms (a geometric mean): a loss that falls by
    orders of magnitude keeps its slope, where an arithmetic average would cap its
    fall at a factor β per step.  ``nan`` from the first non-finite loss on.
    """
    smoothed = np.full(losses.shape, np.nan)
    finite = len(losses) if np.all(np.isfinite(losses)) else int(np.argmin(np.isfinite(losses)))
    if finite:
        values = losses[:finite]
        positive = bool(np.all(values > 0))
        if positive:
            values = np.log(values)
        forward = running_average(values, beta)
        both = running_average(forward[::-1], beta)[::-1]
        smoothed[:finite] = np.exp(both) if positive else both
    return smoothed


def steepest_descent(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """The rate of the steepest fall of ``smoothed`` on log-log axes, before its minimum."""
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size < 2:
        return float(lrs[0])
    end = int(np.argmin(finite)) + 1  # past the minimum the loss only rises: divergence
    if end < 2:
        return float(lrs[0])
    curve = finite[:end]
    if np.all(curve > 0):
        curve = np.log(curve)
    slopes = np.diff(curve) / np.diff(np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slopes))])
