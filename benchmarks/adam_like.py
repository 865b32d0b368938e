"""AdaBelief, ADOPT and AdEMAMix: jopt against optax and the reference implementations.

``python -m benchmarks.adam_like`` (from the repository root) times one step of each
optimizer on the ``transformer`` tree (148 leaves, 24.6 M float32 parameters) in
every system that implements it, with the same hyperparameters (the defaults,
η = 1e-3, no weight decay, no AdEMAMix warmup):

* ``jopt`` and ``jopt#2`` (the A/A control, a second copy of jopt's step);
* ``optax``: ``optax.adabelief`` (with ``eps_root = eps``, the paper's form),
  ``optax.contrib.adopt``, ``optax.contrib.ademamix``;
* ``authors``: the authors' torch code, ``adabelief_pytorch.AdaBelief(rectify=False)``,
  ``adopt.ADOPT`` (torch-adopt, its ``foreach`` path), and AdEMAMix's
  ``pytorch/ademamix.py`` loaded from ``ADEMAMIX_SOURCE`` (skipped if unset);
* ``pytorch-optimizer``: its ``AdaBelief``, ``ADOPT`` and
  ``AdEMAMix(weight_decouple=True)``, ``foreach=True``.

It reuses the harness's timing (:func:`benchmarks.harness._time_rounds`: interleaved
rounds in a fresh random order, fresh buffers ``--instances`` times, per-round
ratios) and reports per row the median step time, the median per-round ratio of
jopt to every other system with its quartiles, the A/A ratio, the optimizer state's
bytes in every system (JAX: every state leaf; torch: every tensor in
``optimizer.state``), and how far each system's parameters end from jopt's after
three equal steps on a small tree (so that a row never compares different
algorithms).  Results go to ``benchmarks/results/adam_like_<platform>.json`` and
``.md``.  torch runs with subnormals flushed to zero, as XLA:CPU does.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks import systems
from benchmarks.harness import _pin_threads, _quantiles, _time_rounds
from benchmarks.machine import load as _load
from benchmarks.machine import machine_info
from benchmarks.shapes import SHAPES

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = ("adabelief", "adopt", "ademamix")
LEARNING_RATE = 1e-3
AA = "jopt#2"


# --- the systems ---------------------------------------------------------------------


def jax_factory(system: str, optimizer: str):
    """The JAX transformation of ``system`` for ``optimizer``, at the shared settings."""
    import optax
    import optax.contrib

    import jopt

    if system == "jopt":
        return jopt.optimizers.ALL[optimizer](LEARNING_RATE)
    return {
        "adabelief": lambda: optax.adabelief(LEARNING_RATE, eps=1e-16, eps_root=1e-16),
        "adopt": lambda: optax.contrib.adopt(LEARNING_RATE),
        "ademamix": lambda: optax.contrib.ademamix(LEARNING_RATE, alpha=5.0),
    }[optimizer]()


def _ademamix_class():
    source = os.environ.get("ADEMAMIX_SOURCE")
    if not source:
        return None
    spec = importlib.util.spec_from_file_location("ademamix_reference", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.AdEMAMix


def torch_factory(system: str, optimizer: str):
    """``params -> torch optimizer`` for ``system``, or a string saying why there is none."""
    if not systems.torch_available():
        return "torch is not installed"
    if system == "pytorch-optimizer":
        import pytorch_optimizer as po

        cls = {"adabelief": po.AdaBelief, "adopt": po.ADOPT, "ademamix": po.AdEMAMix}[optimizer]
        extra = {"weight_decouple": True} if optimizer == "ademamix" else {}
        return lambda params: cls(params, lr=LEARNING_RATE, foreach=True, **extra)
    if optimizer == "adabelief":
        from adabelief_pytorch import AdaBelief

        return lambda params: AdaBelief(
            params, lr=LEARNING_RATE, rectify=False, print_change_log=False
        )
    if optimizer == "adopt":
        from adopt import ADOPT

        return lambda params: ADOPT(params, lr=LEARNING_RATE, foreach=True)
    cls = _ademamix_class()
    if cls is None:
        return "set ADEMAMIX_SOURCE to apple/ml-ademamix's pytorch/ademamix.py"
    return lambda params: cls(params, lr=LEARNING_RATE, alpha=5.0)


TORCH_SYSTEMS = ("authors", "pytorch-optimizer")


def compile_jax(system: str, optimizer: str, shapes) -> systems.Compiled:
    """A donated, jitted step of ``system``, traced+lowered and compiled apart."""
    import jax

    opt = jax_factory(system, optimizer)

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return jax.tree.map(lambda p, u: p + u, params, updates), state

    params = systems.abstract_params(shapes)
    state = jax.eval_shape(opt.init, params)
    t0 = time.perf_counter()
    lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params)
    t1 = time.perf_counter()
    executable = lowered.compile()
    return systems.Compiled(executable, opt, t1 - t0, time.perf_counter() - t1)


def jax_state_bytes(opt, shapes) -> int:
    import jax

    state = jax.eval_shape(opt.init, systems.abstract_params(shapes))
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))


# --- agreement -------------------------------------------------------------------------


def agreement(optimizer: str, present: list[str], steps: int = 3) -> dict[str, float]:
    """``max |θ_system − θ_jopt| / max |θ_jopt − θ₀|`` after ``steps`` equal float32 steps."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    shapes = {"w": (33, 17), "b": (17,)}
    start = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    grads = [
        {k: (1e-2 * rng.normal(size=s)).astype(np.float32) for k, s in shapes.items()}
        for _ in range(steps)
    ]
    finals = {}
    for system in present:
        if system in ("jopt", "optax"):
            opt = jax_factory(system, optimizer)
            params = {k: jnp.asarray(v) for k, v in start.items()}
            state = opt.init(params)
            for g in grads:
                updates, state = opt.update(
                    {k: jnp.asarray(v) for k, v in g.items()}, state, params
                )
                params = {k: params[k] + updates[k] for k in params}
            finals[system] = {k: np.asarray(v) for k, v in params.items()}
        else:
            import torch

            runner = systems.TorchRunner(torch_factory(system, optimizer), start, grads[0])
            for g in grads:
                for param, key in zip(runner.params, start, strict=True):
                    param.grad.copy_(torch.from_numpy(g[key]))
                runner(1)
            params = dict(zip(start, runner.params, strict=True))
            finals[system] = {k: p.detach().numpy() for k, p in params.items()}
    moved = max(float(np.max(np.abs(finals["jopt"][k] - start[k]))) for k in shapes)
    return {
        s: max(float(np.max(np.abs(finals[s][k] - finals["jopt"][k]))) for k in shapes) / moved
        for s in present
    }


