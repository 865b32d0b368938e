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

``line_search.json`` holds torch's strong-Wolfe line search alone (``_strong_wolfe``
of ``torch/optim/lbfgs.py``), run on many one-dimensional slices of two functions
(``LINE_FUNCTIONS``) from many starting steps, so that every branch of the
bracketing and zoom phases is taken: each case has ``function``, ``x``, ``d``, ``t0``,
``tolerance_change``, ``max_ls`` and torch's ``t``, ``f``, ``g`` and ``evaluations``.
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


# The line-search functions, restated in the tests: ``rosenbrock`` (2-D) and
# ``wavy`` (3-D, ``Σ sin(3·xᵢ) + 0.1·xᵢ²``, many local minima along a line).
LINE_FUNCTIONS = {
    "rosenbrock": lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2,
    "wavy": lambda x: torch.sum(torch.sin(3 * x) + 0.1 * x**2),
}


def _slice(fn, noise: float, rng: np.random.Generator):
    """``(x, t, d) -> (f, ∇f)`` at ``x + t·d``; with ``noise``, both perturbed by that
    relative amount, as another implementation's rounding would."""

    def value_and_grad(x, t, d):
        point = (x + t * d).detach().requires_grad_(True)
        value = fn(point)
        (grad,) = torch.autograd.grad(value, point)
        if noise:
            value = value * (1 + noise * rng.normal())
            grad = grad * (1 + noise * torch.tensor(rng.normal(size=grad.shape)))
        return float(value.detach()), grad.detach()

    return value_and_grad


def _draw_case(i: int, rng: np.random.Generator) -> dict:
    name = ("rosenbrock", "wavy")[i % 2]
    x = torch.tensor(rng.normal(size=2 if name == "rosenbrock" else 3) * 1.5)
    _, g = _slice(LINE_FUNCTIONS[name], 0.0, rng)(x, 0.0, x)
    d = -g if i % 3 == 0 else torch.tensor(rng.normal(size=x.shape))
    d = (-d if float(g @ d) > 0 else d) * 10 ** rng.uniform(-2, 1)
    t0 = float(10 ** rng.uniform(-4, 2))
    if i % 6 == 5:  # a unit direction and a step near a wave: f rises and falls again
        d, t0 = d / d.norm(), float(10 ** rng.uniform(-1.3, 0.3))
    scale = t0 * float(d.abs().max())  # the zoom stops once |Δt|·max|d| < tolerance_change
    return {
        "function": name,
        "x": x,
        "d": d,
        "t0": t0,
        "tolerance_change": scale * 10 ** rng.uniform(-3, -0.5) if i % 4 == 3 else 1e-9,
        "max_ls": int(rng.integers(1, 6)) if i % 5 == 4 else 25,
    }


# A slice of ``wavy`` on which torch's rule "f rose since the previous trial", applied
# from the third trial on only (``ls_iter > 1``), decides the outcome: the second trial
# overshoots a minimum and satisfies the strong Wolfe conditions with f above the
# first's.  Found by a search over random slices (4 in 20,000, this one the only one
# insensitive to rounding).  (function, x, d, t0).
DIRECTED = (
    ("wavy", [1.7416917558781435, -1.9391744725202757, -1.4078145888752256],
     [-0.15475038489843881, 0.5599946612029182, 0.8139154119427976], 2.7585059289314486),
)  # fmt: skip


def _robust_torch_search(case: dict, noise_rng: np.random.Generator) -> dict | None:
    """torch's answer for ``case``, or None when rounding-level noise changes it."""
    from torch.optim.lbfgs import _strong_wolfe

    fn, x, d = LINE_FUNCTIONS[case["function"]], case["x"], case["d"]
    f, g = _slice(fn, 0.0, noise_rng)(x, 0.0, d)
    options = {"tolerance_change": case["tolerance_change"], "max_ls": case["max_ls"]}
    runs = [
        _strong_wolfe(_slice(fn, noise, noise_rng), x, case["t0"], d, f, g, g @ d, **options)
        for noise in (0.0, 1e-15, 1e-14, 1e-14, 1e-13, 1e-13, 1e-12)
    ]
    f_new, g_new, t, evaluations = runs[0]
    if any(n != evaluations or abs(u - t) > 1e-11 * abs(t) for _, _, u, n in runs[1:]):
        return None
    case = {**case, "x": make_golden.encode(x), "d": make_golden.encode(d), "t": float(t)}
    case.update(f=float(f_new), g=make_golden.encode(g_new), evaluations=int(evaluations))
    return case


def line_search_cases(seed: int = 7, count: int = 1000) -> list[dict]:
    """torch's ``_strong_wolfe`` on random slices: descent directions of random length,
    first steps from 1e-4 to 1e2, some loose ``tolerance_change`` and small ``max_ls``.

    Where the slice is nearly linear, the cubic step is the small difference of large
    terms and rounding decides the next trial: such a case is kept only if six runs
    with f and ∇f perturbed by 1e-15 to 1e-12 (relative) leave torch's answer to 1e-11
    and its evaluation count unchanged.
    """
    rng, noise_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    cases: list[dict] = []
    i = 0
    while len(cases) < count:
        case, i = _robust_torch_search(_draw_case(i, rng), noise_rng), i + 1
        if case is not None:
            cases.append(case)
    for name, x, d, t0 in DIRECTED:
        x, d = torch.tensor(x, dtype=torch.float64), torch.tensor(d, dtype=torch.float64)
        case = {"function": name, "x": x, "d": d, "t0": t0}
        case = _robust_torch_search({**case, "tolerance_change": 1e-9, "max_ls": 25}, noise_rng)
        if case is None:
            raise RuntimeError(f"directed slice {x} is sensitive to rounding")
        cases.append(case)
    return cases


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
    if not args.names and not args.sensitivity:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"format": FORMAT_VERSION, "generator": "tools/golden_lbfgs.py"}
        record.update(torch_version=torch.__version__, cases=line_search_cases())
        # One case per line: 1,000 cases.
        cases = ",\n".join(json.dumps(case) for case in record.pop("cases"))
        text = json.dumps(record, indent=1)[:-2] + ',\n "cases": [\n' + cases + "\n ]\n}\n"
        (args.out / "line_search.json").write_text(text)
        print(f"lbfgs/line_search.json: {text.count(chr(10) + '{')} cases")
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
