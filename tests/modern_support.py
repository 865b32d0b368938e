"""Loading and closed-loop replay of the golden data in ``tests/golden/modern/``.

``tools/golden_modern.py`` trained the float64 tanh network of ``make_golden.py`` with
the reference implementations and wrote the trajectories there; :func:`replay` runs a
jopt optimizer on the same loss (its own ``jax.grad``) and reports the largest relative
error per quantity, checked against :data:`RTOL` by :func:`_assert_replays`.
"""

from __future__ import annotations

from pathlib import Path

from golden_replay import MaxErrors, closed_loop, fields_named, read_json

GOLDEN_DIR = Path(__file__).parent / "golden" / "modern"
RTOL = 1e-10


# --- golden files ----------------------------------------------------------------------


def load(name: str) -> dict:
    return read_json(GOLDEN_DIR / f"{name}.json")


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
    errors = MaxErrors()
    note = errors.note
    for t, params, state, loss, point in closed_loop(record, optimizer):
        note("loss", loss, record["loss_history"][t - 1])
        if point is None:
            continue
        for k, expected in point["params"].items():
            note(f"params/{k}", params[k], expected)
        for k, entries in point["state"].items():
            for name, expected in entries.items():
                if fields[name] is None:
                    continue
                field, convert = fields[name]
                note(name, convert(_state_leaf(state, field, k), k), expected)
    return dict(errors)


def _assert_replays(errors: dict[str, float], compared: set[str]):
    worst = {k: v for k, v in errors.items() if v > RTOL}
    assert not worst, f"relative error above {RTOL:g}: {worst}"
    assert compared <= set(errors), f"not compared: {compared - set(errors)}"


def _same(x, key):
    return x


def _betas(record):
    b1, b2 = record["arguments"]["betas"]
    return {"b1": b1, "b2": b2}
