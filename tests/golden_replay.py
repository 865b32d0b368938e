"""Reading and replaying the torch golden trajectories of ``tests/golden/``.

The files are written by ``tools/make_golden.py`` (which needs torch) and replayed here
without it: the loss is restated in JAX, each step's gradient is taken at jopt's own
parameters, and parameters and optimizer state are compared with torch's at the
recorded checkpoints.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jopt

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_RTOL = 1e-10

# The configurations tools/make_golden.py writes; a missing or extra file fails.
GOLDEN_NAMES = (
    "sgd_plain",
    "sgd_momentum",
    "sgd_nesterov",
    "sgd_weight_decay",
    "sgd_nesterov_weight_decay",
    "adagrad",
    "adagrad_lr_decay",
    "adadelta",
    "rmsprop_plain",
    "rmsprop_centered",
    "rmsprop_momentum",
    "rmsprop_weight_decay",
    "rmsprop_centered_momentum",
    "adam_plain",
    "adam_amsgrad",
    "adam_weight_decay",
    "adamw",
    "adamw_amsgrad",
    "adam_decoupled_weight_decay",
    "adamax",
    "sgd_momentum_steplr",
    "adam_cosine",
)
# The configurations with a torch LR scheduler (issue 6).
SCHEDULED = ("sgd_momentum_steplr", "adam_cosine")


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


LOSSES = {"mlp_tanh_v1": mlp_tanh_v1_loss}


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


def jopt_from_torch(record: dict, alias: str | None = None, **override):
    """The jopt optimizer that ``docs/porting.md`` maps the record's torch call to.

    ``alias`` picks ``jopt.momentum`` / ``jopt.nesterov`` for SGD; ``override``
    replaces jopt arguments (used to show that a wrong mapping is caught).
    """
    name, hp = record["optimizer"], dict(record["hyperparameters"])
    if record["foreach"] is not False:
        raise ValueError("golden files are recorded with foreach=False")
    lr = torch_schedule(record)
    hp.pop("lr")
    hp.pop("lr_decay", None)
    if "betas" in hp:
        hp["b1"], hp["b2"] = hp.pop("betas")
    if name == "SGD":
        if alias is not None:
            kwargs = {"momentum": hp.pop("momentum"), "weight_decay": hp.pop("weight_decay", 0.0)}
            expect_nesterov = alias == "nesterov"
            if hp.pop("nesterov", False) != expect_nesterov:
                raise ValueError(f"alias {alias} does not fit {record['name']}")
            factory = getattr(jopt, alias)
        else:
            kwargs = {k: hp.pop(k) for k in ("momentum", "nesterov", "weight_decay") if k in hp}
            factory = jopt.sgd
    elif name == "Adagrad":
        keys = ("initial_accumulator_value", "eps", "weight_decay")
        kwargs, factory = {k: hp.pop(k) for k in keys if k in hp}, jopt.adagrad
    elif name == "Adadelta":
        keys = ("rho", "eps", "weight_decay")
        kwargs, factory = {k: hp.pop(k) for k in keys if k in hp}, jopt.adadelta
    elif name == "RMSprop":
        kwargs = {"decay": hp.pop("alpha")}
        keys = ("eps", "centered", "momentum", "weight_decay")
        kwargs.update({k: hp.pop(k) for k in keys if k in hp})
        factory = jopt.rmsprop
    elif name == "Adam" and hp.get("decoupled_weight_decay", False):
        # torch's Adam(decoupled_weight_decay=True) is AdamW.
        if alias or override:
            raise NotImplementedError("alias or override with decoupled_weight_decay")
        hyper = {
            k: v for k, v in record["hyperparameters"].items() if k != "decoupled_weight_decay"
        }
        return jopt_from_torch({**record, "optimizer": "AdamW", "hyperparameters": hyper})
    elif name == "AdamW" and hp.pop("amsgrad", False):
        # jopt.adamw has no amsgrad argument; the same chain with amsgrad scaling is torch's.
        b1, b2, eps, decay = (hp.pop(k) for k in ("b1", "b2", "eps", "weight_decay"))
        if hp or override:
            raise NotImplementedError(f"AdamW(amsgrad=True) with {sorted(hp)} {override}")
        return jopt.chain(
            jopt.scale_by_adam(b1, b2, eps, amsgrad=True),
            jopt.add_decayed_weights(decay),
            jopt.scale_by_learning_rate(lr),
        )
    elif name in ("Adam", "AdamW", "Adamax"):
        keys = ("b1", "b2", "eps", "weight_decay") + (("amsgrad",) if name == "Adam" else ())
        kwargs = {k: hp.pop(k) for k in keys if k in hp}
        factory = {"Adam": jopt.adam, "AdamW": jopt.adamw, "Adamax": jopt.adamax}[name]
    else:
        raise NotImplementedError(f"torch.optim.{name}")
    if hp:
        raise NotImplementedError(f"unmapped torch arguments for {name}: {sorted(hp)}")
    kwargs.update(override)
    return factory(learning_rate=lr, **kwargs)


# torch state name -> jopt state field, per torch optimizer.  None: torch keeps it,
# jopt has no counterpart (a step counter jopt does not need).
STATE_FIELDS = {
    "SGD": {"momentum_buffer": "trace"},
    "Adagrad": {"sum": "sum_of_squares", "step": None},
    "Adadelta": {"square_avg": "grad_sq_avg", "acc_delta": "delta_sq_avg", "step": None},
    "RMSprop": {"square_avg": "nu", "grad_avg": "mu", "momentum_buffer": "trace", "step": None},
    "Adam": {"exp_avg": "mu", "exp_avg_sq": "nu", "max_exp_avg_sq": "nu_max", "step": "count"},
    "AdamW": {"exp_avg": "mu", "exp_avg_sq": "nu", "max_exp_avg_sq": "nu_max", "step": "count"},
    "Adamax": {"exp_avg": "mu", "exp_inf": "nu", "step": "count"},
}


def _relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    diff = np.abs(actual - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(expected))
    rel = np.where(np.isnan(rel), np.inf, rel)  # a NaN must never pass
    return float(rel.max(initial=0.0))


def replay(record: dict, optimizer) -> dict[str, float]:
    """Run ``optimizer`` in closed loop on the record's problem.

    Returns the largest relative error against torch, per compared quantity
    (``loss``, ``params/<p>``, ``<torch state name>``), over all recorded steps.
    A torch state entry with no jopt field in ``STATE_FIELDS`` raises ``KeyError``; a
    mapped field that jopt's state lacks counts as an infinite error.
    """
    loss_fn = golden_loss(record)
    fields = STATE_FIELDS[record["optimizer"]]
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
        errors[key] = max(errors.get(key, 0.0), _relative_error(actual, expected))

    for t in range(1, record["num_steps"] + 1):
        params, state, loss = step(params, state)
        note("loss", loss, record["loss_history"][t - 1])
        if t not in checkpoints:
            continue
        point = checkpoints[t]
        for k, expected in point["params"].items():
            note(f"params/{k}", params[k], expected)
        for k, entries in point["state"].items():
            for torch_name, expected in entries.items():
                if torch_name not in fields:
                    raise KeyError(f"no jopt field for torch state {torch_name!r}")
                field = fields[torch_name]
                if field is None:
                    continue
                value = jopt.tree_get(state, field)
                if value is None:  # jopt keeps no such moment: as wrong as can be
                    note(torch_name, np.inf, expected)
                    continue
                if torch_name == "step":
                    assert int(value) == expected, f"count {int(value)} != torch step {expected}"
                    continue
                note(torch_name, value[k], expected)
    return errors


# --- golden-file tests --------------------------------------------------------------------
