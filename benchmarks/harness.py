"""The benchmark harness: step time, compile time, memory and bandwidth, in one run.

For every (shape, optimizer) row:

1. **Compile time.**  jopt's and optax's steps are traced+lowered and compiled from
   scratch (a new ``jit`` each time), timed apart, ``--compile-repeats`` times with the
   order alternating; the minimum of each is reported.  XLA's own memory analysis of
   the compiled step is kept (arguments + outputs − aliased + temporaries).
2. **Step time.**  Every system gets its own copy of the same parameters and
   gradients.  Each is timed in batches of ``k`` steps (``k`` set so that a batch
   takes about ``--batch-seconds``), each batch after one untimed step; one *round*
   times one batch of every system and of the floor kernels, in a fresh random order,
   and ``--repeats`` rounds are run, with fresh buffers for every system
   ``--instances`` times along the way.  Reported per system: the median time per
   step; per pair of systems: the median over rounds of the per-round time ratio,
   with its quartiles.  Ratios of batches taken a few milliseconds apart cancel most
   of the drift of a shared, noisy machine, which absolute times do not.  ``jopt#2``
   (the A/A control) is a second copy of jopt's step: ``jopt/jopt#2`` shows how far
   two copies of one program land apart, the resolution of every other ratio.
3. **Bandwidth.**  A step moves at least ``words_per_param × 4`` bytes per parameter;
   that over the step time is the achieved GB/s.  The floor kernels (STREAM-like copy
   and triad, :mod:`benchmarks.floor`) run in the same rounds over arrays of as many
   elements as the row has parameters, with the same threads; each round's best
   floor bandwidth divides each system's bandwidth, and the median of that is the
   fraction of the floor.
4. **Memory.**  After each row of ``--memory-optimizers``, one process per system
   (:mod:`benchmarks.memory`) measures the peak memory of a donated step.

The result is printed as markdown tables (:mod:`benchmarks.report`) and saved as JSON
and markdown; a full run's targets are judged by :mod:`benchmarks.targets`.  The flags
are in :mod:`benchmarks.arguments`.
"""

from __future__ import annotations

import datetime
import functools
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import families, floor, systems
from benchmarks import training as training_rows
from benchmarks.arguments import parse_args
from benchmarks.machine import load as _load
from benchmarks.machine import machine_info
from benchmarks.machine import torch_device as _torch_device
from benchmarks.report import AA, render_markdown
from benchmarks.shapes import SHAPES
from benchmarks.targets import check_targets

__all__ = ["check_targets", "main", "parse_args", "render_markdown", "run_row"]

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = 1


# --- helpers ---------------------------------------------------------------------------


def _quantiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(array)),
        "q25": float(np.quantile(array, 0.25)),
        "q75": float(np.quantile(array, 0.75)),
    }


# --- one row ---------------------------------------------------------------------------


def _compile_row(shapes, optimizer, jax_systems, repeats):
    """Compile every JAX system's step ``repeats`` times (``None``: as many as are cheap).

    Passes alternate the order of the systems.  With ``repeats=None`` a row whose first
    pass took under 2 s gets 5 passes, under 10 s 3, otherwise 1: one compile of the
    2,000-leaf shape can take most of a minute on a small machine.
    """
    compiled, times = {}, {s: {"lower_s": [], "compile_s": []} for s in jax_systems}
    rep, passes = 0, repeats or 1
    while rep < passes:
        order = jax_systems if rep % 2 == 0 else list(reversed(jax_systems))
        for system in order:
            compiled.pop(system, None)
            result = systems.compile_jax(system, optimizer, shapes)
            times[system]["lower_s"].append(result.lower_s)
            times[system]["compile_s"].append(result.compile_s)
            compiled[system] = result
        if rep == 0 and repeats is None:
            first = sum(t["lower_s"][0] + t["compile_s"][0] for t in times.values())
            passes = 5 if first < 2 else 3 if first < 10 else 1
        rep += 1
    summary = {}
    for system in jax_systems:
        lower_s, compile_s = min(times[system]["lower_s"]), min(times[system]["compile_s"])
        totals = [
            a + b for a, b in zip(times[system]["lower_s"], times[system]["compile_s"], strict=True)
        ]
        summary[system] = {
            "lower_s": lower_s,
            "compile_s": compile_s,
            "total_s": min(totals),
            "all_total_s": totals,
            "all_lower_s": times[system]["lower_s"],
            "all_compile_s": times[system]["compile_s"],
            "xla_memory": compiled[system].memory,
        }
    return compiled, summary


