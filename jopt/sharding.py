"""Optimizer state on several devices: shardings for ``jax.jit`` (GSPMD) and ``shard_map``.

jopt's transformations are plain JAX functions, so they run unchanged on sharded
arrays; this module only answers *where the state should live*.

**State follows the params.**  ``optimizer.init(params)`` called eagerly on sharded
params returns per-parameter state leaves (moments, accumulators, momentum buffers)
with their parameter's sharding (statistics reduced to size 1 along some axes, such
as Adafactor's factors: unsharded along those), and 0-d leaves (step counts)
replicated on the params' mesh.  Under ``jax.jit`` the output layout is the
compiler's choice unless it is given: ``jax.jit(optimizer.init)(params)`` may return
replicated state.  Pass :func:`state_shardings` as ``out_shardings`` to pin it.

**ZeRO stage 1** (Rajbhandari et al., 2020).  In plain data parallelism every device
keeps a full copy of the params and of the state, so Adam's two moments cost each
device twice the params' memory.  :func:`zero_shardings` instead splits every state
leaf along the data-parallel mesh axis, one block of ``shape[d] / n`` rows per device
for ``n`` devices on that axis.  Jitting the step with those shardings (params
replicated) makes XLA insert the collectives: each device updates only its block of
the state from its block of the averaged gradient, and the new params are gathered.
A sketch, with a batch sharded over ``"data"``::

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    params = jax.device_put(params, NamedSharding(mesh, P()))       # replicated
    optimizer = jopt.adam(1e-3)
    state_sh, report = jopt.sharding.zero_shardings(optimizer, params, mesh)
    print(report)                                 # what was split, what was not
    state = jax.jit(optimizer.init, out_shardings=state_sh)(params)
    params_sh = jax.tree.map(lambda p: p.sharding, params)

    @partial(jax.jit, in_shardings=(params_sh, state_sh, batch_sh),
             out_shardings=(params_sh, state_sh, None), donate_argnums=(0, 1))
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

On a mesh whose axes are ``AxisType.Explicit`` (the default of ``jax.make_mesh`` in
recent JAX), call jitted ``init`` and the step inside ``with jax.set_mesh(mesh):``;
JAX needs the mesh in context to create arrays with an explicit sharding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec, Sharding

from jopt import _numerics, _placement

PyTree = Any

__all__ = ["ZeroLeaf", "ZeroReport", "state_shardings", "zero_shardings"]


# --- matching state leaves to the parameters they belong to -------------------------


@dataclasses.dataclass(frozen=True)
class _StateLeaf:
    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    param: int | None  # index of the parameter leaf this state leaf belongs to


def _check_optimizer(optimizer: Any, caller: str) -> None:
    if not callable(getattr(optimizer, "init", None)):
        raise TypeError(
            f"{caller}: optimizer must be a GradientTransformation with a callable init, "
            f"got {optimizer!r}"
        )


def _param_leaves(params: PyTree, caller: str):
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


def _is_state_of(subtree: PyTree, param_leaves: list, param_def) -> list | None:
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
    for leaf, param in zip(leaves, param_leaves, strict=True):
        if leaf is None:
            continue
        if not _numerics.is_trainable(param) or not jnp.issubdtype(leaf.dtype, jnp.inexact):
            return None
        if not _placement.fits_param(leaf.shape, np.shape(param)):
            return None
        matched = True
    return leaves if matched else None


def _state_leaves(optimizer, params: PyTree, caller: str):
    """The state's shapes (``jax.eval_shape``) with each leaf tied to its parameter."""
    _check_optimizer(optimizer, caller)
    param_leaves, param_paths, param_def = _param_leaves(params, caller)
    shapes = jax.eval_shape(optimizer.init, params)
    state_leaves: list[_StateLeaf] = []

    def walk(subtree, prefix: str):
        # Returns the subtree with every array leaf replaced by its index in state_leaves.
        if subtree is None:
            return None
        matched = _is_state_of(subtree, param_leaves, param_def)
        if matched is not None:
            indices = []
            for i, (leaf, path) in enumerate(zip(matched, param_paths, strict=True)):
                if leaf is None:
                    indices.append(None)
                    continue
                indices.append(len(state_leaves))
                state_leaves.append(
                    _StateLeaf(prefix + path, tuple(leaf.shape), np.dtype(leaf.dtype), i)
                )
            return param_def.unflatten(indices)
        # Flatten one level: the children of this node become the leaves.
        children, node_def = jax.tree_util.tree_flatten_with_path(
            subtree, is_leaf=lambda x: x is not subtree
        )
        if len(children) == 1 and children[0][1] is subtree:  # an array leaf
            state_leaves.append(
                _StateLeaf(prefix, tuple(subtree.shape), np.dtype(subtree.dtype), None)
            )
            return len(state_leaves) - 1
        return node_def.unflatten(
            [walk(child, prefix + jax.tree_util.keystr(path)) for path, child in children]
        )

    index_tree = walk(shapes, "")
    return state_leaves, index_tree, param_leaves, param_paths


