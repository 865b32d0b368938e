"""Write the torch.optim golden trajectories used by ``tests/test_parity_torch.py``.

How to run (by hand, only when a configuration is added or changed)::

    pip install torch==2.13.0        # the CPU wheel; a plain ``torch`` pulls CUDA
    python tools/make_golden.py      # from the repository root

It writes one JSON file per configuration into ``tests/golden/`` (``--out`` changes
the folder).  The files are committed.  CI does not need torch: the tests only read
the JSON files and replay them with jopt.

What a golden file holds
------------------------
A small float64 model is trained in closed loop for ``NUM_STEPS`` steps with one
torch optimizer configuration: every step computes the gradient at torch's current
parameters, so a replay that computes its own gradients with ``jax.grad`` follows
the same trajectory only if its optimizer does the same arithmetic.

The model (tag ``"mlp_tanh_v1"``) is a one-hidden-layer tanh network with a mean
squared error::

    pred = tanh(x @ W1 + b1) @ w2 + b2          # x: (N, D), W1: (D, H), b1: (H,)
    loss = mean((pred - y) ** 2)                # w2: (H,), b2: () 0-d,  y: (N,)

A second model (tag ``"mlp_tanh_stacked_v1"``, for configurations that name it) has a
3-d first layer: ``HEADS`` hidden layers side by side, averaged::

    pred = mean(tanh(x @ W1 + b1) @ w2, axis=0) + b2     # W1: (HEADS, D, H)
    loss = mean((pred - y) ** 2)

with the same data and its own initial parameters.

Everything needed to restate the loss is in the file:

* ``model``, ``loss``: the tag above and the formula as text;
* ``data``: ``x`` and ``y``;
* ``initial_params``: ``W1``, ``b1``, ``w2``, ``b2``;
* ``param_order``: the order in which the parameters were given to torch;
* ``optimizer``, ``hyperparameters``, ``scheduler``: the torch call, spelled out;
* ``torch_arguments``: every argument the torch optimizer's constructor accepts;
* ``lr_history[k-1]`` / ``loss_history[k-1]``: the learning rate torch used and the
  loss at the parameters before step ``k`` (k = 1 .. NUM_STEPS);
* ``checkpoints``: after the steps in ``CHECKPOINTS``, every parameter and, per
  parameter, every entry of ``optimizer.state[p]`` under torch's own name
  (``momentum_buffer``, ``sum``, ``square_avg``, ``acc_delta``, ``grad_avg``,
  ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``exp_inf``, ``mu_product``, ``eta``,
  ``mu``, ``ax``, ``prev``, ``step_size``, ``row_var``, ``col_var``, ``variance``,
  ``step``).  Most have the parameter's shape; ``mu_product``, ``eta`` and ``mu`` are
  0-d, and Adafactor's ``row_var`` and ``col_var`` keep the parameter's shape with
  the last, or second-to-last, axis reduced to 1.

Arrays are stored as ``{"shape": [...], "data": [flat, row-major floats]}``.  The
floats are written by :func:`json.dumps`, whose ``repr`` form reads back to the same
float64 bit pattern.  ``step`` is stored as a plain integer.

All optimizers run with ``foreach=False`` (torch's single-tensor code path) and the
other switches (``maximize``, ``capturable``, ``differentiable``, ``fused``) at
their defaults.  torch's default dtype is float64 here, so the scalar state torch
keeps at that dtype (NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``) is float64
like everything else.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
from pathlib import Path

import numpy as np
import torch

NUM_STEPS = 100
CHECKPOINTS = (1, 2, 3, 5, 10, 20, 50, 100)
SEED = 20240604
NUM_EXAMPLES, IN_DIM, HIDDEN = 32, 3, 4
MODEL = "mlp_tanh_v1"
LOSS_TEXT = "mean((tanh(x @ W1 + b1) @ w2 + b2 - y) ** 2)"
STACKED_MODEL = "mlp_tanh_stacked_v1"
STACKED_LOSS_TEXT = "mean((mean(tanh(x @ W1 + b1) @ w2, axis=0) + b2 - y) ** 2)"
HEADS = 2
PARAM_ORDER = ("W1", "b1", "w2", "b2")
FORMAT_VERSION = 1

# name -> (torch optimizer class name, keyword arguments, scheduler or None[, model]).
# The scheduler entry is (class name in torch.optim.lr_scheduler, keyword arguments);
# it is stepped once after every optimizer step.  The model is MODEL unless named.
# The learning rates are small enough that no trajectory turns chaotic:
# ``--sensitivity 1e-15`` must stay far below 1e-10.
CONFIGS: dict[str, tuple] = {
    "sgd_plain": ("SGD", {"lr": 0.05}, None),
    "sgd_momentum": ("SGD", {"lr": 0.02, "momentum": 0.9}, None),
    "sgd_nesterov": ("SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True}, None),
    "sgd_weight_decay": ("SGD", {"lr": 0.05, "weight_decay": 0.05}, None),
    "sgd_nesterov_weight_decay": (
        "SGD",
        {"lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 0.03},
        None,
    ),
    "adagrad": (
        "Adagrad",
        {"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 1e-3, "weight_decay": 0.01},
        None,
    ),
    # lr_decay has no jopt argument; it is the schedule lr / (1 + t * lr_decay).
    "adagrad_lr_decay": ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}, None),
    "adadelta": (
        "Adadelta",
        {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.01},
        None,
    ),
    "rmsprop_plain": ("RMSprop", {"lr": 0.003, "alpha": 0.95, "eps": 1e-6}, None),
    "rmsprop_centered": (
        "RMSprop",
        {"lr": 0.005, "alpha": 0.95, "eps": 1e-6, "centered": True},
        None,
    ),
    "rmsprop_momentum": (
        "RMSprop",
        {"lr": 0.002, "alpha": 0.95, "eps": 1e-6, "momentum": 0.8},
        None,
    ),
    "rmsprop_weight_decay": (
        "RMSprop",
        {"lr": 0.0025, "alpha": 0.95, "eps": 1e-6, "weight_decay": 0.02},
        None,
    ),
    "rmsprop_centered_momentum": (
        "RMSprop",
        {"lr": 0.001, "alpha": 0.9, "eps": 1e-5, "centered": True, "momentum": 0.7},
        None,
    ),
    "adam_plain": ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}, None),
    "adam_amsgrad": (
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True},
        None,
    ),
    "adam_weight_decay": (
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.02},
        None,
    ),
    "adamw": (
        "AdamW",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
        None,
    ),
    # Beyond the list: AdamW's amsgrad has no jopt argument (a chain gives
    # it), and Adam's decoupled_weight_decay=True is AdamW.
    "adamw_amsgrad": (
        "AdamW",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True},
        None,
    ),
    "adam_decoupled_weight_decay": (
        "Adam",
        {
            "lr": 0.01,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "decoupled_weight_decay": True,
        },
        None,
    ),
    "adamax": ("Adamax", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6}, None),
    # Schedules (issue 6): the scheduler is stepped once per optimizer step.
    "sgd_momentum_steplr": (
        "SGD",
        {"lr": 0.05, "momentum": 0.9},
        ("StepLR", {"step_size": 10, "gamma": 0.5}),
    ),
    "adam_cosine": (
        "Adam",
        {"lr": 0.02, "betas": (0.9, 0.999), "eps": 1e-8},
        ("CosineAnnealingLR", {"T_max": 100, "eta_min": 1e-4}),
    ),
    # The rest of torch.optim (issue 15): every weight decay form, and each option
    # that changes the arithmetic.
    "nadam": ("NAdam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}, None),
    "nadam_weight_decay": (
        "NAdam",
        {
            "lr": 0.01,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.02,
            "momentum_decay": 0.01,
        },
        None,
    ),
    "nadam_decoupled_weight_decay": (
        "NAdam",
        {
            "lr": 0.01,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "decoupled_weight_decay": True,
        },
        None,
    ),
    # β₂ = 0.99: ρₜ first exceeds 5 at step 6, so both of RAdam's regimes are recorded.
    "radam": ("RAdam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}, None),
    "radam_weight_decay": (
        "RAdam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.02},
        None,
    ),
    "radam_decoupled_weight_decay": (
        "RAdam",
        {
            "lr": 0.01,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "decoupled_weight_decay": True,
        },
        None,
    ),
    # t0 = 20: averaging starts within the run (torch's default 1e6 never averages).
    "asgd": ("ASGD", {"lr": 0.05, "lambd": 1e-3, "alpha": 0.75, "t0": 20.0}, None),
    "asgd_weight_decay": (
        "ASGD",
        {"lr": 0.05, "lambd": 1e-2, "alpha": 0.6, "t0": 10.0, "weight_decay": 0.02},
        None,
    ),
    "rprop": ("Rprop", {"lr": 0.01}, None),
    # Step sizes that reach both bounds.
    "rprop_bounded": (
        "Rprop",
        {"lr": 0.01, "etas": (0.4, 1.5), "step_sizes": (1e-3, 0.05)},
        None,
    ),
    "adafactor": ("Adafactor", {"lr": 0.01}, None),
    "adafactor_weight_decay": (
        "Adafactor",
        {"lr": 0.02, "beta2_decay": -0.6, "eps": (1e-20, 1e-2), "d": 1.5, "weight_decay": 0.05},
        None,
    ),
    # A learning rate that changes: it enters ASGD's ηₜ and Adafactor's ρₜ and weight
    # decay, and Rprop reads it only once.
    "asgd_steplr": (
        "ASGD",
        {"lr": 0.05, "lambd": 1e-2, "t0": 10.0},
        ("StepLR", {"step_size": 10, "gamma": 0.7}),
    ),
    "adafactor_cosine": (
        "Adafactor",
        {"lr": 0.02, "weight_decay": 0.05},
        ("CosineAnnealingLR", {"T_max": 100, "eta_min": 1e-3}),
    ),
    "rprop_steplr": ("Rprop", {"lr": 0.01}, ("StepLR", {"step_size": 10, "gamma": 0.5})),
    # A 3-d leaf: one factorization per leading index.
    "adafactor_3d": (
        "Adafactor",
        {"lr": 0.01, "weight_decay": 0.01},
        None,
        "mlp_tanh_stacked_v1",
    ),
}


def make_problem(seed: int = SEED) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The data and initial parameters, all float64, from a fixed seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, IN_DIM))
    direction = rng.normal(size=IN_DIM)
    y = np.sin(x @ direction) + 0.3 * x[:, 0] + 0.05 * rng.normal(size=NUM_EXAMPLES)
    params = {
        "W1": rng.normal(size=(IN_DIM, HIDDEN)) / math.sqrt(IN_DIM),
        "b1": 0.1 * rng.normal(size=HIDDEN),
        "w2": rng.normal(size=HIDDEN) / math.sqrt(HIDDEN),
        "b2": np.asarray(0.1 * rng.normal()),
    }
    return {"x": x, "y": y}, params


def torch_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    pred = torch.tanh(x @ params["W1"] + params["b1"]) @ params["w2"] + params["b2"]
    return ((pred - y) ** 2).mean()


def make_stacked_problem(seed: int = SEED):
    """MODEL's data, and initial parameters with a (HEADS, D, H) first layer."""
    data, params = make_problem(seed)
    rng = np.random.default_rng(seed + 1)
    params["W1"] = rng.normal(size=(HEADS, IN_DIM, HIDDEN)) / math.sqrt(IN_DIM)
    return data, params


