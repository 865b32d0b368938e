"""The block helper: a per-parameter gradient transformation from its state and equation.

Most optimizers are a few *blocks* chained together, and most blocks apply the same
equation to every parameter leaf, each with its own slice of state.
[`block`][jopt.block] turns such an equation into a
[`GradientTransformation`][jopt.GradientTransformation] and owns the plumbing, so that
the block itself is its state type plus its rule:

* ``init``: every per-parameter field starts as [`Field`][jopt.Field] says, shaped like
  its parameter and on the parameter's devices; a ``count`` field is an int32 step
  count and other scalar fields are replicated 0-d arrays.
* ``update``: the count goes up by one (saturating at 2³¹ − 1), then ``rule`` runs once
  per trainable leaf.
* Leaf rules: ``None`` leaves pass through; integer and boolean leaves get no state and
  their updates pass through unchanged; complex leaves work (use
  [`abs_sq`][jopt.abs_sq] for ``|g|²``; ``Field.zeros(real=True)`` stores it real).
* Dtypes: the rule computes in at least float32, whatever the storage dtypes, and every
  result is rounded once, to the update's or the field's storage dtype.
* Errors: trees that disagree in structure or shape raise a ``ValueError`` naming the
  path and the field, at trace time.

Example, a sign-of-momentum block (``u = sign(m)`` with ``m ← β·m + (1 − β)·g``):

```python
class ScaleBySignMomentumState(NamedTuple):
    mu: jopt.Updates

def scale_by_sign_momentum(b1=0.9):
    def rule(g, s):
        mu = b1 * s.mu + (1 - b1) * g
        return jnp.sign(mu), s._replace(mu=mu)

    return jopt.block(ScaleBySignMomentumState, rule, mu=jopt.Field.zeros())
```

In ``rule(g, s)``, ``g`` is one update leaf and ``s`` an instance of the state type
holding that leaf's fields (and the scalar fields, ``count`` being the number of this
update: 1 on the first), all in the compute dtype.  It returns the leaf's update and
its new fields (``s._replace(...)``; scalar fields returned are ignored).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _align, _numerics, _placement
from jopt._core import GradientTransformation

__all__ = ["Field", "abs_sq", "block"]

abs_sq = _numerics.abs_sq


@dataclasses.dataclass(frozen=True)
class Field:
    """How [`block`][jopt.block] initializes one field of a block's state.

    Build one with the constructors below; ``block(State, rule, mu=Field.zeros())``.
    Per-parameter fields (``zeros``, ``full``, ``params``, ``custom``) hold one array
    per trainable leaf, ``None`` elsewhere; a ``scalar`` field holds one 0-d array for
    the whole tree.

    Attributes:
      kind: ``"leaf"``, ``"params"``, ``"custom"`` or ``"scalar"``.
      value: the fill value of a ``"leaf"`` or ``"scalar"`` field.
      dtype: the storage dtype; ``None`` keeps each parameter's (or, for a scalar,
        takes the default float dtype).
      real: store a complex parameter's field in the real dtype.
      init: ``init(param) -> array or None`` of a ``"custom"`` field.
    """

    kind: str
    value: Any = 0.0
    dtype: Any = None
    real: bool = False
    init: Callable[[jax.Array], jax.Array | None] | None = None

    @staticmethod
    def zeros(dtype: Any = None, *, real: bool = False) -> Field:
        """Zeros shaped like each parameter.

        Args:
          dtype: the storage dtype; ``None`` keeps each parameter's dtype.
          real: store a complex parameter's field in the real dtype (for ``|g|²``).

        Returns:
          The field description.
        """
        return Field("leaf", 0.0, dtype, real)

    @staticmethod
    def full(value: Any, dtype: Any = None, *, real: bool = False) -> Field:
        """Like ``Field.zeros``, filled with ``value``.

        Args:
          value: the fill value, a number.
          dtype: the storage dtype; ``None`` keeps each parameter's dtype.
          real: store a complex parameter's field in the real dtype.

        Returns:
          The field description.
        """
        return Field("leaf", value, dtype, real)

    @staticmethod
    def params(dtype: Any = None) -> Field:
        """A copy of each parameter (averaged or slow weights, a starting point).

        Args:
          dtype: the storage dtype; ``None`` keeps each parameter's dtype.

        Returns:
          The field description.
        """
        return Field("params", dtype=dtype)

    @staticmethod
    def custom(init: Callable[[jax.Array], jax.Array | None]) -> Field:
        """``init(param) -> array or None`` for each trainable parameter.

        For state whose shape is not the parameter's: factored statistics, a matrix
        preconditioner.  ``None`` leaves the field out for that parameter; the rule
        then sees ``None`` there.

        Args:
          init: called once per trainable parameter leaf at ``init`` time.

        Returns:
          The field description.
        """
        return Field("custom", init=init)

    @staticmethod
    def scalar(value: Any = 0.0, dtype: Any = None) -> Field:
        """One 0-d value for the whole tree, replicated; updated by ``block(step=…)``.

        Args:
          value: the initial value.
          dtype: the storage dtype; ``None`` means the default float dtype when
            ``init`` runs (float64 with 64-bit types on, float32 otherwise).

        Returns:
          The field description.
        """
        return Field("scalar", value, dtype)

    def build(self, params: Any) -> Any:
        if self.kind == "scalar":
            dtype = self.dtype if self.dtype is not None else jnp.result_type(float)
            return _placement.scalar_like(params, self.value, dtype)

        def leaf(p):
            if not _numerics.is_trainable(p):
                return None
            if self.kind == "params":
                return jnp.asarray(p).astype(_placement.leaf_dtype(p, self.dtype))
            if self.kind == "custom":
                return self.init(p)
            return _placement.full_like(p, self.value, self.dtype, real=self.real)

        return jax.tree.map(leaf, params, is_leaf=_numerics.is_none)


def _block_name(rule: Callable) -> str:
    """``scale_by_adam`` for a rule defined inside ``scale_by_adam``."""
    qualname = getattr(rule, "__qualname__", "block")
    return qualname.split(".<locals>")[0].split(".")[-1]


def _view_dtype(compute, stored: jax.Array):
    # A real-valued field of a complex parameter stays real.
    return compute if jnp.iscomplexobj(stored) else _numerics.real_dtype(compute)


class Block:
    """One [`block`][jopt.block]'s configuration, with its ``init``, ``update`` and leaf step."""

    def __init__(self, state_type, rule, needs_params, step, fields):
        names = state_type._fields
        self.keeps_count = "count" in names and "count" not in fields
        unknown = sorted(set(fields) - set(names))
        missing = [n for n in names if n not in fields and not (n == "count" and self.keeps_count)]
        if unknown or missing:
            raise TypeError(
                f"block({state_type.__name__}, ...): fields {unknown} are not in the state "
                f"type, and {missing} have no Field"
            )
        self.state_type, self.rule, self.step, self.fields = state_type, rule, step, fields
        # What the block is built from: two blocks built alike are the same program.
        self.recipe = (state_type, rule, needs_params, step, fields)
        self.needs_params, self.names, self.name = needs_params, names, _block_name(rule)
        self.leaf_names = [n for n in names if n in fields and fields[n].kind != "scalar"]
        self.scalar_names = [n for n in names if n not in self.leaf_names]
        leaf_update = functools.partial(Block._leaf_update, self)
        leaf_update.__name__ = self.name  # what profiles and HLO dumps call it
        self.leaf_update = leaf_update
        # Under jit, the rule is traced once per distinct leaf signature (shape and
        # dtypes) and reused for every leaf that shares it: tracing and lowering cost per
        # distinct shape, not per leaf.  XLA inlines the calls: the compiled step is the
        # same.  Eager updates run op by op.
        self.traced_leaf_update = jax.jit(leaf_update)

    def _leaf_update(self, g, field_leaves, p, scalars):
        """One leaf: cast to the compute dtype, apply the rule, round once to storage."""
        compute = _numerics.compute_dtype(g.dtype)
        real = _numerics.real_dtype(compute)
        view = {
            n: None if x is None else _numerics.cast(x, _view_dtype(compute, x))
            for n, x in zip(self.leaf_names, field_leaves, strict=True)
        }
        view.update(
            {n: _numerics.cast(x, real) for n, x in zip(self.scalar_names, scalars, strict=True)}
        )
        args = (_numerics.cast(g, compute), self.state_type(**view))
        if self.needs_params:
            args += (_numerics.cast(p, compute),)
        u, new = self.rule(*args)
        new_leaves = tuple(
            None if old is None else _numerics.cast(getattr(new, n), old.dtype)
            for n, old in zip(self.leaf_names, field_leaves, strict=True)
        )
        return _numerics.cast(u, g.dtype), new_leaves

    def init(self, params):
        values = {n: self.fields[n].build(params) for n in self.fields}
        if self.keeps_count:
            values["count"] = _placement.scalar_like(params, 0, jnp.int32)
        return self.state_type(**values)

    def _stepped(self, state):
        """The state with this update's count and scalar fields."""
        if self.names and not isinstance(state, self.state_type):
            raise ValueError(
                f"{self.name}: state must be the {self.state_type.__name__} that init "
                f"returned, got {type(state).__name__}"
            )
        if self.keeps_count:
            state = state._replace(count=_numerics.safe_increment(state.count))
        if self.step is not None:
            stepped = self.step(state)
            state = state._replace(**{n: getattr(stepped, n) for n in self.scalar_names})
        return state

    def update(self, updates, state, params=None, **extra_args):
        del extra_args
        if self.needs_params and params is None:
            raise ValueError(f"{self.name} needs params: call update(updates, state, params)")
        state = self._stepped(state)
        named = [(f"state.{n}", getattr(state, n)) for n in self.leaf_names]
        shapes = [self.fields[n].kind != "custom" for n in self.leaf_names]
        if params is not None:
            named.append(("params", params))
            shapes.append(True)
        leaves, treedef, columns = _align.align(updates, named, shapes=shapes)
        fields = columns[: len(self.leaf_names)]
        param_column = columns[-1] if params is not None else [None] * len(leaves)
        scalars = tuple(getattr(state, n) for n in self.scalar_names)
        outputs, new_fields = list(leaves), [list(c) for c in fields]
        for i, g in enumerate(leaves):
            result = self._leaf(g, tuple(c[i] for c in fields), param_column[i], scalars)
            if result is not None:
                outputs[i], new_leaves = result
                for column, new in zip(new_fields, new_leaves, strict=True):
                    column[i] = new
        if not self.names:  # a stateless block keeps whatever state it is given, as optax's
            return treedef.unflatten(outputs), state
        trees = {n: treedef.unflatten(c) for n, c in zip(self.leaf_names, new_fields, strict=True)}
        return treedef.unflatten(outputs), state._replace(**trees)

    def _leaf(self, g, field_leaves, p, scalars):
        """``(u, new field leaves)`` for one leaf, or ``None`` where it passes through."""
        if not _numerics.is_trainable(g) or (self.needs_params and not _numerics.is_trainable(p)):
            return None
        if self.leaf_names and all(x is None for x in field_leaves):
            return None  # a leaf the state does not cover (masked out, or not trainable)
        # Python and NumPy scalars become arrays (of the default dtypes, as jnp makes them).
        arguments = (jnp.asarray(g), field_leaves, jnp.asarray(p) if self.needs_params else None)
        arguments += (scalars,)
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(arguments))
        return (self.traced_leaf_update if traced else self.leaf_update)(*arguments)


