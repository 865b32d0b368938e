"""Write the golden trajectories of Lion, LAMB, LARS, Lookahead and cautious updates.

Run by ``tools/make_golden.py`` (or alone, from the repository root)::

    python tools/golden_modern.py                      # writes tests/golden/modern/*.json
    python tools/golden_modern.py --c-optim DIR        # also c_adamw.json

It needs torch 2.13 CPU, ``lion-pytorch`` 0.2.5 and ``pytorch-optimizer`` 4.1.0.
``c_adamw.json`` comes from the authors' reference of the cautious optimizers,
``c_adamw.py`` of github.com/kyleliang919/C-Optim (commit 2c0517c), read from a
checkout given by ``--c-optim`` (or the environment variable ``C_OPTIM_DIR`` when run
by ``make_golden.py``); without it that file is left as it is.  Its code is run here
to make data only: none of it is part of jopt.

Each file records the float64 tanh network of ``make_golden.py`` (same data, same
initial parameters, same format) trained in closed loop by one reference optimizer,
and is replayed without torch by ``tests/test_modern_*.py``:

* ``package``, ``optimizer``, ``arguments``: the reference, its class and keyword
  arguments; ``inner`` (for ``Lookahead``): the wrapped torch.optim class and its
  arguments;
* ``loss_history[k-1]``: the loss before step k; ``checkpoints``: the parameters and,
  per parameter, every entry of the optimizer's state under its own name (a wrapper's
  entries and its inner optimizer's together), after the steps of ``CHECKPOINTS``.

Arrays are ``{"shape", "data"}``; plain numbers are stored as they are.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from make_golden import (
    LOSS_TEXT,
    MODEL,
    NUM_STEPS,
    PARAM_ORDER,
    SEED,
    encode,
    make_problem,
    save,
    torch_params,
    train,
)

# name -> (module, class, keyword arguments, inner (module, class, arguments) or None).
# Learning rates are small enough that no trajectory turns chaotic.
CONFIGS: dict[str, tuple[str, str, dict, tuple[str, str, dict] | None]] = {
    "lion": ("lion_pytorch", "Lion", {"lr": 3e-3, "betas": (0.9, 0.99)}, None),
    "lion_weight_decay": (
        "lion_pytorch",
        "Lion",
        {"lr": 3e-3, "betas": (0.8, 0.95), "weight_decay": 0.1},
        None,
    ),
    # lion-pytorch's cautious Lion: its mask of the sign update, decay left unmasked.
    "cautious_lion": (
        "lion_pytorch.cautious_lion",
        "Lion",
        {"lr": 3e-3, "betas": (0.9, 0.99), "cautious_factor": 0.0},
        None,
    ),
    "cautious_lion_weight_decay": (
        "lion_pytorch.cautious_lion",
        "Lion",
        {"lr": 3e-3, "betas": (0.9, 0.99), "cautious_factor": 0.0, "weight_decay": 0.1},
        None,
    ),
    # With ε = 0, no decay and adam_debias=True (the step size not divided by 1 − β₁ᵗ)
    # the port's missing bias corrections scale r by a number, which the trust ratio
    # cancels: this is the paper's LAMB.
    "lamb_paper": (
        "pytorch_optimizer",
        "Lamb",
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 0.0, "adam_debias": True, "foreach": False},
        None,
    ),
    # The port's own forms, whose differences docs/porting.md lists.
    "lamb_port_l2": (
        "pytorch_optimizer",
        "Lamb",
        {
            "lr": 0.02,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "weight_decouple": False,
            "foreach": False,
        },
        None,
    ),
    "lamb_port_decoupled": (
        "pytorch_optimizer",
        "Lamb",
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "foreach": False},
        None,
    ),
    "lars": (
        "pytorch_optimizer",
        "LARS",
        {
            "lr": 0.5,
            "momentum": 0.9,
            "weight_decay": 0.01,
            "trust_coefficient": 0.02,
            "foreach": False,
        },
        None,
    ),
    "lars_nesterov": (
        "pytorch_optimizer",
        "LARS",
        {
            "lr": 0.1,
            "momentum": 0.8,
            "weight_decay": 0.05,
            "trust_coefficient": 0.05,
            "nesterov": True,
            "foreach": False,
        },
        None,
    ),
    "lookahead_adam": (
        "pytorch_optimizer",
        "Lookahead",
        {"k": 5, "alpha": 0.5},
        ("torch.optim", "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "foreach": False}),
    ),
    "lookahead_sgd": (
        "pytorch_optimizer",
        "Lookahead",
        {"k": 3, "alpha": 0.3},
        ("torch.optim", "SGD", {"lr": 0.05, "momentum": 0.9, "foreach": False}),
    ),
    # The authors' C-AdamW (single-tensor path).  ε = 0 makes its ε placement (added to
    # √v before the bias corrections) irrelevant.
    "c_adamw": (
        "c_optim.c_adamw",
        "AdamW",
        {
            "lr": 0.01,
            "betas": (0.8, 0.99),
            "eps": 0.0,
            "weight_decay": 0.1,
            "foreach": False,
            "no_deprecation_warning": True,
        },
        None,
    ),
}

AUTHORS_CODE = {"c_adamw": ("c_adamw.py", "opt_utils.py")}


def _package(module: str) -> str:
    top = module.split(".")[0]
    names = {"lion_pytorch": "lion-pytorch", "pytorch_optimizer": "pytorch_optimizer"}
    if top == "c_optim":
        return "C-Optim 2c0517c (the authors' reference)"
    return f"{names.get(top, top)} {importlib.metadata.version(names.get(top, top))}"


def _value(value):
    if isinstance(value, torch.Tensor):
        return encode(value) if value.ndim else float(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"unexpected state entry {value!r}")
    return value


def _state(optimizer, p) -> dict:
    entries = dict(optimizer.state[p])
    inner = getattr(optimizer, "optimizer", None)
    if inner is not None:
        entries.update(inner.state[p])
    return {key: _value(value) for key, value in sorted(entries.items())}


def _build(name: str, params: list):
    module, cls, kwargs, inner = CONFIGS[name]
    factory = getattr(importlib.import_module(module), cls)
    if inner is None:
        return factory(params, **kwargs)
    inner_module, inner_cls, inner_kwargs = inner
    wrapped = getattr(importlib.import_module(inner_module), inner_cls)(params, **inner_kwargs)
    return factory(wrapped, **kwargs)


def run_config(name: str, data: dict, init: dict) -> dict:
    x = torch.tensor(data["x"], dtype=torch.float64)
    y = torch.tensor(data["y"], dtype=torch.float64)
    params = torch_params(init)
    optimizer = _build(name, [params[k] for k in PARAM_ORDER])

    def checkpoint():
        return {
            "params": {k: encode(params[k]) for k in PARAM_ORDER},
            "state": {k: _state(optimizer, params[k]) for k in PARAM_ORDER},
        }

    _, loss_history, checkpoints = train(optimizer, params, x, y, checkpoint)
    module, cls, kwargs, inner = CONFIGS[name]

    def plain(arguments):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}

    return {
        "format": 1,
        "generator": "tools/golden_modern.py",
        "name": name,
        "package": _package(module),
        "torch_version": torch.__version__,
        "optimizer": f"{module}.{cls}",
        "arguments": plain(kwargs),
        "inner": None
        if inner is None
        else {"optimizer": f"{inner[0]}.{inner[1]}", "arguments": plain(inner[2])},  # fmt: skip
        "model": MODEL,
        "loss": LOSS_TEXT,
        "seed": SEED,
        "num_steps": NUM_STEPS,
        "param_order": list(PARAM_ORDER),
        "data": {k: encode(v) for k, v in data.items()},
        "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
        "loss_history": loss_history,
        "checkpoints": checkpoints,
    }


def _import_authors_code(checkout: Path, files: tuple[str, ...]) -> None:
    """Make the authors' files importable as the package ``c_optim`` (they import each
    other relatively), from a temporary copy."""
    package = Path(tempfile.mkdtemp()) / "c_optim"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for file in files:
        shutil.copy(checkout / file, package / file)
    sys.path.insert(0, str(package.parent))


def write(out: Path, names=None, c_optim: str | None = None) -> None:
    """Write ``out/<name>.json`` for ``names`` (default: all; ``c_adamw`` only with the
    authors' checkout ``c_optim``)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    c_optim = c_optim or os.environ.get("C_OPTIM_DIR")
    if c_optim:
        _import_authors_code(Path(c_optim), AUTHORS_CODE["c_adamw"])
    out.mkdir(parents=True, exist_ok=True)
    data, init = make_problem()
    for name in names or CONFIGS:
        if name in AUTHORS_CODE and not c_optim:
            print(f"{name}: no --c-optim checkout given, left as it is")
            continue
        record = run_config(name, data, init)
        path = save(out, name, record)
        first, last = record["loss_history"][0], record["loss_history"][-1]
        print(f"modern/{path.name:30s} loss {first:.4f} -> {last:.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "tests" / "golden" / "modern"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--c-optim", metavar="DIR", help="a checkout of the authors' C-Optim")
    parser.add_argument("names", nargs="*", help="configurations to run (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations: {unknown}")
    write(args.out, args.names, args.c_optim)


if __name__ == "__main__":
    main()