def _serialize(compiled: systems.Compiled, path: Path) -> bool:
    try:
        from jax.experimental import serialize_executable

        with open(path, "wb") as f:
            pickle.dump(serialize_executable.serialize(compiled.executable), f)
    except Exception:  # the probe then compiles for itself
        return False
    return True


def _choose_systems(row, optimizer, args, context) -> tuple[list[str], list[str]]:
    """The JAX and torch systems that run ``optimizer`` here; the others go to skipped."""
    jax_systems, torch_systems = [], []
    for system in args.systems:
        if system in systems.JAX_SYSTEMS:
            why = systems.unavailable(system, optimizer)
            chosen = jax_systems
        else:
            why = context["torch_skip"] or systems.torch_unsupported(
                system, optimizer, context["torch_device"]
            )
            chosen = torch_systems
        if why:
            row["skipped"][system] = why
        else:
            chosen.append(system)
    return jax_systems, torch_systems


def _floor_runs(working_set: int, context) -> tuple[dict, list]:
    """The floor kernels as ``name -> run(k)``, and what to close afterwards."""
    xla_kernels = floor.XlaKernels(working_set)
    numpy_kernels = floor.NumpyKernels(working_set, context["threads"]) if context["cpu"] else None
    runs = {}
    for kernel in floor.KERNELS:
        runs[f"xla-{kernel}"] = lambda k, kernel=kernel: xla_kernels.run(kernel, k)
        if numpy_kernels is not None:
            runs[f"numpy-{kernel}"] = lambda k, kernel=kernel: numpy_kernels.run(kernel, k)
    return runs, [numpy_kernels] if numpy_kernels is not None else []


def _time_rounds(make_runner, step_names, floor_runs, args) -> tuple[dict, dict, list, int]:
    """Every system and floor kernel timed in ``args.repeats`` interleaved rounds."""
    runners = {name: make_runner(name) for name in step_names}
    names = [*step_names, *floor_runs]
    batch = {}
    for name in names:
        run = runners.get(name) or floor_runs[name]
        run(1)  # warm up: first-touch page faults, lazy state
        batch[name] = systems.calibrate(run, args.batch_seconds)
    times = {name: [] for name in names}
    orders = []
    shuffle = np.random.default_rng(0)
    instances = min(args.instances, args.repeats)
    for rnd in range(args.repeats):
        if rnd and rnd * instances // args.repeats != (rnd - 1) * instances // args.repeats:
            # New buffers for every system: where they land in memory moves a step's
            # time by several per cent (two copies of one program differ so), and
            # no number of rounds on the same buffers averages that out.
            runners = {}
            gc.collect()
            for name in step_names:
                runners[name] = make_runner(name)
                runners[name](1)
        # A fresh order every round: a fixed cycle would always run a system right
        # after the same other one (another runtime's threads asleep or spinning,
        # its data in the cache), a bias no number of rounds removes.
        order = [str(name) for name in shuffle.permutation(names)]
        orders.append(order)
        for name in order:
            run = runners.get(name) or floor_runs[name]
            run(1)  # untimed: wake this runtime's threads, reach steady state
            t0 = time.perf_counter()
            run(batch[name])
            times[name].append((time.perf_counter() - t0) / batch[name])
    return times, batch, orders, instances


def _summarize(row, times, batch, step_names, working_set, args) -> None:
    """Floor bandwidth, and per system its step times, GB/s and fraction of the floor."""
    floor_bw = np.zeros(args.repeats)
    row["floor"] = {}
    for name in times:
        if name.split("-", 1)[0] in ("xla", "numpy"):
            kernel = name.split("-", 1)[1]
            bandwidth = floor.kernel_bytes(kernel, working_set) / np.asarray(times[name]) / 1e9
            floor_bw = np.maximum(floor_bw, bandwidth)
            row["floor"][name] = {"gbps": _quantiles(list(bandwidth)), "batch": batch[name]}
    row["floor"]["best_gbps"] = float(np.median(floor_bw))
    for system in step_names:
        t = np.asarray(times[system])
        achieved = row["bytes_per_step"] / t / 1e9
        entry = row["systems"].setdefault(system, {})
        entry["step_s"] = _quantiles(list(t))
        entry["all_step_s"] = [float(x) for x in t]
        entry["batch"] = batch[system]
        entry["gbps"] = float(row["bytes_per_step"] / np.median(t) / 1e9)
        entry["floor_fraction"] = _quantiles(list(achieved / floor_bw))
        if args.nominal_gbps:
            entry["nominal_fraction"] = entry["gbps"] / args.nominal_gbps


