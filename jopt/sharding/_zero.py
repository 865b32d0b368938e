"""Shardings that follow the params ([`state_shardings`][jopt.sharding.state_shardings]) or split
the state (ZeRO-1)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

from jopt import _numerics, _placement
from jopt._validation import check, checked
from jopt.sharding import _leaves
from jopt.sharding._report import ZeroReport, make_leaf

PyTree = Any


def state_shardings(optimizer, params: PyTree, mesh: Mesh | None = None) -> PyTree:
    """The shardings of ``optimizer.init(params)``'s leaves, derived from the params'.

    The state's structure and shapes come from ``jax.eval_shape(optimizer.init,
    params)``, so nothing is allocated.  A state leaf that belongs to a parameter
    (it sits in a subtree with the params' structure and has that parameter's
    shape, as moments and accumulators do) gets the parameter's sharding; every other
    leaf (step counts, injected hyperparameters, state of another shape) is
    replicated.  ``None`` leaves stay ``None``.

    Args:
      optimizer: a gradient transformation (jopt's or optax's).
      params: the parameters, as ``jax.Array`` or ``jax.ShapeDtypeStruct`` leaves
        carrying their ``sharding``; leaves without one count as replicated.
      mesh: the mesh the replicated leaves are placed on; by default the mesh the
        params are laid out on by their ``NamedSharding``, or their single device if
        they have none.

    Returns:
      A pytree of ``jax.sharding.Sharding`` with the state's structure, ready to
      pass as ``out_shardings`` of a jitted ``init`` or ``in/out_shardings`` of a step.

    Raises:
      TypeError: ``optimizer`` is not a gradient transformation, a param is a tracer,
        or ``mesh`` is not a mesh.
      ValueError: the params are sharded over different meshes, or no sharding can
        be inferred (no ``mesh`` and no param carrying a sharding).
    """
    caller = "state_shardings"
    checked("optimizer", optimizer)
    if mesh is not None:
        checked("mesh", mesh)
    state_leaves, index_tree, param_leaves, _ = _leaves.state_leaves(optimizer, params, caller)
    param_shardings = [
        getattr(p, "sharding", None) if _numerics.is_trainable(p) else None for p in param_leaves
    ]
    if mesh is None:
        mesh = _leaves.mesh_of(param_shardings, caller)
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
    return _leaves.fill(index_tree, values)


def zero_shardings(
    optimizer, params: PyTree, mesh: Mesh, *, axis: str = "data"
) -> tuple[PyTree, ZeroReport]:
    """Shardings that split the optimizer state over a data-parallel mesh axis (ZeRO-1).

    ZeRO stage 1 (Rajbhandari et al., 2020, "ZeRO: Memory optimizations toward
    training trillion parameter models").  Each state leaf keeps its parameter's
    layout on the other mesh axes and is, in addition, split over ``axis``: along the
    first dimension not yet sharded whose size ``n = mesh.shape[axis]`` divides, else
    along a dimension already sharded over other axes whose combined size with
    ``axis`` divides it.  A leaf of shape ``(a, b)`` split on its first dimension
    leaves a block of shape ``(a/n, b)`` on each device.  Leaves that cannot be split
    (0-d counts and hyperparameters, shapes with no divisible dimension) are
    replicated over ``axis`` and listed in the report; nothing raises.  A leaf whose
    parameter is already sharded over ``axis`` (FSDP) keeps that layout.

    Args:
      optimizer: a gradient transformation.
      params: the parameters, as ``jax.Array`` or ``jax.ShapeDtypeStruct`` leaves; a
        ``NamedSharding`` on ``mesh`` is respected, leaves without one (NumPy arrays,
        single-device arrays) count as replicated.
      mesh: the device mesh.
      axis: the name of the data-parallel mesh axis.

    Returns:
      ``(shardings, report)``: a pytree of ``NamedSharding`` with
      the structure of ``optimizer.init(params)`` (``None`` where the state has
      ``None``), and a [`ZeroReport`][jopt.sharding.ZeroReport].

    Raises:
      TypeError: ``optimizer`` is not a gradient transformation, ``mesh`` is not a
        mesh, ``axis`` is not a string, or a param is a tracer.
      ValueError: ``axis`` is not an axis of ``mesh``, or a param is sharded over
        another mesh.
    """
    caller = "zero_shardings"
    check(optimizer=optimizer, mesh=mesh, axis=axis)
    _leaves.check_axis(axis, mesh, caller)
    state_leaves, index_tree, param_leaves, param_paths = _leaves.state_leaves(
        optimizer, params, caller
    )
    # One layout per parameter, shared by all its state leaves (mu, nu, ... of one
    # parameter are split alike, so one slice of its gradient serves them all).
    param_specs: list[tuple[PartitionSpec, int | None, str | None] | None] = []
    for p, path in zip(param_leaves, param_paths, strict=True):
        if not _numerics.is_trainable(p):
            param_specs.append(None)
            continue
        base = _leaves.base_spec(getattr(p, "sharding", None), mesh, path, caller)
        param_specs.append(_leaves.split_spec(tuple(np.shape(p)), base, axis, mesh))

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
            spec, dim, reason = _leaves.split_spec(leaf.shape, base, axis, mesh)
        shardings.append(NamedSharding(mesh, spec))
        report_leaves.append(make_leaf(leaf.path, leaf.shape, leaf.dtype, spec, dim, reason, mesh))
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
    return _leaves.fill(index_tree, shardings), report
