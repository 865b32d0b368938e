"""The core of jopt: the gradient-transformation type, chains, and applying updates.

A *gradient transformation* is a pair of pure functions:

```python
state = init(params)
updates, state = update(updates, state, params=None, **extra_args)
```

``updates`` has the structure of ``params`` (usually it starts as the gradient),
``state`` is a pytree of arrays.  Neither function has side effects, so both can be
``jax.jit``-ed, ``jax.vmap``-ed and differentiated.  The pair is a ``NamedTuple`` of
the same shape as optax's, which makes the two libraries interchangeable: optax,
flax's ``TrainState`` and ``nnx.Optimizer`` accept jopt transformations, and
[`chain`][jopt.chain] accepts optax's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from jopt import _align, _numerics

PyTree = Any
Params = PyTree
"""A pytree of parameters: arrays (any float or complex dtype), and ``None``, integer
or boolean leaves, which are passed through untrained."""
Updates = PyTree
"""A pytree with the structure of the params: gradients on the way in, the step to add
to the params on the way out."""
OptState = PyTree
Schedule = Callable[[jax.Array], jax.Array]
"""A learning-rate (or hyperparameter) schedule: ``step -> value``, ``step`` an int32
count starting at 0 on the first update."""
ScalarOrSchedule = float | jax.Array | Schedule
"""A hyperparameter given as a number (a Python float or a 0-d array of any real
dtype) or as a [`Schedule`][jopt.Schedule]."""


class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pure ``(init, update)`` pair, the type of every optimizer and block.

    The same ``NamedTuple`` shape as ``optax.GradientTransformation``: optax's
    chains, flax's ``TrainState`` and ``nnx.Optimizer`` take jopt's, and
    [`jopt.chain`][jopt.chain] takes optax's.

    Attributes:
      init: ``init(params) -> state``, the state (a pytree of arrays) for a tree of
        params.
      update: ``update(updates, state, params=None, **extra_args) -> (updates, state)``:
        the transformed updates, with the structure of ``updates``, and the new
        state.  Keyword arguments it does not know are ignored.
    """

    init: TransformInitFn
    update: TransformUpdateFn


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


def init_empty_state(params: Params) -> EmptyState:
    """The ``init`` of every stateless transformation: returns ``EmptyState()``."""
    del params
    return EmptyState()


def _accepts_extra_args(update_fn: Callable) -> bool:
    try:
        parameters = inspect.signature(update_fn).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _as_transformation(transform: Any, name: str) -> GradientTransformation:
    """``transform`` as a jopt transformation whose update accepts extra arguments.

    Raises:
      TypeError: naming ``name``, when ``transform`` has no callable ``init`` and
        ``update``.
    """
    init = getattr(transform, "init", None)
    update = getattr(transform, "update", None)
    if not (callable(init) and callable(update)):
        raise TypeError(
            f"{name} must be a GradientTransformation with callable init and update, "
            f"got {transform!r}"
        )
    if _accepts_extra_args(update):
        return GradientTransformation(init, update)

    # An optax-style update(updates, state, params=None) that knows no extra arguments.
    def update_without_extra_args(updates, state, params=None, **extra_args):
        del extra_args
        return update(updates, state, params)

    return GradientTransformation(init, update_without_extra_args)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations one after the other.

    ``chain(f, g).update`` computes ``g(f(updates))``: each member receives the updates
    the previous one returned, and the same ``params`` and extra arguments.

    Args:
      *transforms: the members, in order; jopt's or optax's transformations (anything
        with callable ``init`` and ``update``).

    Returns:
      A transformation whose state is the tuple of the members' states, in order.

    Raises:
      TypeError: when a member is not a transformation (the message names its
        position).
      ValueError: when ``update`` gets a state that is not a tuple of one state per
        member.
    """
    members = tuple(_as_transformation(t, f"chain: argument {i}") for i, t in enumerate(transforms))

    def init(params):
        return tuple(t.init(params) for t in members)

    def update(updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(members):
            raise ValueError(
                f"chain of {len(members)} transformations got a state that is not a tuple "
                f"of {len(members)} states: {type(state).__name__}"
                + (f" of length {len(state)}" if isinstance(state, tuple) else "")
            )
        new_state = []
        for member, member_state in zip(members, state, strict=True):
            updates, member_state = member.update(updates, member_state, params, **extra_args)
            new_state.append(member_state)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def identity() -> GradientTransformation:
    """The transformation that returns the updates unchanged.

    Returns:
      A stateless transformation (its state is ``EmptyState()``).
    """

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return GradientTransformation(init_empty_state, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Return ``params + updates``, leaf by leaf, each result in its parameter's dtype.

    ``None`` parameters stay ``None``.  Integer and boolean parameters are returned
    unchanged whatever their update is (``jax.grad(..., allow_int=True)`` gives them
    ``float0`` gradients), so trees with step counters or masks can be trained as a
    whole.

    Args:
      params: the parameters.
      updates: a tree with the structure and leaf shapes of ``params``.

    Returns:
      ``θ + u`` for every trainable leaf, cast back to that leaf's dtype.

    Raises:
      ValueError: when the trees' structures or leaf shapes disagree, naming the first
        differing path (an update is never broadcast into a parameter).
    """
    _align.check_matches(updates, "params", params)

    def apply(param, update):
        if param is None:
            return None
        if update is None or not _numerics.is_trainable(param):
            return param
        param = jnp.asarray(param)
        return (param + update).astype(param.dtype)

    return jax.tree.map(apply, params, updates, is_leaf=lambda x: x is None)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _children(tree: Any) -> list[tuple[str, Any, Any]]:
    """``(path step, name or None, child)`` for each child of a state node; ``[]`` for a leaf."""
    if _is_namedtuple(tree):
        return [(f".{field}", field, getattr(tree, field)) for field in tree._fields]
    if isinstance(tree, dict):
        return [(f"[{key!r}]", key, value) for key, value in tree.items()]
    if isinstance(tree, (tuple, list)):
        return [(f"[{i}]", None, value) for i, value in enumerate(tree)]
    return []


