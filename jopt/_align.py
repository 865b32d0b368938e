"""Aligning trees leaf by leaf, with errors that name the first differing path.

Every transformation flattens ``updates`` and the trees that go with it (state fields,
params, masks) against the structure of ``updates``.  Trees whose structures or shapes
disagree raise a ``ValueError`` naming the path, at trace time, instead of an XLA
error from deep inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jopt._numerics import is_none, is_trainable

PyTree = Any


def path_str(path) -> str:
    """A key path as ``['dense']['w']``."""
    return jax.tree_util.keystr(path)


def paths(tree: PyTree) -> list[str]:
    """The path of every leaf of ``tree``, ``None`` leaves included."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_none)
    return [path_str(path) for path, _ in leaves]


def _structure_error(updates: PyTree, name: str, other: PyTree) -> ValueError:
    ours, theirs = paths(updates), paths(other)
    theirs_set, ours_set = set(theirs), set(ours)
    for path in ours:
        if path not in theirs_set:
            return ValueError(f"updates{path}: present in updates but not in {name}")
    for path in theirs:
        if path not in ours_set:
            return ValueError(f"{name}{path}: present in {name} but not in updates")
    return ValueError(
        f"updates and {name} have different tree structures: "
        f"{jax.tree.structure(updates, is_leaf=is_none)} vs "
        f"{jax.tree.structure(other, is_leaf=is_none)}"
    )


def align(updates: PyTree, named: Sequence[tuple[str, PyTree]], *, shapes: Sequence[bool] = ()):
    """Flatten ``updates`` and each ``(name, tree)`` of ``named`` to aligned leaf lists.

    Returns ``(leaves, treedef, columns)``.  Raises a ``ValueError`` naming the path
    where a tree's structure differs or, for the trees whose ``shapes`` flag is true
    (all by default), where a leaf's shape differs from the update's.
    """
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(updates, is_leaf=is_none)
    leaves = [leaf for _, leaf in with_paths]
    columns = []
    for i, (name, tree) in enumerate(named):
        try:
            column = treedef.flatten_up_to(tree)
        except (ValueError, TypeError):
            raise _structure_error(updates, name, tree) from None
        check_shapes = shapes[i] if i < len(shapes) else True
        for (path, leaf), other in zip(with_paths, column, strict=True):
            if leaf is None or other is None:
                continue
            if isinstance(other, (dict, list, tuple)):
                raise ValueError(
                    f"updates{path_str(path)}: a leaf in updates but a subtree in {name}"
                )
            if check_shapes and np.shape(leaf) != np.shape(other):
                raise ValueError(
                    f"updates{path_str(path)}: shape {np.shape(leaf)} vs {name} {np.shape(other)}"
                )
        columns.append(column)
    return leaves, treedef, columns


def check_matches(updates: PyTree, name: str, tree: PyTree) -> None:
    """Raise the ``ValueError`` ``align`` would if ``tree`` disagreed with ``updates``."""
    align(updates, [(name, tree)])


def map_updates(fn: Callable[..., Any], updates: PyTree, *others: tuple[str, PyTree]) -> PyTree:
    """Apply ``fn(g, *o) -> g'`` to every trainable leaf; ``others`` are ``(name, tree)``.

    A leaf whose update is not trainable, or whose leaf in any other tree is ``None``
    or not trainable, passes through unchanged.
    """
    leaves, treedef, columns = align(updates, others)
    out = []
    for i, g in enumerate(leaves):
        other_leaves = [column[i] for column in columns]
        if is_trainable(g) and all(is_trainable(o) for o in other_leaves):
            out.append(fn(g, *other_leaves))
        else:
            out.append(g)
    return treedef.unflatten(out)