# --- one row ---------------------------------------------------------------------------


def _present(optimizer: str) -> tuple[list[str], dict[str, str]]:
    """The torch systems that run ``optimizer`` here, and why the others do not."""
    present, skipped = [], {}
    for system in TORCH_SYSTEMS:
        make = torch_factory(system, optimizer)
        if isinstance(make, str):
            skipped[system] = make
        else:
            present.append(system)
    return present, skipped


def run_row(shape_name: str, optimizer: str, args) -> dict:
    """Compile, time and count the state of one optimizer in every system."""
    shapes = SHAPES[shape_name](args.quick)
    torch_systems, skipped = _present(optimizer)
    compiled = {s: compile_jax(s, optimizer, shapes) for s in ("jopt", "optax")}
    params, grads = systems.host_arrays(shapes)
    torch_runners = {}

    def make_runner(name: str):
        if name in torch_systems:
            torch_runners[name] = systems.TorchRunner(torch_factory(name, optimizer), params, grads)
            return torch_runners[name]
        return systems.JaxRunner.of(compiled[name.split("#")[0]], shapes, params, grads)

    names = ["jopt", AA, "optax", *torch_systems]
    times, batch, _, instances = _time_rounds(make_runner, names, {}, args)
    state_bytes = {s: jax_state_bytes(compiled[s].optimizer, shapes) for s in ("jopt", "optax")}
    state_bytes.update({s: r.state_bytes() for s, r in torch_runners.items()})
    ratios = {
        f"jopt/{other}": _quantiles(list(np.asarray(times["jopt"]) / np.asarray(times[other])))
        for other in names[1:]
    }
    return {
        "shape": shape_name,
        "optimizer": optimizer,
        "n_params": shapes.n_params,
        "n_leaves": shapes.n_leaves,
        "step_s": {s: _quantiles(times[s]) for s in names},
        "batch": batch,
        "instances": instances,
        "ratios": ratios,
        "compile_s": {s: c.lower_s + c.compile_s for s, c in compiled.items()},
        "state_bytes": state_bytes,
        "agreement": agreement(optimizer, ["jopt", "optax", *torch_systems]),
        "skipped": skipped,
    }


# --- report ----------------------------------------------------------------------------

COLUMNS = ("jopt", "optax", "authors", "pytorch-optimizer")


