"""Schedules made of phases: warmup_stable_decay, one_cycle (and its momentum), swa."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from jopt._core import Schedule
from jopt._validation import checked
from jopt.schedules._steps import Steps, make_schedule, steps_arg
from jopt.schedules._steps import value as _value

__all__ = ["warmup_stable_decay", "one_cycle", "one_cycle_momentum", "swa"]

Number = Any


def _anneal(strategy: str, start, end, pct):
    """From ``start`` (``pct = 0``) to ``end`` (``pct = 1``), by a half cosine or a line."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (1.0 + jnp.cos(jnp.pi * pct))
    return (end - start) * pct + start


def warmup_stable_decay(
    peak_value: Number,
    *,
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    init_value: Number = 0.0,
    end_value: Number = 0.0,
    decay_shape: str = "linear",
) -> Schedule:
    """Warmup, stable, decay (WSD): the trapezoid schedule of LLM pre-training.

    A linear warmup over ``W = warmup_steps`` steps, ``S = stable_steps`` steps at the
    peak, then a decay over ``D = decay_steps`` steps to ``end_value``, held after
    (Zhai et al., 2022; Hu et al., 2024, MiniCPM; Hägele et al., 2024):

    ```text
    value(t) = v₀ + (v_peak − v₀)·t / W                     t < W
    value(t) = v_peak + (v_end − v_peak)·f(s)               t >= W,
               s = clip(t − W − S, 0, D) / D
    ```

    with ``f(s) = s`` (``"linear"``), ``f(s) = ½(1 − cos(π·s))`` (``"cosine"``) or
    ``f(s) = √s`` (``"sqrt"``, the 1 − √ cooldown of Hägele et al.).  The value is
    ``v_peak`` from ``t = W`` to ``t = W + S`` and ``v_end`` from ``t = W + S + D`` on.

    Args:
      peak_value: ``v_peak``, a finite number.
      warmup_steps: ``W``, an integer ``>= 0`` (0: start at the peak).
      stable_steps: ``S``, an integer ``>= 0``.
      decay_steps: ``D``, an integer ``>= 1``.
      init_value: ``v₀``, the value at step 0, a finite number.
      end_value: ``v_end``, a finite number.
      decay_shape: ``"linear"``, ``"cosine"`` or ``"sqrt"``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    peak, v0 = _value("peak_value", peak_value), _value("init_value", init_value)
    end = _value("end_value", end_value)
    warmup = steps_arg("warmup_steps", warmup_steps)
    stable = steps_arg("stable_steps", stable_steps)
    decay = steps_arg("decay_steps", decay_steps)
    shape = checked("decay_shape", decay_shape)

    def body(steps: Steps):
        rising = v0 + (peak - v0) * (steps.as_float(steps.since(0, warmup)) / float(max(warmup, 1)))
        s = steps.as_float(steps.since(warmup + stable, decay)) / float(decay)
        if shape == "linear":
            f = s
        elif shape == "cosine":
            f = 0.5 * (1.0 - jnp.cos(jnp.pi * s))
        else:
            f = jnp.sqrt(s)
        falling = peak + (end - peak) * f
        return jnp.where(steps.at_least(warmup), falling, rising)

    return make_schedule(body, "warmup_stable_decay")


def _one_cycle_phases(total: int, pct_start: float, three_phase: bool) -> list[float]:
    """torch's phase ends (``end_step``), as floats: the last step of each phase."""
    first = float(pct_start * total) - 1
    if three_phase:
        return [first, float(2 * pct_start * total) - 2, float(total) - 1]
    return [first, float(total) - 1]


def _cycle(name, total, pct_start, strategy, three_phase, points):
    """One cycle through ``points`` (the value at the start of each phase and at the end)."""
    ends = _one_cycle_phases(total, pct_start, three_phase)
    starts = [0.0, *ends[:-1]]
    # Integer steps: step t is in phase k when t <= ends[k] (the first such k), i.e. once
    # t >= floor(ends[k]) + 1 the phase is over.  Past the last phase, hold its end.
    marks = [max(math.floor(e) + 1, 0) for e in ends[:-1]]

    def body(steps: Steps):
        index = steps.count_reached(marks)
        t = steps.float_t()
        begin = jnp.asarray(starts)[index]
        length = jnp.asarray([e - s for s, e in zip(starts, ends, strict=True)])[index]
        pct = jnp.where(length > 0, (t - begin) / jnp.where(length > 0, length, 1.0), 1.0)
        pct = jnp.minimum(pct, 1.0)
        lo = jnp.stack([jnp.asarray(p, t.dtype) for p in points[:-1]])[index]
        hi = jnp.stack([jnp.asarray(p, t.dtype) for p in points[1:]])[index]
        return _anneal(strategy, lo, hi, pct)

    return make_schedule(body, name)