def _fill(index_tree: PyTree, values: list) -> PyTree:
    """Replace the indices of ``index_tree`` by ``values[index]``."""
    return jax.tree.map(
        lambda i: None if i is None else values[i], index_tree, is_leaf=_numerics.is_none
    )


def _mesh_of(shardings: Iterable[Sharding | None], caller: str):
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


def _check_mesh(mesh: Any, caller: str) -> None:
    if not isinstance(mesh, (Mesh, AbstractMesh)):
        raise TypeError(f"{caller}: mesh must be a jax.sharding.Mesh, got {mesh!r}")


# --- state_shardings -----------------------------------------------------------------


def state_shardings(optimizer, params: PyTree, mesh: Mesh | None = None) -> PyTree:
    """The shardings of ``optimizer.init(params)``'s leaves, derived from the params'.

    The state's structure and shapes come from ``jax.eval_shape(optimizer.init,
    params)``, so nothing is allocated.  A state leaf that belongs to a parameter
    (it sits in a subtree with the params' structure and has that parameter's
    shape, as moments and accumulators do) gets the parameter's sharding; every other
    leaf (step counts, injected hyperparameters, state of another shape) is
    replicated.  ``None`` leaves stay ``None``.

    Arguments:
      optimizer: any object with ``init(params) -> state`` (jopt's or optax's).
      params: the parameters, as ``jax.Array`` or ``jax.ShapeDtypeStruct`` leaves
        carrying their ``sharding``; leaves without one count as replicated.
      mesh: the mesh the replicated leaves are placed on; by default the mesh the
        params are laid out on by their ``NamedSharding``, or their single device if
        they have none.

    Returns:
      A pytree of :class:`jax.sharding.Sharding` with the state's structure, ready to
      pass as ``out_shardings`` of a jitted ``init`` or ``in/out_shardings`` of a step.

    Raises:
      TypeError: ``optimizer`` has no callable ``init``, a param is a tracer, or
        ``mesh`` is not a mesh.
      ValueError: the params are sharded over different meshes, or no sharding can
        be inferred (no ``mesh`` and no param carrying a sharding).
    """
    caller = "state_shardings"
    if mesh is not None:
        _check_mesh(mesh, caller)
    state_leaves, index_tree, param_leaves, _ = _state_leaves(optimizer, params, caller)
    param_shardings = [
        getattr(p, "sharding", None) if _numerics.is_trainable(p) else None for p in param_leaves
    ]
    if mesh is None:
        mesh = _mesh_of(param_shardings, caller)
    if mesh is not None:
        replicated: Sharding = NamedSharding(mesh, PartitionSpec())
    else:
        devices = {d for s in param_shardings if s is not None for d in s.device_set}
        if len(devices) != 1:
            raise ValueError(
                f"{caller}: cannot tell where to place replicated state leaves: the params "
                f"carry no NamedSharding and lie on {len(devices)} devices; pass mesh="
            )
        replicated = jax.sharding.SingleDeviceSharding(devices.pop())
    values = []
    for leaf in state_leaves:
        sharding = None if leaf.param is None else param_shardings[leaf.param]
        if sharding is not None:
            sharding = _placement.reduced_sharding(
                sharding, leaf.shape, np.shape(param_leaves[leaf.param])
            )
        values.append(replicated if sharding is None else sharding)
    return _fill(index_tree, values)


