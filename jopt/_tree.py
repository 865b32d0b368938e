"""Leaf-wise maps over (updates, state, params) trees, shared by every building block.

The rules every transformation follows live here, once:

* ``None`` leaves pass through (equinox-style trees carry them).
* Integer and boolean leaves are not trained: they get no state (a ``None`` in its
  place) and their update is passed on unchanged.
* Arithmetic runs in at least float32, whatever the storage dtype, so that bfloat16
  or float16 parameters do not lose their moments or bias corrections to rounding.
* Trees whose structures or shapes disagree raise a ``ValueError`` naming the first
  differing path, at trace time, instead of an XLA error from deep inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
INT32_MAX = np.iinfo(np.int32).max


def _is_none(x: Any) -> bool:
    return x is None


def _dtype(x: Any):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None else np.result_type(x)


def is_trainable(x: Any) -> bool:
    """True for array-like leaves of a floating or complex dtype."""
    if x is None or isinstance(x, (dict, list, tuple)):
        return False
    return bool(jnp.issubdtype(_dtype(x), jnp.inexact))


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype arithmetic runs in: ``dtype`` promoted to at least float32."""
    return jnp.promote_types(dtype, jnp.float32)


def real_dtype(dtype) -> jnp.dtype:
    """float32 for complex64, float64 for complex128, ``dtype`` itself otherwise."""
    return jnp.finfo(dtype).dtype


def zeros_like(params: PyTree, dtype=None, *, real: bool = False) -> PyTree:
    """Zeros shaped like each trainable leaf, ``None`` for every other leaf.

    ``dtype`` overrides the leaf's dtype; ``real=True`` stores complex leaves in their
    real dtype (for accumulators of squared magnitudes).
    """

    def zeros(p):
        if not is_trainable(p):
            return None
        leaf_dtype = dtype if dtype is not None else _dtype(p)
        if dtype is not None and jnp.iscomplexobj(p):
            # A real storage dtype for a complex parameter sets its precision only:
            # storing a complex moment as real would drop its imaginary part.
            leaf_dtype = jnp.promote_types(leaf_dtype, jnp.complex64)
        if real:
            leaf_dtype = real_dtype(leaf_dtype)
        # zeros_like rather than zeros(shape): the state leaf keeps the parameter's
        # sharding (or device), so init on sharded params gives state sharded alike.
        return jnp.zeros_like(p, dtype=leaf_dtype)

    return jax.tree.map(zeros, params, is_leaf=_is_none)


def full_like(params: PyTree, value: float, *, real: bool = False) -> PyTree:
    """Like :func:`zeros_like`, filled with ``value``."""
    return jax.tree.map(
        lambda z: None if z is None else z + value, zeros_like(params, real=real), is_leaf=_is_none
    )


def scalar_like(params: PyTree, value: Any, dtype) -> jax.Array:
    """A 0-d state array (a step count, an injected hyperparameter) for ``params``.

    Scalars are replicated, never split.  When ``params`` holds concrete arrays laid
    out over a multi-device mesh (a :class:`jax.sharding.NamedSharding`), the scalar
    is placed replicated on that mesh, which is where a jitted update returns it: the
    state's shardings are then the same before and after the first step, and the step
    compiles once.  Otherwise (tracers, NumPy or single-device arrays) it is a plain
    ``jnp.asarray(value, dtype)``; so is a traced ``value`` (``init`` under ``jit``).
    """
    if isinstance(value, jax.core.Tracer):
        return jnp.asarray(value, dtype)
    scalar = np.asarray(value, dtype)
    for leaf in jax.tree.leaves(params):
        sharding = getattr(leaf, "sharding", None)
        if (
            isinstance(leaf, jax.Array)
            and not isinstance(leaf, jax.core.Tracer)
            and isinstance(sharding, jax.sharding.NamedSharding)
            and len(sharding.device_set) > 1
        ):
            replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            # make_array_from_callback also works when the mesh spans several hosts.
            return jax.make_array_from_callback((), replicated, lambda _: scalar)
    return jnp.asarray(scalar)


# --- elementwise arithmetic, cheap to trace ------------------------------------------
# jnp's operators promote dtypes and run as nested jitted functions: about 100 µs of
# tracing per operation, paid once per leaf and operation.  When the operands already
# share a floating dtype (the common case inside a block, after the upcast) the lax
# primitive gives the same result for a fraction of that.  Anything else (mixed dtypes,
# broadcasting, NumPy scalars, complex Python numbers) goes through jnp unchanged.


def _lax_operand(x: Any, like: jax.Array):
    """``x`` as an operand of a lax op next to ``like``, or None where jnp must promote."""
    if type(x) in (int, float):  # weakly typed in jnp: takes like's dtype there too
        return np.asarray(x, like.dtype)
    if isinstance(x, jax.Array) and x.dtype == like.dtype and x.ndim in (0, like.ndim):
        if x.ndim == 0 or x.shape == like.shape:
            return x
    return None


