"""Step time and state bytes of ``jopt.muon`` against ``torch.optim.Muon`` (issue 15).

Run as ``python -m benchmarks.muon`` (``--shapes``, ``--repeats``, ``--threads``,
``--quick``, ``--json PATH``).  Shapes are the harness's (:mod:`benchmarks.shapes`),
``transformer`` by default; parameters ~ N(0, 1), gradients ~ N(0, 0.01²), float32.

Systems, all with torch's defaults at the registry's demo learning rate (0.02) for
both halves and weight decay 0.1 for both (jopt's ``adam_*`` defaults follow):

* ``jopt``: ``jopt.muon(0.02)``, Newton–Schulz in float32 (jopt's default); the step
  jitted with params and state donated, the gradient an input.
* ``jopt-bf16``: the same with ``ns_dtype=jnp.bfloat16``, torch's arithmetic.
* ``jopt#2``: a second copy of ``jopt``'s step on its own buffers, the A/A control:
  ``jopt/jopt#2`` is the resolution of every other ratio.
* ``torch``: what a torch user runs, ``torch.optim.Muon`` on the 2-d leaves (stored
  ``(out, in)``, the transposes of jopt's) and ``torch.optim.AdamW`` (``foreach``) on
  the others, both stepped; Muon has only its single-tensor path.

Every leaf with two axes goes to Muon in both (embeddings and head included, as
``jopt.muon``'s default routing and torch's 2-d rule agree).  Before timing, a small
tree is stepped 3 times by every system and the distance to ``jopt``'s result is
reported (relative to how far ``jopt`` moved), so that no ratio compares different
algorithms.

Compile time: the fastest of three fresh trace+lower and XLA compiles of ``jopt``'s
step, and of ``optax.contrib.muon``'s (its own algorithm and defaults, the same kinds
of work), alternating.

Timing follows :mod:`benchmarks.harness`: each round runs one batch of ``k`` steps of
every system, in a fresh random order, each batch after one untimed step; reported
are the median time per step and, per pair, the median of the per-round ratios with
quartiles.  State bytes: every array of jopt's state, and every tensor of torch's
two optimizers' states (their ``step`` counters included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import systems
from benchmarks.shapes import SHAPES, ShapeSet

LEARNING_RATE = 0.02
WEIGHT_DECAY = 0.1
SYSTEMS = ("jopt", "jopt-bf16", "jopt#2", "torch")


# --- the systems ---------------------------------------------------------------------


def jopt_optimizer(ns_dtype=None):
    import jopt

    return jopt.muon(LEARNING_RATE, weight_decay=WEIGHT_DECAY, ns_dtype=ns_dtype)


def torch_optimizers(params: list, device: str = "cpu") -> list:
    """``Muon`` on the 2-d tensors, ``AdamW`` on the others (the companion of torch's
    own Muon example), with ``jopt.muon``'s hyperparameters."""
    import torch

    matrices = [p for p in params if p.ndim == 2]
    others = [p for p in params if p.ndim != 2]
    optimizers = [torch.optim.Muon(matrices, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)]
    if others:
        optimizers.append(
            torch.optim.AdamW(others, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, foreach=True)
        )
    return optimizers


def _torch_layout(array: np.ndarray) -> np.ndarray:
    """jopt's (in, out) matrix as torch stores it, (out, in)."""
    return np.ascontiguousarray(array.T) if array.ndim == 2 else array


class TorchRunner:
    """``k`` steps of torch's Muon + AdamW on their own copies of the arrays."""

    def __init__(self, params: dict, grads: dict, device: str = "cpu") -> None:
        import torch

        self.device = device
        self.params = []
        for path, value in params.items():
            param = torch.nn.Parameter(torch.tensor(_torch_layout(value), device=device))
            param.grad = torch.tensor(_torch_layout(grads[path]), device=device)
            self.params.append(param)
        self.optimizers = torch_optimizers(self.params, device)

    def __call__(self, k: int) -> None:
        import torch

        with torch.no_grad():
            for _ in range(k):
                for optimizer in self.optimizers:
                    optimizer.step()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def state_bytes(self) -> int:
        return sum(
            value.numel() * value.element_size()
            for optimizer in self.optimizers
            for entry in optimizer.state.values()
            for value in entry.values()
            if hasattr(value, "numel")
        )