def _ratios(times, present, compile_summary, aa: bool) -> dict[str, Any]:
    """Per-round step-time ratios of the pairs, and jopt/optax compile time per pass."""
    pairs = [("jopt", other) for other in present if other != "jopt"]
    if aa:
        pairs.append(("jopt", AA))
    if "optax" in present and "torch-fused" in present:
        pairs.append(("optax", "torch-fused"))
    ratios = {}
    for a, b in pairs:
        per_pair = np.asarray(times[a]) / np.asarray(times[b])
        ratios[f"{a}/{b}"] = {**_quantiles(list(per_pair)), "per_round": list(map(float, per_pair))}
    if "optax" in compile_summary:
        per_pass = np.asarray(compile_summary["jopt"]["all_total_s"]) / np.asarray(
            compile_summary["optax"]["all_total_s"]
        )
        ratios["jopt/optax compile"] = {
            **_quantiles(list(per_pass)),
            "per_round": list(map(float, per_pass)),
        }
    return ratios


def run_row(shape_name, optimizer, args, context) -> dict[str, Any]:
    """Compile, time and summarize one (shape, optimizer) row in every system."""
    shapes = SHAPES[shape_name](args.quick)
    n = shapes.n_params
    row: dict[str, Any] = {
        "shape": shape_name,
        "description": shapes.description,
        "optimizer": optimizer,
        "n_params": n,
        "n_leaves": shapes.n_leaves,
        "bytes_per_step": systems.bytes_per_step(optimizer, n),
        "expected_bytes": systems.expected_bytes(optimizer, n),
        "load_before": _load(),
        "systems": {},
        "skipped": {},
    }
    jax_systems, torch_systems = _choose_systems(row, optimizer, args, context)
    compiled, compile_summary = _compile_row(shapes, optimizer, jax_systems, args.compile_repeats)
    for system in jax_systems:
        row["systems"][system] = {"compile": compile_summary[system]}
    for system in torch_systems:
        row["systems"][system] = {}
    probed = not args.quick or shape_name == args.shapes[0]
    if context["probe_memory"] and optimizer in args.memory_optimizers and probed:
        for system in jax_systems:
            path = context["tmp"] / f"{shape_name}-{optimizer}-{system}.pkl"
            if _serialize(compiled[system], path):
                context["executables"][(shape_name, optimizer, system)] = path

    params, grads = systems.host_arrays(shapes)
    step_names = [*jax_systems, *([AA] if args.aa else []), *torch_systems]

    def make_runner(name: str):
        if name in torch_systems:
            make = functools.partial(systems.torch_optimizer, name, optimizer)
            return systems.TorchRunner(make, params, grads, context["torch_device"])
        return systems.JaxRunner.of(compiled[name.split("#")[0]], shapes, params, grads)

    working_set = row["expected_bytes"] // systems.ITEMSIZE  # params + grads + state
    floor_runs, closers = _floor_runs(working_set, context)
    try:
        times, batch, row["orders"], row["instances"] = _time_rounds(
            make_runner, step_names, floor_runs, args
        )
    finally:
        for kernels in closers:
            kernels.close()
        del floor_runs
        gc.collect()
    _summarize(row, times, batch, step_names, working_set, args)
    row["ratios"] = _ratios(times, [*jax_systems, *torch_systems], compile_summary, args.aa)
    row["load_after"] = _load()
    return row


# --- memory processes ------------------------------------------------------------------


def run_memory_probes(row, args, context) -> None:
    """Peak memory of ``row``'s step, one process per system (after the row's timing)."""
    if args.no_memory or row["optimizer"] not in args.memory_optimizers:
        return
    if args.quick and row["shape"] != args.shapes[0]:
        return  # a smoke run probes one shape: each probe is a process start
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for system, entry in row["systems"].items():
        if system == AA:
            continue  # the same program as jopt's
        command = [
            sys.executable,
            "-m",
            "benchmarks.memory",
            f"--system={system}",
            f"--shape={row['shape']}",
            f"--optimizer={row['optimizer']}",
            f"--steps={args.memory_steps}",
            f"--threads={context['threads']}",
            f"--torch-device={context['torch_device'] or 'cpu'}",
        ]
        if args.quick:
            command.append("--tiny")
        executable = context["executables"].get((row["shape"], row["optimizer"], system))
        if executable is not None:
            command.append(f"--executable={executable}")
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900
            )
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                entry["memory"] = {"error": (done.stderr or "no output").strip()[-500:]}
            else:
                entry["memory"] = json.loads(lines[-1])
        except subprocess.TimeoutExpired:
            entry["memory"] = {"error": "timed out"}
        if executable is not None:
            executable.unlink(missing_ok=True)


# --- main ------------------------------------------------------------------------------


def render_saved(path: Path) -> int:
    results = json.loads(path.read_text())
    if not results["config"]["quick"]:
        results["targets"] = check_targets(results)
    markdown = render_markdown(results)
    path.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


