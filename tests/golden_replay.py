"""Reading and replaying the torch golden trajectories of ``tests/golden/``.

The files are written by ``tools/make_golden.py`` (which needs torch) and replayed here
without it: the loss is restated in JAX, each step's gradient is taken at jopt's own
parameters, and parameters and optimizer state are compared with torch's at the
recorded checkpoints.

Which jopt call a torch call becomes is read from the torch ports of
``references`` (one per alias and torch class); the few torch calls that no alias
takes are chains, listed in :data:`UNALIASED`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from references import TorchPort, torch_ports

import jopt

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_RTOL = 1e-10

# Every file of tests/golden/ is replayed: a new one needs no edit here or in a test
# module, only a torch port in references for its optimizer.
GOLDEN_NAMES = tuple(sorted(p.stem for p in GOLDEN_DIR.glob("*.json")))


# --- golden files ----------------------------------------------------------------------


def _decode(value):
    """JSON ``{"shape", "data"}`` objects become float64 arrays, recursively."""
    if isinstance(value, dict):
        if set(value) == {"shape", "data"}:
            return np.asarray(value["data"], dtype=np.float64).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@cache
def _read(path: Path) -> str:
    return path.read_text()


def read_json(path: Path) -> dict:
    """A golden JSON file with every ``{"shape", "data"}`` object as a float64 array."""
    return _decode(json.loads(_read(path)))


def load_golden(name: str) -> dict:
    """Read ``tests/golden/<name>.json`` with every array as a float64 ndarray.

    ``data``, ``initial_params``, and each checkpoint's ``params`` and per-parameter
    ``state`` entries are arrays (``step`` stays an int); ``lr_history`` and
    ``loss_history`` become 1-d arrays indexed by step − 1.
    """
    record = _decode(json.loads(_read(GOLDEN_DIR / f"{name}.json")))
    record["lr_history"] = np.asarray(record["lr_history"], dtype=np.float64)
    record["loss_history"] = np.asarray(record["loss_history"], dtype=np.float64)
    return record


def mlp_tanh_v1_loss(params, x, y):
    """``mean((tanh(x @ W1 + b1) @ w2 + b2 - y) ** 2)``, the loss of tag ``mlp_tanh_v1``."""
    hidden = jnp.tanh(x @ params["W1"] + params["b1"])
    pred = hidden @ params["w2"] + params["b2"]
    return jnp.mean((pred - y) ** 2)


def mlp_tanh_stacked_v1_loss(params, x, y):
    """``mean((mean(tanh(x @ W1 + b1) @ w2, axis=0) + b2 - y) ** 2)``, W1 of shape
    (heads, D, H): the loss of tag ``mlp_tanh_stacked_v1``."""
    heads = jnp.tanh(x @ params["W1"] + params["b1"]) @ params["w2"]
    return jnp.mean((jnp.mean(heads, axis=0) + params["b2"] - y) ** 2)


LOSSES = {"mlp_tanh_v1": mlp_tanh_v1_loss, "mlp_tanh_stacked_v1": mlp_tanh_stacked_v1_loss}


def golden_loss(record: dict):
    """The record's loss as a function of the parameters alone."""
    loss = LOSSES[record["model"]]
    x, y = jnp.asarray(record["data"]["x"]), jnp.asarray(record["data"]["y"])
    return lambda params: loss(params, x, y)


# --- torch configuration -> jopt call ----------------------------------------------------