def make_runner(system: str, shapes: ShapeSet, params: dict, grads: dict):
    if system == "torch":
        return TorchRunner(params, grads)
    import jax.numpy as jnp

    ns_dtype = jnp.bfloat16 if system == "jopt-bf16" else None
    optimizer = jopt_optimizer(ns_dtype)
    return systems.JaxRunner(systems.donated_step(optimizer), optimizer.init, shapes, params, grads)


# --- agreement, timing -----------------------------------------------------------------


def agreement(steps: int = 3) -> dict[str, float]:
    """``max |θ_system − θ_jopt| / max |θ_jopt − θ₀|`` after ``steps`` equal steps."""
    shapes = ShapeSet("agreement", "", {"w": (33, 17), "v": (16, 16), "b": (17,), "e": (40, 8)})
    params, _ = systems.host_arrays(shapes)
    grads = [systems.host_arrays(shapes, seed=1 + t)[1] for t in range(steps)]
    finals = {}
    for system in ("jopt", "jopt-bf16", "torch"):
        runner = make_runner(system, shapes, params, grads[0])
        for g in grads:
            if system == "torch":
                import torch

                for p, value in zip(runner.params, g.values(), strict=True):
                    p.grad = torch.tensor(_torch_layout(value))
            else:
                runner.grads = systems.to_jax(shapes, g)
            runner(1)
        if system == "torch":
            finals[system] = {
                k: _torch_layout(p.detach().numpy())
                for k, p in zip(params, runner.params, strict=True)
            }
        else:
            finals[system] = {k: np.asarray(v) for k, v in _flat(runner.params).items()}
    moved = max(float(np.max(np.abs(finals["jopt"][k] - params[k]))) for k in params)
    return {
        system: max(float(np.max(np.abs(finals[system][k] - finals["jopt"][k]))) for k in params)
        / moved
        for system in finals
    }


