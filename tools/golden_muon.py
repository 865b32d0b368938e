"""Write the torch golden data for ``jopt.muon``: ``tests/golden/muon/muon.json``.

Run by ``tools/make_golden.py`` (or alone, from the repository root, with torch
2.13 CPU installed)::

    python tools/golden_muon.py

torch's ``Muon`` takes 2-d parameters only and runs its Newton–Schulz iteration in
bfloat16, whatever the parameters' dtype: its trajectories are exact only to
bfloat16, so they are replayed by ``tests/test_muon.py`` at that tolerance (not by
the 1e-10 replay of ``tests/test_parity_torch.py``; the float64 restatement in
``tests/references/`` is what jopt matches to 1e-10).  The file holds:

* ``model`` ``"mlp3_tanh_nobias_v1"``: three bias-free layers in torch's (out, in)
  layout, ``pred = tanh(tanh(x @ W1.T) @ W2.T) @ W3.T``, ``loss = mean((pred - y)**2)``
  with W1 (6, 4) (more rows than columns: torch transposes it), W2 (6, 6) and W3
  (2, 6); ``data`` ``x`` (32, 4), ``y`` (32, 2); ``initial_params`` in float64.
* ``runs``: for each configuration, the torch call (``optimizer``,
  ``hyperparameters``, ``foreach``, ``scheduler``, ``torch_arguments``), the loss
  before each step, and after every step ``k = 1 .. num_steps`` the parameters and
  each parameter's ``momentum_buffer`` (``steps[k - 1]``).
* ``newton_schulz``: inputs (float64) and outputs of torch's own orthogonalization
  (``torch.optim._muon._zeropower_via_newtonschulz``, bfloat16 returned as float64),
  with the coefficients, step count and eps used.

Arrays are ``{"shape": [...], "data": [...]}``, floats written by :func:`json.dumps`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from pathlib import Path

import numpy as np
import torch
from make_golden import encode

SEED = 20250214
NUM_EXAMPLES, IN_DIM, HIDDEN, OUT_DIM = 32, 4, 6, 2
NUM_STEPS = 8
PARAM_ORDER = ("W1", "W2", "W3")
MODEL = "mlp3_tanh_nobias_v1"

# name -> torch.optim.Muon keyword arguments.  Learning rates small enough that the
# bfloat16 rounding of each step stays a small perturbation of the trajectory.
RUNS: dict[str, dict] = {
    "defaults": {"lr": 0.02},
    "plain_momentum_original": {
        "lr": 0.02,
        "momentum": 0.9,
        "nesterov": False,
        "adjust_lr_fn": "original",
        "weight_decay": 0.0,
    },
    "match_rms_adamw": {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.05},
    "custom_iteration": {
        "lr": 0.02,
        "ns_coefficients": (2.0, -1.5, 0.5),
        "ns_steps": 3,
        "eps": 1e-5,
    },
}

# (shape, scale, ns_coefficients, ns_steps, eps): inputs of torch's orthogonalization.
NEWTON_SCHULZ = (
    ((4, 7), 1.0, (3.4445, -4.775, 2.0315), 5, 1e-7),
    ((7, 4), 1.0, (3.4445, -4.775, 2.0315), 5, 1e-7),
    ((6, 6), 1.0, (3.4445, -4.775, 2.0315), 5, 1e-7),
    ((12, 6), 1.0, (3.4445, -4.775, 2.0315), 5, 1e-7),
    ((6, 20), 3.0, (3.4445, -4.775, 2.0315), 5, 1e-7),
    ((5, 9), 1e-9, (3.4445, -4.775, 2.0315), 5, 1e-7),  # norm below eps
    ((9, 5), 1.0, (1.5, -0.5, 0.0), 12, 1e-7),  # the classical cubic
)


def make_problem(seed: int = SEED) -> tuple[dict, dict]:
    """The data and initial parameters (torch's (out, in) layout), float64."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, IN_DIM))
    teacher = rng.normal(size=(IN_DIM, OUT_DIM))
    y = np.tanh(x @ teacher) + 0.05 * rng.normal(size=(NUM_EXAMPLES, OUT_DIM))
    params = {
        "W1": rng.normal(size=(HIDDEN, IN_DIM)) / np.sqrt(IN_DIM),
        "W2": rng.normal(size=(HIDDEN, HIDDEN)) / np.sqrt(HIDDEN),
        "W3": rng.normal(size=(OUT_DIM, HIDDEN)) / np.sqrt(HIDDEN),
    }
    return {"x": x, "y": y}, params


def torch_loss(params, x, y):
    hidden = torch.tanh(torch.tanh(x @ params["W1"].T) @ params["W2"].T)
    return ((hidden @ params["W3"].T - y) ** 2).mean()


def run(name: str, data: dict, init: dict) -> dict:
    kwargs = RUNS[name]
    x, y = (torch.tensor(data[k], dtype=torch.float64) for k in ("x", "y"))
    params = {k: torch.tensor(init[k], dtype=torch.float64, requires_grad=True) for k in init}
    optimizer = torch.optim.Muon([params[k] for k in PARAM_ORDER], **kwargs)
    losses, steps = [], []
    for _ in range(NUM_STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = torch_loss(params, x, y)
        loss.backward()
        losses.append(float(loss.item()))
        optimizer.step()
        steps.append(
            {
                "params": {k: encode(params[k]) for k in PARAM_ORDER},
                "state": {
                    k: {"momentum_buffer": encode(optimizer.state[params[k]]["momentum_buffer"])}
                    for k in PARAM_ORDER
                },
            }
        )
    return {
        "optimizer": "Muon",
        "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
        "foreach": False,  # torch's Muon has only the single-tensor path
        "scheduler": None,
        "torch_arguments": [
            a
            for a in inspect.signature(torch.optim.Muon.__init__).parameters
            if a not in ("self", "params")
        ],
        "num_steps": NUM_STEPS,
        "loss_history": losses,
        "steps": steps,
    }


def newton_schulz_cases(seed: int = SEED + 1) -> list[dict]:
    from torch.optim._muon import _zeropower_via_newtonschulz

    rng = np.random.default_rng(seed)
    cases = []
    for shape, scale, coefficients, steps, eps in NEWTON_SCHULZ:
        g = scale * rng.normal(size=shape)
        out = _zeropower_via_newtonschulz(torch.tensor(g), coefficients, steps, eps)
        cases.append(
            {
                "input": encode(g),
                "ns_coefficients": list(coefficients),
                "ns_steps": steps,
                "eps": eps,
                "output": encode(out.to(torch.float64)),
            }
        )
    return cases


def _compact_lists(text: str) -> str:
    """``json.dumps(indent=1)`` with every list of numbers on one line."""
    numbers = r"\[\s*(-?[0-9][-+0-9.eE]*(?:,\s*-?[0-9][-+0-9.eE]*)*)\s*\]"
    return re.sub(numbers, lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text)


def write(out: Path) -> None:
    """Write ``muon.json`` into ``out`` (created if needed)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out.mkdir(parents=True, exist_ok=True)
    data, init = make_problem()
    content = {
        "generator": "tools/golden_muon.py",
        "torch_version": torch.__version__,
        "model": MODEL,
        "param_order": list(PARAM_ORDER),
        "data": {k: encode(v) for k, v in data.items()},
        "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
        "runs": {name: run(name, data, init) for name in RUNS},
        "newton_schulz": newton_schulz_cases(),
    }
    path = out / "muon.json"
    path.write_text(_compact_lists(json.dumps(content, indent=1)) + "\n")
    for name, record in content["runs"].items():
        first, last = record["loss_history"][0], record["loss_history"][-1]
        print(f"muon/{name:28s} loss {first:.4f} -> {last:.4f}")
    print(f"{path.name:34s} ({path.stat().st_size} bytes)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "tests" / "golden" / "muon"
    parser.add_argument("--out", type=Path, default=default)
    write(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
