"""Write the torch golden data for jopt's schedules, reduce_on_plateau and averaged.

Run by ``tools/make_golden.py`` (or alone, from the repository root, with torch
2.13 CPU installed)::

    python tools/golden_schedules.py            # writes tests/golden/schedules/*.json

Three files, replayed without torch by ``tests/test_schedules_torch.py``,
``tests/test_plateau.py`` and ``tests/test_averaged.py``:

* ``schedulers.json``: for each configuration, a torch LR scheduler (its class name
  and keyword arguments) on an SGD optimizer with learning rate ``lr``, and the
  learning rate (and, for ``OneCycleLR``, the momentum) torch used at each of
  ``num_steps`` optimizer steps: entry ``k`` is the value in effect at step ``k + 1``,
  i.e. after ``k`` calls of ``scheduler.step()``.
* ``plateau.json``: for each configuration, ``ReduceLROnPlateau``'s keyword arguments,
  the initial learning rate ``lr``, a loss sequence (with negative losses), and the
  learning rate after ``scheduler.step(loss)`` for each loss in turn.
* ``averaged.json``: the float64 tanh network of ``make_golden.py`` trained with SGD
  with momentum; an ``AveragedModel`` (equal average, or EMA through
  ``get_ema_multi_avg_fn(decay)``) is updated after optimizer step ``k`` when
  ``k > start_step`` and ``(k − start_step) % every == 0``; its parameters and
  ``n_averaged`` are recorded after the steps in ``checkpoints``.

Numbers are written by :func:`json.dumps`, whose ``repr`` form reads back to the same
float64 bit pattern; arrays as ``{"shape": [...], "data": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from make_golden import PARAM_ORDER, encode, make_problem, torch_loss

# name -> (scheduler class, keyword arguments, optimizer lr, number of steps)
SCHEDULERS: dict[str, tuple[str, dict, float, int]] = {
    "polynomial_power2": ("PolynomialLR", {"total_iters": 20, "power": 2.0}, 0.1, 30),
    "polynomial_sqrt": ("PolynomialLR", {"total_iters": 13, "power": 0.5}, 0.3, 20),
    "one_cycle_cos": ("OneCycleLR", {"max_lr": 0.5, "total_steps": 50}, 0.1, 50),
    "one_cycle_linear_fractional": (
        "OneCycleLR",
        {
            "max_lr": 1.2,
            "total_steps": 37,
            "pct_start": 0.25,
            "anneal_strategy": "linear",
            "div_factor": 10.0,
            "final_div_factor": 100.0,
            "base_momentum": 0.8,
            "max_momentum": 0.9,
        },
        0.1,
        37,
    ),
    "one_cycle_three_phase": (
        "OneCycleLR",
        {"max_lr": 0.3, "total_steps": 41, "pct_start": 0.35, "three_phase": True},
        0.1,
        41,
    ),
    "cosine_restarts": (
        "CosineAnnealingWarmRestarts",
        {"T_0": 5, "T_mult": 1, "eta_min": 0.01},
        0.2,
        40,
    ),
    "cosine_restarts_mult": (
        "CosineAnnealingWarmRestarts",
        {"T_0": 3, "T_mult": 2, "eta_min": 0.0},
        0.2,
        60,
    ),
    "cyclic_triangular": (
        "CyclicLR",
        {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "step_size_down": 6},
        0.01,
        45,
    ),
    "cyclic_triangular2": (
        "CyclicLR",
        {"base_lr": 0.02, "max_lr": 0.2, "step_size_up": 5, "mode": "triangular2"},
        0.02,
        45,
    ),
    "cyclic_exp_range": (
        "CyclicLR",
        {
            "base_lr": 0.01,
            "max_lr": 0.1,
            "step_size_up": 3,
            "step_size_down": 7,
            "mode": "exp_range",
            "gamma": 0.97,
        },
        0.01,
        45,
    ),
    "multistep": ("MultiStepLR", {"milestones": [30, 5, 12, 12], "gamma": 0.5}, 0.1, 40),
    "swa_cos": ("SWALR", {"swa_lr": 0.01, "anneal_epochs": 7}, 0.1, 15),
    "swa_linear": (
        "SWALR",
        {"swa_lr": 0.05, "anneal_epochs": 4, "anneal_strategy": "linear"},
        0.2,
        10,
    ),
    "swa_no_anneal": ("SWALR", {"swa_lr": 0.05, "anneal_epochs": 0}, 0.2, 5),
}

# name -> (ReduceLROnPlateau keyword arguments, lr, loss-sequence seed, length, offset)
PLATEAUS: dict[str, tuple[dict, float, int, int, float]] = {
    "min_rel": ({"factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": 0.01}, 1.0, 1, 80, 0.0),
    "min_rel_negative": ({"factor": 0.3, "patience": 3}, 1.0, 2, 80, -3.0),
    "min_abs_negative": (
        {"factor": 0.5, "patience": 1, "threshold": 0.05, "threshold_mode": "abs", "cooldown": 2},
        1.0,
        3,
        80,
        -1.0,
    ),
    "max_rel": ({"mode": "max", "factor": 0.2, "patience": 2, "threshold": 1e-2}, 1.0, 4, 60, 0.5),
    "max_abs_negative": (
        {"mode": "max", "factor": 0.5, "patience": 0, "threshold_mode": "abs", "threshold": 0.1},
        1.0,
        5,
        60,
        -2.0,
    ),
    "min_lr_floor": (
        {"factor": 0.1, "patience": 1, "min_lr": 1e-3, "eps": 1e-6},
        0.1,
        6,
        40,
        0.2,
    ),
}

# name -> (decay or None, start_step, every)
AVERAGES: dict[str, tuple[float | None, int, int]] = {
    "swa": (None, 0, 1),
    "swa_start_every": (None, 5, 3),
    "ema": (0.9, 0, 1),
    "ema_start": (0.75, 4, 2),
}
AVERAGE_STEPS = 30
AVERAGE_CHECKPOINTS = (1, 2, 3, 5, 6, 8, 11, 20, 30)
AVERAGE_SGD = {"lr": 0.05, "momentum": 0.9}


def _optimizer(lr: float, momentum: float = 0.9):
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    return torch.optim.SGD([param], lr=lr, momentum=momentum)


def run_scheduler(name: str) -> dict:
    cls_name, kwargs, lr, steps = SCHEDULERS[name]
    optimizer = _optimizer(lr)
    if cls_name == "SWALR":
        scheduler = torch.optim.swa_utils.SWALR(optimizer, **kwargs)
    else:
        extra = {"cycle_momentum": False} if cls_name == "CyclicLR" else {}
        scheduler = getattr(torch.optim.lr_scheduler, cls_name)(optimizer, **kwargs, **extra)
    lrs, momenta = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(float(group["lr"]))
        momenta.append(float(group["momentum"]))
        optimizer.step()
        scheduler.step()
    record = {"scheduler": cls_name, "kwargs": kwargs, "lr": lr, "num_steps": steps}
    record["lr_history"] = lrs
    if cls_name == "OneCycleLR":
        record["momentum_history"] = momenta
    return record


def plateau_losses(seed: int, length: int, offset: float) -> list[float]:
    """A noisy, mostly decreasing loss with plateaus, shifted by ``offset``."""
    rng = np.random.default_rng(seed)
    trend = np.repeat(np.linspace(1.0, 0.2, length // 8), 8)[:length]
    trend = np.concatenate([trend, np.full(length - trend.size, 0.2)])
    return [float(v) for v in offset + trend + 0.05 * rng.normal(size=length)]


def run_plateau(name: str) -> dict:
    kwargs, lr, seed, length, offset = PLATEAUS[name]
    optimizer = _optimizer(lr, momentum=0.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
    losses = plateau_losses(seed, length, offset)
    lrs = []
    for loss in losses:
        optimizer.step()
        scheduler.step(loss)
        lrs.append(float(optimizer.param_groups[0]["lr"]))
    return {"kwargs": kwargs, "lr": lr, "losses": losses, "lr_history": lrs}


def run_average(name: str, data: dict, init: dict) -> dict:
    decay, start_step, every = AVERAGES[name]
    x = torch.tensor(data["x"], dtype=torch.float64)
    y = torch.tensor(data["y"], dtype=torch.float64)
    params = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(torch.tensor(init[k], dtype=torch.float64)) for k in PARAM_ORDER}
    )
    optimizer = torch.optim.SGD([params[k] for k in PARAM_ORDER], foreach=False, **AVERAGE_SGD)
    if decay is None:
        averaged = torch.optim.swa_utils.AveragedModel(params)
    else:
        ema = torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
        averaged = torch.optim.swa_utils.AveragedModel(params, multi_avg_fn=ema)
    checkpoints = []
    for step in range(1, AVERAGE_STEPS + 1):
        optimizer.zero_grad(set_to_none=True)
        torch_loss(params, x, y).backward()
        optimizer.step()
        if step > start_step and (step - start_step) % every == 0:
            averaged.update_parameters(params)
        if step in AVERAGE_CHECKPOINTS:
            checkpoints.append(
                {
                    "step": step,
                    "n_averaged": int(averaged.n_averaged.item()),
                    "params": {k: encode(params[k]) for k in PARAM_ORDER},
                    "averaged": {k: encode(averaged.module[k]) for k in PARAM_ORDER},
                }
            )
    return {
        "decay": decay,
        "start_step": start_step,
        "every": every,
        "optimizer": {"name": "SGD", **AVERAGE_SGD},
        "num_steps": AVERAGE_STEPS,
        "checkpoints": checkpoints,
    }


def write(out: Path) -> None:
    """Write the three files into ``out`` (created if needed)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    data, init = make_problem()
    files = {
        "schedulers": {name: run_scheduler(name) for name in SCHEDULERS},
        "plateau": {name: run_plateau(name) for name in PLATEAUS},
        "averaged": {
            "model": "mlp_tanh_v1",
            "data": {k: encode(v) for k, v in data.items()},
            "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
            "runs": {name: run_average(name, data, init) for name in AVERAGES},
        },
    }
    for stem, content in files.items():
        header = {"generator": "tools/golden_schedules.py", "torch_version": torch.__version__}
        content = {**header, **content}
        path = out / f"{stem}.json"
        path.write_text(json.dumps(content, indent=1) + "\n")
        print(f"{path.name:34s} ({path.stat().st_size} bytes)")
    assert math.isfinite(sum(r["lr_history"][-1] for r in files["schedulers"].values()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "tests" / "golden" / "schedules"
    parser.add_argument("--out", type=Path, default=default)
    write(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
