"""Schedule-free AdamW and SGD and Prodigy: step time and state bytes (issue 16).

``python -m benchmarks.tuning_free`` (from the repository root) times one step of
``jopt.schedule_free_adamw``, ``jopt.schedule_free_sgd`` and ``jopt.prodigy`` on the
``transformer`` shape of :mod:`benchmarks.shapes` (24.6 M float32 parameters, 148
leaves) against the authors' reference implementations (``schedulefree``'s
``AdamWScheduleFree`` and ``SGDScheduleFree``, ``prodigyopt``'s ``Prodigy``, on torch,
with their default ``foreach`` paths) and optax.contrib's functions of the same names.
Every system steps the same parameters and gradients with the same hyperparameters
(the packages' defaults; optax's Prodigy always corrects the bias, so jopt's is run
both ways against it).  It saves ``benchmarks/results/tuning_free_<platform>.json``
and ``.md``.

Timing is the harness's method: each system runs batches of k steps (k calibrated to
``--batch-seconds``); a round times one batch of every system in a fresh random order;
reported are the median step time and, per pair, the median of per-round ratios with
quartiles.  ``jopt#2``, a second copy of jopt's step on its own buffers, is the A/A
control: ``jopt/jopt#2`` is the resolution of every other ratio.  State bytes are
those of every array the optimizer keeps (torch: every tensor of ``optimizer.state``
after a step), per-parameter buffers and scalars alike.  (``AdamWScheduleFree``
normalizes ``.grad`` in place, so its later steps see the normalized gradient: the
arithmetic of a step is the same.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import systems
from benchmarks.machine import machine_info
from benchmarks.shapes import SHAPES

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = ("schedule_free_adamw", "schedule_free_sgd", "prodigy")


def jax_optimizers(name: str) -> dict:
    """The JAX systems of a row: ``system -> GradientTransformation``."""
    import optax

    import jopt

    if name == "schedule_free_adamw":
        return {"jopt": jopt.schedule_free_adamw(), "optax": optax.contrib.schedule_free_adamw()}
    if name == "schedule_free_sgd":
        return {"jopt": jopt.schedule_free_sgd(), "optax": optax.contrib.schedule_free_sgd()}
    return {
        "jopt": jopt.prodigy(),
        "jopt-bias-corrected": jopt.prodigy(use_bias_correction=True),
        "optax": optax.contrib.prodigy(),
    }


def torch_optimizer(name: str, params: list):
    """The reference implementation, ready to step (schedule-free in train mode)."""
    if name == "prodigy":
        import prodigyopt

        return prodigyopt.Prodigy(params)
    import schedulefree

    cls = schedulefree.AdamWScheduleFree if "adamw" in name else schedulefree.SGDScheduleFree
    optimizer = cls(params)
    optimizer.train()
    return optimizer


def _state_bytes(tree) -> int:
    import jax

    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


class JaxRunner:
    """A jitted, donated step of one transformation on its own copies of the arrays."""

    def __init__(self, optimizer, shapes, params: dict, grads: dict):
        import jax
        import jax.numpy as jnp
        import optax

        def step(params, state, grads):
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        self.params = systems.to_jax(shapes, params)
        self.grads = systems.to_jax(shapes, grads)
        # A copy: optax.contrib.prodigy's state holds the params themselves (params0),
        # and a buffer cannot be donated twice.
        self.state = jax.tree.map(jnp.copy, optimizer.init(self.params))
        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.state_bytes = _state_bytes(self.state)

    def __call__(self, k: int) -> None:
        import jax

        params, state = self.params, self.state
        for _ in range(k):
            params, state = self.step(params, state, self.grads)
        jax.block_until_ready((params, state))
        self.params, self.state = params, state


class TorchRunner:
    """``k`` calls of the reference implementation's ``step()`` with ``.grad`` set."""

    def __init__(self, name: str, params: dict, grads: dict):
        import torch

        self.params = []
        for path, value in params.items():
            param = torch.nn.Parameter(torch.tensor(value))
            param.grad = torch.tensor(grads[path])
            self.params.append(param)
        self.optimizer = torch_optimizer(name, self.params)
        self(1)
        self.state_bytes = sum(
            t.numel() * t.element_size()
            for entry in self.optimizer.state.values()
            for t in entry.values()
            if isinstance(t, torch.Tensor)
        )

    def __call__(self, k: int) -> None:
        import torch

        with torch.no_grad():
            for _ in range(k):
                self.optimizer.step()