def one_cycle(
    max_value: Number,
    *,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """torch's ``OneCycleLR`` learning rate (Smith & Topin, 2019, super-convergence).

    From ``v_init = max_value / div_factor`` up to ``max_value`` over the first
    ``pct_start`` of ``total_steps``, then down to ``v_min = v_init / final_div_factor``
    at step ``total_steps − 1``; each phase anneals by a half cosine (``"cos"``) or a
    line (``"linear"``).  With ``three_phase=True``: up to the peak, back down to
    ``v_init`` over as many steps, then down to ``v_min``.  Phase ``k`` ends at torch's
    ``end_step``: ``pct_start·N − 1``, (three phases: ``2·pct_start·N − 2``), ``N − 1``
    for ``N = total_steps``; within a phase from ``s`` to ``e`` the fraction is
    ``(t − s) / (e − s)``.  After step ``N − 1`` the value stays at ``v_min`` (torch
    raises past ``N``).  Pair it with [`one_cycle_momentum`][jopt.schedules.one_cycle_momentum] for
    the momentum cycle.

    Args:
      max_value: the peak, a finite number.
      total_steps: ``N``, an integer ``>= 1``.
      pct_start: the fraction of the steps spent rising, in ``(0, 1)``.
      anneal_strategy: ``"cos"`` or ``"linear"``.
      div_factor: ``max_value / v_init``, ``> 0``.
      final_div_factor: ``v_init / v_min``, ``> 0``.
      three_phase: a bool; the three-phase cycle above.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    peak = _value("max_value", max_value)
    total = steps_arg("total_steps", total_steps)
    pct = _value("pct_start", pct_start)
    strategy = checked("anneal_strategy", anneal_strategy)
    div = _value("div_factor", div_factor)
    final_div = _value("final_div_factor", final_div_factor)
    three = checked("three_phase", three_phase)
    low = peak / div
    points = [low, peak, low, low / final_div] if three else [low, peak, low / final_div]
    return _cycle("one_cycle", total, pct, strategy, three, points)


def one_cycle_momentum(
    total_steps: int,
    *,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    base_momentum: Number = 0.85,
    max_momentum: Number = 0.95,
    three_phase: bool = False,
) -> Schedule:
    """The momentum cycle of torch's ``OneCycleLR`` (``cycle_momentum=True``).

    The mirror image of [`one_cycle`][jopt.schedules.one_cycle] with the same phases: from
    ``max_momentum`` down to ``base_momentum`` while the learning rate rises, then back up to
    ``max_momentum`` (three phases: down, up, then held at ``max_momentum``).  torch
    writes it into SGD's ``momentum`` or Adam's ``β₁``: pass it as ``momentum=`` or
    ``b1=`` through [`jopt.inject_hyperparams`][jopt.inject_hyperparams].

    Args:
      total_steps: ``N``, an integer ``>= 1``; as for [`one_cycle`][jopt.schedules.one_cycle].
      pct_start: as for [`one_cycle`][jopt.schedules.one_cycle].
      anneal_strategy: as for [`one_cycle`][jopt.schedules.one_cycle].
      base_momentum: the low point, in ``[0, 1)``.
      max_momentum: the start and end, in ``[0, 1)``.
      three_phase: as for [`one_cycle`][jopt.schedules.one_cycle].

    Returns:
      A schedule ``step -> momentum``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    total = steps_arg("total_steps", total_steps)
    pct = _value("pct_start", pct_start)
    strategy = checked("anneal_strategy", anneal_strategy)
    base = _value("base_momentum", base_momentum)
    top = _value("max_momentum", max_momentum)
    three = checked("three_phase", three_phase)
    points = [top, base, top, top] if three else [top, base, top]
    return _cycle("one_cycle_momentum", total, pct, strategy, three, points)


def swa(
    init_value: Number,
    *,
    swa_value: Number,
    anneal_steps: int = 10,
    anneal_strategy: str = "cos",
) -> Schedule:
    """torch's ``SWALR``: anneal from ``init_value`` to ``swa_value``, then hold it.

    ``value(t) = v_swa·a(x) + v₀·(1 − a(x))`` with ``x = min(t / A, 1)``, ``A =
    anneal_steps``, ``a(x) = ½(1 − cos(π·x))`` (``"cos"``) or ``a(x) = x``
    (``"linear"``); ``A = 0`` gives ``v_swa`` from the start (Izmailov et al., 2018).
    ``v₀`` is the learning rate in effect when torch's ``SWALR`` is built; ``t`` counts
    its ``step()`` calls.  Start it at step ``s`` of a run with
    [`join`][jopt.schedules.join]: ``join([before, swa(v, swa_value=...)], boundaries=[s])``, and
    average the weights with [`jopt.averaged`][jopt.averaged].

    Args:
      init_value: ``v₀``, a finite number.
      swa_value: ``v_swa``, a finite number.
      anneal_steps: ``A``, an integer ``>= 0``.
      anneal_strategy: ``"cos"`` or ``"linear"``.

    Returns:
      A schedule ``step -> value``.

    Raises:
      TypeError, ValueError: an argument has the wrong type or is out of range.
    """
    v0, target = _value("init_value", init_value), _value("swa_value", swa_value)
    anneal = steps_arg("anneal_steps", anneal_steps)
    strategy = checked("anneal_strategy", anneal_strategy)

    def body(steps: Steps):
        if anneal == 0:
            return steps.full(target)
        x = steps.as_float(steps.since(0, anneal)) / float(anneal)
        a = _anneal(strategy, 0.0, 1.0, x)
        return target * a + v0 * (1.0 - a)

    return make_schedule(body, "swa")
