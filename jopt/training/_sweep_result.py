"""What [`sweep`][jopt.training.sweep] returns: every run's record, stacked."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

PyTree = Any


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """The runs of a sweep, as NumPy arrays shaped ``(configs, seeds, ...)``.

    Attributes:
        configs: the configurations, ``[{name: value}, ...]``, in the order of the
            first axis of every array.
        seeds: the number of seeds, the second axis.
        loss: shape ``(configs, seeds, steps)``, every step's loss on its own batch,
            taken before the step's update (as ``History.loss``).
        epoch_step: shape ``(epochs,)``, the number of steps done after each epoch.
        metrics: name → shape ``(configs, seeds, epochs)``, what ``eval_fn`` returned
            after each epoch.
        params: the final parameters, every leaf shaped ``(configs, seeds, *shape)``.
        wall_time: seconds in the sweep's calls, compilation included.
        compile_time: seconds spent tracing and compiling (0 when reused).
    """

    configs: list[dict[str, float]]
    seeds: int
    loss: np.ndarray
    epoch_step: np.ndarray
    metrics: dict[str, np.ndarray]
    params: PyTree
    wall_time: float = 0.0
    compile_time: float = 0.0

    @property
    def epoch_loss(self) -> np.ndarray:
        """Shape ``(configs, seeds, epochs)``: the mean of `loss` over each epoch."""
        epochs = len(self.epoch_step)
        if epochs == 0:
            return np.zeros((*self.loss.shape[:2], 0))
        return self.loss.reshape(*self.loss.shape[:2], epochs, -1).mean(axis=-1)

    def final(self, metric: str = "loss") -> np.ndarray:
        """Shape ``(configs, seeds)``: the last epoch's value of `metric`.

        ``"loss"`` is the mean loss of the last epoch's steps; any other name is a
        key of `metrics`.
        """
        if metric == "loss":
            values = self.epoch_loss
        elif metric in self.metrics:
            values = self.metrics[metric]
        else:
            raise KeyError(
                f"metric must be 'loss' or one of {sorted(self.metrics)}, got {metric!r}"
            )
        if values.shape[-1] == 0:
            raise ValueError("the sweep ran no epoch: there is no final value")
        return values[..., -1]

    def summary(self, metric: str = "loss") -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` over seeds of the final `metric`, each of shape ``(configs,)``.

        The standard deviation is the sample one (``ddof=1``), 0 with one seed.
        """
        values = self.final(metric)
        std = values.std(axis=1, ddof=1) if self.seeds > 1 else np.zeros(len(self.configs))
        return values.mean(axis=1), std

    def best(self, metric: str = "loss", *, mode: str = "min") -> dict[str, float]:
        """The configuration whose final `metric`, averaged over seeds, is best.

        A configuration with a non-finite value on any seed (a run that diverged)
        ranks last.

        Args:
            metric: ``"loss"`` (the last epoch's mean loss) or a name of `metrics`.
            mode: ``"min"`` or ``"max"``.

        Returns:
            A copy of the best configuration's dict.
        """
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        mean, _ = self.summary(metric)
        score = mean if mode == "min" else -mean
        score = np.where(np.isfinite(score), score, np.inf)
        return dict(self.configs[int(np.argmin(score))])
