"""The optimizers of the registry compared on the digits, over seeds, as one program.

``compare`` trains the digits MLP of [`jopt.lecture.digits`][jopt.lecture.digits] with each named
optimizer at its demo learning rate
([`jopt.optimizers.DEMO_LEARNING_RATES`][jopt.optimizers.DEMO_LEARNING_RATES]) and several seeds,
all in one [`jopt.training.sweep`][jopt.training.sweep]: one compilation for every optimizer and
seed.  Seed ``s`` draws the initial weights and the batch order from ``jax.random.fold_in(key, s)``
(see [`jopt.training.sweep`][jopt.training.sweep]), the same for every optimizer, so each seed is a
fair comparison on its own and the spread over seeds says how much of a difference is luck.

``python -m jopt`` prints its ``compare``; the notebooks plot it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jopt import optimizers, training
from jopt.lecture import digits


@dataclasses.dataclass(frozen=True)
class Result:
    """One optimizer's runs, one entry per seed where arrays have a seed axis.

    Attributes:
        optimizer: the registry name.
        learning_rate: its demo learning rate.
        train_loss: shape ``(seeds, epochs)``, the full training set's loss after
            each epoch.
        test_loss: shape ``(seeds, epochs)``.
        test_accuracy: shape ``(seeds, epochs)``.
        step_loss: shape ``(seeds, steps)``, each step's loss on its batch.
        epoch_step: shape ``(epochs,)``, the steps done after each epoch.
        steps_to_target: per seed, the steps up to the end of the first epoch whose
            training loss reaches the target, or ``None``.
    """

    optimizer: str
    learning_rate: float
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    step_loss: np.ndarray
    epoch_step: np.ndarray
    steps_to_target: tuple[int | None, ...]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What ``compare`` returns.

    Attributes:
        results: one ``Result`` per optimizer that trained, in the order asked.
        failed: ``name -> reason`` for every optimizer that could not be trained.
        wall_time: seconds of the sweep, compilation included.
        compile_time: seconds spent compiling.
    """

    results: list[Result]
    failed: dict[str, str]
    wall_time: float
    compile_time: float


def learning_rate_name(factory: Callable) -> str:
    """The name of a factory's first argument, its learning rate by the registry's
    convention (``factory(demo_learning_rate)`` builds the demo optimizer)."""
    first = next(iter(inspect.signature(factory).parameters.values()))
    return first.name


def compare(
    names: Sequence[str],
    split: digits.Split,
    *,
    epochs: int,
    batch_size: int | None,
    seeds: int,
    key: jax.Array,
    target: float,
) -> Comparison:
    """Train the digits MLP with each optimizer of `names` for `seeds` seeds.

    The optimizers share one program.  Should that program fail to build (an
    optimizer that cannot be traced with its learning rate as data, say), each
    optimizer is trained on its own, and those that fail are reported in
    ``failed`` with the reason instead of stopping the others.

    Args:
        names: keys of [`jopt.optimizers.ALL`][jopt.optimizers.ALL].
        split: the digits (``jopt.lecture.digits.load``).
        epochs: passes over the training set.
        batch_size: as for [`jopt.training.fit`][jopt.training.fit].
        seeds: seeds per optimizer.
        key: the PRNG key the seeds are drawn from.
        target: the training loss whose first epoch is reported.

    Returns:
        A ``Comparison``.
    """
    factories = {name: optimizers.ALL[name] for name in names}
    grids = {
        name: {learning_rate_name(factory): [optimizers.DEMO_LEARNING_RATES[name]]}
        for name, factory in factories.items()
    }
    options = dict(
        seeds=seeds,
        batch_size=batch_size,
        epochs=epochs,
        key=key,
        eval_fn=lambda params: digits.evaluate(params, split),
    )
    train = split.train
    failed: dict[str, str] = {}
    try:
        swept = training.sweep(
            digits.loss, digits.init_params, factories, train, grid=grids, **options
        )
        wall, compiled = _times(swept.values())
    except Exception:
        swept = {}
        for name, factory in factories.items():
            try:
                swept[name] = training.sweep(
                    digits.loss, digits.init_params, factory, train, grid=grids[name], **options
                )
            except Exception as error:
                failed[name] = f"{type(error).__name__}: {error}".splitlines()[0]
        wall = sum(r.wall_time for r in swept.values())
        compiled = sum(r.compile_time for r in swept.values())
    results = [_result(name, swept[name], target) for name in names if name in swept]
    return Comparison(results=results, failed=failed, wall_time=wall, compile_time=compiled)


def _times(results: Any) -> tuple[float, float]:
    first = next(iter(results))
    return first.wall_time, first.compile_time


def _result(name: str, swept: training.SweepResult, target: float) -> Result:
    metrics = {key: values[0] for key, values in swept.metrics.items()}  # one config
    reached = []
    for curve in metrics["train_loss"]:
        hit = np.flatnonzero(curve <= target)
        reached.append(int(swept.epoch_step[hit[0]]) if hit.size else None)
    return Result(
        optimizer=name,
        learning_rate=next(iter(swept.configs[0].values())),
        train_loss=metrics["train_loss"],
        test_loss=metrics["test_loss"],
        test_accuracy=metrics["test_accuracy"],
        step_loss=swept.loss[0],
        epoch_step=swept.epoch_step,
        steps_to_target=tuple(reached),
    )


def mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    """``(mean, sample std, count)`` over the values that are not ``None``."""
    kept = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return float("nan"), float("nan"), 0
    std = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
    return float(kept.mean()), std, int(kept.size)
