"""The state's leaves, each tied to the parameter it belongs to, and layout helpers.

Shared by [`state_shardings`][jopt.sharding.state_shardings],
[`zero_shardings`][jopt.sharding.zero_shardings] and
[`fsdp_shardings`][jopt.sharding.fsdp_shardings]: all three read the state's structure and shapes
from ``jax.eval_shape(optimizer.init, params)`` (nothing is allocated) and lay out a state leaf that
belongs to a parameter like that parameter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec, Sharding

from jopt import _numerics, _placement

PyTree = Any


@dataclasses.dataclass(frozen=True)
class StateLeaf:
    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    param: int | None  # index of the parameter leaf this state leaf belongs to


def param_leaves(params: PyTree, caller: str):
    """Param leaves (``None`` kept as a leaf), their paths, and their tree structure."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(params, is_leaf=_numerics.is_none)
    paths = [jax.tree_util.keystr(path) for path, _ in with_paths]
    leaves = [leaf for _, leaf in with_paths]
    for path, leaf in zip(paths, leaves, strict=True):
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(
                f"{caller}: params{path} is a tracer; call {caller} outside jit, on concrete "
                "arrays or jax.ShapeDtypeStruct leaves"
            )
    return leaves, paths, treedef


def _is_state_of(subtree: PyTree, leaves_of_params: list, param_def) -> list | None:
    """The state leaves of ``subtree`` if it is a per-parameter state tree, else ``None``.

    A per-parameter state tree (what ``Field.zeros()`` builds) has the params'
    structure, a floating leaf of the parameter's shape (or of it reduced to 1 on some
    axes) for trainable parameters (or ``None``) and ``None`` for the others.  Integer
    leaves such as step counts never match, even when a parameter is 0-d.
    """
    leaves, treedef = jax.tree_util.tree_flatten(subtree, is_leaf=_numerics.is_none)
    if treedef != param_def:
        return None
    matched = False
    for leaf, param in zip(leaves, leaves_of_params, strict=True):
        if leaf is None:
            continue
        if not _numerics.is_trainable(param) or not jnp.issubdtype(leaf.dtype, jnp.inexact):
            return None
        if not _placement.fits_param(leaf.shape, np.shape(param)):
            return None
        matched = True
    return leaves if matched else None


def state_leaves(optimizer, params: PyTree, caller: str):
    """The state's shapes (``jax.eval_shape``) with each leaf tied to its parameter.

    Returns ``(leaves, index_tree, param_leaves, param_paths)``: one ``StateLeaf``
    per array leaf of the state, the state's structure with each array leaf replaced
    by its index in ``leaves``, and the params' leaves and paths.
    """
    leaves_of_params, param_paths, param_def = param_leaves(params, caller)
    shapes = jax.eval_shape(optimizer.init, params)
    found: list[StateLeaf] = []

    def walk(subtree, prefix: str):
        # Returns the subtree with every array leaf replaced by its index in found.
        if subtree is None:
            return None
        matched = _is_state_of(subtree, leaves_of_params, param_def)
        if matched is not None:
            indices = []
            for i, (leaf, path) in enumerate(zip(matched, param_paths, strict=True)):
                if leaf is None:
                    indices.append(None)
                    continue
                indices.append(len(found))
                found.append(StateLeaf(prefix + path, tuple(leaf.shape), np.dtype(leaf.dtype), i))
            return param_def.unflatten(indices)
        # Flatten one level: the children of this node become the leaves.
        children, node_def = jax.tree_util.tree_flatten_with_path(
            subtree, is_leaf=lambda x: x is not subtree
        )
        if len(children) == 1 and children[0][1] is subtree:  # an array leaf
            found.append(StateLeaf(prefix, tuple(subtree.shape), np.dtype(subtree.dtype), None))
            return len(found) - 1
        return node_def.unflatten(
            [walk(child, prefix + jax.tree_util.keystr(path)) for path, child in children]
        )

    index_tree = walk(shapes, "")
    return found, index_tree, leaves_of_params, param_paths


def fill(index_tree: PyTree, values: list) -> PyTree:
    """Replace the indices of ``index_tree`` by ``values[index]``."""
    return jax.tree.map(
        lambda i: None if i is None else values[i], index_tree, is_leaf=_numerics.is_none
    )


