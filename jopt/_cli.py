"""``python -m jopt``: the lecture's optimizers compared on a real task, and its table measured.

The task needs no network: an MLP classifier on scikit-learn's bundled ``load_digits``
(1,797 grey 8×8 images of the digits 0-9), split into train and test sets by the
seed.  Every optimizer trains the same initial parameters on the same sequence of
mini-batches with :func:`jopt.training.fit`.  Then the lecture's summary table is
measured on toy problems by :mod:`jopt._lecture_table`.

Install the extra with ``pip install -e ".[examples]"``; ``python -m jopt --help``
lists the flags.  Exit codes: 0 success, 1 a missing dependency, 2 bad flags.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jopt
from jopt import _lecture_table, initializers, optimizers, training

# Each optimizer at a conventional rate, not tuned on this task: the papers' (and
# jopt's) defaults for the adaptive methods, 0.1 for SGD, and momentum and Nesterov at
# 0.01 with γ = 0.9, the same effective step η/(1 − γ) = 0.1 as SGD.
OPTIMIZERS: dict[str, tuple[float, Callable[[float], jopt.GradientTransformation]]] = {
    "sgd": (0.1, optimizers.sgd),
    "momentum": (0.01, optimizers.momentum),
    "nesterov": (0.01, optimizers.nesterov),
    "adagrad": (0.01, optimizers.adagrad),
    "adadelta": (1.0, optimizers.adadelta),
    "rmsprop": (1e-3, optimizers.rmsprop),
    "adam": (1e-3, optimizers.adam),
    "adamax": (2e-3, optimizers.adamax),
    "adamw": (1e-3, optimizers.adamw),
}
LECTURE = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamax")

DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 32
DEFAULT_TARGET_LOSS = 0.1
# 1,440 of the 1,797 images train and 357 (19.9%) test.  1440 = 2⁵·3²·5 is a multiple of
# most batch sizes (1-6, 8-10, 12, 15, 16, 18, 20, 24, 30, 32, ...), so the last batch
# is rarely ragged and the step is compiled once.
TRAIN_EXAMPLES = 1440
HIDDEN = 64
DTYPE = jnp.float32


# --- flags ---------------------------------------------------------------------------


def _optimizer_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of optimizer names")
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(OPTIMIZERS)}"
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


def build_parser() -> argparse.ArgumentParser:
    rates = textwrap.fill(
        ", ".join(f"{name} {lr:g}" for name, (lr, _) in OPTIMIZERS.items()),
        width=80,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    parser = argparse.ArgumentParser(
        prog="python -m jopt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Compare the lecture's optimizers on scikit-learn's digits (an MLP classifier,\n"
            "no network needed), then measure the lecture's summary table: per-parameter\n"
            "adaptive learning rate, consistent units, and escape from a saddle point."
        ),
        epilog=f"""\
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
                    from (1, 1e-2), at lr {_lecture_table.SADDLE_LR:g} (adadelta at its default)
  easy saddle       the flat start costs at most 1.5 times the steps of the steep one
""",
    )
    parser.add_argument(
        "--optimizers",
        type=_optimizer_list,
        default=LECTURE,
        metavar="NAMES",
        help=f"comma-separated, from {', '.join(OPTIMIZERS)} (default: the lecture's eight)",
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


def load_digits_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: a seeded split of the digits, 1,440 / 357.

    Pixels are standardized with the training set's mean and standard deviation
    (pixels that are constant there are only centred).
    """
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(images))
    train, test = order[:TRAIN_EXAMPLES], order[TRAIN_EXAMPLES:]
    mean = images[train].mean(axis=0)
    std = images[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x = ((images - mean) / std).astype(np.float32)
    y = labels.astype(np.int32)
    return x[train], y[train], x[test], y[test]


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> list[dict[str, jax.Array]]:
    """Dense layers ``(in, out)`` with Xavier-uniform weights and zero biases.

    Xavier's ``Var(W) = 2/(fan_in + fan_out)`` keeps the variance of a tanh network's
    signal in its linear regime, the lecture's derivation.
    """
    kernel_init = initializers.xavier_uniform()
    layers = []
    for layer_key, (fan_in, fan_out) in zip(
        jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])
    ):
        layers.append(
            {
                "w": kernel_init(layer_key, (fan_in, fan_out), DTYPE),
                "b": initializers.zeros(layer_key, (fan_out,), DTYPE),
            }
        )
    return layers


