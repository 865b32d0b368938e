"""``python -m jopt bench``: every optimizer of the registry in a fair race, AlgoPerf's way.

**Workloads** (``jopt.lecture.workloads``): the digits MLP, a small conv net on
the digits images, an ill-conditioned least-squares problem and a small transformer
learning to sort, each with a target on a held-out (or full-data) metric and a step
budget.

**Tuning**: every optimizer gets the same budget: its demo learning rate
([`jopt.optimizers.DEMO_LEARNING_RATES`][jopt.optimizers.DEMO_LEARNING_RATES]) times each of
``LR_FACTORS``, with ``--seeds`` seeds, run as one [`jopt.training.sweep`][jopt.training.sweep] per
optimizer and workload (one compilation).  The evaluation runs after every epoch.

**Scoring** (Dahl et al., 2023, "Benchmarking neural network training
algorithms", external tuning): a run's *time to target* is the steps to the end of
the first epoch whose evaluation reaches the target, times the seconds per step
measured for that optimizer (the sweep's time, compilation excluded, per run and
step); for each seed the fastest learning rate counts, and the workload's time is
the median over seeds (infinite when most seeds miss the target within the budget).
With ``t*_w`` the best time on workload ``w``, the *performance profile* of an
optimizer is ``ρ(τ) = |{w : t_w ≤ τ·t*_w}| / |W|`` and its *score* is the
normalized area ``∫₁^τmax ρ(τ) dτ / (τmax − 1)``, with ``τmax = 4``: 1 for an
optimizer that is fastest everywhere, 0 for one that never comes within 4× of the
fastest.

An optimizer that cannot run (its factory cannot take its learning rate as data, or
its update fails on a workload) is reported with the reason and scores nothing on
that workload.  Optimizers that need extra arguments in their update get the loss
(``value``), the gradient (``grad``) and the batch loss as a function (``value_fn``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jopt import optimizers, training
from jopt.lecture import _bench_output, workloads
from jopt.lecture._cli_flags import OneLineParser, int_at_least, optimizer_list
from jopt.lecture._extras import MissingExtra, require
from jopt.lecture.compare import learning_rate_name

LR_FACTORS = (1 / 3, 1.0, 3.0)
"""The learning-rate grid, as factors of each optimizer's demo learning rate."""
TAU_MAX = 4.0
"""The performance profile is integrated up to this ratio to the fastest."""
DEFAULT_SEEDS = 3


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m jopt bench``."""
    parser = OneLineParser(
        prog="python -m jopt bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Race every optimizer of the registry on four small workloads with the same\n"
            "tuning budget (a learning-rate grid and several seeds), and score them as\n"
            "AlgoPerf does: time to each workload's target, performance profile, and the\n"
            f"profile's area up to tau = {TAU_MAX:g}."
        ),
        epilog=_epilog(),
    )
    parser.add_argument(
        "--optimizers",
        type=optimizer_list,
        default=tuple(optimizers.ALL),
        metavar="NAMES",
        help="comma-separated registry names, or all (default: all)",
    )
    parser.add_argument(
        "--workloads",
        type=_workload_list,
        default=workloads.WORKLOADS,
        metavar="NAMES",
        help=f"comma-separated, from {', '.join(workloads.WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--seeds",
        type=int_at_least(1, "a positive integer"),
        default=None,
        metavar="N",
        help=f"seeds per learning rate (default: {DEFAULT_SEEDS}, 2 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny workloads and budgets: a smoke test"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="OUT.png", help="draw the performance profiles")
    return parser


def _epilog() -> str:
    lines = ["workloads:"]
    for name in workloads.WORKLOADS:
        lines.append(f"  {name:14} {_describe(name)}")
    factors = ", ".join(f"{f:.3g}" for f in LR_FACTORS)
    lines.append(f"\nlearning rates: the demo rate times {factors}")
    return "\n".join(lines)


def _describe(name: str) -> str:
    docs = {
        "digits_mlp": "the lecture's MLP; target: test cross-entropy",
        "digits_conv": "a conv net on the 8x8 digits; target: test cross-entropy",
        "least_squares": "condition 1e3, rotated; target: relative excess loss",
        "transformer": "one block sorting 8 tokens; target: test token accuracy",
    }
    return docs[name]


def _workload_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in workloads.WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose from {', '.join(workloads.WORKLOADS)}"
        )
    return names


# --- the race --------------------------------------------------------------------------


def race(workload: workloads.Workload, name: str, *, seeds: int) -> dict[str, Any]:
    """One optimizer's tuning runs on one workload; its entry of the report.

    Returns a dict with ``seconds`` and ``steps`` to the target (the median over
    seeds of the fastest learning rate; ``inf`` when not reached), the learning rate
    that was fastest most often, the per-seed steps, and the seconds per step; or
    ``{"error": reason}``.
    """
    factory = optimizers.ALL[name]
    base = optimizers.DEMO_LEARNING_RATES[name]
    grid = {learning_rate_name(factory): [base * f for f in LR_FACTORS]}
    try:
        result = training.sweep(
            workload.loss,
            workload.init,
            factory,
            workload.train,
            grid=grid,
            seeds=seeds,
            batch_size=workload.batch_size,
            epochs=workload.epochs,
            key=jax.random.key(0),
            eval_fn=workload.evaluate,
        )
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}".splitlines()[0][:300]}
    values = result.metrics[workload.metric]  # (lrs, seeds, epochs)
    reached = workload.reached(
        np.nan_to_num(values, nan=np.inf if workload.mode == "min" else -np.inf)
    )
    first = np.where(reached.any(-1), reached.argmax(-1), -1)
    steps = np.where(first >= 0, result.epoch_step[np.maximum(first, 0)], np.inf)  # (lrs, seeds)
    runs = len(result.configs) * seeds
    run_time = max(result.wall_time - result.compile_time, 0.0)
    seconds_per_step = run_time / (runs * len(result.loss[0, 0]))
    best = steps.min(axis=0)  # per seed: the fastest learning rate
    fastest = np.bincount(steps.argmin(axis=0), minlength=len(LR_FACTORS))
    return {
        "steps": float(np.median(best)),
        "seconds": float(np.median(best)) * seconds_per_step,
        "steps_per_seed": [float(s) for s in best],
        "learning_rate": float(base * LR_FACTORS[int(fastest.argmax())]),
        "seconds_per_step": seconds_per_step,
        "compile_s": result.compile_time,
        "final": {
            f"{lr:.3g}": float(np.median(values[c, :, -1]))
            for c, lr in enumerate(base * f for f in LR_FACTORS)
        },
    }


def profile_scores(times: dict[str, dict[str, float]], tau_max: float = TAU_MAX):
    """Performance ratios and scores from ``times[optimizer][workload]`` (seconds).

    Returns ``(ratios, scores)``: ``ratios[optimizer][workload] = t / min t`` (``inf``
    when not solved), and the score of each optimizer, the area under its profile
    ``ρ(τ)`` from 1 to `tau_max` over ``tau_max − 1``.  Integrated exactly: workload
    ``w`` adds ``(tau_max − r_w)/(tau_max − 1)/|W|`` for ``r_w ≤ tau_max``.
    """
    names = list(times)
    loads = sorted({w for per in times.values() for w in per})
    best = {w: min((times[o].get(w, math.inf) for o in names), default=math.inf) for w in loads}
    ratios, scores = {}, {}
    for o in names:
        ratios[o] = {}
        for w in loads:
            t = times[o].get(w, math.inf)
            ratios[o][w] = t / best[w] if math.isfinite(t) and best[w] > 0 else math.inf
        area = sum(max(0.0, tau_max - r) for r in ratios[o].values() if r <= tau_max)
        scores[o] = area / (tau_max - 1) / len(loads) if loads else 0.0
    return ratios, scores


def profile(ratios: dict[str, float], taus: np.ndarray) -> np.ndarray:
    """``ρ(τ)`` at each of `taus`: the fraction of workloads with ratio ``≤ τ``."""
    values = np.asarray(list(ratios.values()), dtype=float)
    return (values[None, :] <= np.asarray(taus)[:, None]).mean(axis=1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole race; the report as a dict."""
    start = time.perf_counter()
    seeds = args.seeds or (2 if args.quick else DEFAULT_SEEDS)
    entries: dict[str, dict[str, Any]] = {name: {} for name in args.optimizers}
    described = {}
    for load in args.workloads:
        workload = workloads.make(load, quick=args.quick)
        described[load] = {
            "description": workload.description,
            "metric": workload.metric,
            "target": workload.target,
            "mode": workload.mode,
            "budget_steps": workload.epochs * workload.steps_per_epoch,
        }
        for name in args.optimizers:
            entries[name][load] = race(workload, name, seeds=seeds)
            print(f"# {load} / {name}: {_bench_output.cell(entries[name][load])}", file=sys.stderr)
    times = {
        name: {w: e.get("seconds", math.inf) for w, e in per.items()}
        for name, per in entries.items()
    }
    ratios, scores = profile_scores(times)
    return {
        "quick": args.quick,
        "seeds": seeds,
        "learning_rate_factors": list(LR_FACTORS),
        "tau_max": TAU_MAX,
        "workloads": described,
        "results": entries,
        "ratios": ratios,
        "scores": scores,
        "machine": {"backend": jax.default_backend(), "devices": len(jax.devices())},
        "total_time_s": time.perf_counter() - start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m jopt bench`` with the flags ``argv``; returns the exit code.

    Returns:
        0 on success, 1 when a package of the ``examples`` extra is missing.  Bad
        flags exit with code 2 and a one-line message.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _bench_output.check_plot_path(parser, args.plot)
    try:
        if args.plot is not None:
            require("matplotlib", purpose="--plot")
        report = run(args)
        if args.plot is not None:
            _bench_output.write_plot(args.plot, report)
    except MissingExtra as error:
        print(f"python -m jopt bench: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_bench_output.jsonable(report), indent=2))
    else:
        print(_bench_output.text(report))
    return 0