def compile_times(shapes: ShapeSet, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Fastest trace+lower and XLA compile of a fresh jitted step: ``jopt.muon`` and
    ``optax.contrib.muon`` (a different algorithm, the same work: momentum, Newton–
    Schulz on the 2-d leaves, AdamW on the rest), alternating."""
    import jax
    import optax

    import jopt

    params = systems.abstract_params(shapes)
    makers = {
        "jopt": lambda: (jopt_optimizer(), jopt.apply_updates),
        "optax": lambda: (optax.contrib.muon(LEARNING_RATE), optax.apply_updates),
    }
    times = {name: {"lower_s": [], "compile_s": []} for name in makers}
    for rep in range(repeats):
        for name in makers if rep % 2 == 0 else reversed(list(makers)):
            optimizer, apply_updates = makers[name]()

            def step(params, state, grads, optimizer=optimizer, apply_updates=apply_updates):
                updates, state = optimizer.update(grads, state, params)
                return apply_updates(params, updates), state

            state = jax.eval_shape(optimizer.init, params)
            t0 = time.perf_counter()
            lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params)
            t1 = time.perf_counter()
            lowered.compile()
            times[name]["lower_s"].append(t1 - t0)
            times[name]["compile_s"].append(time.perf_counter() - t1)
    return {name: {k: min(v) for k, v in t.items()} for name, t in times.items()}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        out.update(_flat(value, path) if isinstance(value, dict) else {path: value})
    return out


def _quantiles(values) -> dict[str, float]:
    array = np.asarray(values, float)
    return {
        "median": float(np.median(array)),
        "q25": float(np.quantile(array, 0.25)),
        "q75": float(np.quantile(array, 0.75)),
    }


def time_row(shape_name: str, repeats: int, quick: bool, batch_seconds: float) -> dict:
    """Interleaved rounds of every system on one shape set."""
    shapes = SHAPES[shape_name](quick)
    params, grads = systems.host_arrays(shapes)
    compile_s = {}
    runners = {}
    for system in SYSTEMS:
        t0 = time.perf_counter()
        runners[system] = make_runner(system, shapes, params, grads)
        runners[system](1)  # compiles (JAX), allocates the state (torch)
        compile_s[system] = time.perf_counter() - t0
    batch = {name: systems.calibrate(run, batch_seconds) for name, run in runners.items()}
    times = {name: [] for name in runners}
    shuffle = np.random.default_rng(0)
    for _ in range(repeats):
        for name in shuffle.permutation(list(runners)):
            runners[name](1)
            t0 = time.perf_counter()
            runners[name](batch[name])
            times[name].append((time.perf_counter() - t0) / batch[name])
    ratios = {
        f"jopt/{other}": _quantiles(np.asarray(times["jopt"]) / np.asarray(times[other]))
        for other in SYSTEMS[1:]
    }
    ratios["jopt-bf16/torch"] = _quantiles(
        np.asarray(times["jopt-bf16"]) / np.asarray(times["torch"])
    )
    return {
        "shape": shape_name,
        "description": shapes.description,
        "n_params": shapes.n_params,
        "n_leaves": shapes.n_leaves,
        "n_matrices": sum(len(s) == 2 for s in shapes.leaves.values()),
        "batch": batch,
        "first_step_s": compile_s,
        "step_s": {name: _quantiles(t) for name, t in times.items()},
        "ratios": ratios,
        "state_bytes": {name: run.state_bytes() for name, run in runners.items()},
        "compile": compile_times(shapes),
    }


# --- report ----------------------------------------------------------------------------


def render(results: dict) -> str:
    lines = [
        f"# jopt.muon vs torch.optim.Muon + AdamW ({results['machine']})",
        "",
        "agreement after 3 steps (max |Δθ| / max |θ_jopt − θ₀|): "
        + ", ".join(f"{k} {v:.1e}" for k, v in results["agreement"].items()),
        "",
    ]
    for row in results["rows"]:
        lines += [
            f"## {row['shape']}: {row['description']}, {row['n_params']:,} params, "
            f"{row['n_leaves']} leaves ({row['n_matrices']} matrices)",
            "",
            "| system | step (median) | first step | state bytes |",
            "|---|---|---|---|",
        ]
        for name in SYSTEMS:
            step = row["step_s"][name]["median"]
            lines.append(
                f"| {name} | {step * 1e3:.1f} ms | {row['first_step_s'][name]:.2f} s | "
                f"{row['state_bytes'][name]:,} |"
            )
        lines += ["", "| ratio | median | quartiles |", "|---|---|---|"]
        for pair, q in row["ratios"].items():
            lines.append(f"| {pair} | {q['median']:.3f} | {q['q25']:.3f} – {q['q75']:.3f} |")
        lines += ["", "| compile (fastest of 3) | trace+lower | XLA compile |", "|---|---|---|"]
        for name, t in row["compile"].items():
            lines.append(f"| {name} | {t['lower_s']:.2f} s | {t['compile_s']:.2f} s |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.muon", description=__doc__)
    parser.add_argument("--shapes", default="transformer", help="comma-separated shape sets")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=None, help="pin to this many CPUs")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a smoke run")
    parser.add_argument("--batch-seconds", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape sets {unknown}; from {', '.join(SHAPES)}")
    if args.threads is not None:  # before JAX starts: XLA sizes its pool from the mask
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
    threads = len(os.sched_getaffinity(0))
    import torch

    torch.set_num_threads(threads)
    repeats = args.repeats or (3 if args.quick else 9)
    batch_seconds = args.batch_seconds or (0.002 if args.quick else 0.2)
    from benchmarks.machine import load, machine_info

    info = machine_info(threads, "cpu")
    results = {
        "machine": f"{info['cpu']}, {threads} threads, jax {info['jax']}, torch {info['torch']}",
        "load_before": load(),
        "agreement": agreement(),
        "rows": [time_row(s, repeats, args.quick, batch_seconds) for s in shapes],
        "load_after": load(),
        "repeats": repeats,
    }
    print(render(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