def torch_stacked_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    heads = torch.tanh(x @ params["W1"] + params["b1"]) @ params["w2"]  # (HEADS, N)
    return ((heads.mean(0) + params["b2"] - y) ** 2).mean()


# tag -> (loss as text, problem, torch loss)
MODELS = {
    MODEL: (LOSS_TEXT, make_problem, torch_loss),
    STACKED_MODEL: (STACKED_LOSS_TEXT, make_stacked_problem, torch_stacked_loss),
}


def encode(array) -> dict:
    """A float64 array as JSON: shape plus flat row-major data."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array, dtype=np.float64)
    return {"shape": list(array.shape), "data": [float(v) for v in array.reshape(-1)]}


def encode_state(entry: dict) -> dict:
    out = {}
    for key, value in sorted(entry.items()):
        if key == "step":
            step = float(value.item() if isinstance(value, torch.Tensor) else value)
            if step != int(step):
                raise ValueError(f"non-integral step {step}")
            out[key] = int(step)
        elif isinstance(value, torch.Tensor):
            out[key] = encode(value)
        else:
            raise TypeError(f"unexpected state entry {key!r}: {type(value)}")
    return out


def torch_params(init: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The initial parameters as float64 leaf tensors that require gradients."""
    return {
        key: torch.tensor(init[key], dtype=torch.float64, requires_grad=True) for key in PARAM_ORDER
    }


