"""What ``python -m jopt`` prints: the results table, the lecture's table, JSON, a plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jopt.lecture import digits, table
from jopt.lecture._extras import require
from jopt.lecture.compare import Comparison, Result, mean_std

MODEL = f"MLP {digits.FEATURES}-{digits.HIDDEN}-{digits.CLASSES}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned text, columns two spaces apart."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    ]
    return "\n".join(lines)


def spread(values: Sequence[float | None], fmt: str = ".4f", scale: float = 1.0) -> str:
    """``mean ± std`` of the values that are not ``None`` (``-`` when none are), with
    ``(k/n)`` appended when only k of the n reached a value."""
    mean, std, count = mean_std(values)
    if count == 0:
        return "-"
    text = f"{scale * mean:{fmt}}"
    if len(values) > 1:
        text += f" ± {scale * std:{fmt}}"
    if count < len(values):
        text += f" ({count}/{len(values)})"
    return text


def results_table(results: Sequence[Result], *, target: float) -> str:
    """The results as an aligned text table, one row per optimizer."""
    header = ("optimizer", "lr", "train loss", "test acc %", f"steps to loss {target:g}")
    rows = [
        (
            r.optimizer,
            f"{r.learning_rate:g}",
            spread(list(r.train_loss[:, -1])),
            spread(list(r.test_accuracy[:, -1]), ".1f", 100),
            spread(list(r.steps_to_target), ".0f"),
        )
        for r in results
    ]
    return format_table(header, rows)


def _yes(flag: bool | None) -> str:
    return "n/a" if flag is None else "yes" if flag else "no"


def _format_exponents(exponents: tuple[float, ...] | None) -> str:
    if exponents is None:
        return "not searched"
    if not exponents:
        return "mixed"
    if len(exponents) == 1:
        return f"p={exponents[0]:g}"
    return f"p={exponents[0]:g}..{exponents[-1]:g}"


def _saddle(row: table.Row, seeds: int) -> str:
    if row.saddle_steps is None:
        return "n/a"
    if seeds == 1:
        return " | ".join(str(s) for s in row.saddle_steps)
    pairs = zip(row.saddle_mean, row.saddle_std, strict=True)
    return " | ".join(f"{mean:.0f} ± {std:.0f}" for mean, std in pairs)


def lecture_rows_table(rows: Sequence[table.Row], *, seeds: int = 1) -> str:
    """The measured lecture table as aligned text."""
    header = ("method", "adaptive lr", "consistent units", "saddle escape steps", "easy saddle")
    starts = " | ".join(f"y0={y0:g}" for y0 in table.SADDLE_STARTS)
    sub = ("", "(lr ratio)", "(step ~ k^p)", f"({starts})", "")
    body = []
    for row in rows:
        ratio = "" if row.effective_lr_ratio is None else f" ({row.effective_lr_ratio:.3g})"
        units = f"{_yes(row.consistent_units)} ({_format_exponents(row.units_exponents)})"
        body.append(
            (
                row.method,
                _yes(row.adaptive) + ratio,
                units,
                _saddle(row, seeds),
                _yes(row.handles_saddle),
            )
        )
    text = format_table(header, [sub, *body])
    notes = [f"  {row.method}: {row.note}" for row in rows if row.note]
    return text + ("\nnot measured:\n" + "\n".join(notes) if notes else "")


def lecture_rows_json(rows: Sequence[table.Row]) -> list[dict[str, Any]]:
    """The measured lecture table as JSON-ready dicts."""
    out = []
    for row in rows:
        starts = [f"{y0:g}" for y0 in table.SADDLE_STARTS]
        entry = {
            "method": row.method,
            "adaptive_lr": row.adaptive,
            "effective_lr_ratio": row.effective_lr_ratio,
            "consistent_units": row.consistent_units,
            "units_exponents": None if row.units_exponents is None else list(row.units_exponents),
            "saddle_escape_steps": None,
            "saddle_escape_mean": None,
            "saddle_escape_std": None,
            "handles_saddle": row.handles_saddle,
            "note": row.note,
        }
        if row.saddle_steps is not None:
            entry["saddle_escape_steps"] = dict(zip(starts, row.saddle_steps, strict=True))
            entry["saddle_escape_mean"] = dict(zip(starts, row.saddle_mean, strict=True))
            entry["saddle_escape_std"] = dict(zip(starts, row.saddle_std, strict=True))
        out.append(entry)
    return out


def result_json(r: Result) -> dict[str, Any]:
    """One optimizer's runs as JSON-ready values (per seed, and summarized)."""
    return {
        "optimizer": r.optimizer,
        "learning_rate": r.learning_rate,
        "final_train_loss": _summary(r.train_loss[:, -1]),
        "final_test_loss": _summary(r.test_loss[:, -1]),
        "test_accuracy": _summary(r.test_accuracy[:, -1]),
        "steps_to_target": list(r.steps_to_target),
        "epoch_step": r.epoch_step.tolist(),
        "epoch_train_loss": r.train_loss.tolist(),
        "epoch_test_accuracy": r.test_accuracy.tolist(),
    }


