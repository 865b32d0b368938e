"""The runs of a sweep: a grid's configurations times seeds, per optimizer factory."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jopt._validation import checked


@dataclasses.dataclass(frozen=True)
class Member:
    """The runs of one factory, configuration-major and seed-minor.

    Attributes:
        factory: the optimizer factory.
        names: the swept hyperparameters, in grid order.
        configs: the configurations, ``[{name: value}, ...]``.
        hyper: name -> shape ``(runs,)``, each run's value (the default float dtype).
        seed: shape ``(runs,)`` int32, each run's seed.
    """

    factory: Callable
    names: tuple[str, ...]
    configs: list[dict[str, float]]
    hyper: dict[str, np.ndarray]
    seed: np.ndarray

    @property
    def runs(self) -> int:
        return len(self.seed)


def members(factories: dict[Any, Callable], grid: Any, seeds: int) -> dict[Any, Member]:
    """The ``Member`` of every factory, from one shared grid or one per factory."""
    per_factory = (
        None not in factories
        and isinstance(grid, Mapping)
        and bool(grid)
        and all(isinstance(value, Mapping) for value in grid.values())
    )
    if per_factory and set(grid) != set(factories):
        raise ValueError(
            f"grid names optimizers {sorted(grid)}, optimizer_factory {sorted(factories)}: "
            "give one grid for all of them, or one per optimizer"
        )
    out = {}
    for name, factory in factories.items():
        label = f"grid[{name!r}]" if per_factory else "grid"
        own = grid[name] if per_factory else grid
        names, configs = configurations(own, factory, label)
        dtype = jnp.result_type(float)
        out[name] = Member(
            factory=factory,
            names=names,
            configs=configs,
            hyper={
                hp: np.repeat(np.asarray([c[hp] for c in configs], dtype=dtype), seeds)
                for hp in names
            },
            seed=np.tile(np.arange(seeds, dtype=np.int32), len(configs)),
        )
    return out


def configurations(
    grid: Any, factory: Callable, label: str = "grid"
) -> tuple[tuple[str, ...], list[dict[str, float]]]:
    """The names of `grid` and the list of its configurations (the last name varies
    fastest), checked against what `factory` accepts."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"{label} must be a mapping name -> list of numbers, got {grid!r}")
    if not grid:
        raise ValueError(f"{label} must name at least one hyperparameter, got {{}}")
    accepted = argument_names(factory)
    values = {}
    for name, options in grid.items():
        where = f"{label}[{name!r}]"
        if accepted is not None and name not in accepted:
            raise ValueError(f"{where}: not an argument of {factory!r} ({sorted(accepted)})")
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence | np.ndarray):
            raise TypeError(f"{where} must be a list of numbers, got {options!r}")
        if len(options) == 0:
            raise ValueError(f"{where} is empty")
        for value in options:
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"{where} must hold numbers, got {value!r}")
            checked("value", value)
        values[name] = [float(value) for value in options]
    names = tuple(values)
    combos = itertools.product(*values.values())
    return names, [dict(zip(names, combo, strict=True)) for combo in combos]


def argument_names(factory: Callable) -> frozenset[str] | None:
    """The names `factory` accepts, or ``None`` when it takes any (``**kwargs``)."""
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL)
