"""Write the golden trajectories of AdaBelief, ADOPT and AdEMAMix's reference implementations.

Run by ``tools/make_golden.py`` (a full run), or alone from the repository root::

    pip install torch==2.13.0 adabelief-pytorch==0.2.1 torch-adopt==0.1.0 pytorch-optimizer
    git clone https://github.com/apple/ml-ademamix /somewhere/ml-ademamix
    ADEMAMIX_SOURCE=/somewhere/ml-ademamix/pytorch/ademamix.py python tools/golden_adam_like.py

It writes ``tests/golden/adam_like/<name>.json`` (``--out`` elsewhere), replayed without
torch by ``tests/test_adam_like.py``.  The references:

* ``adabelief-pytorch`` 0.2.1, the AdaBelief authors' package (``AdaBelief``);
* ``torch-adopt`` 0.1.0, the ADOPT authors' package (``ADOPT``; the same file as
  github.com/iShohei220/adopt at commit 6468572);
* ``pytorch/ademamix.py`` of github.com/apple/ml-ademamix (commit c3d73c0), the AdEMAMix
  authors' code, which is no package: it is loaded from ``ADEMAMIX_SOURCE``;
* ``pytorch-optimizer``'s ports of the three, where they differ from the authors.

Each file has the layout of ``make_golden.py``'s (the same float64 tanh network, data,
initial parameters, steps and checkpoints; state entries under the reference's own
names), plus ``reference``: the package, its version and where the class comes from.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import inspect
import os
from pathlib import Path

import torch
from make_golden import (
    FORMAT_VERSION,
    LOSS_TEXT,
    MODEL,
    NUM_STEPS,
    PARAM_ORDER,
    SEED,
    encode,
    encode_state,
    make_problem,
    max_relative_deviation,
    save,
    summary,
    torch_params,
    train,
)

ADEMAMIX_COMMIT = "c3d73c0"

# name -> (reference, class name, keyword arguments).  The learning rates keep every
# trajectory well conditioned: ``--sensitivity 1e-15`` stays far below 1e-10.
CONFIGS: dict[str, tuple[str, str, dict]] = {
    # The paper's AdaBelief is the package's rectify=False (its default is True).
    "adabelief": (
        "adabelief-pytorch",
        "AdaBelief",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "rectify": False},
    ),
    "adabelief_weight_decay": (
        "adabelief-pytorch",
        "AdaBelief",
        {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-16, "weight_decay": 0.1, "rectify": False},
    ),
    "adabelief_pytorch_optimizer": (
        "pytorch-optimizer",
        "AdaBelief",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
    ),
    "adopt": ("torch-adopt", "ADOPT", {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-6}),
    "adopt_weight_decay": (
        "torch-adopt",
        "ADOPT",
        {"lr": 0.01, "betas": (0.8, 0.999), "eps": 1e-4, "weight_decay": 0.05},
    ),
    # pytorch-optimizer's ADOPT clips at (t + 1)^¼ where the authors' clip at t^¼.
    "adopt_pytorch_optimizer": (
        "pytorch-optimizer",
        "ADOPT",
        {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-6},
    ),
    "ademamix": (
        "ml-ademamix",
        "AdEMAMix",
        {"lr": 0.01, "betas": (0.8, 0.99, 0.999), "alpha": 5.0, "eps": 1e-8},
    ),
    "ademamix_warmup": (
        "ml-ademamix",
        "AdEMAMix",
        {
            "lr": 0.005,
            "betas": (0.9, 0.999, 0.9999),
            "alpha": 5.0,
            "beta3_warmup": 40,
            "alpha_warmup": 40,
            "weight_decay": 0.1,
        },
    ),
    # pytorch-optimizer's AdEMAMix: the paper's β₃ formula without the authors' 1e-8,
    # and L2 decay unless weight_decouple=True.
    "ademamix_pytorch_optimizer": (
        "pytorch-optimizer",
        "AdEMAMix",
        {
            "lr": 0.005,
            "betas": (0.9, 0.999, 0.9999),
            "alpha": 5.0,
            "t_alpha_beta3": 40,
            "weight_decay": 0.1,
            "weight_decouple": True,
        },
    ),
}

# Keyword arguments passed to every call of a reference (not part of the mapping).
FIXED = {
    "adabelief-pytorch": {"print_change_log": False},
    "torch-adopt": {"foreach": False},
    "pytorch-optimizer": {"foreach": False},
    "ml-ademamix": {},
}


def _ademamix_module():
    source = os.environ.get("ADEMAMIX_SOURCE")
    if not source or not Path(source).is_file():
        raise SystemExit(
            "golden_adam_like: set ADEMAMIX_SOURCE to pytorch/ademamix.py of a clone of "
            f"github.com/apple/ml-ademamix (commit {ADEMAMIX_COMMIT}); got {source!r}"
        )
    spec = importlib.util.spec_from_file_location("ademamix_reference", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_class(reference: str, name: str) -> tuple[type, dict]:
    """The optimizer class and what the file records about where it came from."""
    if reference == "ml-ademamix":
        cls = getattr(_ademamix_module(), name)
        source = f"github.com/apple/ml-ademamix@{ADEMAMIX_COMMIT}:pytorch/ademamix.py"
        return cls, {"package": reference, "version": ADEMAMIX_COMMIT, "source": source}
    module = {
        "adabelief-pytorch": "adabelief_pytorch",
        "torch-adopt": "adopt",
        "pytorch-optimizer": "pytorch_optimizer",
    }[reference]
    cls = getattr(__import__(module), name)
    version = importlib.metadata.version(reference)
    return cls, {"package": reference, "version": version, "source": f"{module}.{name}"}


def _encode_state(entry: dict) -> dict:
    # AdEMAMix keeps exp_avg_fast = None when β₁ = 0.
    return encode_state({k: v for k, v in entry.items() if v is not None})


def run_config(name: str, data: dict, init: dict, grad_noise: float = 0.0) -> dict:
    """Train with configuration ``name``; ``grad_noise`` as in ``make_golden.run_config``."""
    reference, class_name, kwargs = CONFIGS[name]
    cls, where = reference_class(reference, class_name)
    x = torch.tensor(data["x"], dtype=torch.float64)
    y = torch.tensor(data["y"], dtype=torch.float64)
    params = torch_params(init)
    optimizer = cls([params[k] for k in PARAM_ORDER], **kwargs, **FIXED[reference])

    def checkpoint():
        return {
            "params": {k: encode(params[k]) for k in PARAM_ORDER},
            "state": {k: _encode_state(optimizer.state[params[k]]) for k in PARAM_ORDER},
        }

    _, loss_history, checkpoints = train(optimizer, params, x, y, checkpoint, grad_noise=grad_noise)
    hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    arguments = inspect.signature(cls.__init__).parameters
    return {
        "format": FORMAT_VERSION,
        "generator": "tools/golden_adam_like.py",
        "name": name,
        "torch_version": torch.__version__,
        "reference": where,
        "optimizer": class_name,
        "torch_arguments": [a for a in arguments if a not in ("self", "params", "kwargs")],
        "hyperparameters": hyper,
        "fixed_arguments": FIXED[reference],
        "scheduler": None,
        "model": MODEL,
        "loss": LOSS_TEXT,
        "seed": SEED,
        "num_steps": NUM_STEPS,
        "param_order": list(PARAM_ORDER),
        "data": {k: encode(v) for k, v in data.items()},
        "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
        "lr_history": [float(kwargs["lr"])] * NUM_STEPS,
        "loss_history": loss_history,
        "checkpoints": checkpoints,
    }


def write(out: Path, names=None) -> None:
    """Write ``out/<name>.json`` for each configuration (default: all)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data, init = make_problem()
    out.mkdir(parents=True, exist_ok=True)
    for name in names or CONFIGS:
        record = run_config(name, data, init)
        print(summary(save(out, name, record), record))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "tests" / "golden" / "adam_like"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--sensitivity", type=float, metavar="NOISE", help="as make_golden.py's")
    parser.add_argument("names", nargs="*", help="configurations to run (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations: {unknown}")
    if args.sensitivity:
        data, init = make_problem()
        for name in args.names or CONFIGS:
            clean = run_config(name, data, init)
            noisy = run_config(name, data, init, grad_noise=args.sensitivity)
            worst, where = max_relative_deviation(clean, noisy)
            print(f"{name:28s} max relative deviation {worst:.2e}  ({where})")
        return
    write(args.out, args.names)


if __name__ == "__main__":
    main()
