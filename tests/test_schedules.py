"""Schedules against their closed forms, the step they see, and torch's LR schedulers.

The closed forms are restated below in float64 NumPy, independently of jopt's code
(e.g. ``piecewise_constant`` through ``np.searchsorted``), and compared at many steps
including every boundary.  The torch comparison replays the golden trajectories that
``tools/make_golden.py`` recorded with ``StepLR`` and ``CosineAnnealingLR``.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import GOLDEN_RTOL, load_golden, replay

import jopt
from jopt import schedules

# Compared with float64 restatements: 64-bit types on for every test here.
pytestmark = pytest.mark.float64

INT32_MAX = 2**31 - 1


def steps_around(*points: int, upto: int) -> np.ndarray:
    """0 .. upto, every point ± 1, and a few huge steps (int32)."""
    near = [p + d for p in points for d in (-1, 0, 1)]
    steps = set(range(upto + 1)) | {s for s in near if s >= 0} | {10**6, INT32_MAX}
    return np.array(sorted(steps), dtype=np.int32)


def evaluate(schedule, steps: np.ndarray) -> np.ndarray:
    """The schedule at every step, jitted, with the step as a traced int32 scalar."""
    one = jax.jit(schedule)
    return np.array([float(one(jnp.asarray(s, jnp.int32))) for s in steps])


# --- closed forms in NumPy --------------------------------------------------------------


def np_linear(t, v0, v1, T):
    return v0 + (v1 - v0) * np.minimum(t / T, 1.0)


def np_exponential(t, v0, r, T, staircase):
    exponent = np.floor(t / T) if staircase else t / T
    with np.errstate(over="ignore"):  # growth to inf at huge steps, as in jopt
        return v0 * r**exponent


def np_cosine(t, v0, T, alpha):
    return v0 * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * np.minimum(t, T) / T)) + alpha)


def np_warmup_cosine(t, v0, peak, W, D, end):
    t = np.asarray(t, np.float64)
    out = np.empty_like(t)
    for i, s in enumerate(t):
        if s < W:
            out[i] = v0 + (peak - v0) * s / W
        else:
            progress = min(s - W, D - W) / (D - W)
            out[i] = end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))
    return out


def np_piecewise(t, boundaries, values):
    return np.asarray(values, np.float64)[np.searchsorted(boundaries, t, side="right")]


CASES = [
    ("constant", schedules.constant(0.3), lambda t: np.full(t.shape, 0.3), ()),
    ("linear-down", schedules.linear(1.0, 0.1, 10), lambda t: np_linear(t, 1.0, 0.1, 10), (10,)),
    ("linear-up", schedules.linear(0.0, 2.0, 7), lambda t: np_linear(t, 0.0, 2.0, 7), (7,)),
    ("linear-1", schedules.linear(0.5, 0.25, 1), lambda t: np_linear(t, 0.5, 0.25, 1), (1,)),
    (
        "exponential",
        schedules.exponential_decay(0.1, 0.9),
        lambda t: np_exponential(t, 0.1, 0.9, 1, False),
        (),
    ),
    (
        "exponential-T",
        schedules.exponential_decay(0.1, 0.5, transition_steps=4),
        lambda t: np_exponential(t, 0.1, 0.5, 4, False),
        (4, 8),
    ),
    (
        "exponential-staircase",
        schedules.exponential_decay(0.05, 0.5, transition_steps=10, staircase=True),
        lambda t: np_exponential(t, 0.05, 0.5, 10, True),
        (10, 20, 30),
    ),
    (
        "exponential-growth",
        schedules.exponential_decay(1e-3, 1.5, transition_steps=3, staircase=True),
        lambda t: np_exponential(t, 1e-3, 1.5, 3, True),
        (3, 6),
    ),
    ("cosine", schedules.cosine_decay(1.0, 20), lambda t: np_cosine(t, 1.0, 20, 0.0), (10, 20)),
    (
        "cosine-alpha",
        schedules.cosine_decay(0.02, 100, alpha=0.005),
        lambda t: np_cosine(t, 0.02, 100, 0.005),
        (50, 100),
    ),
    (
        "warmup-cosine",
        schedules.warmup_cosine_decay(0.0, 1.0, 5, 25, end_value=0.1),
        lambda t: np_warmup_cosine(t, 0.0, 1.0, 5, 25, 0.1),
        (5, 15, 25),
    ),
    (
        "warmup-cosine-from-nonzero",
        schedules.warmup_cosine_decay(0.2, 0.5, 3, 8),
        lambda t: np_warmup_cosine(t, 0.2, 0.5, 3, 8, 0.0),
        (3, 8),
    ),
    (
        "warmup-cosine-no-warmup",
        schedules.warmup_cosine_decay(9.0, 1.0, 0, 12),
        lambda t: np_warmup_cosine(t, 9.0, 1.0, 0, 12, 0.0),
        (12,),
    ),
    (
        "piecewise",
        schedules.piecewise_constant([3, 7, 20], [1.0, 0.5, 0.1, 0.01]),
        lambda t: np_piecewise(t, [3, 7, 20], [1.0, 0.5, 0.1, 0.01]),
        (3, 7, 20),
    ),
    (
        "piecewise-at-0",
        schedules.piecewise_constant([0, 1], [5.0, 4.0, 3.0]),
        lambda t: np_piecewise(t, [0, 1], [5.0, 4.0, 3.0]),
        (0, 1),
    ),
    (
        "piecewise-none",
        schedules.piecewise_constant([], [0.7]),
        lambda t: np.full(t.shape, 0.7),
        (),
    ),
]


@pytest.mark.parametrize(
    "name, schedule, closed_form, boundaries", CASES, ids=[c[0] for c in CASES]
)
def test_schedule_matches_closed_form(name, schedule, closed_form, boundaries):
    steps = steps_around(*boundaries, upto=40)
    np.testing.assert_allclose(
        evaluate(schedule, steps), closed_form(steps.astype(np.float64)), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize(
    "name, schedule, closed_form, boundaries", CASES, ids=[c[0] for c in CASES]
)
def test_schedule_accepts_python_ints_and_step_arrays(name, schedule, closed_form, boundaries):
    steps = steps_around(*boundaries, upto=12)
    expected = closed_form(steps.astype(np.float64))
    # Vectorised over an array of steps, and called with plain Python ints.
    np.testing.assert_allclose(schedule(jnp.asarray(steps)), expected, rtol=1e-12, atol=1e-15)
    for s, e in zip(steps[:5], expected[:5]):
        np.testing.assert_allclose(float(schedule(int(s))), e, rtol=1e-12, atol=1e-15)


def test_piecewise_constant_boundary_semantics():
    """``values[i]`` from step ``boundaries[i-1]`` on: the switch happens *at* the boundary."""
    schedule = schedules.piecewise_constant([10, 20], [3.0, 2.0, 1.0])
    got = [float(schedule(t)) for t in (0, 9, 10, 19, 20, 21)]
    assert got == [3.0, 3.0, 2.0, 2.0, 1.0, 1.0]


def test_join_offsets_each_schedule_to_its_start():
    warmup = schedules.linear(0.0, 1.0, 4)
    decay = schedules.cosine_decay(1.0, 10, alpha=0.1)
    joined = schedules.join([warmup, decay, 0.05], [4, 14])
    steps = steps_around(4, 14, upto=30)
    t = steps.astype(np.float64)
    expected = np.where(
        t < 4,
        np_linear(t, 0.0, 1.0, 4),
        np.where(t < 14, np_cosine(t - 4, 1.0, 10, 0.1), 0.05),
    )
    np.testing.assert_allclose(evaluate(joined, steps), expected, rtol=1e-12, atol=1e-15)


def test_join_of_joins():
    inner = schedules.join([schedules.constant(1.0), schedules.constant(2.0)], [3])
    outer = schedules.join([inner, schedules.linear(2.0, 0.0, 4)], [6])
    steps = np.arange(0, 14)
    expected = np.where(steps < 3, 1.0, np.where(steps < 6, 2.0, np_linear(steps - 6, 2.0, 0.0, 4)))
    np.testing.assert_allclose(evaluate(outer, steps), expected, rtol=1e-12, atol=1e-15)


def test_warmup_cosine_reaches_peak_and_end():
    schedule = schedules.warmup_cosine_decay(0.0, 3.0, 10, 30, end_value=0.3)
    assert float(schedule(10)) == pytest.approx(3.0, rel=1e-15)
    assert float(schedule(30)) == pytest.approx(0.3, rel=1e-15)
    assert float(schedule(10**5)) == pytest.approx(0.3, rel=1e-15)


# --- validation -------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (schedules.linear, (1.0, 0.0, 0), ValueError, "transition_steps"),
    (schedules.linear, (1.0, 0.0, -3), ValueError, "transition_steps"),
    (schedules.linear, (1.0, 0.0, 2.5), TypeError, "transition_steps"),
    (schedules.linear, (float("nan"), 0.0, 5), ValueError, "init_value"),
    (schedules.linear, (1.0, "x", 5), TypeError, "end_value"),
    (schedules.exponential_decay, (1.0, 0.5, 0), ValueError, "transition_steps"),
    (schedules.exponential_decay, (1.0, -0.5), ValueError, "decay_rate"),
    (schedules.exponential_decay, (1.0, 0.5, 1, "yes"), TypeError, "staircase"),
    (schedules.cosine_decay, (1.0, 0), ValueError, "decay_steps"),
    (schedules.cosine_decay, (1.0, 10, -0.1), ValueError, "alpha"),
    (schedules.cosine_decay, (1.0, True), TypeError, "decay_steps"),
    (schedules.warmup_cosine_decay, (0.0, 1.0, -1, 10), ValueError, "warmup_steps"),
    (schedules.warmup_cosine_decay, (0.0, 1.0, 10, 10), ValueError, "decay_steps"),
    (schedules.warmup_cosine_decay, (0.0, 1.0, 10, 5), ValueError, "decay_steps"),
    (schedules.warmup_cosine_decay, (0.0, float("inf"), 1, 5), ValueError, "peak_value"),
    (schedules.piecewise_constant, ([5, 5], [1.0, 2.0, 3.0]), ValueError, "boundaries"),
    (schedules.piecewise_constant, ([5, 3], [1.0, 2.0, 3.0]), ValueError, "boundaries"),
    (schedules.piecewise_constant, ([-1], [1.0, 2.0]), ValueError, "boundaries[0]"),
    (schedules.piecewise_constant, ([1.5], [1.0, 2.0]), TypeError, "boundaries[0]"),
    (schedules.piecewise_constant, ([5], [1.0]), ValueError, "values"),
    (schedules.piecewise_constant, ([5], [1.0, 2.0, 3.0]), ValueError, "values"),
    (schedules.piecewise_constant, ([5], [1.0, float("nan")]), ValueError, "values[1]"),
    (schedules.join, ([schedules.constant(1.0)], [5]), ValueError, "schedules"),
    (schedules.join, ([1.0, 2.0], [4, 2]), ValueError, "boundaries"),
    (schedules.join, ([1.0, 2.0], 4), TypeError, "boundaries"),
    (schedules.join, ([1.0, "x"], [4]), TypeError, "schedules[1]"),
    (schedules.constant, (float("nan"),), ValueError, "value"),
]


@pytest.mark.parametrize(
    "factory, args, error, name",
    BAD_ARGUMENTS,
    ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, _, n) in enumerate(BAD_ARGUMENTS)],
)
def test_bad_arguments_fail_naming_the_argument(factory, args, error, name):
    with pytest.raises(error, match=rf"(^|\W){re.escape(name)}\W"):
        factory(*args)


# --- which step an optimizer's schedule sees ---------------------------------------------


def _sgd_path(optimizer, steps: int) -> np.ndarray:
    """Parameters after each update of ``optimizer`` on ``J(θ) = θ`` (gradient 1)."""
    params = jnp.zeros([])
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    path = []
    for _ in range(steps):
        updates, state = update(jnp.ones([]), state, params)
        params = jopt.apply_updates(params, updates)
        path.append(float(params))
    return np.array(path)


@pytest.mark.parametrize("inject", [False, True])
def test_first_update_uses_schedule_at_zero(inject):
    """θₖ = −Σ_{j<k} schedule(j): update k (1-based) uses schedule(k − 1)."""
    schedule = schedules.piecewise_constant([1, 2, 4], [1.0, 0.1, 0.01, 0.001])
    factory = jopt.inject_hyperparams(jopt.sgd) if inject else jopt.sgd
    got = _sgd_path(factory(learning_rate=schedule), 6)
    rates = np_piecewise(np.arange(6), [1, 2, 4], [1.0, 0.1, 0.01, 0.001])
    np.testing.assert_allclose(got, -np.cumsum(rates), rtol=1e-14)
    # Off by one (update k using schedule(k)) would differ.
    shifted = np_piecewise(np.arange(1, 7), [1, 2, 4], [1.0, 0.1, 0.01, 0.001])
    assert not np.allclose(got, -np.cumsum(shifted))


# --- torch.optim with LR schedulers (golden data) ----------------------------------------

# The jopt schedule for each torch scheduler in the golden files.
TORCH_SCHEDULERS = {
    "sgd_momentum_steplr": lambda hp, kw: schedules.exponential_decay(
        hp["lr"], kw["gamma"], transition_steps=kw["step_size"], staircase=True
    ),
    "adam_cosine": lambda hp, kw: schedules.cosine_decay(
        hp["lr"], kw["T_max"], alpha=kw["eta_min"] / hp["lr"]
    ),
}


def _golden_schedule(name: str):
    record = load_golden(name)
    return record, TORCH_SCHEDULERS[name](record["hyperparameters"], record["scheduler"]["kwargs"])


def _golden_optimizer(record, learning_rate, inject: bool):
    hp = record["hyperparameters"]
    if record["optimizer"] == "SGD":
        factory = jopt.inject_hyperparams(jopt.sgd) if inject else jopt.sgd
        return factory(learning_rate=learning_rate, momentum=hp["momentum"])
    assert record["optimizer"] == "Adam"
    factory = jopt.inject_hyperparams(jopt.adam) if inject else jopt.adam
    b1, b2 = hp["betas"]
    return factory(learning_rate=learning_rate, b1=b1, b2=b2, eps=hp["eps"])


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_schedule_gives_torch_learning_rates(name):
    """``schedule(k − 1)`` is the rate torch used at its k-th step."""
    record, schedule = _golden_schedule(name)
    assert record["scheduler"]["stepped"] == "per_step"
    got = evaluate(schedule, np.arange(record["num_steps"]))
    # torch's CosineAnnealingLR is a recursion; its rounding drifts a little from the
    # closed form, far below the trajectory tolerance.
    np.testing.assert_allclose(got, record["lr_history"], rtol=1e-12)
    assert len(np.unique(record["lr_history"])) > 5  # the schedule really varies


@pytest.mark.parametrize("inject", [False, True])
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_scheduled_optimizer_replays_torch(name, inject):
    record, schedule = _golden_schedule(name)
    errors = replay(record, _golden_optimizer(record, schedule, inject))
    worst = {k: v for k, v in errors.items() if v > GOLDEN_RTOL}
    assert not worst, f"relative error above {GOLDEN_RTOL:g}: {worst}"
    assert {"loss", "params/W1", "params/b2"} <= set(errors)


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_replay_catches_an_off_by_one_schedule(name):
    """Shifting the schedule by one step (torch's k-th step with schedule(k)) fails."""
    record, schedule = _golden_schedule(name)
    shifted = _golden_optimizer(record, lambda count: schedule(count + 1), inject=False)
    assert max(replay(record, shifted).values()) > 1e-9


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_injected_learning_rate_is_the_one_torch_used(name):
    """After update k, ``get_hyperparams(state)["learning_rate"]`` is torch's k-th rate."""
    record, schedule = _golden_schedule(name)
    optimizer = _golden_optimizer(record, schedule, inject=True)
    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    state = optimizer.init(params)
    np.testing.assert_allclose(
        jopt.get_hyperparams(state)["learning_rate"], record["lr_history"][0], rtol=1e-12
    )
    update = jax.jit(optimizer.update)
    grads = jax.tree.map(jnp.ones_like, params)
    logged = []
    for _ in range(record["num_steps"]):
        _, state = update(grads, state, params)
        logged.append(float(jopt.get_hyperparams(state)["learning_rate"]))
    np.testing.assert_allclose(logged, record["lr_history"], rtol=1e-12)
