"""Whole matrices computed once each, on an owner device: the matrix optimizers on a mesh.

Muon orthogonalizes each weight matrix and SOAP eigendecomposes each preconditioner
statistic: work on a *whole* matrix, which a split parameter does not hold on any one
device.  Left to itself, ``jax.jit`` gathers every such matrix onto every device and
each device repeats every matrix's work.  [`owner_map`][jopt.sharding.owner_map]
instead gives each matrix one owner among the devices of a mesh axis:

1. items of the same shapes and dtypes are stacked, the stack padded with zeros to a
   multiple of the axis size ``n``;
2. the stack is split over the axis along its stack dimension (an all-to-all moves
   each item to its owner), and each device applies the function to its
   ``k / n`` items only (``shard_map`` of ``vmap(fn)``);
3. each result is split over the axis again, along its first dimension that ``n``
   divides (the rule of [`fsdp_shardings`][jopt.sharding.fsdp_shardings]; another
   all-to-all), so no device holds every result.

Every device runs ``⌈k / n⌉`` items of each group (padding included): a group of one
matrix costs each device one matrix's work, as it would without an owner, but without
the collectives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from jopt._validation import check
from jopt.sharding import _leaves

__all__ = ["owner_map"]


def _explicit(mesh, axis: str) -> bool:
    types = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
    return types[axis] == jax.sharding.AxisType.Explicit


def _constrain(x: jax.Array, mesh, spec: PartitionSpec, explicit: bool) -> jax.Array:
    if explicit:
        return jax.sharding.reshard(x, NamedSharding(mesh, spec))
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def _split(shape: tuple[int, ...], mesh, axis: str) -> PartitionSpec:
    """One item of ``shape`` split over ``axis`` (first dimension it divides), else whole."""
    spec, dim, _ = _leaves.split_spec(tuple(shape), PartitionSpec(), axis, mesh)
    return spec if dim is not None else PartitionSpec()


def _signature(item: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(item)
    return treedef, tuple((tuple(jnp.shape(x)), jnp.result_type(x)) for x in leaves)


def _groups(items: Sequence[Any]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(_signature(item), []).append(i)
    return groups


def _stacked(items, indices, slots, padded, mesh, axis, explicit):
    """The group's leaves stacked in their slots (zeros elsewhere), each item split."""
    columns = list(zip(*(jax.tree.leaves(items[i]) for i in indices), strict=True))
    stacks = []
    for column in columns:
        zeros = jnp.zeros_like(column[0])
        by_slot = [zeros] * padded
        for slot, x in zip(slots, column, strict=True):
            by_slot[slot] = jnp.asarray(x)
        stack = jnp.stack(by_slot)
        spec = _split(column[0].shape, mesh, axis)
        stacks.append(_constrain(stack, mesh, PartitionSpec(None, *spec), explicit))
    return stacks


def owner_map(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    mesh: jax.sharding.Mesh,
    *,
    axis: str = "data",
    shared: Any = None,
) -> list[Any]:
    """``[fn(item) for item in items]``, each item computed once, on one device of ``axis``.

    Items with the same structure, shapes and dtypes are stacked and the stack is
    split over the mesh axis ``axis``: with ``n`` devices on it, each device applies
    ``fn`` to ``⌈k / n⌉`` of a group's ``k`` items, whole (XLA moves each item to its
    owner with an all-to-all), and the results are split over the axis again along
    their first dimension that ``n`` divides (whole on every device where none does).
    No device gathers every item.  Use it under ``jax.jit`` on arrays laid out on
    ``mesh`` (for instance by [`fsdp_shardings`][jopt.sharding.fsdp_shardings]);
    [`jopt.muon`][jopt.muon] and [`jopt.soap`][jopt.soap] use it when given ``mesh=``.

    The values are those of the loop: ``fn`` sees one item at a time (it is
    vectorized with ``jax.vmap``; a group is padded with zero items, whose results
    are dropped).  On other mesh axes the items are replicated.

    Args:
      fn: a function of one item returning a pytree of arrays; it must be
        vectorizable by ``jax.vmap`` and hold no collectives.
      items: a list of items, each an array or a pytree of arrays (for instance
        ``(statistic, basis)`` pairs).
      mesh: the device mesh.
      axis: the mesh axis whose devices own the items (default ``"data"``).
      shared: ``None``, or a pytree of arrays every item needs (a step count): then
        ``fn(item, shared)`` is computed, with ``shared`` replicated.  On a mesh whose
        axes are ``Explicit``, ``fn`` may close over no array: pass it here.

    Returns:
      The list of ``fn(item)`` (``fn(item, shared)``), in the order of ``items``.

    Raises:
      TypeError: an argument has the wrong type.
      ValueError: ``axis`` is not an axis of ``mesh``.
    """
    check(fn=fn, items=items, mesh=mesh, axis=axis)
    _leaves.check_axis(axis, mesh, "owner_map")
    explicit = _explicit(mesh, axis)
    n = dict(mesh.shape)[axis]
    replicated = PartitionSpec()
    if shared is not None and explicit:
        shared = jax.tree.map(lambda x: _constrain(x, mesh, replicated, explicit), shared)
    batched = jax.shard_map(
        jax.vmap(fn if shared is not None else lambda item, _: fn(item), in_axes=(0, None)),
        mesh=mesh,
        in_specs=(PartitionSpec(axis), replicated),
        out_specs=PartitionSpec(axis),
    )
    results: list[Any] = [None] * len(items)
    for indices in _groups(items).values():
        padded = math.ceil(len(indices) / n) * n
        slots = list(range(len(indices)))  # device d owns slots d·padded/n onwards
        treedef = jax.tree.structure(items[indices[0]])
        stacks = _stacked(items, indices, slots, padded, mesh, axis, explicit)
        if explicit:  # shard_map takes its inputs as they are split on an explicit mesh
            stacks = [_constrain(x, mesh, PartitionSpec(axis), explicit) for x in stacks]
        out = batched(treedef.unflatten(stacks), shared)
        out = jax.tree.map(
            lambda o: _constrain(
                o, mesh, PartitionSpec(None, *_split(o.shape[1:], mesh, axis)), explicit
            ),
            out,
        )
        for slot, i in zip(slots, indices, strict=True):
            results[i] = jax.tree.map(lambda o, s=slot: o[s], out)
    return results