def _binary(lax_op: Callable, jnp_op: Callable) -> Callable:
    def op(x: Any, y: Any) -> jax.Array:
        for array, other, array_first in ((y, x, False), (x, y, True)):
            if isinstance(array, jax.Array) and jnp.issubdtype(array.dtype, jnp.inexact):
                operand = _lax_operand(other, array)
                if operand is not None:
                    return lax_op(array, operand) if array_first else lax_op(operand, array)
        return jnp_op(x, y)

    op.__doc__ = f"``{jnp_op.__name__}(x, y)``, traced as one lax primitive where it can be."
    return op


mul = _binary(jax.lax.mul, jnp.multiply)
add = _binary(jax.lax.add, jnp.add)
div = _binary(jax.lax.div, jnp.divide)


def cast(x: jax.Array, dtype) -> jax.Array:
    """``x.astype(dtype)``, without tracing anything when ``x`` already has that dtype."""
    if getattr(x, "dtype", None) == dtype and getattr(x, "weak_type", True) is False:
        return x
    return x.astype(dtype)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` on int32, saturating at the largest int32 instead of wrapping."""
    return jnp.where(count < INT32_MAX, count + 1, INT32_MAX).astype(jnp.int32)


def _paths(tree: PyTree) -> list[str]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)
    return [jax.tree_util.keystr(path) for path, _ in leaves]


def _structure_error(updates: PyTree, name: str, other: PyTree) -> ValueError:
    ours, theirs = _paths(updates), _paths(other)
    theirs_set, ours_set = set(theirs), set(ours)
    for path in ours:
        if path not in theirs_set:
            return ValueError(f"updates{path}: present in updates but not in {name}")
    for path in theirs:
        if path not in ours_set:
            return ValueError(f"{name}{path}: present in {name} but not in updates")
    return ValueError(
        f"updates and {name} have different tree structures: "
        f"{jax.tree.structure(updates, is_leaf=_is_none)} vs "
        f"{jax.tree.structure(other, is_leaf=_is_none)}"
    )


def _align(updates: PyTree, named: Sequence[tuple[str, PyTree]]):
    """Flatten ``updates`` and the trees in ``named`` to aligned leaf lists, or fail clearly."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(updates, is_leaf=_is_none)
    leaves = [leaf for _, leaf in with_paths]
    columns = []
    for name, tree in named:
        try:
            column = treedef.flatten_up_to(tree)
        except (ValueError, TypeError):
            raise _structure_error(updates, name, tree) from None
        for (path, leaf), other in zip(with_paths, column):
            if leaf is None or other is None:
                continue
            if isinstance(other, (dict, list, tuple)):
                raise ValueError(
                    f"updates{jax.tree_util.keystr(path)}: a leaf in updates but a subtree "
                    f"in {name}"
                )
            if np.shape(leaf) != np.shape(other):
                raise ValueError(
                    f"updates{jax.tree_util.keystr(path)}: shape {np.shape(leaf)} vs "
                    f"{name} {np.shape(other)}"
                )
        columns.append(column)
    return leaves, treedef, columns


def check_matches(updates: PyTree, name: str, tree: PyTree) -> None:
    """Raise the ``ValueError`` :func:`map_with_state` would if ``tree`` disagreed.

    For blocks that do not otherwise read ``params``, so that every optimizer checks
    them (at trace time, from shapes only).
    """
    _align(updates, [(name, tree)])


def map_with_state(
    fn: Callable[..., tuple],
    updates: PyTree,
    *states: PyTree,
    params: PyTree = None,
    names: Sequence[str] | None = None,
) -> tuple[PyTree, ...]:
    """Apply ``fn(g, *s) -> (g', *s')`` to every trainable leaf and its state leaves.

    ``states`` are per-leaf state trees built by :func:`zeros_like`; a leaf whose first
    state is ``None`` has no state and its update is passed through.  If ``params`` is
    given it is only checked against ``updates``.  ``names`` (the state fields, e.g.
    ``("mu", "nu")``) only label structure errors.  Returns ``(updates', *states')``.
    """
    if names is not None:
        labels = [f"state.{name}" for name in names]
    else:
        labels = [f"state[{i}]" if len(states) > 1 else "state" for i in range(len(states))]
    named = list(zip(labels, states))
    if params is not None:
        named.append(("params", params))
    leaves, treedef, columns = _align(updates, named)
    columns = columns[: len(states)]
    outputs = [[] for _ in range(1 + len(states))]
    for i, g in enumerate(leaves):
        state_leaves = [column[i] for column in columns]
        if g is None or (state_leaves and state_leaves[0] is None) or not is_trainable(g):
            results = (g, *state_leaves)
        else:
            results = fn(g, *state_leaves)
        for output, result in zip(outputs, results):
            output.append(result)
    return tuple(treedef.unflatten(output) for output in outputs)


def map_updates(fn: Callable[..., Any], updates: PyTree, *others: tuple[str, PyTree]) -> PyTree:
    """Apply ``fn(g, *o) -> g'`` to every trainable leaf; ``others`` are ``(name, tree)``.

    A leaf whose update is not trainable, or whose leaf in any other tree is ``None``
    or not trainable, passes through unchanged.
    """
    leaves, treedef, columns = _align(updates, others)
    out = []
    for i, g in enumerate(leaves):
        other_leaves = [column[i] for column in columns]
        if is_trainable(g) and all(is_trainable(o) for o in other_leaves):
            out.append(fn(g, *other_leaves))
        else:
            out.append(g)
    return treedef.unflatten(out)