def logits(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def cross_entropy(params, batch) -> jax.Array:
    """Mean softmax cross-entropy of a batch ``(x, labels)``."""
    x, labels = batch
    log_probs = jax.nn.log_softmax(logits(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


@jax.jit
def evaluate(params, x_train, y_train, x_test, y_test) -> dict[str, jax.Array]:
    test_logits = logits(params, x_test)
    return {
        "train_loss": cross_entropy(params, (x_train, y_train)),
        "test_loss": cross_entropy(params, (x_test, y_test)),
        "test_accuracy": jnp.mean(jnp.argmax(test_logits, axis=1) == y_test),
    }


def warm_up(data, key: jax.Array, batch_size: int | None) -> None:
    """Compile what every optimizer's run shares (evaluation, shuffling) once, up front,
    so that the first optimizer's wall time does not carry it."""
    params = init_mlp(key, (data[0].shape[1], HIDDEN, 10))
    jax.block_until_ready(evaluate(params, *data))
    next(training.batches(jax.random.fold_in(key, 1), data[:2], batch_size))


def train_one(name: str, data, key: jax.Array, args: argparse.Namespace) -> dict[str, Any]:
    """Train the MLP with one optimizer; its row of the results as plain Python values."""
    x_train, y_train, x_test, y_test = data
    lr, factory = OPTIMIZERS[name]
    params = init_mlp(jax.random.fold_in(key, 0), (x_train.shape[1], HIDDEN, 10))
    _, _, history = training.fit(
        cross_entropy,
        params,
        factory(lr),
        (x_train, y_train),
        batch_size=args.batch_size,
        epochs=args.epochs,
        key=jax.random.fold_in(key, 1),
        progress=sys.stderr.isatty(),
        eval_fn=lambda p: evaluate(p, x_train, y_train, x_test, y_test),
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
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
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


def results_table(results: Sequence[dict[str, Any]], target: float) -> str:
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


def lecture_rows_table(rows: Sequence[_lecture_table.Row]) -> str:
    header = ("method", "adaptive lr", "consistent units", "saddle escape steps", "easy saddle")
    starts = " | ".join(f"y0={y0:g}" for y0 in _lecture_table.SADDLE_STARTS)
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


def write_plot(path: str, results: Sequence[dict[str, Any]], target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print(
            'python -m jopt needs scikit-learn for its dataset: pip install -e ".[examples]"',
            file=sys.stderr,
        )
        return 1
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error('--plot needs matplotlib: pip install -e ".[examples]"')
        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            parser.error(f"--plot: folder {folder!r} does not exist")

    start = time.perf_counter()
    data = load_digits_split(args.seed)
    n_train = len(data[0])
    if args.batch_size is not None and args.batch_size > n_train:
        parser.error(
            f"argument --batch-size: {args.batch_size} is larger than the training set "
            f"({n_train} examples)"
        )
    steps_per_epoch = 1 if args.batch_size is None else -(-n_train // args.batch_size)

    key = jax.random.key(args.seed)
    warm_up(data, key, args.batch_size)
    results = [train_one(name, data, key, args) for name in args.optimizers]
    lecture = _lecture_table.lecture_table(
        tuple(name for name in args.optimizers if name in _lecture_table.SADDLE_RACE)
    )
    if args.plot is not None:
        write_plot(args.plot, results, args.target_loss)
    total = time.perf_counter() - start

    config = {
        "optimizers": list(args.optimizers),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "steps_per_epoch": steps_per_epoch,
        "seed": args.seed,
        "target_loss": args.target_loss,
    }
    if args.json:
        report = {
            "jopt_version": jopt.__version__,
            "task": {
                "dataset": "sklearn.datasets.load_digits",
                "train_examples": n_train,
                "test_examples": len(data[2]),
                "model": f"MLP {data[0].shape[1]}-{HIDDEN}-10, tanh, Xavier-uniform init",
                "loss": "softmax cross-entropy",
            },
            "config": config,
            "results": [{k: v for k, v in r.items() if k != "step_loss"} for r in results],
            "lecture_table": [
                {
                    "method": row.method,
                    "adaptive_lr": row.adaptive,
                    "effective_lr_ratio": row.effective_lr_ratio,
                    "consistent_units": row.consistent_units,
                    "units_exponents": list(row.units_exponents),
                    "saddle_escape_steps": dict(
                        zip((f"{y0:g}" for y0 in _lecture_table.SADDLE_STARTS), row.saddle_steps)
                    ),
                    "handles_saddle": row.handles_saddle,
                }
                for row in lecture
            ],
            "plot": args.plot,
            "total_time_s": total,
        }
        print(json.dumps(report, indent=2))
        return 0

    batching = "full batch" if args.batch_size is None else f"batches of {args.batch_size}"
    print(
        f"jopt {jopt.__version__}: MLP {data[0].shape[1]}-{HIDDEN}-10 (tanh, Xavier init) on "
        f"scikit-learn digits, {n_train} train / {len(data[2])} test images"
    )
    print(f"{args.epochs} epochs, {batching} ({steps_per_epoch} steps/epoch), seed {args.seed}")
    print()
    print(results_table(results, args.target_loss))
    if lecture:
        print()
        print("The lecture's table, measured (python -m jopt --help explains the columns):")
        print(lecture_rows_table(lecture))
    print()
    if args.plot is not None:
        print(f"loss curves written to {args.plot}")
    print(f"total {total:.1f} s")
    return 0
