"""The flag parsing shared by ``python -m jopt`` and ``python -m jopt bench``."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from jopt import optimizers


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr, and exit code 2.

    ``python -m jopt: error: argument --epochs: must be a positive integer, got -3
    (python -m jopt --help lists the flags)``.
    """

    def error(self, message: str) -> NoReturn:
        print(
            f"{self.prog}: error: {message} ({self.prog} --help lists the flags)", file=sys.stderr
        )
        sys.exit(2)


def optimizer_list(text: str) -> tuple[str, ...]:
    """Comma-separated registry names, or ``all``."""
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


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """A parser of integers ``>= minimum``, whose error says `what` was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


def batch_size(text: str) -> int | None:
    """A positive integer, or ``full`` (``None``: batch gradient descent)."""
    if text.strip().lower() == "full":
        return None
    return int_at_least(1, "a positive integer or 'full'")(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def check_plot_path(parser: argparse.ArgumentParser, path: str | None) -> None:
    """A parser error unless the folder of `path` exists."""
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            parser.error(f"--plot: folder {folder!r} does not exist")
