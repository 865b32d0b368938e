"""Step time and state bytes of NAdam, RAdam, ASGD, Rprop and Adafactor against torch.

``python -m benchmarks.torch_optim`` (from the repository root, torch installed)
times one optimizer step of jopt (``jit``, parameters and state donated) and of
torch.optim in its ``foreach`` form (none of the five has a fused kernel) on the
``transformer`` tree, with each optimizer's defaults and its demo learning rate (the
torch defaults), and counts the bytes of each one's optimizer state.  Adafactor's
state is set beside Adam's, in both libraries: the row issue 15 asks for.

The timing is the harness's (:mod:`benchmarks.harness`): batches of steps timed in
interleaved rounds in a fresh random order, fresh buffers several times per row, the
median per-round ratio with its quartiles, and the A/A control ``jopt#2`` (a second
copy of jopt's step) whose ratio to jopt is the resolution of the others.  Before a
row is timed, both libraries take three equal steps on a small tree and their
parameters are compared, so a row never times two different algorithms.

Results go to ``benchmarks/results/torch_optim_<platform>.json`` and ``.md``
(``--out`` elsewhere, ``--no-save`` to print only; ``--threads N`` pins both libraries
to N CPUs and adds ``_threadsN`` to the name).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness, systems
from benchmarks.machine import load, machine_info
from benchmarks.report import AA
from benchmarks.shapes import SHAPES

OPTIMIZERS = ("nadam", "radam", "asgd", "rprop", "adafactor")
# jopt name -> torch.optim class; both run their defaults at jopt's demo learning rate.
TORCH_CLASSES = {
    "nadam": "NAdam",
    "radam": "RAdam",
    "asgd": "ASGD",
    "rprop": "Rprop",
    "adafactor": "Adafactor",
    "adam": "Adam",
}
TORCH = "torch-foreach"
ROOT = Path(__file__).resolve().parent.parent


def torch_optimizer(name: str, params: list):
    """torch.optim's ``foreach`` optimizer for jopt's ``name``, at its demo rate."""
    import torch

    import jopt

    cls = getattr(torch.optim, TORCH_CLASSES[name])
    return cls(params, lr=jopt.optimizers.DEMO_LEARNING_RATES[name], foreach=True)


def jopt_state_bytes(name: str, shapes) -> int:
    """Bytes of ``init``'s state (counts included), from its shapes alone."""
    import jax

    optimizer, _ = systems.jax_optimizer("jopt", name)
    state = jax.eval_shape(optimizer.init, systems.abstract_params(shapes))
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))


def agreement(name: str, steps: int = 3) -> float:
    """``max |θ_torch − θ_jopt| / max |θ_jopt − θ₀|`` after ``steps`` equal steps on a
    small float32 tree: another algorithm gives ~1, rounding 1e-7 to 1e-4 (a few
    float32 units of θ ~ 1 against steps of 1e-3: torch's NAdam rounds θ twice a
    step)."""
    import jax.numpy as jnp
    import torch

    import jopt

    rng = np.random.default_rng(0)
    shapes = {"w": (33, 17), "b": (17,)}
    start = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    grads = [
        {
            k: (systems.GRADIENT_SCALE * rng.normal(size=s)).astype(np.float32)
            for k, s in shapes.items()
        }
        for _ in range(steps)
    ]
    optimizer, _ = systems.jax_optimizer("jopt", name)
    params = {k: jnp.asarray(v) for k, v in start.items()}
    state = optimizer.init(params)
    for g in grads:
        updates, state = optimizer.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = jopt.apply_updates(params, updates)
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in start.items()}
    theirs = torch_optimizer(name, list(tensors.values()))
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.from_numpy(g[k].copy())
        theirs.step()
    moved = max(float(np.max(np.abs(np.asarray(params[k]) - start[k]))) for k in shapes)
    apart = max(
        float(np.max(np.abs(tensors[k].detach().numpy() - np.asarray(params[k])))) for k in shapes
    )
    return apart / moved


def run_row(name: str, shapes, args) -> dict[str, Any]:
    """Time jopt, its A/A copy and torch-foreach on ``shapes``; count their state."""
    compiled = systems.compile_jax("jopt", name, shapes)
    params, grads = systems.host_arrays(shapes)

    def make_runner(system: str):
        if system == TORCH:
            return systems.TorchRunner(functools.partial(torch_optimizer, name), params, grads)
        return systems.JaxRunner.of(compiled, shapes, params, grads)

    names = ["jopt", AA, TORCH]
    times, batch, _, instances = harness._time_rounds(make_runner, names, {}, args)
    torch_runner = make_runner(TORCH)
    torch_runner(1)  # torch creates its state at the first step
    row = {
        "optimizer": name,
        "agreement": agreement(name),
        "step_s": {system: harness._quantiles(times[system]) for system in names},
        "batch": batch,
        "instances": instances,
        "state_bytes": {"jopt": jopt_state_bytes(name, shapes), TORCH: torch_runner.state_bytes()},
    }
    for other in (AA, TORCH):
        ratio = np.asarray(times["jopt"]) / np.asarray(times[other])
        row[f"jopt/{other}"] = harness._quantiles(list(ratio))
    return row