def tree_get_all(tree: PyTree, name: str) -> list[tuple[str, Any]]:
    """Every entry called ``name`` in a nested state, with its path, depth first.

    An entry is a ``NamedTuple`` field or a dict key called ``name``, or a
    ``NamedTuple`` whose class is called ``name``.  The search does not look inside an
    entry it found.

    Args:
      tree: an optimizer state (any nest of ``NamedTuple``s, tuples, lists and dicts).
      name: a field name, dict key or state class name (``"mu"``, ``"TraceState"``).

    Returns:
      A list of ``(path, entry)`` pairs, ``[]`` when nothing matches.  Paths read like
      ``"[1].mu"`` or ``".inner_states['head'][0].trace"``.

    Example:
      ```python
      state = jopt.partition({"a": jopt.adam(), "b": jopt.adam()}, labels=labels).init(params)
      jopt.tree_get_all(state, "mu")
      # [(".inner_states['a'][0].mu", ...), (".inner_states['b'][0].mu", ...)]
      ```
    """
    found: list[tuple[str, Any]] = []

    def walk(node: Any, path: str) -> None:
        for step, key, child in _children(node):
            if key == name or (_is_namedtuple(child) and type(child).__name__ == name):
                found.append((path + step, child))
            else:
                walk(child, path + step)

    if _is_namedtuple(tree) and type(tree).__name__ == name:
        return [("", tree)]
    walk(tree, "")
    return found


def tree_get(tree: PyTree, name: str, default: Any = None) -> Any:
    """The entry called ``name`` in a nested state (see [`tree_get_all`][jopt.tree_get_all]).

    ``tree_get(adam_state, "mu")`` finds Adam's first moment inside a chain's tuple of
    states, wherever the optimizer put it.  The same name as ``optax.tree.get``.

    Args:
      tree: an optimizer state.
      name: a field name, dict key or state class name.
      default: what to return when nothing matches.

    Returns:
      The one matching entry, or ``default``.

    Raises:
      KeyError: when several entries have that name (two Adams under
        [`jopt.partition`][jopt.partition], say), listing their paths; pick one with
        [`tree_get_all`][jopt.tree_get_all].
    """
    found = tree_get_all(tree, name)
    if not found:
        return default
    if len(found) > 1:
        paths = ", ".join(path for path, _ in found)
        raise KeyError(
            f"{name!r} is ambiguous: {len(found)} entries match, at {paths}; use "
            f"jopt.tree_get_all(state, {name!r}) and pick one by its path"
        )
    return found[0][1]