def _summary(values: np.ndarray) -> dict[str, Any]:
    mean, std, _ = mean_std(list(values))
    return {
        "mean": finite(mean),
        "std": finite(std),
        "per_seed": [finite(float(v)) for v in values],
    }


def print_json(report: dict[str, Any]) -> None:
    comparison: Comparison = report["comparison"]
    out = {key: value for key, value in report.items() if key not in ("comparison",)}
    out["results"] = [result_json(r) for r in comparison.results]
    out["failed"] = comparison.failed
    out["training_wall_time_s"] = comparison.wall_time
    out["training_compile_time_s"] = comparison.compile_time
    out["lecture_table"] = lecture_rows_json(report["lecture_table"])
    print(json.dumps(out, indent=2))


def print_text(report: dict[str, Any]) -> None:
    task, config = report["task"], report["config"]
    comparison: Comparison = report["comparison"]
    batch_size = config["batch_size"]
    batching = "full batch" if batch_size is None else f"batches of {batch_size}"
    print(
        f"jopt {report['jopt_version']}: {MODEL} (tanh, Xavier init) on scikit-learn digits, "
        f"{task['train_examples']} train / {task['test_examples']} test images"
    )
    print(
        f"{config['epochs']} epochs, {batching} ({config['steps_per_epoch']} steps/epoch), "
        f"seed {config['seed']}, {config['seeds']} runs per optimizer (mean ± std)"
    )
    print()
    print(results_table(comparison.results, target=config["target_loss"]))
    for name, reason in comparison.failed.items():
        print(f"{name}: not trained ({reason})")
    print(
        f"trained in one program: {comparison.wall_time:.1f} s, "
        f"of which compiling {comparison.compile_time:.1f} s"
    )
    if report["lecture_table"]:
        print()
        print("The lecture's table, measured (python -m jopt --help explains the columns):")
        print(lecture_rows_table(report["lecture_table"], seeds=config["seeds"]))
    print()
    if report["plot"] is not None:
        print(f"loss curves written to {report['plot']}")
    print(f"total {report['total_time_s']:.1f} s")


def write_plot(path: str, results: Sequence[Result], *, target: float) -> None:
    """The training loss and test accuracy of every optimizer, mean and range over
    seeds, as an image at ``path``."""
    matplotlib = require("matplotlib", purpose="--plot")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", purpose="--plot")
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        steps = r.epoch_step
        (line,) = loss_ax.plot(steps, r.train_loss.mean(axis=0), label=r.optimizer)
        color = line.get_color()
        loss_ax.fill_between(
            steps, r.train_loss.min(0), r.train_loss.max(0), color=color, alpha=0.2
        )
        accuracy = 100 * r.test_accuracy
        acc_ax.plot(steps, accuracy.mean(axis=0), color=color, label=r.optimizer)
        acc_ax.fill_between(steps, accuracy.min(0), accuracy.max(0), color=color, alpha=0.2)
    loss_ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    seeds = results[0].train_loss.shape[0] if results else 0
    loss_ax.set(
        yscale="log",
        xlabel="step",
        ylabel="cross-entropy",
        title=f"full training loss (mean, band: min-max over {seeds} seeds)",
    )
    acc_ax.set(xlabel="step", ylabel="accuracy (%)", title="test accuracy")
    loss_ax.legend(fontsize=8)
    acc_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def finite(value: float) -> float | None:
    """``value``, or ``None`` when it is not finite (JSON has no NaN)."""
    return value if math.isfinite(value) else None