def _pin_threads(threads: int | None) -> int:
    """Pin the process to ``threads`` CPUs (before JAX starts); the number of CPUs used."""
    if threads is not None:
        available = sorted(os.sched_getaffinity(0))
        if not 1 <= threads <= len(available):
            raise SystemExit(f"--threads must be in 1..{len(available)}, got {threads}")
        # Before JAX starts: XLA:CPU sizes its thread pool from the affinity mask.
        os.sched_setaffinity(0, available[:threads])
    return len(os.sched_getaffinity(0))


def _new_results(args, threads: int, torch_device: str | None, platform_name: str) -> dict:
    return {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(threads, torch_device),
        "config": {
            "shapes": args.shapes,
            "optimizers": args.optimizers,
            "systems": args.systems,
            "repeats": args.repeats,
            "instances": args.instances,
            "aa_control": args.aa,
            "families": args.families,
            "batch_seconds": args.batch_seconds,
            "compile_repeats": args.compile_repeats,
            "memory_optimizers": [] if args.no_memory else args.memory_optimizers,
            "memory_steps": args.memory_steps,
            "quick": args.quick,
            "nominal_gbps": args.nominal_gbps,
            "training": args.training,
            "hyperparameters": {o: systems.hyperparameters(o) for o in args.optimizers},
            "words_per_param": {o: systems.words_per_param(o) for o in args.optimizers},
        },
        "rows": [],
        "floor_kernels": [
            f"{impl}-{k}"
            for impl in ("xla", "numpy")
            for k in floor.KERNELS
            if impl == "xla" or platform_name == "cpu"
        ],
    }


def _run_rows(results, args, context, save_partial) -> None:
    for shape in args.shapes:
        for optimizer in args.optimizers:
            row = run_row(shape, optimizer, args, context)
            run_memory_probes(row, args, context)
            results["rows"].append(row)
            print(
                f"# {shape}/{optimizer}: jopt/optax "
                f"{row['ratios'].get('jopt/optax', {}).get('median', float('nan')):.3f}",
                file=sys.stderr,
                flush=True,
            )
            save_partial(results)  # so that a run cut short keeps its rows


def _agreement(args, torch_device) -> dict[str, dict[str, float]]:
    agreement = {}
    for optimizer in args.optimizers:
        usable = [
            s
            for s in args.systems
            if (s in systems.JAX_SYSTEMS and not systems.unavailable(s, optimizer))
            or (torch_device and not systems.torch_unsupported(s, optimizer, torch_device))
        ]
        agreement[optimizer] = systems.agreement(optimizer, usable, torch_device)
    return agreement


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render_saved(args.render)
    threads = _pin_threads(args.threads)
    started = time.perf_counter()
    load_before = _load()

    import jax

    platform_name = jax.devices()[0].platform
    torch_device, torch_skip = _torch_device(platform_name)
    if torch_device == "cpu":
        import torch

        torch.set_num_threads(threads)
    results = _new_results(args, threads, torch_device, platform_name)
    # A quick run is a smoke test: it is saved only where --out says.
    save_to = None
    if not args.no_save and not (args.quick and args.out is None):
        save_to = args.out if args.out is not None else ROOT / "benchmarks" / "results"
        save_to.mkdir(parents=True, exist_ok=True)
    stem = f"{platform_name}{'-training' if args.training == 'only' else ''}"
    stem += "-quick" if args.quick else ""

    def save_partial(results):
        if save_to is not None:
            (save_to / f"{stem}.partial.json").write_text(json.dumps(results, indent=1))

    with tempfile.TemporaryDirectory(prefix="jopt-bench-") as tmp:
        context = {
            "threads": threads,
            "cpu": platform_name == "cpu",
            "torch_device": torch_device,
            "torch_skip": torch_skip,
            "probe_memory": not args.no_memory,
            "tmp": Path(tmp),
            "executables": {},
        }
        if args.training != "only":
            _run_rows(results, args, context, save_partial)
            results["agreement"] = _agreement(args, torch_device)
    if args.training != "no":
        results["training"] = training_rows.run(args.quick)
    if args.families:
        results["families"] = families.run(args.families, args.quick)
    results["load"] = {"before": load_before, "after": _load()}
    results["wall_s"] = time.perf_counter() - started
    results["targets"] = [] if args.quick else check_targets(results)
    markdown = render_markdown(results)
    print(markdown)
    if save_to is not None:
        (save_to / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
        (save_to / f"{stem}.md").write_text(markdown)
        (save_to / f"{stem}.partial.json").unlink(missing_ok=True)
        print(f"saved {save_to / stem}.json and .md", file=sys.stderr)
    return 0