def train(
    optimizer, params, x, y, checkpoint, *, loss_fn=torch_loss, grad_noise=0.0, after_step=None
):
    """``NUM_STEPS`` closed-loop steps of ``optimizer`` on ``loss_fn(params, x, y)``.

    Returns ``(lr_history, loss_history, checkpoints)``: the learning rate and the loss
    at each step before its update, and ``{"step": t, **checkpoint()}`` after each step
    ``t`` of ``CHECKPOINTS``.  ``after_step`` (an LR scheduler's ``step``) runs after
    every update.  With ``grad_noise > 0`` each gradient entry is multiplied by
    ``1 + grad_noise * z``, ``z`` standard normal, to imitate the rounding differences
    of another implementation of the same arithmetic (``--sensitivity``).
    """
    noise_rng = np.random.default_rng(1)
    lr_history, loss_history, checkpoints = [], [], []
    for step in range(1, NUM_STEPS + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(params, x, y)
        loss.backward()
        if grad_noise:
            with torch.no_grad():
                for p in params.values():
                    z = torch.tensor(noise_rng.normal(size=p.shape), dtype=torch.float64)
                    p.grad.mul_(1 + grad_noise * z)
        lr_history.append(float(optimizer.param_groups[0]["lr"]))
        loss_history.append(float(loss.item()))
        optimizer.step()
        if after_step is not None:
            after_step()
        if step in CHECKPOINTS:
            checkpoints.append({"step": step, **checkpoint()})
    return lr_history, loss_history, checkpoints


def save(out: Path, name: str, record: dict) -> Path:
    """Write ``record`` to ``out/<name>.json``; return the path."""
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def summary(path: Path, record: dict) -> str:
    """One line on a written record: its file, first and last loss, and size."""
    first, last = record["loss_history"][0], record["loss_history"][-1]
    return f"{path.name:34s} loss {first:.4f} -> {last:.4f}  ({path.stat().st_size} bytes)"


def run_config(name: str, grad_noise: float = 0.0) -> dict:
    """Train with configuration ``name``; ``grad_noise`` is for ``--sensitivity`` only
    (see ``train``)."""
    opt_name, kwargs, scheduler_spec, *named_model = CONFIGS[name]
    model = named_model[0] if named_model else MODEL
    loss_text, problem, loss_fn = MODELS[model]
    data, init = problem()
    x = torch.tensor(data["x"], dtype=torch.float64)
    y = torch.tensor(data["y"], dtype=torch.float64)
    params = torch_params(init)
    opt_cls = getattr(torch.optim, opt_name)
    optimizer = opt_cls([params[k] for k in PARAM_ORDER], foreach=False, **kwargs)
    scheduler = None
    if scheduler_spec is not None:
        sched_name, sched_kwargs = scheduler_spec
        scheduler = getattr(torch.optim.lr_scheduler, sched_name)(optimizer, **sched_kwargs)

    def checkpoint():
        return {
            "params": {k: encode(params[k]) for k in PARAM_ORDER},
            "state": {k: encode_state(optimizer.state[params[k]]) for k in PARAM_ORDER},
        }

    lr_history, loss_history, checkpoints = train(
        optimizer,
        params,
        x,
        y,
        checkpoint,
        loss_fn=loss_fn,
        grad_noise=grad_noise,
        after_step=None if scheduler is None else scheduler.step,
    )

    hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    return {
        "format": FORMAT_VERSION,
        "generator": "tools/make_golden.py",
        "name": name,
        "torch_version": torch.__version__,
        "optimizer": opt_name,
        # Every argument torch's constructor takes, so that docs/porting.md can be
        # checked for completeness without torch.
        "torch_arguments": [
            a for a in inspect.signature(opt_cls.__init__).parameters if a not in ("self", "params")
        ],
        "hyperparameters": hyper,
        "foreach": False,
        "scheduler": None
        if scheduler_spec is None
        else {"name": scheduler_spec[0], "kwargs": scheduler_spec[1], "stepped": "per_step"},
        "model": model,
        "loss": loss_text,
        "seed": SEED,
        "num_steps": NUM_STEPS,
        "param_order": list(PARAM_ORDER),
        "data": {k: encode(v) for k, v in data.items()},
        "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
        "lr_history": lr_history,
        "loss_history": loss_history,
        "checkpoints": checkpoints,
    }


def max_relative_deviation(a: dict, b: dict) -> tuple[float, str]:
    """Largest elementwise ``|a - b| / |a|`` over all checkpoints of two records."""
    worst, where = 0.0, ""
    for ca, cb in zip(a["checkpoints"], b["checkpoints"], strict=True):
        pairs = [(f"params/{k}", ca["params"][k], cb["params"][k]) for k in ca["params"]]
        for k, entry in ca["state"].items():
            pairs += [
                (f"state/{k}/{s}", v, cb["state"][k][s]) for s, v in entry.items() if s != "step"
            ]
        for label, va, vb in pairs:
            x, y = np.asarray(va["data"]), np.asarray(vb["data"])
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(x == y, 0.0, np.abs(x - y) / np.abs(x))
            if rel.size and rel.max() > worst:
                worst, where = float(rel.max()), f"{label} at step {ca['step']}"
    return worst, where


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "tests" / "golden"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument(
        "--sensitivity",
        type=float,
        metavar="NOISE",
        help="write nothing; rerun each configuration with its gradients perturbed by this "
        "relative amount (e.g. 1e-15, a few float64 roundings) and print how far the "
        "trajectory moves, to check that it is well conditioned enough for the 1e-10 tests",
    )
    parser.add_argument("names", nargs="*", help="configurations to run (default: all)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    unknown = sorted(set(args.names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations: {unknown}")

    if args.sensitivity:
        for name in args.names or CONFIGS:
            clean = run_config(name)
            noisy = run_config(name, grad_noise=args.sensitivity)
            worst, where = max_relative_deviation(clean, noisy)
            print(f"{name:28s} max relative deviation {worst:.2e}  ({where})")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or CONFIGS:
        record = run_config(name)
        print(summary(save(args.out, name, record), record))
    if not args.names:  # a full run also writes schedules/ (tools/golden_schedules.py)
        __import__("golden_schedules").write(args.out / "schedules")
    if not args.names:  # torch.optim.LBFGS has its own generator, tools/golden_lbfgs.py
        __import__("golden_lbfgs").main(["--out", str(args.out / "lbfgs")])
        __import__("golden_modern").write(args.out / "modern")
        __import__("golden_adam_like").write(args.out / "adam_like")
        __import__("golden_muon").write(args.out / "muon")
        __import__("golden_soap").write(args.out / "soap")  # needs SOAP_REFERENCE
        __import__("golden_tuning_free").write(args.out / "tuning_free")


if __name__ == "__main__":
    main()
