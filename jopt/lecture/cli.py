"""``python -m jopt``: the lecture's optimizers compared on a real task, and its table measured.

The task needs no network: the MLP classifier of :mod:`jopt.lecture.digits` on
scikit-learn's bundled digits, split into train and test sets by the seed.  Every
optimizer trains the same initial parameters on the same sequence of mini-batches
with :func:`jopt.training.fit`, at its learning rate from
:data:`jopt.optimizers.DEMO_LEARNING_RATES`.  Then the lecture's summary table is
measured on toy problems by :mod:`jopt.lecture.table`.

Install the extra with ``pip install "jopt[examples]"``; ``python -m jopt --help``
lists the flags.  Exit codes: 0 success, 1 a missing dependency, 2 bad flags.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

import jopt
from jopt import optimizers, training
from jopt.lecture import digits, table
from jopt.lecture._extras import MissingExtra, require
from jopt.lecture.roster import LECTURE_OPTIMIZERS

DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 32
DEFAULT_TARGET_LOSS = 0.1


# --- flags ---------------------------------------------------------------------------


def _optimizer_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of optimizer names")
    if names == ("all",):
        return tuple(optimizers.ALL)
    unknown = [name for name in names if name not in optimizers.ALL]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(optimizers.ALL)}, or all"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, repeated))} listed twice")
    return names


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


def _batch_size(text: str) -> int | None:
    if text.strip().lower() == "full":
        return None
    return _int_at_least(1, "a positive integer or 'full'")(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _epilog() -> str:
    rates = textwrap.fill(
        ", ".join(f"{name} {lr:g}" for name, lr in optimizers.DEMO_LEARNING_RATES.items()),
        width=80,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    return f"""\
learning rates (momentum and nesterov with gamma = 0.9):
{rates}

results table: the final training loss and test accuracy; 'steps to loss' counts the
steps up to the end of the first epoch whose full training loss reaches --target-loss;
'wall s' is the whole run of fit, its compilation ('compile s') included.

measured table:
  adaptive lr       two parameters with constant gradients 1 and 100: the ratio of
                    their effective learning rates -step/g (1: one rate for all)
  consistent units  measure theta in a unit k times smaller (theta' = k theta,
                    g' = g/k, the state in matching units): the step scales as k^p,
                    and p = 1 is consistent
  saddle escape     steps until |y| >= 1 on f(x, y) = x^2 - y^2 from (1, 1e-6) and
                    from (1, 1e-2), at lr {table.SADDLE_LR:g} (adadelta at its default)
  easy saddle       the flat start costs at most 1.5 times the steps of the steep one
"""


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m jopt``."""
    parser = argparse.ArgumentParser(
        prog="python -m jopt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Compare the lecture's optimizers on scikit-learn's digits (an MLP classifier,\n"
            "no network needed), then measure the lecture's summary table: per-parameter\n"
            "adaptive learning rate, consistent units, and escape from a saddle point."
        ),
        epilog=_epilog(),
    )
    parser.add_argument(
        "--optimizers",
        type=_optimizer_list,
        default=LECTURE_OPTIMIZERS,
        metavar="NAMES",
        help=f"comma-separated, from {', '.join(optimizers.ALL)}, or all "
        "(default: the lecture's eight)",
    )
    parser.add_argument(
        "--epochs",
        type=_int_at_least(1, "a positive integer"),
        default=DEFAULT_EPOCHS,
        help=f"passes over the training set (default: {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"1 = SGD, N = mini-batch, 'full' = batch GD (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--seed",
        type=_int_at_least(0, "a non-negative integer"),
        default=0,
        help="seeds the split, the initial parameters and the batch order (default: 0)",
    )
    parser.add_argument(
        "--target-loss",
        type=_positive_float,
        default=DEFAULT_TARGET_LOSS,
        metavar="LOSS",
        help=f"the training loss to reach (default: {DEFAULT_TARGET_LOSS})",
    )
    parser.add_argument("--plot", metavar="OUT.png", help="write the loss curves to this image")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the tables"
    )
    return parser


# --- the task ------------------------------------------------------------------------


def _warm_up(split: digits.Split, key: jax.Array, batch_size: int | None) -> None:
    """Compile what every optimizer's run shares (evaluation, shuffling) once, up front,
    so that the first optimizer's wall time does not carry it."""
    params = digits.init_params(key)
    jax.block_until_ready(digits.evaluate(params, split))
    shuffle_key = jax.random.fold_in(key, 1)
    next(training.batches(split.train, batch_size=batch_size, key=shuffle_key))


