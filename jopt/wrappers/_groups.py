"""Parameter groups: a different transformation for each group of leaves."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _align, _core, _numerics
from jopt._core import GradientTransformation

__all__ = ["MaskedState", "PartitionState", "freeze", "masked", "partition"]


# --- parameter groups: partition, masked, freeze ----------------------------------------


class _Box:
    """Holds a label while a prefix tree is broadcast, so it is never mistaken for a node."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def _is_function(x: Any) -> bool:
    """A callable that is not itself a tree of labels.

    A pytree node that happens to be callable (an equinox ``Module`` of bools, say) is
    a tree of labels, not a function to call: only a callable *leaf* is called.
    """
    return callable(x) and jax.tree_util.treedef_is_leaf(jax.tree.structure(x))


def _leaf_paths(tree: Any) -> list[str]:
    return _align.paths(tree)


def _per_leaf(prefix: Any, tree: Any, name: str) -> list[Any]:
    """The entry of ``prefix`` that covers each leaf of ``tree`` (``None`` leaves included).

    ``prefix`` has the structure of ``tree`` or of a prefix of it: ``{"head": True,
    "body": False}`` covers every leaf under ``"head"`` and ``"body"``.  A function
    (see ``_is_function``) is called on ``tree`` first.  ``None`` in ``prefix``
    stands for a ``None`` leaf.
    """
    if _is_function(prefix):
        prefix = prefix(tree)
    try:
        full = jax.tree.map(
            lambda entry, sub: jax.tree.map(lambda _: _Box(entry), sub, is_leaf=_numerics.is_none),
            prefix,
            tree,
        )
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} must have the tree structure of the params, or of a prefix of it: {error}"
        ) from None
    boxes = jax.tree.leaves(full, is_leaf=lambda x: x is None or isinstance(x, _Box))
    return [box.value if isinstance(box, _Box) else None for box in boxes]


def _mask_flags(mask: Any, tree: Any, name: str = "mask") -> list[bool]:
    """One Python bool per leaf of ``tree`` from a (prefix) tree of bools or a callable."""
    flags = []
    paths = _leaf_paths(tree)
    for path, flag in zip(paths, _per_leaf(mask, tree, name), strict=True):
        if flag is None:  # a None leaf: nothing to mask
            flags.append(False)
            continue
        if not isinstance(flag, (bool, np.bool_)) and not (
            hasattr(flag, "dtype") and np.shape(flag) == () and flag.dtype == bool
        ):
            raise TypeError(
                f"{name} must hold one bool per parameter leaf, got {flag!r} for params{path}"
            )
        flags.append(bool(flag))
    return flags


def _leaves(tree: Any) -> tuple[list[Any], Any]:
    return jax.tree.flatten(tree, is_leaf=_numerics.is_none)


def _select(tree: Any, flags: list[bool]) -> Any:
    """``tree`` with the leaves whose flag is False replaced by ``None``.

    jopt's blocks give ``None`` leaves no state and pass them through, so an inner
    transformation sees only the selected leaves.
    """
    if tree is None:
        return None
    leaves, treedef = _leaves(tree)
    return treedef.unflatten([x if keep else None for x, keep in zip(leaves, flags, strict=True)])


class PartitionState(NamedTuple):
    """The state of [`partition`][jopt.wrappers.partition].

    Attributes:
      inner_states: ``label -> state`` of that label's transformation, which holds
        state for that group's leaves only.
    """

    inner_states: dict[Hashable, Any]


