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

The result is printed as markdown tables and saved as JSON and markdown.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import floor, systems
from benchmarks.shapes import SHAPES

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = 1
AA = "jopt#2"  # a second copy of jopt's step on its own buffers: the A/A control


# --- arguments -------------------------------------------------------------------------


def _csv(choices):
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {', '.join(choices)}, got {text!r}"
            )
        return items

    return parse


def _optimizers(text: str) -> list[str]:
    """Registry names, comma-separated, or ``all`` (every optimizer of the registry)."""
    registry = systems.registry()
    if text.strip() == "all":
        return list(registry)
    return _csv(registry)(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark jopt against optax and torch.optim (see benchmarks/README.md).",
    )
    parser.add_argument(
        "--shapes",
        type=_csv(tuple(SHAPES)),
        default=list(SHAPES),
        help=f"comma-separated, from {','.join(SHAPES)} (default: all)",
    )
    parser.add_argument(
        "--optimizers",
        type=_optimizers,
        default=list(systems.COUNTERPARTS),
        help="comma-separated names of jopt.optimizers.ALL, or all; optimizers without an "
        f"optax or torch counterpart run in jopt alone (default: {','.join(systems.COUNTERPARTS)})",
    )
    parser.add_argument(
        "--systems",
        type=_csv(systems.SYSTEMS),
        default=list(systems.SYSTEMS),
        help=f"comma-separated, from {','.join(systems.SYSTEMS)}; must include jopt "
        "(default: all; torch rows are skipped where torch is missing)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per row")
    parser.add_argument(
        "--instances",
        type=int,
        default=3,
        help="fresh buffers this many times per row (the rounds are split between them)",
    )
    parser.add_argument(
        "--no-aa",
        dest="aa",
        action="store_false",
        help="leave out the A/A control (a second copy of jopt's step, jopt#2)",
    )
    parser.add_argument(
        "--batch-seconds", type=float, default=None, help="target duration of one timed batch"
    )
    parser.add_argument(
        "--compile-repeats",
        type=int,
        default=None,
        help="compiles per system and row (default: 5, 3 or 1 as the row is cheap or not)",
    )
    parser.add_argument(
        "--memory-optimizers",
        type=_optimizers,
        default=None,
        help="rows whose peak memory is measured (default: adam)",
    )
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory processes")
    parser.add_argument(
        "--threads", type=int, default=None, help="pin the run to this many CPUs (default: all)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny shapes and few repeats: a ~10 s smoke run"
    )
    parser.add_argument(
        "--nominal-gbps",
        type=float,
        default=None,
        help="the device's nominal memory bandwidth, to report a fraction of it too",
    )
    parser.add_argument("--out", type=Path, default=None, help="directory for .json and .md")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        help="re-render a saved JSON result as markdown (next to it) and print it; runs nothing",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 15
    if args.compile_repeats is None and args.quick:
        args.compile_repeats = 1
    if args.batch_seconds is None:
        args.batch_seconds = 0.002 if args.quick else 0.1
    if args.memory_optimizers is None:
        args.memory_optimizers = ["adam"] if "adam" in args.optimizers else args.optimizers[-1:]
    if "jopt" not in args.systems:
        parser.error("--systems must include jopt: every ratio is jopt's over another's")
    for name in ("repeats", "compile_repeats", "memory_steps", "instances"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.batch_seconds <= 0:
        parser.error(f"--batch-seconds must be > 0, got {args.batch_seconds}")
    return args


# --- helpers ---------------------------------------------------------------------------


def _quantiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(array)),
        "q25": float(np.quantile(array, 0.25)),
        "q75": float(np.quantile(array, 0.75)),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(threads: int, torch_device: str | None) -> dict[str, Any]:
    import jax
    import jaxlib
    import optax

    device = jax.devices()[0]
    info = {
        "platform": device.platform,
        "device": getattr(device, "device_kind", str(device)),
        "cpu": _cpu_model(),
        "cpus_available": threads,
        "cpus_total": os.cpu_count(),
        "memory_bytes": _memory_total(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "torch": None,
        "torch_device": torch_device,
        "torch_threads": None,
    }
    if systems.torch_available():
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def _torch_device(platform_name: str) -> tuple[str | None, str | None]:
    """The torch device matching the JAX backend, or (None, why not)."""
    if not systems.torch_available():
        return None, "torch is not installed"
    import torch

    if platform_name == "cpu":
        return "cpu", None
    if platform_name == "gpu" and torch.cuda.is_available():
        return "cuda", None
    return None, f"torch has no device matching JAX's {platform_name!r} backend"


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


def run_row(shape_name, optimizer, args, context) -> dict[str, Any]:
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
    jax_systems = []
    for system in args.systems:
        if system in systems.JAX_SYSTEMS:
            why = systems.unavailable(system, optimizer)
            if why:
                row["skipped"][system] = why
            else:
                jax_systems.append(system)
    torch_systems = []
    for system in args.systems:
        if system in systems.TORCH_SYSTEMS:
            why = context["torch_skip"] or systems.torch_unsupported(
                system, optimizer, context["torch_device"]
            )
            if why:
                row["skipped"][system] = why
            else:
                torch_systems.append(system)

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
            return systems.TorchRunner(name, optimizer, params, grads, context["torch_device"])
        return systems.JaxRunner(compiled[name.split("#")[0]], shapes, params, grads)

    runners = {name: make_runner(name) for name in step_names}
    floor_runs = {}
    working_set = row["expected_bytes"] // systems.ITEMSIZE  # params + grads + state
    xla_kernels = floor.XlaKernels(working_set)
    numpy_kernels = floor.NumpyKernels(working_set, context["threads"]) if context["cpu"] else None
    for kernel in floor.KERNELS:
        floor_runs[f"xla-{kernel}"] = lambda k, kernel=kernel: xla_kernels.run(kernel, k)
        if numpy_kernels is not None:
            floor_runs[f"numpy-{kernel}"] = lambda k, kernel=kernel: numpy_kernels.run(kernel, k)
    names = [*step_names, *floor_runs]
    try:
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
        row["orders"] = orders
        row["instances"] = instances
    finally:
        if numpy_kernels is not None:
            numpy_kernels.close()
        del runners, floor_runs
        gc.collect()

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
        row["systems"].setdefault(system, {})
        t = np.asarray(times[system])
        achieved = row["bytes_per_step"] / t / 1e9
        entry = row["systems"][system]
        entry["step_s"] = _quantiles(list(t))
        entry["all_step_s"] = [float(x) for x in t]
        entry["batch"] = batch[system]
        entry["gbps"] = float(row["bytes_per_step"] / np.median(t) / 1e9)
        entry["floor_fraction"] = _quantiles(list(achieved / floor_bw))
        if args.nominal_gbps:
            entry["nominal_fraction"] = entry["gbps"] / args.nominal_gbps
    ratios = {}
    present = [*jax_systems, *torch_systems]
    pairs = [("jopt", other) for other in present if other != "jopt"]
    if args.aa:
        pairs.append(("jopt", AA))
    if "optax" in present and "torch-fused" in present:
        pairs.append(("optax", "torch-fused"))
    for a, b in pairs:
        per_pair = np.asarray(times[a]) / np.asarray(times[b])
        ratios[f"{a}/{b}"] = {**_quantiles(list(per_pair)), "per_round": list(map(float, per_pair))}
    if "optax" in jax_systems:
        per_pass = np.asarray(compile_summary["jopt"]["all_total_s"]) / np.asarray(
            compile_summary["optax"]["all_total_s"]
        )
        ratios["jopt/optax compile"] = {
            **_quantiles(list(per_pass)),
            "per_round": list(map(float, per_pass)),
        }
    row["ratios"] = ratios
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


# --- targets ---------------------------------------------------------------------------


def check_targets(results) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and a verdict.

    ``status`` is ``met``, ``NOT met``, or ``not resolved``: a ratio past its limit by
    less than the run can tell apart, that is, whose lower quartile is within the
    limit, or which misses it by less than the row's A/A control misses 1.
    """
    targets = []

    def add(name, entry, limit, better="lower", aa=None):
        value = entry.get("median") if isinstance(entry, dict) else entry
        if value is None:
            return
        met = value <= limit if better == "lower" else value >= limit
        status = "met" if met else "NOT met"
        if not met and better == "lower" and isinstance(entry, dict):
            spread = abs(aa - 1) if aa is not None else 0.0
            if entry.get("q25", value) <= limit or value - limit <= spread:
                status = "not resolved"
        targets.append(
            {"target": name, "value": value, "limit": limit, "met": met, "status": status}
        )

    for row in results["rows"]:
        shape, optimizer, ratios = row["shape"], row["optimizer"], row["ratios"]
        aa = ratios.get(f"jopt/{AA}", {}).get("median")
        step = ratios.get("jopt/optax")
        if step is not None:
            limit = 0.9 if optimizer == "adam" and shape in ("big", "resnet50") else 1.0
            add(f"{optimizer} step jopt/optax on {shape}", step, limit, aa=aa)
        if "jopt/optax compile" in ratios:
            add(f"{optimizer} compile jopt/optax on {shape}", ratios["jopt/optax compile"], 1.0)
        if optimizer == "adam" and shape == "big":
            if "jopt/torch-fused" in ratios:
                add("adam step jopt/torch-fused on big", ratios["jopt/torch-fused"], 1.2, aa=aa)
            if results["machine"]["platform"] == "gpu":
                add(
                    "adam jopt fraction of the floor on big (GPU)",
                    row["systems"]["jopt"]["floor_fraction"]["median"],
                    0.8,
                    better="higher",
                )
        memory = row["systems"].get("jopt", {}).get("memory", {})
        add(
            f"{optimizer} jopt peak memory / (params+grads+state) on {shape}",
            memory.get("ratio"),
            1.05,
        )
    return targets


# --- output ----------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    value = seconds * 1e3
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _ratio(entry: dict | None) -> str:
    if not entry:
        return "—"
    if "q25" in entry:
        return f"{entry['median']:.2f} ({entry['q25']:.2f}–{entry['q75']:.2f})"
    return f"{entry['median']:.2f}"


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.0f}" if n >= 2**20 else f"{n / 2**20:.2f}"


def render_markdown(results) -> str:
    m = results["machine"]
    c = results["config"]
    load = results["load"]
    words = ", ".join(f"{name} {w:g}" for name, w in c["words_per_param"].items())
    lines = [
        f"### Benchmark: {results['date']}, {m['platform'].upper()}"
        + (" (tiny shapes: a smoke run, not a measurement)" if c["quick"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cpus_available']} of {m['cpus_total']} CPUs used"
        + (f", {m['memory_bytes'] / 2**30:.0f} GiB" if m["memory_bytes"] else "")
        + (f"; device {m['device']}" if m["platform"] != "cpu" else "")
        + f". Load average (1/5/15 min) {load['before']} before, {load['after']} after."
        + f" jax {m['jax']}, optax {m['optax']}"
        + (
            f", torch {m['torch']} ({m['torch_device']}, {m['torch_threads']} threads)"
            if m["torch"]
            else ""
        )
        + f". {c['repeats']} interleaved rounds per row, batches of ~{c['batch_seconds']} s.",
        "",
        "Step time: median ms per step; ratios are medians over rounds of per-round time",
        "ratios (quartiles in brackets), below 1 means jopt is faster; every system got",
        f"fresh buffers {c['instances']} times per row. A/A compares jopt's step with a",
        "second copy of itself on its own buffers: how far from 1 it lands is the",
        "resolution of the other ratios on this machine. GB/s counts the least",
        f"traffic ({words} float32 words per parameter); % floor is",
        "the median per-round fraction of the best STREAM-like kernel over the same",
        "working set (see the floor table).",
        "",
        "| shape | optimizer | params | leaves | jopt ms | optax ms | torch-foreach ms | "
        "torch-fused ms | jopt/optax | jopt/torch-foreach | jopt/torch-fused | "
        "A/A: jopt/jopt#2 | jopt GB/s (% floor) | optax % floor | torch-fused % floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def step_ms(row, system):
        entry = row["systems"].get(system)
        if not entry or "step_s" not in entry:
            return "n/a" if system in row["skipped"] else "—"
        return _ms(entry["step_s"]["median"])

    def fraction(row, system):
        entry = row["systems"].get(system)
        if not entry or "floor_fraction" not in entry:
            return "—"
        return f"{100 * entry['floor_fraction']['median']:.0f}%"

    for row in results["rows"]:
        jopt = row["systems"]["jopt"]
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {row['n_params'] / 1e6:.2f} M | "
            f"{row['n_leaves']} | {step_ms(row, 'jopt')} | {step_ms(row, 'optax')} | "
            f"{step_ms(row, 'torch-foreach')} | {step_ms(row, 'torch-fused')} | "
            f"{_ratio(row['ratios'].get('jopt/optax'))} | "
            f"{_ratio(row['ratios'].get('jopt/torch-foreach'))} | "
            f"{_ratio(row['ratios'].get('jopt/torch-fused'))} | "
            f"{_ratio(row['ratios'].get('jopt/' + AA))} | "
            f"{jopt['gbps']:.1f} ({fraction(row, 'jopt')}) | {fraction(row, 'optax')} | "
            f"{fraction(row, 'torch-fused')} |"
        )
    if c["nominal_gbps"]:
        lines += [
            "",
            f"Fraction of the device's nominal memory bandwidth ({c['nominal_gbps']:g} GB/s):",
            "",
            "| shape | optimizer | jopt | optax | torch-foreach | torch-fused |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for row in results["rows"]:
            cells = []
            for system in systems.SYSTEMS:
                fraction = row["systems"].get(system, {}).get("nominal_fraction")
                cells.append("—" if fraction is None else f"{100 * fraction:.0f}%")
            lines.append(f"| {row['shape']} | {row['optimizer']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bandwidth floor, median GB/s per kernel (same threads, same rounds; each kernel's",
        "arrays hold as many floats as params + grads + state of the row):",
        "",
        "| shape | optimizer | working set | " + " | ".join(results["floor_kernels"]) + " |",
        "|---|---|---:|" + "---:|" * len(results["floor_kernels"]),
    ]
    for row in results["rows"]:
        cells = [
            f"{row['floor'][k]['gbps']['median']:.1f}" if k in row["floor"] else "—"
            for k in results["floor_kernels"]
        ]
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {_mb(row['expected_bytes'])} MB | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Compile time in seconds (trace+lower / XLA compile, the fastest of "
        f"{c['compile_repeats'] or '1 to 5'} passes; ratio: median per pass):",
        "",
        "| shape | optimizer | jopt | optax | jopt/optax (total) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results["rows"]:
        cells = []
        for system in ("jopt", "optax"):
            entry = row["systems"].get(system, {}).get("compile")
            cells.append(f"{entry['lower_s']:.2f} / {entry['compile_s']:.2f}" if entry else "—")
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {cells[0]} | {cells[1]} | "
            f"{_ratio(row['ratios'].get('jopt/optax compile'))} |"
        )
    lines += [
        "",
        "Peak memory of a donated step over params + grads + state (1.00 = nothing extra),",
        "each system in its own process; in brackets what the steps added to the resident",
        "data (the rest is the allocator's rounding of the buffers themselves). XLA: the",
        "compiled step's own estimate (arguments + outputs − aliased + temporaries).",
        "",
        "| shape | optimizer | params+grads+state MB | jopt | optax | torch-foreach | "
        "torch-fused | jopt (XLA) | optax (XLA) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        measured = []
        for system in systems.SYSTEMS:
            memory = row["systems"].get(system, {}).get("memory")
            if memory is None:
                measured.append("—")
            elif "error" in memory or memory.get("ratio") is None:
                measured.append("error")
            else:
                extra = (memory["peak_bytes"] - memory["data_bytes"]) / memory["expected_bytes"]
                measured.append(f"{memory['ratio']:.3f} ({extra:+.3f})")
        estimates = []
        for system in systems.JAX_SYSTEMS:
            xla = row["systems"].get(system, {}).get("compile", {}).get("xla_memory")
            if xla:
                peak = xla["argument"] + xla["output"] - xla["alias"] + xla["temp"]
                estimates.append(f"{peak / row['expected_bytes']:.3f}")
            else:
                estimates.append("—")
        if all(cell == "—" for cell in measured + estimates):
            continue
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {_mb(row['expected_bytes'])} | "
            + " | ".join(measured + estimates)
            + " |"
        )
    agreement = results.get("agreement", {})
    if agreement:
        lines += [
            "",
            "Agreement (max |θ − θ_jopt| / max |θ_jopt − θ₀| after 3 steps on a small tree):",
            "",
        ]
        for optimizer, values in agreement.items():
            cells = ", ".join(f"{s} {v:.1e}" for s, v in values.items() if s != "jopt")
            lines.append(f"- {optimizer}: {cells}")
    skipped = sorted(
        {f"{s}: {why}" for row in results["rows"] for s, why in row["skipped"].items()}
    )
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    if results["targets"]:
        lines += [
            "",
            "Targets (not resolved: past the limit by less than this run can tell apart,",
            "by its quartiles or its A/A control):",
            "",
        ]
        for t in results["targets"]:
            sign = "≤" if t["target"].find("fraction") < 0 else "≥"
            lines.append(f"- {t['target']}: {t['value']:.3f} ({sign} {t['limit']}) {t['status']}")
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------


def render_saved(path: Path) -> int:
    results = json.loads(path.read_text())
    if not results["config"]["quick"]:
        results["targets"] = check_targets(results)
    markdown = render_markdown(results)
    path.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render_saved(args.render)
    if args.threads is not None:
        available = sorted(os.sched_getaffinity(0))
        if not 1 <= args.threads <= len(available):
            raise SystemExit(f"--threads must be in 1..{len(available)}, got {args.threads}")
        # Before JAX starts: XLA:CPU sizes its thread pool from the affinity mask.
        os.sched_setaffinity(0, available[: args.threads])
    threads = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    load_before = _load()

    import jax

    platform_name = jax.devices()[0].platform
    torch_device, torch_skip = _torch_device(platform_name)
    if torch_device == "cpu":
        import torch

        torch.set_num_threads(threads)
    results: dict[str, Any] = {
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
            "batch_seconds": args.batch_seconds,
            "compile_repeats": args.compile_repeats,
            "memory_optimizers": [] if args.no_memory else args.memory_optimizers,
            "memory_steps": args.memory_steps,
            "quick": args.quick,
            "nominal_gbps": args.nominal_gbps,
            "hyperparameters": {o: systems.hyperparameters(o) for o in args.optimizers},
            "words_per_param": {o: systems.words_per_param(o) for o in args.optimizers},
        },
        "rows": [],
    }
    # A quick run is a smoke test: it is saved only where --out says.
    save_to = None
    if not args.no_save and not (args.quick and args.out is None):
        save_to = args.out if args.out is not None else ROOT / "benchmarks" / "results"
        save_to.mkdir(parents=True, exist_ok=True)
    stem = f"{platform_name}{'-quick' if args.quick else ''}"
    results["floor_kernels"] = [
        f"{impl}-{k}"
        for impl in ("xla", "numpy")
        for k in floor.KERNELS
        if impl == "xla" or platform_name == "cpu"
    ]
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
                if save_to is not None:  # so that a run cut short keeps its rows
                    (save_to / f"{stem}.partial.json").write_text(json.dumps(results, indent=1))
        results["agreement"] = {}
        for optimizer in args.optimizers:
            usable = [
                s
                for s in args.systems
                if (s in systems.JAX_SYSTEMS and not systems.unavailable(s, optimizer))
                or (torch_device and not systems.torch_unsupported(s, optimizer, torch_device))
            ]
            results["agreement"][optimizer] = systems.agreement(optimizer, usable, torch_device)
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