def _ratio(entry) -> str:
    if entry is None:
        return "—"
    return f"{entry['median']:.2f} ({entry['q25']:.2f}–{entry['q75']:.2f})"


def render(results: dict) -> str:
    """The rows as markdown: step times, ratios, A/A, state bytes, agreement."""
    lines = [
        f"### AdaBelief, ADOPT, AdEMAMix: {results['date']}, {results['machine']['platform']}",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cpus_available']} CPUs "
        f"used; jax {results['machine']['jax']}, optax {results['machine']['optax']}, torch "
        f"{results['machine']['torch']}; load average {results['load']['before']} before, "
        f"{results['load']['after']} after. {results['config']['repeats']} interleaved rounds "
        "per row; ratios are medians of per-round time ratios (quartiles in brackets), "
        "below 1 means jopt is faster; A/A is jopt against a second copy of itself.",
        "",
        "| shape | optimizer | "
        + " | ".join(f"{c} ms" for c in COLUMNS)
        + " | "
        + " | ".join(f"jopt/{c}" for c in COLUMNS[1:])
        + " | A/A | "
        + " | ".join(f"{c} state MB" for c in COLUMNS)
        + " |",
        "|---|---|" + "---:|" * (3 * len(COLUMNS)),
    ]
    for row in results["rows"]:
        ms = [
            f"{row['step_s'][c]['median'] * 1e3:.1f}" if c in row["step_s"] else "—"
            for c in COLUMNS
        ]
        ratios = [_ratio(row["ratios"].get(f"jopt/{c}")) for c in COLUMNS[1:]]
        mb = [
            f"{row['state_bytes'][c] / 1e6:.1f}" if c in row["state_bytes"] else "—"
            for c in COLUMNS
        ]
        cells = [row["shape"], row["optimizer"], *ms, *ratios, _ratio(row["ratios"][f"jopt/{AA}"])]
        lines.append("| " + " | ".join([*cells, *mb]) + " |")
    lines += [
        "",
        "Compile time (trace + lower + XLA compile of a fresh step, seconds): "
        + "; ".join(
            f"{row['optimizer']} jopt {row['compile_s']['jopt']:.2f}, "
            f"optax {row['compile_s']['optax']:.2f}"
            for row in results["rows"]
        )
        + ".",
        "",
        "Agreement after 3 equal float32 steps, max |θ − θ_jopt| / max |θ_jopt − θ₀|:",
        "",
    ]
    for row in results["rows"]:
        shown = ", ".join(f"{s} {v:.1e}" for s, v in row["agreement"].items() if s != "jopt")
        skipped = "; ".join(f"{s}: {why}" for s, why in row["skipped"].items())
        lines.append(
            f"* {row['optimizer']}: {shown}" + (f" (skipped {skipped})" if skipped else "")
        )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(SHAPES), default="transformer")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per row")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--batch-seconds", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny shape, 3 rounds")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    args.optimizers = [o for o in args.optimizers.split(",") if o]
    unknown = sorted(set(args.optimizers) - set(OPTIMIZERS))
    if unknown:
        parser.error(f"unknown optimizers {unknown}; choose from {OPTIMIZERS}")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 15
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = _pin_threads(args.threads)
    import jax

    platform = jax.devices()[0].platform
    if systems.torch_available():
        import torch

        torch.set_num_threads(threads)
        # XLA:CPU flushes subnormal floats to zero; torch computes with them, at a
        # fraction of the speed.  Under the constant gradient of a benchmark AdaBelief's
        # (g − m)² decays into subnormals within a few hundred steps: flush them in torch
        # too, so that both sides do the same arithmetic.
        torch.set_flush_denormal(True)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(threads, "cpu" if systems.torch_available() else None),
        "config": {**vars(args), "out": None, "learning_rate": LEARNING_RATE},
        "rows": [],
        "load": {"before": _load()},
    }
    for optimizer in args.optimizers:
        results["rows"].append(run_row(args.shape, optimizer, SimpleNamespace(**vars(args))))
        print(f"# {optimizer} done", file=sys.stderr, flush=True)
    results["load"]["after"] = _load()
    markdown = render(results)
    print(markdown)
    if not args.no_save and not (args.quick and args.out is None):
        out = args.out or ROOT / "benchmarks" / "results"
        out.mkdir(parents=True, exist_ok=True)
        stem = f"adam_like_{platform}{'-quick' if args.quick else ''}"
        (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / f"{stem}.md").write_text(markdown)
        print(f"saved {out / stem}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