def block(
    state_type: type[NamedTuple],
    rule: Callable[..., tuple[Any, Any]],
    *,
    needs_params: bool = False,
    step: Callable[[Any], Any] | None = None,
    **fields: Field,
) -> GradientTransformation:
    """A per-parameter transformation from its state type and its rule.

    Args:
      state_type: a ``NamedTuple`` class.  A field named ``count`` that is not in
        ``fields`` is the step count, kept by the helper.  Every other field needs an
        entry in ``fields``.
      rule: ``rule(g, s) -> (u, s')``, or ``rule(g, s, p)`` with ``needs_params``; see
        the module docstring.  Write it with plain operators: it runs on one leaf.
      needs_params: pass each parameter leaf to ``rule`` (``update`` then raises a
        ``ValueError`` when called without params).
      step: ``step(s) -> s'`` on the whole state, once per update, after the count
        went up and before the rule runs: the recurrence of the scalar fields.  Only
        the scalar fields of what it returns are kept.
      **fields: a [`Field`][jopt.Field] for each state field but ``count``.

    Returns:
      The transformation; its state is a ``state_type``.

    Raises:
      TypeError: when ``fields`` and the state type's fields disagree.
    """
    configured = Block(state_type, rule, needs_params, step, fields)
    return GradientTransformation(configured.init, configured.update)
