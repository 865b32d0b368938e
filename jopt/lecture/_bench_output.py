"""What ``python -m jopt bench`` prints: the race's table, JSON and the profile plot."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jopt.lecture._cli_flags import check_plot_path
from jopt.lecture._extras import require
from jopt.lecture._output import format_table

__all__ = ["cell", "check_plot_path", "jsonable", "text", "write_plot"]


def cell(entry: dict[str, Any]) -> str:
    """One optimizer on one workload: ``steps (seconds)`` to target, ``-`` if missed."""
    if "error" in entry:
        return "failed"
    if not math.isfinite(entry["steps"]):
        return "-"
    return f"{entry['steps']:.0f} ({entry['seconds']:.3g} s)"


def text(report: dict[str, Any]) -> str:
    """The race as text: one row per optimizer, best score first."""
    loads = list(report["workloads"])
    scores = report["scores"]
    order = sorted(scores, key=lambda name: (-scores[name], name))
    header = ("optimizer", "score", *loads)
    rows = [
        (name, f"{scores[name]:.3f}", *(cell(report["results"][name][w]) for w in loads))
        for name in order
    ]
    lines = [
        "python -m jopt bench"
        + (" --quick (a smoke test: tiny workloads, no conclusions)" if report["quick"] else ""),
        f"{report['seeds']} seeds x {len(report['learning_rate_factors'])} learning rates "
        f"(demo rate x {', '.join(f'{f:.3g}' for f in report['learning_rate_factors'])}) "
        "per optimizer and workload; cells: median steps (seconds) to target, '-' missed",
        "",
    ]
    for name, w in report["workloads"].items():
        sign = "<=" if w["mode"] == "min" else ">="
        lines.append(
            f"{name}: {w['description']}; target {w['metric']} {sign} {w['target']:g} "
            f"within {w['budget_steps']} steps"
        )
    lines += ["", format_table(header, rows), ""]
    failures = [
        f"  {name} on {w}: {entry['error']}"
        for name in order
        for w, entry in report["results"][name].items()
        if "error" in entry
    ]
    if failures:
        lines += ["not run:", *failures, ""]
    lines.append(
        f"score: area under the performance profile up to tau = {report['tau_max']:g}, "
        f"normalized (1 = fastest on every workload); total {report['total_time_s']:.0f} s"
    )
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """`value` with every non-finite float as ``None`` (JSON has no infinity)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_plot(path: str, report: dict[str, Any]) -> None:
    """Every optimizer's performance profile ρ(τ), as an image at `path`."""
    from jopt.lecture.bench import profile

    matplotlib = require("matplotlib", purpose="--plot")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", purpose="--plot")
    taus = np.linspace(1.0, report["tau_max"], 301)
    fig, ax = plt.subplots(figsize=(8, 5))
    scores = report["scores"]
    for i, name in enumerate(sorted(scores, key=lambda n: -scores[n])):
        style = "-" if i < 10 else "--" if i < 20 else ":"
        ax.step(
            taus,
            profile(report["ratios"][name], taus),
            where="post",
            linestyle=style,
            label=f"{name} ({scores[name]:.2f})",
        )
    ax.set(
        xlabel="τ (time to target / fastest optimizer's)",
        ylabel="fraction of workloads solved within τ",
        title="performance profiles (score: normalized area)",
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
