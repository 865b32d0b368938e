"""Write the torch.optim.LBFGS golden trajectories used by ``tests/test_lbfgs.py``.

How to run (by hand, only when a configuration is added or changed; needs torch)::

    python tools/golden_lbfgs.py        # from the repository root
    python tools/make_golden.py         # writes these too, after the others

It writes one JSON file per configuration into ``tests/golden/lbfgs/``.

Each configuration runs ``torch.optim.LBFGS(..., max_iter=1, max_eval=26)`` in float64
for ``num_steps`` calls of ``step(closure)``: one L-BFGS iteration per step, whose
line search may evaluate the closure 25 times after the first (torch's line search
gets ``max_eval`` minus the step's first evaluation).  That is ``jopt.lbfgs`` with one
``update`` per step.

Problems (``model`` tag):

* ``mlp_tanh_v1``: the network and data of ``tools/make_golden.py``.
* ``quadratic_v1``: ``½·(w − c)ᵀA(w − c) + 1`` with a 5×5 symmetric positive definite
  ``A`` (condition number 100): L-BFGS meets torch's tolerances within the run, so the
  zero updates after convergence are recorded too: by ``gᵀd > −tolerance_change``
  (``quadratic_strong_wolfe``) and by ``max|g| ≤ tolerance_grad``
  (``quadratic_tolerance_grad``).

A file holds the problem (``model``, ``data``, ``initial_params``, ``param_order``),
the torch call (``hyperparameters``, ``torch_arguments``), ``loss_history[k-1]`` (the
closure's loss at the start of step ``k``), ``params_history[k-1]`` (the parameters
after step ``k``), ``func_evals_history`` and ``n_iter_history`` (torch's counters
after each step), and ``checkpoints``: after the steps listed, torch's whole state
under its own names (``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``,
``prev_flat_grad``, ``prev_loss``, ``n_iter``, ``func_evals``), the histories as lists
from oldest to newest.  Arrays are ``{"shape", "data"}`` as in ``make_golden.py``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_golden  # noqa: E402

FORMAT_VERSION = 1
MAX_EVAL = 26
CHECKPOINTS = (1, 2, 3, 5, 10, 15, 20)

# name -> (model, torch keyword arguments, number of steps).  Step counts stay where
# the trajectory is well conditioned: ``--sensitivity 1e-15`` must stay far below 1e-10.
CONFIGS: dict[str, tuple[str, dict, int]] = {
    "strong_wolfe": ("mlp_tanh_v1", {"lr": 1.0, "line_search_fn": "strong_wolfe"}, 20),
    "strong_wolfe_history3": (
        "mlp_tanh_v1",
        {"lr": 0.5, "history_size": 3, "line_search_fn": "strong_wolfe"},
        20,
    ),
    "fixed_step": ("mlp_tanh_v1", {"lr": 0.2, "history_size": 5, "line_search_fn": None}, 20),
    "quadratic_strong_wolfe": ("quadratic_v1", {"lr": 1.0, "line_search_fn": "strong_wolfe"}, 20),
    "quadratic_tolerance_grad": (
        "quadratic_v1",
        {"lr": 1.0, "tolerance_grad": 1e-3, "line_search_fn": "strong_wolfe"},
        20,
    ),
}


def quadratic_problem(seed: int = 20240605):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a = (q * np.logspace(0, 2, 5)) @ q.T
    a = (a + a.T) / 2
    return {"A": a, "c": rng.normal(size=5)}, {"w": rng.normal(size=5)}


def problem(model: str):
    """``(data, initial params, param order, torch loss)`` of a model tag."""
    if model == "mlp_tanh_v1":
        data, init = make_golden.make_problem()
        return data, init, make_golden.PARAM_ORDER, make_golden.torch_loss
    if model == "quadratic_v1":
        data, init = quadratic_problem()

        def loss(params, a, c):
            e = params["w"] - c
            return 0.5 * e @ (a @ e) + 1.0

        return data, init, ("w",), loss
    raise ValueError(model)


def encode_state(state: dict) -> dict:
    out = {}
    for key in ("d", "t", "H_diag", "prev_flat_grad", "prev_loss"):
        out[key] = make_golden.encode(torch.as_tensor(state[key], dtype=torch.float64))
    for key in ("old_dirs", "old_stps"):
        out[key] = [make_golden.encode(v) for v in state[key]]
    out["ro"] = [float(v) for v in state["ro"]]
    out["n_iter"], out["func_evals"] = int(state["n_iter"]), int(state["func_evals"])
    return out


def run_config(name: str, grad_noise: float = 0.0) -> dict:
    """Run configuration ``name``; ``grad_noise`` perturbs gradients (``--sensitivity``)."""
    model, kwargs, num_steps = CONFIGS[name]
    data, init, order, torch_loss = problem(model)
    tensors = [torch.tensor(data[k], dtype=torch.float64) for k in data]
    params = {k: torch.tensor(init[k], dtype=torch.float64, requires_grad=True) for k in order}
    opt = torch.optim.LBFGS([params[k] for k in order], max_iter=1, max_eval=MAX_EVAL, **kwargs)
    noise_rng = np.random.default_rng(1)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = torch_loss(params, *tensors)
        loss.backward()
        if grad_noise:
            with torch.no_grad():
                for p in params.values():
                    z = torch.tensor(noise_rng.normal(size=p.shape), dtype=torch.float64)
                    p.grad.mul_(1 + grad_noise * z)
        return loss

    record = {"loss_history": [], "params_history": [], "func_evals_history": []}
    record["n_iter_history"], record["checkpoints"] = [], []
    for step in range(1, num_steps + 1):
        record["loss_history"].append(float(opt.step(closure).detach()))
        state = opt.state[params[order[0]]]
        record["params_history"].append({k: make_golden.encode(params[k]) for k in order})
        record["func_evals_history"].append(int(state["func_evals"]))
        record["n_iter_history"].append(int(state["n_iter"]))
        if step in CHECKPOINTS:
            record["checkpoints"].append({"step": step, "state": encode_state(state)})
    return {
        "format": FORMAT_VERSION,
        "generator": "tools/golden_lbfgs.py",
        "name": name,
        "torch_version": torch.__version__,
        "optimizer": "LBFGS",
        "torch_arguments": [
            a
            for a in inspect.signature(torch.optim.LBFGS.__init__).parameters
            if a not in ("self", "params")
        ],
        "hyperparameters": {**kwargs, "max_iter": 1, "max_eval": MAX_EVAL},
        "model": model,
        "num_steps": num_steps,
        "param_order": list(order),
        "data": {k: make_golden.encode(v) for k, v in data.items()},
        "initial_params": {k: make_golden.encode(init[k]) for k in order},
        **record,
    }


def max_relative_deviation(a: dict, b: dict) -> float:
    worst = 0.0
    for pa, pb in zip(a["params_history"], b["params_history"], strict=True):
        for k in pa:
            x, y = np.asarray(pa[k]["data"]), np.asarray(pb[k]["data"])
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(x == y, 0.0, np.abs(x - y) / np.abs(x))
            worst = max(worst, float(rel.max(initial=0.0)))
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lbfgs"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--sensitivity", type=float, metavar="NOISE")
    parser.add_argument("names", nargs="*", help="configurations to run (default: all)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    unknown = sorted(set(args.names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations: {unknown}")
    for name in args.names or CONFIGS:
        if args.sensitivity:
            worst = max_relative_deviation(run_config(name), run_config(name, args.sensitivity))
            print(f"{name:28s} max relative deviation of the parameters {worst:.2e}")
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        record = run_config(name)
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        first, last = record["loss_history"][0], record["loss_history"][-1]
        print(f"lbfgs/{path.name:30s} loss {first:.4f} -> {last:.4f}  ({path.stat().st_size} B)")


if __name__ == "__main__":
    main()
