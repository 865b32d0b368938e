"""Wrappers: transformations that take a transformation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _checks, _core, _tree
from jopt._core import GradientTransformation

# --- skip_nonfinite ------------------------------------------------------------------


class SkipNonfiniteState(NamedTuple):
    """The state of :func:`skip_nonfinite`.

    Attributes:
      inner_state: the wrapped optimizer's state, untouched by skipped steps.
      total_skipped: int32, how many steps were skipped so far (saturating).
      consecutive_nonfinite: int32, how many updates in a row, up to the last one,
        were non-finite, whether skipped or let through; a finite update resets it
        to 0 (saturating).
    """

    inner_state: Any
    total_skipped: jax.Array
    consecutive_nonfinite: jax.Array


def _all_finite(updates: Any) -> jax.Array:
    """A boolean scalar: no trainable leaf of ``updates`` holds a NaN or an infinity."""
    leaves = [g for g in jax.tree.leaves(updates) if _tree.is_trainable(g)]
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in leaves], dtype=bool))


def skip_nonfinite(
    optimizer: GradientTransformation, max_consecutive: int | None = None
) -> GradientTransformation:
    """Skip the steps whose incoming updates hold a NaN or an infinity.

    With ``c`` the number of non-finite updates in a row before this one, a step is
    skipped when ``¬finite(g) ∧ (max_consecutive is None ∨ c < max_consecutive)``.  A
    skipped step returns updates of ``−0.0`` (so ``apply_updates`` returns every
    parameter bit for bit, ``−0.0`` included) and keeps the inner state exactly as it
    was; it adds 1 to ``total_skipped``.  Every non-finite update adds 1 to
    ``consecutive_nonfinite`` and a finite one resets it to 0.  Once
    ``max_consecutive`` non-finite updates in a row have been skipped the next ones
    go through, so a run that keeps producing NaNs fails visibly instead of stalling.
    ``max_consecutive=0`` lets everything through.

    "Finite" looks at the trainable (floating and complex) leaves of the incoming
    updates only; ``None``, integer and boolean leaves are ignored.  The choice is made
    with ``jnp.where``, not Python branching, so the wrapper works under ``jit`` and
    ``vmap``; the inner update is computed on every step and discarded when skipped.

    Args:
      optimizer: the wrapped transformation (jopt's or optax's).
      max_consecutive: ``None`` (skip every non-finite step) or an integer ``>= 0``.

    Returns:
      A transformation whose state is a :class:`SkipNonfiniteState`.
    """
    inner = _core._as_transformation(optimizer, "skip_nonfinite: optimizer")
    if max_consecutive is not None:
        # Above int32's range the counter saturates first: the limit is never reached.
        max_consecutive = min(
            _checks.check_int(max_consecutive, "max_consecutive", 0), _tree.INT32_MAX
        )

    def init(params):
        return SkipNonfiniteState(
            inner_state=inner.init(params),
            total_skipped=_tree.scalar_like(params, 0, jnp.int32),
            consecutive_nonfinite=_tree.scalar_like(params, 0, jnp.int32),
        )

    def update(updates, state, params=None, **extra_args):
        finite = _all_finite(updates)
        skip = jnp.logical_not(finite)
        if max_consecutive is not None:
            skip = skip & (state.consecutive_nonfinite < max_consecutive)
        new_updates, new_inner = inner.update(updates, state.inner_state, params, **extra_args)
        inner_state = jax.tree.map(
            lambda old, new: jnp.where(skip, old, new), state.inner_state, new_inner
        )
        # x + (−0.0) == x for every x, −0.0 included; x + 0.0 would turn −0.0 into 0.0.
        new_updates = _tree.map_updates(
            lambda u: jnp.where(skip, -jnp.zeros_like(u), u), new_updates
        )
        return new_updates, SkipNonfiniteState(
            inner_state=inner_state,
            total_skipped=jnp.where(
                skip, _tree.safe_increment(state.total_skipped), state.total_skipped
            ),
            consecutive_nonfinite=jnp.where(
                finite, 0, _tree.safe_increment(state.consecutive_nonfinite)
            ).astype(jnp.int32),
        )

    return GradientTransformation(init, update)


# --- parameter groups: partition, masked, freeze ----------------------------------------


class _Box:
    """Holds a label while a prefix tree is broadcast, so it is never mistaken for a node."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def _per_leaf(prefix: Any, tree: Any, name: str) -> list[Any]:
    """The entry of ``prefix`` that covers each leaf of ``tree`` (``None`` leaves included).

    ``prefix`` has the structure of ``tree`` or of a prefix of it: ``{"head": True,
    "body": False}`` covers every leaf under ``"head"`` and ``"body"``.  A callable is
    called on ``tree`` first.  ``None`` in ``prefix`` stands for a ``None`` leaf.
    """
    if callable(prefix):
        prefix = prefix(tree)
    try:
        full = jax.tree.map(
            lambda entry, sub: jax.tree.map(lambda _: _Box(entry), sub, is_leaf=_tree._is_none),
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
    for i, flag in enumerate(_per_leaf(mask, tree, name)):
        if flag is None:  # a None leaf: nothing to mask
            flags.append(False)
            continue
        if not isinstance(flag, (bool, np.bool_)) and not (
            hasattr(flag, "dtype") and np.shape(flag) == () and flag.dtype == bool
        ):
            raise TypeError(
                f"{name} must hold one bool per parameter leaf, got {flag!r} for leaf {i}"
            )
        flags.append(bool(flag))
    return flags


def _leaves(tree: Any) -> tuple[list[Any], Any]:
    return jax.tree.flatten(tree, is_leaf=_tree._is_none)


def _select(tree: Any, flags: list[bool]) -> Any:
    """``tree`` with the leaves whose flag is False replaced by ``None``.

    jopt's blocks give ``None`` leaves no state and pass them through, so an inner
    transformation sees only the selected leaves.
    """
    if tree is None:
        return None
    leaves, treedef = _leaves(tree)
    return treedef.unflatten([x if keep else None for x, keep in zip(leaves, flags)])


class PartitionState(NamedTuple):
    """``inner_states``: ``label -> state`` of that label's transformation."""

    inner_states: dict[Hashable, Any]


def partition(
    transforms: Mapping[Hashable, GradientTransformation], labels: Any
) -> GradientTransformation:
    """Parameter groups: a different transformation for each labelled group of leaves.

    Every parameter leaf carries a label; ``transforms[label]`` updates exactly the
    leaves with that label and keeps state only for them (torch's ``param_groups``).
    Each transformation sees the full tree with the other groups' leaves set to
    ``None``, which jopt's blocks pass through without state, so a group behaves
    exactly as its optimizer run on that sub-tree alone.

    Args:
      transforms: ``label -> GradientTransformation``; every label used must be a key.
        Labels are hashable pytree leaves (strings, ints) of one type.
      labels: a tree of labels with the structure of the params (or a prefix of it:
        ``{"encoder": "frozen", "head": "train"}`` labels every leaf below), or a
        function ``params -> tree of labels``.  The function is called with the params
        (with the updates when ``update`` is given no params; use only their structure
        and shapes then).

    Returns:
      A transformation whose state is a :class:`PartitionState`.
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
        for i, label in enumerate(found):
            if label is not None and label not in inner:
                raise ValueError(
                    f"labels: leaf {i} has label {label!r}, which is not a key of transforms "
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
        found = leaf_labels(params if params is not None else updates)
        leaves, treedef = _leaves(updates)
        merged = list(leaves)
        new_states = {}
        for label, t in inner.items():
            flags = flags_for(label, found)
            out, new_states[label] = t.update(
                _select(updates, flags),
                state.inner_states[label],
                _select(params, flags),
                **extra_args,
            )
            for i, (leaf, keep) in enumerate(zip(treedef.flatten_up_to(out), flags)):
                if keep:
                    merged[i] = leaf
        return treedef.unflatten(merged), PartitionState(new_states)

    return GradientTransformation(init, update)


class MaskedState(NamedTuple):
    """``inner_state``: the wrapped transformation's state, for the masked-in leaves only."""

    inner_state: Any


def masked(optimizer: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply ``optimizer`` to the leaves where ``mask`` is True; pass the others through.

    The leaves where the mask is False keep their incoming updates unchanged (so,
    e.g., ``masked(add_decayed_weights(λ), mask)`` decays only the masked-in leaves)
    and get no state.  Masked-out *gradients* passed through to ``apply_updates``
    would ascend: to hold those parameters still, add :func:`freeze` for them.

    Args:
      optimizer: the transformation for the masked-in leaves (jopt's or optax's).
      mask: a tree of bools with the structure of the params (or a prefix of it), or a
        function ``params -> tree of bools`` (called with the updates when ``update``
        is given no params).

    Returns:
      A transformation whose state is a :class:`MaskedState`.
    """
    inner = _core._as_transformation(optimizer, "optimizer")

    def init(params):
        return MaskedState(inner.init(_select(params, _mask_flags(mask, params))))

    def update(updates, state, params=None, **extra_args):
        flags = _mask_flags(mask, params if params is not None else updates)
        out, inner_state = inner.update(
            _select(updates, flags), state.inner_state, _select(params, flags), **extra_args
        )
        leaves, treedef = _leaves(updates)
        merged = [
            new if keep else old
            for old, new, keep in zip(leaves, treedef.flatten_up_to(out), flags)
        ]
        return treedef.unflatten(merged), MaskedState(inner_state)

    return GradientTransformation(init, update)


def freeze(mask: Any) -> GradientTransformation:
    """Zero the updates of the frozen leaves (``mask`` True); pass the others through.

    ``u = 0`` for frozen leaves, ``u = g`` otherwise; no state.  Used last in a chain,
    ``chain(optimizer, freeze(mask))``, it holds the frozen parameters still.  To also
    keep no optimizer state for them, give the optimizer only the trainable leaves::

        jopt.partition({"train": jopt.adam(1e-3), "frozen": jopt.freeze(True)}, labels)

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
            jnp.zeros_like(g) if frozen and _tree.is_trainable(g) else g
            for g, frozen in zip(leaves, flags)
        ]
        return treedef.unflatten(zeroed), state

    return GradientTransformation(init, update)


# --- gradient accumulation ----------------------------------------------------------------


class AccumulateState(NamedTuple):
    """The state of :func:`accumulate`.

    Attributes:
      micro_step: int32 in ``[0, every_k)``, the micro-steps since the last inner update.
      grad_sum: the sum of their updates, one buffer shaped (and typed) like the params.
      inner_state: the wrapped optimizer's state, changed only on inner updates.
    """

    micro_step: jax.Array
    grad_sum: Any
    inner_state: Any


def accumulate(optimizer: GradientTransformation, every_k: int) -> GradientTransformation:
    """Gradient accumulation: one inner update every ``every_k`` micro-steps, on the mean.

    With ``k = every_k`` and micro-step gradients ``g₁ … g_k``: the first ``k − 1``
    micro-steps only add to the buffer ``s ← s + gᵢ`` and return zero updates (the
    params do not move, so all ``k`` gradients are taken at the same point); the
    ``k``-th runs the inner update on ``ḡ = (s + g_k) / k`` and resets ``s`` to zero.
    Over ``k·n`` micro-steps this is the inner optimizer on ``n`` steps of averaged
    gradients: with equal micro-batches of a mean loss, the large-batch run.

    The inner update sits in a ``lax.cond`` on the micro-step counter, so under ``jit``
    it runs only on the ``k``-th micro-step (not on every micro-step with the result
    discarded afterwards); under ``vmap`` the ``cond`` becomes a select and both sides
    run.  Memory: the inner state plus one params-shaped buffer and an int32 counter.
    The buffer has the params' dtype, so for bfloat16 params the sum is rounded to
    bfloat16 at each micro-step.

    Args:
      optimizer: the inner transformation (jopt's or optax's).
      every_k: the number of micro-steps per inner update, an integer ``>= 1``.

    Returns:
      A transformation whose state is an :class:`AccumulateState`.
    """
    inner = _core._as_transformation(optimizer, "optimizer")
    k = _checks.check_int(every_k, "every_k", 1)

    def init(params):
        return AccumulateState(
            micro_step=_tree.scalar_like(params, 0, jnp.int32),
            grad_sum=_tree.zeros_like(params),
            inner_state=inner.init(params),
        )

    def update(updates, state, params=None, **extra_args):
        _, grad_sum = _tree.map_with_state(
            lambda g, s: (g, (s + g).astype(s.dtype)),
            updates,
            state.grad_sum,
            params=params,
            names=("grad_sum",),
        )

        def run_inner(grad_sum, inner_state):
            mean, _ = _tree.map_with_state(
                lambda g, s: ((s / k).astype(g.dtype), s), updates, grad_sum
            )
            new_updates, inner_state = inner.update(mean, inner_state, params, **extra_args)
            return new_updates, inner_state, _tree.zeros_like(grad_sum)

        def hold(grad_sum, inner_state):
            # Zero updates of exactly the types the inner update would return.
            shapes = jax.eval_shape(run_inner, grad_sum, inner_state)[0]
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return zeros, inner_state, grad_sum

        last = state.micro_step == k - 1
        new_updates, inner_state, grad_sum = jax.lax.cond(
            last, run_inner, hold, grad_sum, state.inner_state
        )
        micro_step = jnp.where(last, 0, state.micro_step + 1).astype(jnp.int32)
        return new_updates, AccumulateState(micro_step, grad_sum, inner_state)

    return GradientTransformation(init, update)