def _train_one(
    name: str, split: digits.Split, key: jax.Array, args: argparse.Namespace
) -> dict[str, Any]:
    """Train the MLP with one optimizer; its row of the results as plain Python values."""
    lr = optimizers.DEMO_LEARNING_RATES[name]
    _, _, history = training.fit(
        digits.loss,
        digits.init_params(jax.random.fold_in(key, 0)),
        optimizers.ALL[name](lr),
        split.train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        key=jax.random.fold_in(key, 1),
        progress=sys.stderr.isatty(),
        eval_fn=lambda params: digits.evaluate(params, split),
    )
    train_loss = history.metrics["train_loss"]
    reached = np.flatnonzero(train_loss <= args.target_loss)
    return {
        "optimizer": name,
        "learning_rate": lr,
        "final_train_loss": float(train_loss[-1]),
        "final_test_loss": float(history.metrics["test_loss"][-1]),
        "test_accuracy": float(history.metrics["test_accuracy"][-1]),
        "steps_to_target": int(history.epoch_step[reached[0]]) if reached.size else None,
        "wall_time_s": history.wall_time,
        "compile_time_s": history.compile_time,
        "epoch_step": history.epoch_step.tolist(),
        "epoch_train_loss": train_loss.tolist(),
        "epoch_test_accuracy": history.metrics["test_accuracy"].tolist(),
        "step_loss": history.loss.tolist(),
    }


# --- output --------------------------------------------------------------------------


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    ]
    return "\n".join(lines)


def _format_exponents(exponents: tuple[float, ...]) -> str:
    if not exponents:
        return "mixed"
    if len(exponents) == 1:
        return f"p={exponents[0]:g}"
    return f"p={exponents[0]:g}..{exponents[-1]:g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def results_table(results: Sequence[dict[str, Any]], *, target: float) -> str:
    """The results as an aligned text table, one row per optimizer."""
    header = (
        "optimizer",
        "lr",
        "train loss",
        "test acc",
        f"steps to loss {target:g}",
        "wall s",
        "compile s",
    )
    rows = [
        (
            r["optimizer"],
            f"{r['learning_rate']:g}",
            f"{r['final_train_loss']:.4f}",
            f"{100 * r['test_accuracy']:.1f}%",
            "-" if r["steps_to_target"] is None else str(r["steps_to_target"]),
            f"{r['wall_time_s']:.2f}",
            f"{r['compile_time_s']:.2f}",
        )
        for r in results
    ]
    return _format_table(header, rows)


def lecture_rows_table(rows: Sequence[table.Row]) -> str:
    """The measured lecture table as aligned text."""
    header = ("method", "adaptive lr", "consistent units", "saddle escape steps", "easy saddle")
    starts = " | ".join(f"y0={y0:g}" for y0 in table.SADDLE_STARTS)
    sub = ("", "(lr ratio)", "(step ~ k^p)", f"({starts})", "")
    body = [
        (
            row.method,
            f"{_yes(row.adaptive)} ({row.effective_lr_ratio:.3g})",
            f"{_yes(row.consistent_units)} ({_format_exponents(row.units_exponents)})",
            " | ".join(str(s) for s in row.saddle_steps),
            _yes(row.handles_saddle),
        )
        for row in rows
    ]
    return _format_table(header, [sub, *body])


def lecture_rows_json(rows: Sequence[table.Row]) -> list[dict[str, Any]]:
    """The measured lecture table as JSON-ready dicts."""
    return [
        {
            "method": row.method,
            "adaptive_lr": row.adaptive,
            "effective_lr_ratio": row.effective_lr_ratio,
            "consistent_units": row.consistent_units,
            "units_exponents": list(row.units_exponents),
            "saddle_escape_steps": dict(
                zip((f"{y0:g}" for y0 in table.SADDLE_STARTS), row.saddle_steps, strict=True)
            ),
            "handles_saddle": row.handles_saddle,
        }
        for row in rows
    ]


