"""Loading and closed-loop replay of the golden data in ``tests/golden/modern/``.

``tools/golden_modern.py`` trained the float64 tanh network of ``make_golden.py`` with
the reference implementations and wrote the trajectories there; :func:`replay` runs a
jopt optimizer on the same loss (its own ``jax.grad``) and reports the largest relative
error per quantity, checked against :data:`RTOL` by :func:`_assert_replays`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from golden_replay import fields_named, golden_loss

import jopt

GOLDEN_DIR = Path(__file__).parent / "golden" / "modern"
RTOL = 1e-10


# --- golden files ----------------------------------------------------------------------


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"shape", "data"}:
            return np.asarray(value["data"], np.float64).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@cache
def _text(name: str) -> str:
    return (GOLDEN_DIR / f"{name}.json").read_text()


def load(name: str) -> dict:
    return _decode(json.loads(_text(name)))


def _relative(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    diff = np.abs(actual - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(expected))
    return float(np.where(np.isnan(rel), np.inf, rel).max(initial=0.0))


def _state_leaf(state, field: str, key: str):
    """The one ``field`` of the state that holds parameter ``key`` (a partition keeps
    one per group, with ``None`` for the other group's leaves)."""
    values = [v[key] for v in fields_named(state, field) if v[key] is not None]
    assert len(values) == 1, f"{len(values)} fields {field} hold {key}"
    return values[0]


def replay(record: dict, optimizer, fields: dict) -> dict[str, float]:
    """Largest relative error per quantity over the record's closed loop.

    ``fields``: reference state entry -> (jopt field, ``(value, parameter name) ->``
    the reference's value), or None for an entry jopt does not keep.  Every entry the reference
    recorded must be listed.
    """
    loss_fn = golden_loss(record)
    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    checkpoints = {c["step"]: c for c in record["checkpoints"]}
    errors: dict[str, float] = {}

    def note(key, actual, expected):
        errors[key] = max(errors.get(key, 0.0), _relative(actual, expected))

    for t in range(1, record["num_steps"] + 1):
        params, state, loss = step(params, state)
        note("loss", loss, record["loss_history"][t - 1])
        if t not in checkpoints:
            continue
        for k, expected in checkpoints[t]["params"].items():
            note(f"params/{k}", params[k], expected)
        for k, entries in checkpoints[t]["state"].items():
            for name, expected in entries.items():
                if fields[name] is None:
                    continue
                field, convert = fields[name]
                note(name, convert(_state_leaf(state, field, k), k), expected)
    return errors


def _assert_replays(errors: dict[str, float], compared: set[str]):
    worst = {k: v for k, v in errors.items() if v > RTOL}
    assert not worst, f"relative error above {RTOL:g}: {worst}"
    assert compared <= set(errors), f"not compared: {compared - set(errors)}"


def _same(x, key):
    return x


def _betas(record):
    b1, b2 = record["arguments"]["betas"]
    return {"b1": b1, "b2": b2}