def partition(
    transforms: Mapping[Hashable, GradientTransformation], *, labels: Any
) -> GradientTransformation:
    """Parameter groups: a different transformation for each labelled group of leaves.

    Every parameter leaf carries a label; ``transforms[label]`` updates exactly the
    leaves with that label and keeps state only for them (torch's ``param_groups``).
    Each transformation sees the full tree with the other groups' leaves set to
    ``None``, which jopt's blocks pass through without state, so a group behaves
    exactly as its optimizer run on that sub-tree alone.  A group that holds no leaf
    (every leaf labelled otherwise, or params that are a single array labelled
    otherwise) is not updated: its state stays as ``init`` made it.

    Args:
      transforms: ``label -> GradientTransformation``; every label used must be a key.
        Labels are hashable pytree leaves (strings, ints) of one type.
      labels: a tree of labels with the structure of the params (or a prefix of it:
        ``{"encoder": "frozen", "head": "train"}`` labels every leaf below), or a
        function ``params -> tree of labels``.  The function is called with the params
        (with the updates when ``update`` is given no params; use only their structure
        and shapes then).

    Returns:
      A transformation whose state is a [`PartitionState`][jopt.wrappers.PartitionState].
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            f"transforms must be a non-empty dict of label -> GradientTransformation, "
            f"got {transforms!r}"
        )
    inner = {
        label: _core._as_transformation(t, f"transforms[{label!r}]")
        for label, t in transforms.items()
    }

    def leaf_labels(tree: Any) -> list[Any]:
        found = _per_leaf(labels, tree, "labels")
        for path, label in zip(_leaf_paths(tree), found, strict=True):
            if label is not None and label not in inner:
                raise ValueError(
                    f"labels: params{path} has label {label!r}, which is not a key of transforms "
                    f"{sorted(map(repr, inner))}"
                )
        return found

    def flags_for(label: Any, found: list[Any]) -> list[bool]:
        return [x is not None and x == label for x in found]

    def init(params):
        found = leaf_labels(params)
        return PartitionState(
            {label: t.init(_select(params, flags_for(label, found))) for label, t in inner.items()}
        )

    def update(updates, state, params=None, **extra_args):
        if params is not None:  # before the labels are read from them
            _align.check_matches(updates, "params", params)
        found = leaf_labels(params if params is not None else updates)
        leaves, treedef = _leaves(updates)
        merged = list(leaves)
        new_states = {}
        for label, t in inner.items():
            flags = flags_for(label, found)
            if not any(flags):  # nothing to update (a lone array's other groups get None)
                new_states[label] = state.inner_states[label]
                continue
            out, new_states[label] = t.update(
                _select(updates, flags),
                state.inner_states[label],
                _select(params, flags),
                **extra_args,
            )
            for i, (leaf, keep) in enumerate(zip(treedef.flatten_up_to(out), flags, strict=True)):
                if keep:
                    merged[i] = leaf
        return treedef.unflatten(merged), PartitionState(new_states)

    return GradientTransformation(init, update)


class MaskedState(NamedTuple):
    """The state of [`masked`][jopt.wrappers.masked].

    Attributes:
      inner_state: the wrapped transformation's state, for the masked-in leaves only.
    """

    inner_state: Any


def masked(optimizer: GradientTransformation, *, mask: Any) -> GradientTransformation:
    """Apply ``optimizer`` to the leaves where ``mask`` is True; pass the others through.

    The leaves where the mask is False keep their incoming updates unchanged (so,
    e.g., ``masked(add_decayed_weights(λ), mask=mask)`` decays only the masked-in leaves)
    and get no state.  Masked-out *gradients* passed through to ``apply_updates``
    would ascend: to hold those parameters still, add [`freeze`][jopt.wrappers.freeze] for them.

    Args:
      optimizer: the transformation for the masked-in leaves (jopt's or optax's).
      mask: a tree of bools with the structure of the params (or a prefix of it), or a
        function ``params -> tree of bools`` (called with the updates when ``update``
        is given no params).

    Returns:
      A transformation whose state is a [`MaskedState`][jopt.wrappers.MaskedState].
    """
    inner = _core._as_transformation(optimizer, "optimizer")

    def init(params):
        return MaskedState(inner.init(_select(params, _mask_flags(mask, params))))

    def update(updates, state, params=None, **extra_args):
        if params is not None:  # before the mask is read from them
            _align.check_matches(updates, "params", params)
        flags = _mask_flags(mask, params if params is not None else updates)
        out, inner_state = inner.update(
            _select(updates, flags), state.inner_state, _select(params, flags), **extra_args
        )
        leaves, treedef = _leaves(updates)
        merged = [
            new if keep else old
            for old, new, keep in zip(leaves, treedef.flatten_up_to(out), flags, strict=True)
        ]
        return treedef.unflatten(merged), MaskedState(inner_state)

    return GradientTransformation(init, update)


def freeze(mask: Any) -> GradientTransformation:
    """Zero the updates of the frozen leaves (``mask`` True); pass the others through.

    ``u = 0`` for frozen leaves, ``u = g`` otherwise; no state.  Used last in a chain,
    ``chain(optimizer, freeze(mask))``, it holds the frozen parameters still.  To also
    keep no optimizer state for them, give the optimizer only the trainable leaves:

    ```python
    jopt.partition({"train": jopt.adam(1e-3), "frozen": jopt.freeze(True)}, labels=labels)
    ```

    Args:
      mask: a tree of bools with the structure of the params (or a prefix of it, so
        ``True`` freezes every leaf), or a function ``params -> tree of bools`` (called
        with the updates).  Integer, boolean and ``None`` leaves pass through.

    Returns:
      A stateless transformation.
    """

    def init(params):
        _mask_flags(mask, params)  # fail at init on a mask that does not fit
        return _core.EmptyState()

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        flags = _mask_flags(mask, updates)
        leaves, treedef = _leaves(updates)
        zeroed = [
            jnp.zeros_like(g) if frozen and _numerics.is_trainable(g) else g
            for g, frozen in zip(leaves, flags, strict=True)
        ]
        return treedef.unflatten(zeroed), state

    return GradientTransformation(init, update)