def _write_plot(path: str, results: Sequence[dict[str, Any]], *, target: float) -> None:
    """The loss and test-accuracy curves of every result, as an image at ``path``."""
    matplotlib = require("matplotlib", purpose="--plot")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", purpose="--plot")

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        steps = np.arange(1, len(r["step_loss"]) + 1)
        (line,) = loss_ax.plot(steps, r["step_loss"], alpha=0.25, linewidth=0.8)
        loss_ax.plot(
            r["epoch_step"], r["epoch_train_loss"], color=line.get_color(), label=r["optimizer"]
        )
        acc_ax.plot(
            r["epoch_step"],
            100 * np.asarray(r["epoch_test_accuracy"]),
            color=line.get_color(),
            label=r["optimizer"],
        )
    loss_ax.axhline(target, color="grey", linestyle=":", linewidth=1)
    loss_ax.set(
        yscale="log",
        xlabel="step",
        ylabel="cross-entropy",
        title="training loss (faint: per batch; solid: full set per epoch)",
    )
    acc_ax.set(xlabel="step", ylabel="accuracy (%)", title="test accuracy")
    loss_ax.legend(fontsize=8)
    acc_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main ----------------------------------------------------------------------------

MODEL = f"MLP {digits.FEATURES}-{digits.HIDDEN}-{digits.CLASSES}"


def _check_plot_path(parser: argparse.ArgumentParser, path: str | None) -> None:
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            parser.error(f"--plot: folder {folder!r} does not exist")


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Load, train every optimizer, measure the table, draw; the report as a dict."""
    start = time.perf_counter()
    split = digits.load(args.seed)
    n_train = len(split.x_train)
    if args.batch_size is not None and args.batch_size > n_train:
        parser.error(
            f"argument --batch-size: {args.batch_size} is larger than the training set "
            f"({n_train} examples)"
        )
    if args.plot is not None:
        require("matplotlib", purpose="--plot")
    key = jax.random.key(args.seed)
    # The table's rows and the warm-up are independent and mostly XLA compilation,
    # which runs outside Python's lock: side by side they use two cores.  All of it
    # finishes before the first optimizer trains, so the timings of each are its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        rows = [pool.submit(table.lecture_table, (name,)) for name in args.optimizers]
        _warm_up(split, key, args.batch_size)
        lecture = [row for future in rows for row in future.result()]
    results = [_train_one(name, split, key, args) for name in args.optimizers]
    if args.plot is not None:
        _write_plot(args.plot, results, target=args.target_loss)
    return {
        "jopt_version": jopt.__version__,
        "task": {
            "dataset": "sklearn.datasets.load_digits",
            "train_examples": n_train,
            "test_examples": len(split.x_test),
            "model": f"{MODEL}, tanh, Xavier-uniform init",
            "loss": "softmax cross-entropy",
        },
        "config": {
            "optimizers": list(args.optimizers),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "steps_per_epoch": 1 if args.batch_size is None else -(-n_train // args.batch_size),
            "seed": args.seed,
            "target_loss": args.target_loss,
        },
        "results": results,
        "lecture_table": lecture,
        "plot": args.plot,
        "total_time_s": time.perf_counter() - start,
    }


def _print_text(report: dict[str, Any]) -> None:
    task, config = report["task"], report["config"]
    batch_size = config["batch_size"]
    batching = "full batch" if batch_size is None else f"batches of {batch_size}"
    print(
        f"jopt {report['jopt_version']}: {MODEL} (tanh, Xavier init) on scikit-learn digits, "
        f"{task['train_examples']} train / {task['test_examples']} test images"
    )
    print(
        f"{config['epochs']} epochs, {batching} ({config['steps_per_epoch']} steps/epoch), "
        f"seed {config['seed']}"
    )
    print()
    print(results_table(report["results"], target=config["target_loss"]))
    if report["lecture_table"]:
        print()
        print("The lecture's table, measured (python -m jopt --help explains the columns):")
        print(lecture_rows_table(report["lecture_table"]))
    print()
    if report["plot"] is not None:
        print(f"loss curves written to {report['plot']}")
    print(f"total {report['total_time_s']:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m jopt`` with the flags ``argv``; returns the exit code.

    Args:
        argv: the flags (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when a package of the ``examples`` extra is missing.  Bad
        flags exit with code 2 (``SystemExit``), as argparse does.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_plot_path(parser, args.plot)
    try:
        report = _run(parser, args)
    except MissingExtra as error:
        print(f"python -m jopt: {error}", file=sys.stderr)
        return 1
    if args.json:
        report["results"] = [
            {k: v for k, v in r.items() if k != "step_loss"} for r in report["results"]
        ]
        report["lecture_table"] = lecture_rows_json(report["lecture_table"])
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return 0
