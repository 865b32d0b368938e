"""Shared by test_lbfgs.py and test_lbfgs_restatement.py: the golden files of
torch.optim.LBFGS and a closed loop of jopt.lbfgs on a loss."""

from __future__ import annotations

from pathlib import Path

import jax
from golden_replay import read_json

import jopt

GOLDEN = Path(__file__).parent / "golden" / "lbfgs"
NAMES = (
    "strong_wolfe",
    "strong_wolfe_history3",
    "fixed_step",
    "quadratic_strong_wolfe",
    "quadratic_tolerance_grad",
)
RTOL = 1e-10


def load(name: str) -> dict:
    return read_json(GOLDEN / f"{name}.json")


def closed_loop(optimizer, loss, params, steps):
    """``(loss before, params after, state after)`` for each of ``steps`` updates."""
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss, allow_int=True)(params)
        updates, state = optimizer.update(
            grad, state, params, value=value, grad=grad, value_fn=loss
        )
        return jopt.apply_updates(params, updates), state, value

    out = []
    for _ in range(steps):
        params, state, value = step(params, state)
        out.append((value, params, state))
    return out
