"""Schedules against torch's LR schedulers (golden data).

Replays ``tests/golden/schedules/schedulers.json``, written by
``tools/golden_schedules.py``, and the golden trajectories of ``tools/make_golden.py``
with ``StepLR`` and ``CosineAnnealingLR``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import GOLDEN_RTOL, load_golden, replay

import jopt
from jopt import schedules

SCHEDULERS = json.loads(
    (Path(__file__).parent / "golden" / "schedules" / "schedulers.json").read_text()
)


S = schedules


# --- torch's LR schedulers (golden data) ---------------------------------------------------


def jopt_schedule(record: dict):
    """The jopt schedule ``docs/porting.md`` maps a torch scheduler to."""
    kw, lr = record["kwargs"], record["lr"]
    name = record["scheduler"]
    if name == "PolynomialLR":
        return S.polynomial(
            lr, end_value=0.0, power=kw["power"], transition_steps=kw["total_iters"]
        )
    if name == "OneCycleLR":
        keys = ("pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase")
        return S.one_cycle(kw["max_lr"], total_steps=kw["total_steps"],
                           **{k: kw[k] for k in keys if k in kw})  # fmt: skip
    if name == "CosineAnnealingWarmRestarts":
        return S.cosine_restarts(lr, first_period=kw["T_0"], period_mult=kw["T_mult"],
                                 min_value=kw["eta_min"])  # fmt: skip
    if name == "CyclicLR":
        keys = ("step_size_up", "step_size_down", "mode", "gamma")
        return S.cyclic(
            kw["base_lr"], max_value=kw["max_lr"], **{k: kw[k] for k in keys if k in kw}
        )
    if name == "MultiStepLR":
        return S.multistep(lr, milestones=kw["milestones"], gamma=kw["gamma"])
    if name == "SWALR":
        return S.swa(lr, swa_value=kw["swa_lr"], anneal_steps=kw["anneal_epochs"],
                     anneal_strategy=kw.get("anneal_strategy", "cos"))  # fmt: skip
    raise NotImplementedError(name)


def one_cycle_momentum(record: dict):
    kw = record["kwargs"]
    keys = ("pct_start", "anneal_strategy", "three_phase", "base_momentum", "max_momentum")
    return S.one_cycle_momentum(kw["total_steps"], **{k: kw[k] for k in keys if k in kw})


GOLDEN_NAMES = sorted(k for k, v in SCHEDULERS.items() if isinstance(v, dict))


def test_every_new_torch_scheduler_has_golden_data():
    classes = {SCHEDULERS[name]["scheduler"] for name in GOLDEN_NAMES}
    assert classes == {"PolynomialLR", "OneCycleLR", "CosineAnnealingWarmRestarts", "CyclicLR",
                       "MultiStepLR", "SWALR"}  # fmt: skip
    modes = {SCHEDULERS[n]["kwargs"].get("mode") for n in GOLDEN_NAMES}
    assert {"triangular2", "exp_range"} <= modes


@pytest.mark.float64
@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_schedule_gives_torch_learning_rates_golden(name):
    """``schedule(k − 1)`` is the rate torch used at its k-th step, to 1e-12."""
    record = SCHEDULERS[name]
    steps = jnp.arange(record["num_steps"], dtype=jnp.int32)
    expected = np.asarray(record["lr_history"])
    # The schedule really varies (or, for SWALR without annealing, leaves the start at once).
    assert len(np.unique(expected)) > 1 or expected[0] != record["lr"]
    np.testing.assert_allclose(jopt_schedule(record)(steps), expected, rtol=1e-12, atol=1e-17)
    if "momentum_history" in record:
        np.testing.assert_allclose(
            one_cycle_momentum(record)(steps), record["momentum_history"], rtol=1e-12
        )


# --- torch.optim with StepLR and CosineAnnealingLR (golden trajectories) -------------------

TORCH_SCHEDULERS = {
    "sgd_momentum_steplr": lambda hp, kw: schedules.exponential_decay(
        hp["lr"], decay_rate=kw["gamma"], transition_steps=kw["step_size"], staircase=True
    ),
    "adam_cosine": lambda hp, kw: schedules.cosine_decay(
        hp["lr"], decay_steps=kw["T_max"], alpha=kw["eta_min"] / hp["lr"]
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


@pytest.mark.float64
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_schedule_gives_torch_learning_rates(name):
    record, schedule = _golden_schedule(name)
    assert record["scheduler"]["stepped"] == "per_step"
    got = jax.jit(schedule)(jnp.arange(record["num_steps"], dtype=jnp.int32))
    # torch's CosineAnnealingLR is a recursion; its rounding drifts a little from the
    # closed form, far below the trajectory tolerance.
    np.testing.assert_allclose(got, record["lr_history"], rtol=1e-12)
    assert len(np.unique(record["lr_history"])) > 5  # the schedule really varies


@pytest.mark.float64
@pytest.mark.parametrize("inject", [False, True])
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_scheduled_optimizer_replays_torch(name, inject):
    record, schedule = _golden_schedule(name)
    errors = replay(record, _golden_optimizer(record, schedule, inject))
    worst = {k: v for k, v in errors.items() if v > GOLDEN_RTOL}
    assert not worst, f"relative error above {GOLDEN_RTOL:g}: {worst}"
    assert {"loss", "params/W1", "params/b2"} <= set(errors)
    # Shifting the schedule by one step (torch's k-th step with schedule(k)) fails.
    if not inject:
        shifted = _golden_optimizer(record, lambda count: schedule(count + 1), inject=False)
        assert max(replay(record, shifted).values()) > 1e-9


@pytest.mark.float64
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