def adam_state_bytes(shapes) -> dict[str, int]:
    """Adam's state bytes in both libraries, for the Adafactor comparison."""
    params, grads = systems.host_arrays(shapes)
    runner = systems.TorchRunner(functools.partial(torch_optimizer, "adam"), params, grads)
    runner(1)
    return {"jopt": jopt_state_bytes("adam", shapes), TORCH: runner.state_bytes()}


def render(results: dict[str, Any]) -> str:
    """The rows as markdown."""
    m, c = results["machine"], results["config"]
    mb = 2.0**20
    lines = [
        f"### torch.optim's other optimizers: {results['date']}, {m['platform'].upper()}"
        + (" (tiny shapes: a smoke run)" if c["quick"] else ""),
        "",
        f"{c['shape']} tree ({c['n_params'] / 1e6:.2f} M float32 parameters, {c['n_leaves']} "
        f"leaves); {m['cpu']}, {m['cpus_available']} CPUs; jax {m['jax']}, torch {m['torch']} "
        f"({m['torch_threads']} threads); {c['repeats']} interleaved rounds, batches of "
        f"~{c['batch_seconds']} s; load {results['load']['before']} before, "
        f"{results['load']['after']} after.  Ratios: median of per-round ratios (quartiles); "
        "below 1 means jopt is faster.  Agreement: max |θ_torch − θ_jopt| / max |θ_jopt − θ₀| "
        "after 3 equal float32 steps.",
        "",
        f"| optimizer | jopt ms | {TORCH} ms | jopt/{TORCH} | A/A: jopt/{AA} | "
        f"state MiB jopt | state MiB torch | agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(q):
        return f"{q['median']:.2f} ({q['q25']:.2f}–{q['q75']:.2f})"

    for row in results["rows"]:
        step, state = row["step_s"], row["state_bytes"]
        lines.append(
            f"| {row['optimizer']} | {step['jopt']['median'] * 1e3:.3g} | "
            f"{step[TORCH]['median'] * 1e3:.3g} | {ratio(row[f'jopt/{TORCH}'])} | "
            f"{ratio(row[f'jopt/{AA}'])} | {state['jopt'] / mb:.2f} | {state[TORCH] / mb:.2f} | "
            f"{row['agreement']:.1e} |"
        )
    adam = results.get("adam_state_bytes")
    factor = next((r for r in results["rows"] if r["optimizer"] == "adafactor"), None)
    if adam and factor:
        ours, theirs = factor["state_bytes"], adam
        lines += [
            "",
            "Adafactor's state against Adam's on the same tree (bytes, counts included):",
            "",
            "| library | adafactor | adam | adafactor / adam |",
            "|---|---:|---:|---:|",
            *[
                f"| {lib} | {ours[lib]:,} | {theirs[lib]:,} | {ours[lib] / theirs[lib]:.4f} |"
                for lib in ("jopt", TORCH)
            ],
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--shape", default="transformer", choices=tuple(SHAPES))
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a smoke run")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--batch-seconds", type=float, default=0.1)
    parser.add_argument(
        "--threads", type=int, default=None, help="pin the run to this many CPUs (default: all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    args.optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    unknown = sorted(set(args.optimizers) - set(OPTIMIZERS))
    if unknown:
        parser.error(f"--optimizers: {unknown} are not among {OPTIMIZERS}")
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    if not systems.torch_available():
        sys.exit("benchmarks.torch_optim compares with torch.optim: install torch")
    threads = harness._pin_threads(args.threads)  # before JAX starts
    import jax
    import torch

    torch.set_num_threads(threads)

    shapes = SHAPES[args.shape](args.quick)
    before = load()
    rows = []
    for name in args.optimizers:
        rows.append(run_row(name, shapes, args))
        print(f"{name}: jopt/{TORCH} {rows[-1][f'jopt/{TORCH}']['median']:.2f}", file=sys.stderr)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(threads, "cpu"),
        "load": {"before": before, "after": load()},
        "config": {
            "shape": args.shape,
            "n_params": shapes.n_params,
            "n_leaves": shapes.n_leaves,
            "quick": args.quick,
            "repeats": args.repeats,
            "instances": args.instances,
            "batch_seconds": args.batch_seconds,
        },
        "rows": rows,
    }
    if "adafactor" in args.optimizers:
        results["adam_state_bytes"] = adam_state_bytes(shapes)
    text = render(results)
    print(text)
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"torch_optim_{jax.devices()[0].platform}" + ("_quick" if args.quick else "")
        stem += f"_threads{args.threads}" if args.threads else ""
        (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / f"{stem}.md").write_text(text)
    return results


if __name__ == "__main__":
    main()
