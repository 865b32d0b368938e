"""Schedules: pure functions ``step -> value`` for learning rates and other hyperparameters.

Each function here returns a schedule, a jittable function of an integer step ``t``
(a Python int, a NumPy integer, or a JAX integer array, possibly traced, of any shape)
that returns a float array of the step's shape in the default float dtype (float32,
or float64 with 64-bit types on).  A schedule is accepted anywhere a learning rate is,
and by [`jopt.inject_hyperparams`][jopt.inject_hyperparams] for any numeric hyperparameter.

Which step a schedule sees: ``t`` is the number of updates applied *before* the
current one.  The first update uses ``schedule(0)``, the second ``schedule(1)``, and
so on.  This is optax's convention, and the same as a torch ``LRScheduler`` whose
``step()`` is called once after every ``optimizer.step()``: torch's k-th optimizer
step (k = 1, 2, ...) uses the rate the scheduler computes for epoch ``k − 1``.

Exact at every step.  Boundaries, periods and cycle positions are computed on the
step as an integer, so a schedule is right at any step: for a Python int up to
2⁶³ − 1, and for an int32 step count up to 2³¹ − 1, where jopt's counts saturate.
Negative steps count as 0, and a float step is a ``TypeError``.

Arguments: everything after the first is keyword-only.  Step counts
(``transition_steps``, ``boundaries``, ...) are Python integers up to 2⁶³ − 1, fixed
when the schedule is built; values are numbers or 0-d arrays.  A wrong type raises
``TypeError`` and a value out of range ``ValueError``, naming the argument.
"""

from jopt.schedules._cycles import cosine_restarts, cyclic
from jopt.schedules._decay import (
    constant,
    cosine_decay,
    exponential_decay,
    linear,
    polynomial,
    warmup_cosine_decay,
)
from jopt.schedules._phases import one_cycle, one_cycle_momentum, swa, warmup_stable_decay
from jopt.schedules._piecewise import join, multistep, piecewise_constant

__all__ = [
    "constant",
    "linear",
    "polynomial",
    "exponential_decay",
    "cosine_decay",
    "warmup_cosine_decay",
    "warmup_stable_decay",
    "piecewise_constant",
    "multistep",
    "join",
    "cosine_restarts",
    "cyclic",
    "one_cycle",
    "one_cycle_momentum",
    "swa",
]
