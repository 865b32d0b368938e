"""What :func:`~jopt.training.fit` records: step losses, epoch means, metrics."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class History:
    """What :func:`~jopt.training.fit` recorded, as NumPy arrays ready to plot.

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
        wall_time: seconds in :func:`~jopt.training.fit`'s loop, compilation included.
        compile_time: seconds spent tracing and compiling the step (once per batch
            shape).
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


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


class Recorder:
    """Step losses kept on the device and read back in bulk, and per-epoch records.

    Reading each loss as it comes would make the host wait for every step; instead
    they are fetched only when the progress display, the end of an epoch or the
    caller needs them.
    """

    def __init__(self, eval_fn: Callable[[Any], Any] | None):
        self._eval_fn = eval_fn
        self._pending: list[jax.Array] = []
        self._pending_steps = 0
        self._values: list[float] = []
        self._epoch_start = 0
        self.epoch_loss: list[float] = []
        self.epoch_step: list[int] = []
        self.metrics: dict[str, list[float]] = {}
        self.last_metrics: dict[str, float] = {}

    @property
    def steps(self) -> int:
        return len(self._values) + self._pending_steps

    def append(self, loss: jax.Array) -> None:
        """Record the loss of one step (a scalar) or of several (shape ``(k,)``)."""
        self._pending.append(loss)
        self._pending_steps += math.prod(np.shape(loss))

    def sync(self) -> list[float]:
        """Every step loss so far, as Python floats."""
        if self._pending:
            fetched = jax.device_get(self._pending)
            self._values.extend(float(v) for array in fetched for v in np.ravel(array))
            self._pending, self._pending_steps = [], 0
        return self._values

    def start_epoch(self) -> None:
        self._epoch_start = self.steps

    def running_loss(self) -> float:
        """The mean loss of the current epoch's steps so far."""
        return mean(self.sync()[self._epoch_start :])

    def end_epoch(self, params: Any) -> None:
        """Close an epoch: its mean loss, its step count and ``eval_fn(params)``."""
        epoch_loss = self.running_loss()
        if self._eval_fn is not None:
            self.last_metrics = metrics_dict(self._eval_fn(params))
            if self.epoch_loss and set(self.last_metrics) != set(self.metrics):
                raise ValueError(
                    f"eval_fn returned metrics {sorted(self.last_metrics)} after epoch "
                    f"{len(self.epoch_loss) + 1}, but {sorted(self.metrics)} before"
                )
            for name, value in self.last_metrics.items():
                self.metrics.setdefault(name, []).append(value)
        self.epoch_loss.append(epoch_loss)
        self.epoch_step.append(self.steps)

    def history(self, **flags: Any) -> History:
        """The :class:`History` of what was recorded; ``flags`` fill its other fields."""
        completed = len(self.epoch_loss)
        return History(
            loss=np.asarray(self.sync(), dtype=np.float64),
            epoch_loss=np.asarray(self.epoch_loss, dtype=np.float64),
            epoch_step=np.asarray(self.epoch_step, dtype=np.int64),
            metrics={
                name: np.asarray(values[:completed], dtype=np.float64)
                for name, values in self.metrics.items()
            },
            **flags,
        )


def metrics_dict(value: Any) -> dict[str, float]:
    """``eval_fn``'s result as ``{name: float}``; a bare scalar is named ``"eval"``."""
    items = value.items() if isinstance(value, Mapping) else [("eval", value)]
    out = {}
    for name, metric in items:
        array = np.asarray(jax.device_get(metric))
        if array.shape != ():
            raise ValueError(f"eval_fn must return scalars, got {name!r} of shape {array.shape}")
        out[str(name)] = float(array)
    return out