def agreement(name: str, steps: int = 3) -> dict[str, float]:
    """How far each system ends from jopt after ``steps`` equal float32 steps on a small
    tree: ``max |θ − θ_jopt| / max |θ_jopt − θ₀|`` (rounding: ~1e-6; another algorithm:
    ~1).  optax's Prodigy, always bias-corrected, is compared with jopt's bias-corrected
    run."""
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(0)
    shapes = {"w": (33, 17), "b": (17,)}
    params0 = {k: rng.normal(size=v).astype(np.float32) for k, v in shapes.items()}
    grads = [
        {
            k: (systems.GRADIENT_SCALE * rng.normal(size=v)).astype(np.float32)
            for k, v in shapes.items()
        }
        for _ in range(steps)
    ]
    finals = {}
    for system, optimizer in jax_optimizers(name).items():
        params = {k: jnp.asarray(v) for k, v in params0.items()}
        state = optimizer.init(params)
        for g in grads:
            updates, state = optimizer.update(
                {k: jnp.asarray(v) for k, v in g.items()}, state, params
            )
            params = {k: params[k] + updates[k] for k in params}
        finals[system] = {k: np.asarray(v) for k, v in params.items()}
    tensors = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params0.items()}
    reference = torch_optimizer(name, list(tensors.values()))
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        reference.step()
    finals["reference"] = {k: t.detach().numpy() for k, t in tensors.items()}
    result = {}
    for system, final in finals.items():
        base = finals["jopt-bias-corrected" if name == "prodigy" and system == "optax" else "jopt"]
        moved = max(float(np.max(np.abs(base[k] - params0[k]))) for k in shapes)
        result[system] = max(float(np.max(np.abs(final[k] - base[k]))) for k in shapes) / moved
    return result


def _quantiles(values) -> dict[str, float]:
    array = np.asarray(values, float)
    return {
        q: float(np.quantile(array, p)) for q, p in (("q25", 0.25), ("median", 0.5), ("q75", 0.75))
    }


def run_row(name: str, args) -> dict:
    """Time every system of row ``name`` in interleaved rounds; record state bytes."""
    shapes = SHAPES["transformer"](args.quick)
    params, grads = systems.host_arrays(shapes)
    runners = {
        system: JaxRunner(optimizer, shapes, params, grads)
        for system, optimizer in jax_optimizers(name).items()
    }
    runners["jopt#2"] = JaxRunner(jax_optimizers(name)["jopt"], shapes, params, grads)
    runners["reference"] = TorchRunner(name, params, grads)
    batch = {}
    for system, run in runners.items():
        run(1)
        batch[system] = systems.calibrate(run, args.batch_seconds)
    times = {system: [] for system in runners}
    order = np.random.default_rng(0)
    for _ in range(args.repeats):
        for system in order.permutation(list(runners)):
            runners[system](1)
            t0 = time.perf_counter()
            runners[system](batch[system])
            times[system].append((time.perf_counter() - t0) / batch[system])
    others = [s for s in runners if s != "jopt"]
    return {
        "optimizer": name,
        "shape": shapes.name,
        "n_params": shapes.n_params,
        "n_leaves": shapes.n_leaves,
        "step_s": {s: _quantiles(t) for s, t in times.items()},
        "ratios": {
            f"jopt/{s}": _quantiles(np.asarray(times["jopt"]) / np.asarray(times[s]))
            for s in others
        },
        "state_bytes": {s: run.state_bytes for s, run in runners.items() if s != "jopt#2"},
        "agreement": agreement(name),
        "batch": batch,
    }


def render(results: dict) -> str:
    lines = [
        "# Schedule-free and Prodigy: step time and state bytes",
        "",
        f"{results['date']}; {results['machine']['cpu']}, {results['machine']['cpus_available']}"
        f" CPUs; jax {results['machine']['jax']}, torch {results['machine'].get('torch')};"
        f" {results['repeats']} interleaved rounds; load {results['load']}.",
        "",
        "| optimizer | system | step (ms) | jopt / system (q25–q75) | state bytes | per param "
        "| agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        for system, step in row["step_s"].items():
            ratio = row["ratios"].get(f"jopt/{system}")
            shown = (
                f"{ratio['median']:.3f} ({ratio['q25']:.3f}–{ratio['q75']:.3f})" if ratio else ""
            )
            state = row["state_bytes"].get(system)
            per = f"{state / row['n_params']:.3f}" if state is not None else ""
            agrees = row["agreement"].get(system)
            lines.append(
                f"| {row['optimizer']} | {system} | {1e3 * step['median']:.2f} | {shown} | "
                f"{state if state is not None else ''} | {per} | "
                f"{'' if agrees is None else f'{agrees:.1e}'} |"
            )
    lines += [
        "",
        "`reference`: the authors' package on torch (schedulefree 1.4, prodigyopt 1.1, default "
        "`foreach`); `jopt#2`: the A/A control; `agrees`: distance from jopt after three equal "
        "float32 steps on a small tree, relative to the distance moved (optax's Prodigy against "
        "`jopt-bias-corrected`).  Shape: "
        f"{results['rows'][0]['shape']} ({results['rows'][0]['n_params']:,} float32 parameters, "
        f"{results['rows'][0]['n_leaves']} leaves).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-seconds", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="the tiny transformer, not saved")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import jax
    import torch

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    platform = jax.devices()[0].platform
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(threads, "cpu"),
        "repeats": args.repeats,
        "batch_seconds": args.batch_seconds,
        "quick": args.quick,
        "rows": [],
    }
    load_before = os.getloadavg()
    for name in args.optimizers.split(","):
        results["rows"].append(run_row(name, args))
        print(f"# {name} done", file=sys.stderr, flush=True)
    results["load"] = [round(x, 1) for x in (*load_before, *os.getloadavg())]
    markdown = render(results)
    print(markdown)
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = f"tuning_free_{platform}"
        (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / f"{stem}.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
