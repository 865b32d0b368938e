"""Write the golden data of schedule-free AdamW and SGD and of Prodigy, from the authors'
reference packages.

Run by ``tools/make_golden.py`` (or alone, from the repository root, with torch 2.13
CPU, ``schedulefree`` 1.4 and ``prodigyopt`` 1.1 installed)::

    python tools/golden_tuning_free.py                  # writes tests/golden/tuning_free/
    python tools/golden_tuning_free.py --sensitivity 1e-15

One JSON file per configuration, replayed without torch by ``tests/test_tuning_free_golden.py``.
The problem is ``make_golden.py``'s: the float64 tanh network (tag ``mlp_tanh_v1``),
its data and initial parameters, trained in closed loop for ``NUM_STEPS`` steps with
the parameters given to the optimizer in ``PARAM_ORDER``.  A file holds:

* ``package``, ``package_version``, ``optimizer`` (the class), ``hyperparameters`` (its
  keyword arguments, spelled out) and ``arguments`` (every argument its constructor
  takes, for the porting guide's completeness test);
* ``data``, ``initial_params``, ``loss_history`` (the loss before step k at index
  k − 1, at the training parameters: y for schedule-free);
* ``checkpoints``: after the steps in ``CHECKPOINTS``, the parameters; for
  schedule-free also ``eval_params``, x, computed as ``optimizer.eval()`` does but
  without moving the parameters (``eval()`` then ``train()`` does not give y back to
  the bit); per parameter, every tensor of ``optimizer.state[p]`` under its own name,
  in the parameter's shape (prodigyopt keeps ``s`` and ``p0`` flattened);
  and ``group``, the numbers the package keeps in its parameter group (``k``,
  ``lr_max``, ``weight_sum``, ``scheduled_lr``; ``d``, ``d_max``, ``d_numerator``).

Arrays are ``{"shape": [...], "data": [flat, row-major floats]}``, written by
:func:`json.dumps` (its ``repr`` reads back to the same float64 bits).  Schedule-free
runs with ``foreach=False`` (its single-tensor path).
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np
import prodigyopt
import schedulefree
import torch
from make_golden import (
    NUM_STEPS,
    PARAM_ORDER,
    encode,
    make_problem,
    save,
    summary,
    torch_params,
    train,
)

PACKAGES = {"AdamWScheduleFree": schedulefree, "SGDScheduleFree": schedulefree}
PACKAGES["Prodigy"] = prodigyopt
GROUP_ENTRIES = {
    "AdamWScheduleFree": ("k", "lr_max", "weight_sum", "scheduled_lr"),
    "SGDScheduleFree": ("k", "lr_max", "weight_sum", "scheduled_lr"),
    "Prodigy": ("k", "d", "d_max", "d_numerator"),
}

# name -> (class, keyword arguments).  Learning rates small enough that no trajectory
# turns chaotic: ``--sensitivity 1e-15`` must stay far below 1e-10.  Every argument of
# each alias is set away from its default by one configuration at least.
CONFIGS: dict[str, tuple[str, dict]] = {
    "schedule_free_adamw": ("AdamWScheduleFree", {"lr": 0.01}),
    "schedule_free_adamw_warmup": (
        "AdamWScheduleFree",
        {
            "lr": 0.02,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.01,
            "warmup_steps": 10,
            "r": 0.5,
            "weight_lr_power": 1.0,
        },
    ),
    "schedule_free_sgd": ("SGDScheduleFree", {"lr": 0.1}),
    "schedule_free_sgd_warmup": (
        "SGDScheduleFree",
        {
            "lr": 0.2,
            "momentum": 0.8,
            "weight_decay": 0.01,
            "warmup_steps": 5,
            "r": 0.25,
            "weight_lr_power": 3.0,
        },
    ),
    "prodigy": ("Prodigy", {"lr": 1.0}),
    "prodigy_options": (
        "Prodigy",
        {
            "lr": 0.5,
            "betas": (0.8, 0.99),
            "beta3": 0.95,
            "eps": 1e-6,
            "weight_decay": 0.01,
            "d0": 1e-5,
            "d_coef": 0.5,
            "growth_rate": 1.1,
            "use_bias_correction": True,
        },
    ),
    "prodigy_safeguard_warmup": ("Prodigy", {"lr": 0.5, "safeguard_warmup": True}),
    "prodigy_no_first_moment": ("Prodigy", {"lr": 0.3, "betas": (0.0, 0.999)}),
}


def _make(name: str, params: list):
    class_name, kwargs = CONFIGS[name]
    cls = getattr(PACKAGES[class_name], class_name)
    extra = {"foreach": False} if "ScheduleFree" in class_name else {}
    optimizer = cls(params, **kwargs, **extra)
    if hasattr(optimizer, "train"):
        optimizer.train()  # schedule-free: the parameters are y
    return optimizer


def _eval_params(optimizer, params: dict) -> dict:
    """x, as ``optimizer.eval()`` computes it (``lerp(y, z, 1 − 1/β)``), y left alone."""
    group = optimizer.param_groups[0]
    beta = group["betas"][0] if "betas" in group else group["momentum"]
    return {
        k: encode(torch.lerp(p.detach(), optimizer.state[p]["z"], 1 - 1 / beta))
        for k, p in params.items()
    }


def _state(optimizer, params: dict) -> dict:
    out = {}
    for k, p in params.items():
        entries = {}
        for key, value in sorted(optimizer.state[p].items()):
            if key in ("s", "p0"):  # prodigyopt keeps them flattened (slice_p = 1)
                value = value.expand(p.numel()).reshape(p.shape)  # (a 0-d 0 for x₀ = 0)
            entries[key] = int(value) if key == "step" else encode(value)
        out[k] = entries
    return out


def run_config(name: str, data: dict, init: dict, grad_noise: float = 0.0) -> dict:
    """Train with configuration ``name`` (``grad_noise``: for ``--sensitivity`` only)."""
    class_name, kwargs = CONFIGS[name]
    x, y = (torch.tensor(data[k], dtype=torch.float64) for k in ("x", "y"))
    params = torch_params(init)
    optimizer = _make(name, [params[k] for k in PARAM_ORDER])

    def checkpoint():
        group = optimizer.param_groups[0]
        point = {
            "params": {k: encode(params[k]) for k in PARAM_ORDER},
            "state": _state(optimizer, params),
            "group": {key: group[key] for key in GROUP_ENTRIES[class_name]},
        }
        if "ScheduleFree" in class_name:
            point["eval_params"] = _eval_params(optimizer, params)
        return point

    _, loss_history, checkpoints = train(optimizer, params, x, y, checkpoint, grad_noise=grad_noise)
    package = PACKAGES[class_name]
    cls = getattr(package, class_name)
    return {
        "generator": "tools/golden_tuning_free.py",
        "name": name,
        "package": package.__name__,
        "package_version": _version(package.__name__),
        "torch_version": torch.__version__,
        "optimizer": class_name,
        "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
        "arguments": [a for a in inspect.signature(cls.__init__).parameters if a != "self"][1:],
        "model": "mlp_tanh_v1",
        "num_steps": NUM_STEPS,
        "param_order": list(PARAM_ORDER),
        "data": {k: encode(v) for k, v in data.items()},
        "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
        "loss_history": loss_history,
        "checkpoints": checkpoints,
    }


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _max_deviation(a: dict, b: dict) -> float:
    worst = 0.0
    for ca, cb in zip(a["checkpoints"], b["checkpoints"], strict=True):
        for k in ca["params"]:
            x, y = np.asarray(ca["params"][k]["data"]), np.asarray(cb["params"][k]["data"])
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(x == y, 0.0, np.abs(x - y) / np.abs(x))
            worst = max(worst, float(rel.max(initial=0.0)))
    return worst


def write(out: Path, names=None, sensitivity: float = 0.0) -> None:
    """Write the files into ``out``, or with ``sensitivity`` print each run's deviation."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data, init = make_problem()
    for name in names or CONFIGS:
        record = run_config(name, data, init)
        if sensitivity:
            noisy = run_config(name, data, init, grad_noise=sensitivity)
            print(f"{name:28s} max relative deviation {_max_deviation(record, noisy):.2e}")
            continue
        out.mkdir(parents=True, exist_ok=True)
        print(summary(save(out, name, record), record))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "tests" / "golden" / "tuning_free"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--sensitivity", type=float, default=0.0, metavar="NOISE")
    parser.add_argument("names", nargs="*", help="configurations to run (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations: {unknown}")
    write(args.out, args.names, args.sensitivity)


if __name__ == "__main__":
    main()
