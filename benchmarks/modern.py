"""Lion, LAMB, LARS and the cautious and Lookahead wrappers against their references.

``python -m benchmarks.modern`` (from the repository root) times one step of each row
on the ``transformer`` tree (:mod:`benchmarks.shapes`, 148 leaves, 24.6 M float32
parameters) in jopt, in optax where optax runs the same algorithm, and in the torch
reference implementation (lion-pytorch 0.2.5, pytorch-optimizer 4.1.0, torch 2.13,
each in its default multi-tensor form), and counts each system's optimizer state in
bytes.  It saves ``benchmarks/results/modern_<platform>.json`` and ``.md``.

Timing follows :mod:`benchmarks.harness`: jitted steps with parameters and state
donated, batches of ``k`` steps calibrated to ``--batch-seconds``, one batch of every
system per round in a fresh random order, ``--repeats`` rounds with new buffers
``--instances`` times; reported are the median step time and, per pair, the median of
the per-round ratios with quartiles, next to ``jopt/jopt#2``, the A/A control (two
copies of jopt's step), which is the resolution of every ratio.  Before timing, a small
tree is stepped three times by every system and the distance of its parameters from
jopt's is reported (relative to how far jopt moved): ~1e-7 is float32 rounding, a
number near 1 another algorithm (pytorch-optimizer's LAMB and LARS are: see
``docs/porting.md``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import systems
from benchmarks.machine import machine_info
from benchmarks.shapes import SHAPES

LR = 1e-3
AA = "jopt#2"


def _jax_rows() -> dict[str, dict[str, Callable]]:
    """row -> system -> factory of the GradientTransformation (jopt first)."""
    import optax

    import jopt

    return {
        "lion": {
            "jopt": lambda: jopt.lion(LR),
            "optax": lambda: optax.lion(LR, weight_decay=0.0),
        },
        "lamb": {"jopt": lambda: jopt.lamb(LR), "optax": lambda: optax.lamb(LR)},
        "lars": {"jopt": lambda: jopt.lars(LR), "optax": lambda: optax.lars(LR)},
        "cautious(lion)": {"jopt": lambda: jopt.cautious(jopt.lion(LR))},
        "lookahead(adam)": {"jopt": lambda: jopt.lookahead(jopt.adam(LR))},
    }


def _torch_reference(row: str, params: list):
    """The reference implementation of ``row`` on ``params`` (torch tensors)."""
    import lion_pytorch
    import pytorch_optimizer
    import torch
    from lion_pytorch.cautious_lion import Lion as CautiousLion

    make = {
        "lion": lambda: lion_pytorch.Lion(params, lr=LR),
        "lamb": lambda: pytorch_optimizer.Lamb(params, lr=LR),
        "lars": lambda: pytorch_optimizer.LARS(params, lr=LR),
        "cautious(lion)": lambda: CautiousLion(params, lr=LR, cautious_factor=0.0),
        "lookahead(adam)": lambda: pytorch_optimizer.Lookahead(torch.optim.Adam(params, lr=LR)),
    }
    return make[row]()


REFERENCE_NAMES = {
    "lion": "lion_pytorch.Lion",
    "lamb": "pytorch_optimizer.Lamb",
    "lars": "pytorch_optimizer.LARS",
    "cautious(lion)": "lion_pytorch.cautious_lion.Lion(cautious_factor=0)",
    "lookahead(adam)": "pytorch_optimizer.Lookahead(torch.optim.Adam)",
}


class _Torch:
    def __init__(self, row, params, grads):
        import torch

        self.params = []
        for path, value in params.items():
            p = torch.nn.Parameter(torch.tensor(value))
            p.grad = torch.tensor(grads[path])
            self.params.append(p)
        self.optimizer = _torch_reference(row, self.params)

    def __call__(self, k: int) -> None:
        import torch

        with torch.no_grad():
            for _ in range(k):
                self.optimizer.step()


def _jax_state_bytes(transformation, shapes) -> int:
    import jax

    state = jax.eval_shape(transformation.init, systems.abstract_params(shapes))
    return int(sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state)))


def _torch_state_bytes(runner: _Torch) -> int:
    """Every tensor the optimizer (and a wrapped one) keeps per parameter, after a step."""
    runner(1)
    optimizers = [runner.optimizer, getattr(runner.optimizer, "optimizer", None)]
    total = 0
    for optimizer in filter(None, optimizers):
        for entries in optimizer.state.values():
            total += sum(v.nbytes for v in entries.values() if hasattr(v, "nbytes"))
    return total


def agreement(row: str, factories: dict, steps: int = 3) -> dict[str, float]:
    """``max |θ_system − θ_jopt| / max |θ_jopt − θ₀|`` after ``steps`` equal steps."""
    import jax
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(0)
    shapes = {"w": (33, 17), "b": (17,)}
    start = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    grads = [
        {k: (0.01 * rng.normal(size=s)).astype(np.float32) for k, s in shapes.items()}
        for _ in range(steps)
    ]
    finals = {}
    for system, make in factories.items():
        tx, params = make(), {k: jnp.asarray(v) for k, v in start.items()}
        state, update = tx.init(params), jax.jit(tx.update)
        for g in grads:
            updates, state = update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
            params = {k: params[k] + updates[k] for k in params}
        finals[system] = {k: np.asarray(v) for k, v in params.items()}
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in start.items()}
    optimizer = _torch_reference(row, list(tensors.values()))
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.from_numpy(g[k].copy())
        optimizer.step()
    finals["reference"] = {k: t.detach().numpy() for k, t in tensors.items()}
    jopt_final = finals["jopt"]
    moved = max(float(np.max(np.abs(jopt_final[k] - start[k]))) for k in shapes)
    return {
        s: max(float(np.max(np.abs(f[k] - jopt_final[k]))) for k in shapes) / moved
        for s, f in finals.items()
    }


def _quartiles(values) -> dict[str, float]:
    q = np.quantile(np.asarray(values, float), [0.25, 0.5, 0.75])
    return {"q1": float(q[0]), "median": float(q[1]), "q3": float(q[2])}


def _time(runners: dict[str, Callable], args) -> dict[str, list[float]]:
    """Seconds per step of every runner, one batch each per round, in random orders."""
    names = list(runners)
    batch = {}
    for name in names:
        runners[name](1)
        batch[name] = systems.calibrate(runners[name], args.batch_seconds)
    times = {name: [] for name in names}
    order_rng = np.random.default_rng(0)
    for rnd in range(args.repeats):
        if (
            rnd
            and rnd * args.instances // args.repeats != (rnd - 1) * args.instances // args.repeats
        ):
            for name in names:  # fresh buffers: where they land moves a step's time
                runners[name] = runners[name].renew()
                runners[name](1)
        for name in order_rng.permutation(names):
            runners[name](1)
            t0 = time.perf_counter()
            runners[name](batch[name])
            times[name].append((time.perf_counter() - t0) / batch[name])
    return times


class _Renewable:
    def __init__(self, make):
        self.make, self.run = make, make()

    def renew(self):
        self.run = None
        gc.collect()
        self.run = self.make()
        return self

    def __call__(self, k):
        self.run(k)


def run_row(row: str, factories: dict, shapes, args) -> dict:
    params, grads = systems.host_arrays(shapes)
    built = {s: (f(), None) for s, f in factories.items()}
    built = {s: (tx, systems.donated_step(tx)) for s, (tx, _) in built.items()}
    makers = {
        s: (lambda tx=tx, step=step: systems.JaxRunner(step, tx.init, shapes, params, grads))
        for s, (tx, step) in built.items()
    }
    makers[AA] = makers["jopt"]  # the same executable on its own buffers
    makers["reference"] = lambda: _Torch(row, params, grads)
    result = {
        "row": row,
        "reference": REFERENCE_NAMES[row],
        "agreement": agreement(row, factories),
        "state_bytes": {s: _jax_state_bytes(f(), shapes) for s, f in factories.items()},
    }
    result["state_bytes"]["reference"] = _torch_state_bytes(_Torch(row, params, grads))
    runners = {name: _Renewable(make) for name, make in makers.items()}
    times = _time(runners, args)
    result["step_s"] = {name: _quartiles(t) for name, t in times.items()}
    result["ratios"] = {
        f"jopt/{other}": _quartiles(np.asarray(times["jopt"]) / np.asarray(times[other]))
        for other in times
        if other != "jopt"
    }
    return result


def render(results: dict) -> str:
    lines = [
        "# Lion, LAMB, LARS, cautious and Lookahead: step time and state",
        "",
        f"{results['date']}; {results['machine'].get('cpu', '')}; shape `transformer` "
        f"({results['n_params']:,} parameters, {results['n_leaves']} leaves); "
        f"{results['repeats']} interleaved rounds, {results['instances']} buffer sets; "
        f"η = {LR:g}, defaults otherwise.  Ratios: median of per-round ratios [quartiles].",
        "",
        "| row | reference | jopt ms | optax ms | reference ms | jopt/optax | "
        "jopt/reference | jopt/jopt#2 (A/A) | state MB jopt / optax / reference | "
        "agreement optax, reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(r, s):
        return f"{1e3 * r['step_s'][s]['median']:.1f}" if s in r["step_s"] else "–"

    def ratio(r, key):
        q = r["ratios"].get(key)
        return f"{q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}]" if q else "–"

    def mb(r, s):
        return f"{r['state_bytes'][s] / 1e6:.1f}" if s in r["state_bytes"] else "–"

    def agree(r, s):
        return f"{r['agreement'][s]:.0e}" if s in r["agreement"] else "–"

    for r in results["rows"]:
        lines.append(
            f"| `{r['row']}` | `{r['reference']}` | {ms(r, 'jopt')} | {ms(r, 'optax')} | "
            f"{ms(r, 'reference')} | {ratio(r, 'jopt/optax')} | {ratio(r, 'jopt/reference')} | "
            f"{ratio(r, 'jopt/' + AA)} | {mb(r, 'jopt')} / {mb(r, 'optax')} / "
            f"{mb(r, 'reference')} | {agree(r, 'optax')}, {agree(r, 'reference')} |"
        )
    lines += [
        "",
        "Agreement: parameters after 3 equal float32 steps on a small tree, distance from "
        "jopt's over jopt's move; ~1e-7 is rounding, near 1 another algorithm "
        "(pytorch-optimizer's LAMB has no bias correction and decays θ first; its LARS "
        "leaves vectors to plain momentum; see docs/porting.md).  State bytes: jopt and "
        "optax from the state's shapes, torch from the tensors in `optimizer.state` "
        "(a wrapper's and its inner optimizer's) after one step.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="all", help="comma-separated rows (default: all)")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--batch-seconds", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)

    import jax
    import torch

    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    rows = _jax_rows()
    chosen = list(rows) if args.rows == "all" else args.rows.split(",")
    shapes = SHAPES["transformer"](False)
    platform = jax.devices()[0].platform
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(len(__import__("os").sched_getaffinity(0)), "cpu"),
        "n_params": shapes.n_params,
        "n_leaves": shapes.n_leaves,
        "repeats": args.repeats,
        "instances": args.instances,
        "rows": [],
    }
    for row in chosen:
        results["rows"].append(run_row(row, rows[row], shapes, args))
        print(f"{row}: done", flush=True)
    text = render(results)
    print(text)
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"modern_{platform}.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / f"modern_{platform}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
