"""What a sharding helper split over the mesh axis and what it left replicated."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from jax.sharding import PartitionSpec

from jopt.sharding import _leaves

PyTree = Any


@dataclasses.dataclass(frozen=True)
class ZeroLeaf:
    """How one leaf (of the state, or of the params for FSDP) is laid out.

    Attributes:
      path: the leaf's path, e.g. ``"[0].mu['dense']['w']"`` in the state.
      shape, dtype: the leaf's shape and dtype.
      spec: its ``PartitionSpec`` on the mesh.
      dim: the dimension split over the axis, ``None`` if the leaf is replicated
        over that axis.
      reason: why the leaf is not split (``None`` when it is).
      nbytes: the leaf's total size in bytes.
      device_nbytes: the bytes of the leaf one device holds (the largest block).
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    spec: PartitionSpec
    dim: int | None
    reason: str | None
    nbytes: int
    device_nbytes: int


def make_leaf(path, shape, dtype, spec, dim, reason, mesh) -> ZeroLeaf:
    return ZeroLeaf(
        path=path,
        shape=tuple(shape),
        dtype=np.dtype(dtype),
        spec=spec,
        dim=dim,
        reason=reason,
        nbytes=math.prod(shape) * np.dtype(dtype).itemsize,
        device_nbytes=_leaves.device_nbytes(shape, dtype, spec, mesh),
    )


class _Summary:
    """Totals over ``self.leaves`` shared by the reports."""

    leaves: tuple[ZeroLeaf, ...]
    axis: str
    axis_size: int

    @property
    def split(self) -> tuple[ZeroLeaf, ...]:
        """The leaves split over ``axis``."""
        return tuple(leaf for leaf in self.leaves if leaf.dim is not None)

    @property
    def replicated(self) -> tuple[ZeroLeaf, ...]:
        """The leaves every device along ``axis`` holds in full."""
        return tuple(leaf for leaf in self.leaves if leaf.dim is None)

    @property
    def nbytes(self) -> int:
        """Total bytes of the leaves."""
        return sum(leaf.nbytes for leaf in self.leaves)

    @property
    def device_nbytes(self) -> int:
        """Bytes of the leaves held by one device."""
        return sum(leaf.device_nbytes for leaf in self.leaves)

    def _lines(self, title: str, what: str) -> list[str]:
        lines = [
            f"{title} over mesh axis {self.axis!r} ({self.axis_size} devices): "
            f"{len(self.split)} of {len(self.leaves)} {what} split; "
            f"{format_bytes(self.device_nbytes)} per device of {format_bytes(self.nbytes)} "
            f"({self.device_nbytes / max(self.nbytes, 1):.1%})"
        ]
        for leaf in self.replicated:
            lines.append(
                f"  replicated {leaf.path} {leaf.shape} {leaf.dtype} "
                f"({format_bytes(leaf.nbytes)}): {leaf.reason}"
            )
        return lines


def format_bytes(n: int) -> str:
    """``n`` bytes in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True)
class ZeroReport(_Summary):
    """What [`zero_shardings`][jopt.sharding.zero_shardings] split over the axis and what it had to
    replicate.

    Attributes:
      axis: the mesh axis the state is split over.
      axis_size: the number of devices along it.
      leaves: one [`ZeroLeaf`][jopt.sharding.ZeroLeaf] per array leaf of the state, in tree order.
      param_shardings: for each trainable parameter, the sharding its per-parameter
        state received (``None`` for other leaves); the same layout serves to split
        the parameter's gradient inside ``shard_map``.

    ``split``, ``replicated``, ``nbytes`` and ``device_nbytes`` sum over ``leaves``.
    """

    axis: str
    axis_size: int
    leaves: tuple[ZeroLeaf, ...]
    param_shardings: PyTree = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return "\n".join(self._lines("ZeRO", "state leaves"))


@dataclasses.dataclass(frozen=True)
class FsdpReport(_Summary):
    """What [`fsdp_shardings`][jopt.sharding.fsdp_shardings] split over the axis, for the params and
    the state.

    Attributes:
      axis: the mesh axis the params and the state are split over.
      axis_size: the number of devices along it.
      params: one [`ZeroLeaf`][jopt.sharding.ZeroLeaf] per array leaf of the params
        (paths start with ``params``), in tree order.
      state: one [`ZeroLeaf`][jopt.sharding.ZeroLeaf] per array leaf of the state (paths start with
        ``state``).
      min_size: leaves with fewer elements were left replicated.
      state_memory_kind: ``"pinned_host"`` when the state is offloaded to host
        memory, else ``None`` (the devices' own memory).

    ``leaves`` is ``params + state``; ``split``, ``replicated``, ``nbytes`` and
    ``device_nbytes`` sum over it.
    """

    axis: str
    axis_size: int
    params: tuple[ZeroLeaf, ...]
    state: tuple[ZeroLeaf, ...]
    min_size: int
    state_memory_kind: str | None = None

    @property
    def leaves(self) -> tuple[ZeroLeaf, ...]:
        """The params' leaves, then the state's."""
        return self.params + self.state

    def __str__(self) -> str:
        lines = self._lines("FSDP", "leaves of params and state")
        if self.state_memory_kind is not None:
            lines.append(f"  state in {self.state_memory_kind!r} memory")
        return "\n".join(lines)