def mesh_of(shardings: Iterable[Sharding | None], caller: str):
    """The one mesh the ``NamedSharding`` among ``shardings`` use, or ``None``."""
    meshes = []
    for sharding in shardings:
        if isinstance(sharding, NamedSharding) and sharding.mesh not in meshes:
            meshes.append(sharding.mesh)
    if len(meshes) > 1:
        raise ValueError(
            f"{caller}: params are sharded over {len(meshes)} different meshes "
            f"({', '.join(str(dict(m.shape)) for m in meshes)}); pass mesh= to choose one"
        )
    return meshes[0] if meshes else None


def check_axis(axis: str, mesh, caller: str) -> None:
    """``axis`` must name an axis of ``mesh``."""
    if axis not in mesh.axis_names:
        raise ValueError(
            f"{caller}: axis={axis!r} is not an axis of the mesh, whose axes are "
            f"{tuple(mesh.axis_names)}"
        )


# --- partition specs -------------------------------------------------------------------


def spec_axes(entry) -> tuple[str, ...]:
    """The mesh axes one PartitionSpec entry names."""
    if entry is None or entry is PartitionSpec.UNCONSTRAINED:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def base_spec(sharding: Sharding | None, mesh, path: str, caller: str) -> PartitionSpec:
    """A parameter's layout as a spec on ``mesh``; unsharded parameters are replicated."""
    if sharding is None:
        return PartitionSpec()
    if isinstance(sharding, NamedSharding):
        if dict(sharding.mesh.shape) != dict(mesh.shape):
            raise ValueError(
                f"{caller}: params{path} is sharded over the mesh {dict(sharding.mesh.shape)}, "
                f"not over the given mesh {dict(mesh.shape)}"
            )
        return sharding.spec
    if sharding.is_fully_replicated:
        return PartitionSpec()
    raise ValueError(
        f"{caller}: params{path} has a {type(sharding).__name__} that is not replicated; "
        "give it a NamedSharding on the mesh"
    )


def split_spec(
    shape: tuple[int, ...], base: PartitionSpec, axis: str, mesh
) -> tuple[PartitionSpec, int | None, str | None]:
    """``base`` with ``axis`` added on one dimension it divides: ``(spec, dim, reason)``.

    The first dimension not yet sharded whose size the axis divides is chosen (the
    outermost, so the gather of a split update concatenates contiguous blocks); failing
    that, the first dimension already sharded over other axes whose size the product
    of those axes and ``axis`` divides.  ``dim`` is ``None`` and ``reason`` says why
    when no dimension qualifies.
    """
    sizes = dict(mesh.shape)
    n = sizes[axis]
    entries = list(base) + [None] * (len(shape) - len(base))
    for d, entry in enumerate(entries):
        if axis in spec_axes(entry):
            return base, d, None
    if not shape:
        return PartitionSpec(), None, "a scalar"
    if math.prod(shape) == 0:
        return base, None, "empty"
    chosen = None
    for d, size in enumerate(shape):
        if entries[d] is None and size % n == 0:
            chosen = d
            break
    if chosen is None:
        for d, size in enumerate(shape):
            existing = spec_axes(entries[d])
            if existing and size % (math.prod(sizes[a] for a in existing) * n) == 0:
                chosen = d
                break
    if chosen is None:
        return base, None, f"no dimension of shape {shape} is divisible by {axis!r} size {n}"
    existing = spec_axes(entries[chosen])
    entries[chosen] = (*existing, axis) if existing else axis
    while entries and entries[-1] is None:
        entries.pop()
    return PartitionSpec(*entries), chosen, None


def device_nbytes(shape, dtype, spec: PartitionSpec, mesh) -> int:
    """The bytes of the largest block one device holds of an array laid out by ``spec``."""
    sizes = dict(mesh.shape)
    block = [
        -(-size // math.prod(sizes[a] for a in spec_axes(entry)))
        for size, entry in zip(shape, list(spec) + [None] * (len(shape) - len(spec)), strict=True)
    ]
    return math.prod(block) * np.dtype(dtype).itemsize
