"""What [`fit`][jopt.training.fit] records: step losses, epoch means, metrics."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class History:
    """What [`fit`][jopt.training.fit] recorded, as NumPy arrays ready to plot.

    Attributes:
        loss: shape ``(steps,)``, the loss of every step on its own batch, taken
            before that step's update.
        epoch_loss: shape ``(epochs,)``, the mean of `loss` over each completed epoch.
        epoch_step: shape ``(epochs,)``, the number of steps done when each epoch
            ended (the x coordinate to plot per-epoch values against `loss`).
        metrics: name → shape ``(epochs,)``, what ``eval_fn(params)`` returned after
            each completed epoch.
        interrupted: training stopped on a ``KeyboardInterrupt``.
        stopped: training stopped because the callback returned ``True``.
        wall_time: seconds in [`fit`][jopt.training.fit]'s loop, compilation included.
        compile_time: seconds spent tracing and compiling (once per program: 0 when
            a kept program was reused).
    """

    loss: np.ndarray
    epoch_loss: np.ndarray
    epoch_step: np.ndarray
    metrics: dict[str, np.ndarray]
    interrupted: bool = False
    stopped: bool = False
    wall_time: float = 0.0
    compile_time: float = 0.0

    @property
    def steps(self) -> int:
        """The number of steps taken."""
        return int(self.loss.shape[0])

    @property
    def epochs(self) -> int:
        """The number of epochs completed."""
        return int(self.epoch_loss.shape[0])


class Recorder:
    """Step losses kept on the device and read back in bulk, and per-epoch records.

    Reading each loss as it comes would make the host wait for every step (or every
    compiled call); instead the losses, and what ``eval_fn`` returns, are fetched
    only when the progress display or the caller needs them.
    """

    def __init__(self, eval_fn: Callable[[Any], Any] | None):
        self._eval_fn = eval_fn
        self._pending: list[tuple[jax.Array, int]] = []
        self._pending_steps = 0
        self._values: list[float] = []
        self._epoch_start = 0
        self.epoch_step: list[int] = []
        self._metrics: list[dict[str, float]] = []
        self.last_metrics: dict[str, float] = {}

    @property
    def steps(self) -> int:
        return len(self._values) + self._pending_steps

    def append(self, loss: jax.Array, count: int | None = None) -> None:
        """Record the loss of one step (a scalar) or of several (shape ``(k,)``), of
        which only the first ``count`` are steps taken (default: all)."""
        size = math.prod(np.shape(loss))
        count = size if count is None else count
        self._pending.append((loss, count))
        self._pending_steps += count

    def sync(self) -> list[float]:
        """Every step loss so far, as Python floats."""
        if self._pending:
            fetched = jax.device_get([loss for loss, _ in self._pending])
            for array, (_, count) in zip(fetched, self._pending, strict=True):
                self._values.extend(float(v) for v in np.ravel(array)[:count])
            self._pending, self._pending_steps = [], 0
        return self._values

    def start_epoch(self) -> None:
        self._epoch_start = self.steps

    def running_loss(self) -> float:
        """The mean loss of the current epoch's steps so far."""
        values = self.sync()[self._epoch_start :]
        return float(np.mean(values)) if values else math.nan

    def end_epoch(self, params: Any) -> None:
        """Close an epoch: its step count and ``eval_fn(params)``.

        The metrics are read back at once: what ``eval_fn`` returns may be a leaf of
        ``params``, which the next step or call deletes (donation).
        """
        if self._eval_fn is not None:
            metrics = metrics_dict(self._eval_fn(params))
            if self._metrics and set(metrics) != set(self._metrics[0]):
                raise ValueError(
                    f"eval_fn returned metrics {sorted(metrics)} after epoch "
                    f"{len(self.epoch_step) + 1}, but {sorted(self._metrics[0])} before"
                )
            self._metrics.append(metrics)
            self.last_metrics = metrics
        self.epoch_step.append(self.steps)

    def history(self, **flags: Any) -> History:
        """The [`History`][jopt.training.History] of what was recorded; ``flags`` fill its other
        fields."""
        loss = np.asarray(self.sync(), dtype=np.float64)
        bounds = [0, *self.epoch_step]
        epoch_loss = [
            float(np.mean(loss[a:b])) if b > a else math.nan
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        fetched = self._metrics
        names = list(fetched[0]) if fetched else []
        return History(
            loss=loss,
            epoch_loss=np.asarray(epoch_loss, dtype=np.float64),
            epoch_step=np.asarray(self.epoch_step, dtype=np.int64),
            metrics={
                name: np.asarray([row[name] for row in fetched], dtype=np.float64) for name in names
            },
            **flags,
        )


def metrics_dict(value: Any) -> dict[str, float]:
    """``eval_fn``'s result as ``{name: float}``; a bare scalar is named ``"eval"``."""
    items = value.items() if isinstance(value, Mapping) else [("eval", value)]
    names, metrics = [], []
    for name, metric in items:
        shape = np.shape(metric)
        if shape != ():
            raise ValueError(f"eval_fn must return scalars, got {name!r} of shape {shape}")
        names.append(str(name))
        metrics.append(metric)
    return {name: float(v) for name, v in zip(names, jax.device_get(metrics), strict=True)}