# --- zero_shardings ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ZeroLeaf:
    """How one state leaf is laid out by :func:`zero_shardings`.

    Attributes:
      path: the leaf's path in the state, e.g. ``"[0].mu['dense']['w']"``.
      shape, dtype: the leaf's shape and dtype.
      spec: its :class:`~jax.sharding.PartitionSpec` on the mesh.
      dim: the dimension split over the ZeRO axis, ``None`` if the leaf is
        replicated over that axis.
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


@dataclasses.dataclass(frozen=True)
class ZeroReport:
    """What :func:`zero_shardings` split over the axis and what it had to replicate.

    Attributes:
      axis: the mesh axis the state is split over.
      axis_size: the number of devices along it.
      leaves: one :class:`ZeroLeaf` per array leaf of the state, in tree order.
      param_shardings: for each trainable parameter, the sharding its per-parameter
        state received (``None`` for other leaves); the same layout serves to split
        the parameter's gradient inside ``shard_map``.
    """

    axis: str
    axis_size: int
    leaves: tuple[ZeroLeaf, ...]
    param_shardings: PyTree = dataclasses.field(repr=False)

    @property
    def split(self) -> tuple[ZeroLeaf, ...]:
        """The leaves split over :attr:`axis`."""
        return tuple(leaf for leaf in self.leaves if leaf.dim is not None)

    @property
    def replicated(self) -> tuple[ZeroLeaf, ...]:
        """The leaves every device along :attr:`axis` holds in full."""
        return tuple(leaf for leaf in self.leaves if leaf.dim is None)

    @property
    def nbytes(self) -> int:
        """Total bytes of the state."""
        return sum(leaf.nbytes for leaf in self.leaves)

    @property
    def device_nbytes(self) -> int:
        """Bytes of the state held by one device."""
        return sum(leaf.device_nbytes for leaf in self.leaves)

    def __str__(self) -> str:
        lines = [
            f"ZeRO over mesh axis {self.axis!r} ({self.axis_size} devices): "
            f"{len(self.split)} of {len(self.leaves)} state leaves split; "
            f"{_bytes(self.device_nbytes)} per device of {_bytes(self.nbytes)} "
            f"({self.device_nbytes / max(self.nbytes, 1):.1%})"
        ]
        for leaf in self.replicated:
            lines.append(
                f"  replicated {leaf.path} {leaf.shape} {leaf.dtype} "
                f"({_bytes(leaf.nbytes)}): {leaf.reason}"
            )
        return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _axes(entry) -> tuple[str, ...]:
    """The mesh axes one PartitionSpec entry names."""
    if entry is None or entry is PartitionSpec.UNCONSTRAINED:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def _base_spec(sharding: Sharding | None, mesh, path: str, caller: str) -> PartitionSpec:
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


def _zero_spec(
    shape: tuple[int, ...], base: PartitionSpec, axis: str, mesh
) -> tuple[PartitionSpec, int | None, str | None]:
    """``base`` with ``axis`` added on one dimension it divides: ``(spec, dim, reason)``.

    The first dimension not yet sharded whose size the axis divides is chosen (the
    outermost, so the gather of a split update concatenates contiguous blocks); failing
    that, the first dimension already sharded over other axes whose size the product
    of those axes and ``axis`` divides.
    """
    sizes = dict(mesh.shape)
    n = sizes[axis]
    entries = list(base) + [None] * (len(shape) - len(base))
    for d, entry in enumerate(entries):
        if axis in _axes(entry):
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
            existing = _axes(entries[d])
            if existing and size % (math.prod(sizes[a] for a in existing) * n) == 0:
                chosen = d
                break
    if chosen is None:
        return base, None, f"no dimension of shape {shape} is divisible by {axis!r} size {n}"
    existing = _axes(entries[chosen])
    entries[chosen] = (*existing, axis) if existing else axis
    while entries and entries[-1] is None:
        entries.pop()
    return PartitionSpec(*entries), chosen, None


def _device_nbytes(shape, dtype, spec: PartitionSpec, mesh) -> int:
    sizes = dict(mesh.shape)
    block = [
        -(-size // math.prod(sizes[a] for a in _axes(entry)))
        for size, entry in zip(shape, list(spec) + [None] * (len(shape) - len(spec)), strict=True)
    ]
    return math.prod(block) * np.dtype(dtype).itemsize


def zero_shardings(
    optimizer, params: PyTree, mesh: Mesh, axis: str = "data"
) -> tuple[PyTree, ZeroReport]:
    """Shardings that split the optimizer state over a data-parallel mesh axis (ZeRO-1).

    Each state leaf keeps its parameter's layout on the other mesh axes and is, in
    addition, split over ``axis``: along the first dimension not yet sharded whose
    size ``n = mesh.shape[axis]`` divides, else along a dimension already sharded
    over other axes whose combined size with ``axis`` divides it.  A leaf of shape
    ``(a, b)`` split on its first dimension leaves a block of shape ``(a/n, b)`` on
    each device.  Leaves that cannot be split (0-d counts and hyperparameters, shapes
    with no divisible dimension) are replicated over ``axis`` and listed in the report;
    nothing raises.  A leaf whose parameter is already sharded over ``axis`` (FSDP)
    keeps that layout.

    Arguments:
      optimizer: any object with ``init(params) -> state``.
      params: the parameters, as ``jax.Array`` or ``jax.ShapeDtypeStruct`` leaves; a
        ``NamedSharding`` on ``mesh`` is respected, leaves without one (NumPy arrays,
        single-device arrays) count as replicated.
      mesh: the device mesh.
      axis: the name of the data-parallel mesh axis.

    Returns:
      ``(shardings, report)``: a pytree of :class:`~jax.sharding.NamedSharding` with
      the structure of ``optimizer.init(params)`` (``None`` where the state has
      ``None``), and a :class:`ZeroReport`.

    Raises:
      TypeError: ``optimizer`` has no callable ``init``, ``mesh`` is not a mesh, or a
        param is a tracer.
      ValueError: ``axis`` is not an axis of ``mesh``, or a param is sharded over
        another mesh.
    """
    caller = "zero_shardings"
    _check_mesh(mesh, caller)
    if not isinstance(axis, str) or axis not in mesh.axis_names:
        raise ValueError(
            f"{caller}: axis={axis!r} is not an axis of the mesh, whose axes are "
            f"{tuple(mesh.axis_names)}"
        )
    state_leaves, index_tree, param_leaves, param_paths = _state_leaves(optimizer, params, caller)
    # One layout per parameter, shared by all its state leaves (mu, nu, ... of one
    # parameter are split alike, so one slice of its gradient serves them all).
    param_specs: list[tuple[PartitionSpec, int | None, str | None] | None] = []
    for p, path in zip(param_leaves, param_paths, strict=True):
        if not _numerics.is_trainable(p):
            param_specs.append(None)
            continue
        base = _base_spec(getattr(p, "sharding", None), mesh, path, caller)
        param_specs.append(_zero_spec(tuple(np.shape(p)), base, axis, mesh))

    shardings, report_leaves = [], []
    for leaf in state_leaves:
        param_shape = None if leaf.param is None else np.shape(param_leaves[leaf.param])
        if param_shape == leaf.shape:
            spec, dim, reason = param_specs[leaf.param]
        else:  # not a parameter's, or reduced from one: split where it can be
            base = PartitionSpec()
            if param_shape is not None:
                param_sharding = NamedSharding(mesh, param_specs[leaf.param][0])
                base = _placement.reduced_sharding(param_sharding, leaf.shape, param_shape).spec
            spec, dim, reason = _zero_spec(leaf.shape, base, axis, mesh)
        shardings.append(NamedSharding(mesh, spec))
        nbytes = math.prod(leaf.shape) * leaf.dtype.itemsize
        report_leaves.append(
            ZeroLeaf(
                path=leaf.path,
                shape=leaf.shape,
                dtype=leaf.dtype,
                spec=spec,
                dim=dim,
                reason=reason,
                nbytes=nbytes,
                device_nbytes=_device_nbytes(leaf.shape, leaf.dtype, spec, mesh),
            )
        )
    param_def = jax.tree_util.tree_structure(params, is_leaf=_numerics.is_none)
    param_shardings = param_def.unflatten(
        [None if s is None else NamedSharding(mesh, s[0]) for s in param_specs]
    )
    report = ZeroReport(
        axis=axis,
        axis_size=dict(mesh.shape)[axis],
        leaves=tuple(report_leaves),
        param_shardings=param_shardings,
    )
    return _fill(index_tree, shardings), report