def torch_schedule(record: dict):
    """The learning rate as jopt sees it: a number, or ``count -> lr`` for torch's
    ``lr_decay`` and LR schedulers (``count`` = updates applied before this one)."""
    hp, sched = record["hyperparameters"], record["scheduler"]
    lr = hp["lr"]
    if record["optimizer"] == "Adagrad" and hp.get("lr_decay", 0.0):
        if sched is not None:
            raise NotImplementedError("lr_decay together with a scheduler")
        return lambda count: lr / (1 + count * hp["lr_decay"])
    if sched is None:
        return lr
    kw = sched["kwargs"]
    if sched["name"] == "StepLR":
        return lambda count: lr * kw["gamma"] ** (count // kw["step_size"])
    if sched["name"] == "CosineAnnealingLR":
        lo, period = kw["eta_min"], kw["T_max"]
        return lambda count: lo + (lr - lo) * (1 + jnp.cos(jnp.pi * count / period)) / 2
    raise NotImplementedError(f"scheduler {sched['name']}")


def ports_for(record: dict) -> list[tuple[str, TorchPort]]:
    """``(alias, port)`` for every alias that ports the record's torch call."""
    hp = record["hyperparameters"]
    return [
        (alias, port)
        for alias, port in torch_ports()
        if port.optimizer == record["optimizer"] and port.selects(hp)
    ]


def _adamw_amsgrad(lr, hp):
    """torch's ``AdamW(amsgrad=True)``: jopt.adamw has no amsgrad, the chain does."""
    b1, b2 = hp["betas"]
    return jopt.chain(
        jopt.scale_by_amsgrad(b1, b2=b2, eps=hp["eps"], correct_after_max=True),
        jopt.add_decayed_weights(hp["weight_decay"]),
        jopt.scale_by_learning_rate(lr),
    )


# (torch class, whether a call is this one, the chain ``(lr, hyperparameters) -> jopt``,
# torch state entry -> jopt field): torch calls that no alias takes.
UNALIASED = (
    (
        "AdamW",
        lambda hp: bool(hp.get("amsgrad", False)),
        _adamw_amsgrad,
        {"exp_avg": "mu", "exp_avg_sq": "nu", "max_exp_avg_sq": "nu_max", "step": "count"},
    ),
)


def _unaliased(record: dict):
    hp = record["hyperparameters"]
    for optimizer, selects, build, fields in UNALIASED:
        if optimizer == record["optimizer"] and selects(hp):
            return build, fields
    return None


def replayers(record: dict) -> list[str]:
    """The ways a record is replayed: each alias that ports it, or ``"chain"``."""
    aliases = [alias for alias, _ in ports_for(record)]
    return aliases or (["chain"] if _unaliased(record) else [])


def jopt_from_torch(record: dict, alias: str | None = None, **override):
    """The jopt optimizer that ``docs/porting.md`` maps the record's torch call to.

    ``alias`` picks one of the aliases that port it (default: the first in registry
    order; ``"chain"`` for a torch call no alias takes); ``override`` replaces jopt
    arguments (used to show that a wrong mapping is caught).
    """
    if record["foreach"] is not False:
        raise ValueError("golden files are recorded with foreach=False")
    hp = record["hyperparameters"]
    lr = torch_schedule(record)
    ports = ports_for(record)
    if alias in (None, "chain") and not ports and _unaliased(record):
        if override:
            raise NotImplementedError(f"override of the chain for {record['name']}")
        return _unaliased(record)[0](lr, hp)
    if alias is not None:
        ports = [(a, p) for a, p in ports if a == alias]
    if not ports:
        raise NotImplementedError(
            f"no alias ports torch.optim.{record['optimizer']}({hp}) (wanted {alias}): add a "
            f"TorchPort to its entry in tests/references/"
        )
    name, port = ports[0]
    kwargs = {}
    for torch_name, value in hp.items():
        if torch_name == "lr":
            continue
        if torch_name not in port.arguments:
            raise NotImplementedError(f"unmapped torch argument {torch_name} for {name}")
        target = port.arguments[torch_name]
        if isinstance(target, tuple):
            kwargs.update(zip(target, value, strict=True))
        elif target is not None:
            kwargs[target] = value
    kwargs.update(override)
    return getattr(jopt, name)(learning_rate=lr, **kwargs)


def _state_fields() -> dict[str, dict[str, str | None]]:
    """torch class -> (torch state entry -> jopt field), from every port and chain."""
    fields: dict[str, dict[str, str | None]] = {}
    sources = [(p.optimizer, p.state) for _, p in torch_ports()]
    sources += [(optimizer, state) for optimizer, _, _, state in UNALIASED]
    for optimizer, state in sources:
        merged = fields.setdefault(optimizer, {})
        for torch_name, field in state.items():
            if merged.setdefault(torch_name, field) != field:
                raise ValueError(f"{optimizer}: {torch_name} maps to two jopt fields")
    return fields


# torch state name -> jopt state field, per torch optimizer.  None: torch keeps it,
# jopt has no counterpart (a step counter jopt does not need).
STATE_FIELDS = _state_fields()


def fields_named(tree, name: str) -> list:
    """Every NamedTuple field called ``name`` in ``tree``, depth first.

    The replay looks the fields up itself: it must not depend on ``jopt.tree_get``.
    """
    found = []
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for field, child in zip(tree._fields, tree, strict=True):
            if field == name:
                found.append(child)
            found += fields_named(child, name)
    elif isinstance(tree, (tuple, list)):
        for child in tree:
            found += fields_named(child, name)
    elif isinstance(tree, dict):
        for child in tree.values():
            found += fields_named(child, name)
    return found


def _relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    diff = np.abs(actual - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(expected))
    rel = np.where(np.isnan(rel), np.inf, rel)  # a NaN must never pass
    return float(rel.max(initial=0.0))


class MaxErrors(dict):
    """The largest relative error seen per quantity (a NaN counts as infinite)."""

    def note(self, key: str, actual, expected) -> None:
        self[key] = max(self.get(key, 0.0), _relative_error(actual, expected))


def closed_loop(record: dict, optimizer):
    """Replay ``record``'s run with ``optimizer`` in closed loop (jopt's own gradient of
    the same loss, at its own parameters): yields ``(t, params, state, loss, point)``
    after each step ``t``, ``point`` the record's checkpoint at ``t`` or ``None``."""
    loss_fn = golden_loss(record)
    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    checkpoints = {c["step"]: c for c in record["checkpoints"]}
    for t in range(1, record["num_steps"] + 1):
        params, state, loss = step(params, state)
        yield t, params, state, loss, checkpoints.get(t)


def replay(record: dict, optimizer, fields=None) -> dict[str, float]:
    """Run ``optimizer`` in closed loop on the record's problem.

    Returns the largest relative error against torch, per compared quantity
    (``loss``, ``params/<p>``, ``<torch state name>``), over all recorded steps.
    A torch state entry with no jopt field in ``fields`` (default: ``STATE_FIELDS``
    for the record's torch class) raises ``KeyError``; a mapped field that jopt's
    state lacks counts as an infinite error.
    """
    fields = STATE_FIELDS[record["optimizer"]] if fields is None else fields
    errors = MaxErrors()
    note = errors.note
    for t, params, state, loss, point in closed_loop(record, optimizer):
        note("loss", loss, record["loss_history"][t - 1])
        if point is None:
            continue
        for k, expected in point["params"].items():
            note(f"params/{k}", params[k], expected)
        for k, entries in point["state"].items():
            for torch_name, expected in entries.items():
                if torch_name not in fields:
                    raise KeyError(f"no jopt field for torch state {torch_name!r}")
                field = fields[torch_name]
                if field is None:
                    continue
                values = fields_named(state, field)
                if not values:  # jopt keeps no such moment: as wrong as can be
                    note(torch_name, np.inf, expected)
                    continue
                if torch_name == "step":  # every step count of the chain is torch's
                    counts = [int(v) for v in values]
                    assert counts == [expected] * len(counts), f"counts {counts} != {expected}"
                    continue
                assert len(values) == 1, f"{len(values)} fields called {field}"
                # A 0-d field (NAdam's mu_product, ASGD's eta) is one value for every
                # parameter, where torch keeps a copy per parameter.
                value = values[0][k] if isinstance(values[0], dict) else values[0]
                note(torch_name, value, expected)
    return dict(errors)
