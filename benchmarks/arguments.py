"""The flags of ``python -m benchmarks``."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import families, systems
from benchmarks.shapes import SHAPES


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
    untimed = [n.strip() for n in text.split(",") if n.strip() in systems.NOT_TIMED]
    if untimed:
        raise argparse.ArgumentTypeError(f"{untimed[0]}: {systems.NOT_TIMED[untimed[0]]}")
    return _csv(registry)(text)


def _families(text: str) -> list[str]:
    try:
        return families.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _selection_flags(parser: argparse.ArgumentParser) -> None:
    """What is run: shapes, optimizers, systems."""
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
        "--families",
        type=_families,
        default=[],
        help="comma-separated family benchmarks to run after the rows, from "
        f"{','.join(families.FAMILIES)}, or all (default: none)",
    )
    parser.add_argument(
        "--systems",
        type=_csv(systems.SYSTEMS),
        default=list(systems.SYSTEMS),
        help=f"comma-separated, from {','.join(systems.SYSTEMS)}; must include jopt "
        "(default: all; torch rows are skipped where torch is missing)",
    )


def _timing_flags(parser: argparse.ArgumentParser) -> None:
    """How it is timed: rounds, buffers, batches, compiles."""
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


def _other_flags(parser: argparse.ArgumentParser) -> None:
    """Memory probes, threads, the quick run, output."""
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
        "--training",
        choices=("yes", "no", "only"),
        default="yes",
        help="the training rows (fit per call, sweeps; benchmarks/training.py): run them "
        "after the step rows (yes, the default), not at all (no), or alone (only)",
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, with the defaults that depend on others filled in; bad ones exit 2."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark jopt against optax and torch.optim (see benchmarks/README.md).",
    )
    _selection_flags(parser)
    _timing_flags(parser)
    _other_flags(parser)
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
