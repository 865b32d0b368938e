"""``python -m jopt``: the lecture's optimizers compared on a real task, and its table measured.

The task needs no network: the MLP classifier of [`jopt.lecture.digits`][jopt.lecture.digits] on
scikit-learn's bundled digits, split into train and test sets by ``--seed``.  Every optimizer trains
with ``--seeds`` seeds (initial weights and batch order, the same for every optimizer) at its
learning rate from [`jopt.optimizers.DEMO_LEARNING_RATES`][jopt.optimizers.DEMO_LEARNING_RATES], all
of them in one compiled program (``jopt.lecture.compare.compare``), and the results are means ±
standard deviations over the seeds.  Then the lecture's summary table is measured on toy problems by
[`jopt.lecture.table`][jopt.lecture.table], with the saddle race run from as many starts.

``python -m jopt bench`` is the fair race of ``jopt.lecture.bench``.

Install the extra with ``pip install "jopt[examples]"``; ``python -m jopt --help``
lists the flags.  Exit codes: 0 success, 1 a missing dependency, 2 bad flags.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

import jax

import jopt
from jopt import optimizers
from jopt.lecture import _output, digits, table
from jopt.lecture._cli_flags import (
    OneLineParser,
    batch_size,
    check_plot_path,
    int_at_least,
    optimizer_list,
    positive_float,
)
from jopt.lecture._extras import MissingExtra, require
from jopt.lecture.compare import compare
from jopt.lecture.roster import LECTURE_OPTIMIZERS

DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 32
DEFAULT_TARGET_LOSS = 0.1
DEFAULT_SEEDS = 3


# --- flags ---------------------------------------------------------------------------


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

results table: the final training loss and test accuracy, mean +- standard deviation
over the seeds; 'steps to loss' counts the steps up to the end of the first epoch
whose full training loss reaches --target-loss (with the number of seeds that reached
it when not all did).  Every optimizer and seed trains in one compiled program.

measured table:
  adaptive lr       three parameters with constant gradients 1, 10 and 100: the ratio
                    of their effective learning rates -step/g, largest to smallest
                    (1: one rate for all)
  consistent units  measure theta in a unit k times smaller (theta' = k theta,
                    g' = g/k, the state in matching units): the step scales as k^p,
                    and p = 1 is consistent
  saddle escape     steps until |y| >= 1 on f(x, y) = x^2 - y^2 from (1, 1e-6) and
                    from (1, 1e-2), at lr {table.SADDLE_LR:g} (adadelta at its default);
                    with --seeds N > 1, mean +- std over N starts around each (x0 in
                    [0.5, 1.5], y0 within half a decade)
  easy saddle       the flat start costs at most 1.5 times the steps of the steep one

python -m jopt bench --help: the fair race of every optimizer on four workloads.
"""


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m jopt``."""
    parser = OneLineParser(
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
        type=optimizer_list,
        default=LECTURE_OPTIMIZERS,
        metavar="NAMES",
        help=f"comma-separated, from {', '.join(optimizers.ALL)}, or all "
        "(default: the lecture's eight)",
    )
    parser.add_argument(
        "--epochs",
        type=int_at_least(1, "a positive integer"),
        default=DEFAULT_EPOCHS,
        help=f"passes over the training set (default: {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"1 = SGD, N = mini-batch, 'full' = batch GD (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--seed",
        type=int_at_least(0, "a non-negative integer"),
        default=0,
        help="seeds the split, and the key every run's seed is drawn from (default: 0)",
    )
    parser.add_argument(
        "--seeds",
        type=int_at_least(1, "a positive integer"),
        default=DEFAULT_SEEDS,
        metavar="N",
        help="runs per optimizer (initial weights, batch order), reported as mean +- std "
        f"(default: {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--target-loss",
        type=positive_float,
        default=DEFAULT_TARGET_LOSS,
        metavar="LOSS",
        help=f"the training loss to reach (default: {DEFAULT_TARGET_LOSS})",
    )
    parser.add_argument("--plot", metavar="OUT.png", help="write the loss curves to this image")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the tables"
    )
    return parser


# --- main ----------------------------------------------------------------------------


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
    # The table's rows are independent of the training and mostly XLA compilation,
    # which runs outside Python's lock: side by side they use two cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        rows = pool.submit(table.lecture_table, tuple(args.optimizers), seeds=args.seeds)
        comparison = compare(
            args.optimizers,
            split,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seeds=args.seeds,
            key=jax.random.key(args.seed),
            target=args.target_loss,
        )
        lecture = rows.result()
    if args.plot is not None:
        _output.write_plot(args.plot, comparison.results, target=args.target_loss)
    return {
        "jopt_version": jopt.__version__,
        "task": {
            "dataset": "sklearn.datasets.load_digits",
            "train_examples": n_train,
            "test_examples": len(split.x_test),
            "model": f"{_output.MODEL}, tanh, Xavier-uniform init",
            "loss": "softmax cross-entropy",
        },
        "config": {
            "optimizers": list(args.optimizers),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "steps_per_epoch": 1 if args.batch_size is None else -(-n_train // args.batch_size),
            "seed": args.seed,
            "seeds": args.seeds,
            "target_loss": args.target_loss,
        },
        "comparison": comparison,
        "lecture_table": lecture,
        "plot": args.plot,
        "total_time_s": time.perf_counter() - start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m jopt`` with the flags ``argv``; returns the exit code.

    ``python -m jopt bench ...`` runs ``jopt.lecture.bench.main`` instead.

    Args:
        argv: the flags (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when a package of the ``examples`` extra is missing.  Bad
        flags exit with code 2 (``SystemExit``), as argparse does.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from jopt.lecture import bench

        return bench.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    check_plot_path(parser, args.plot)
    try:
        report = _run(parser, args)
    except MissingExtra as error:
        print(f"python -m jopt: {error}", file=sys.stderr)
        return 1
    if args.json:
        _output.print_json(report)
    else:
        _output.print_text(report)
    return 0
