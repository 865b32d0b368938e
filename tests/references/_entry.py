"""The shape of a reference entry, and what every restatement shares."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class TorchPort:
    """How ``docs/porting.md`` maps a ``torch.optim`` call to this alias.

    Attributes:
      optimizer: the torch.optim class name, as golden files record it.
      arguments: torch argument -> jopt keyword (a tuple of keywords for a sequence
        such as ``betas``); ``None`` for a torch argument that only selects this alias
        (read by ``selects``) and is not passed on.  ``lr`` always maps to
        ``learning_rate`` (a schedule for ``lr_decay`` and LR schedulers).
      state: torch state entry -> jopt state field; ``None`` where jopt keeps no such
        entry (a step count it does not need).
      selects: whether a torch call (its recorded keyword arguments) is this alias's.
    """

    optimizer: str
    arguments: Mapping[str, str | tuple[str, ...] | None]
    state: Mapping[str, str | None]
    selects: Callable[[Mapping[str, Any]], bool] = lambda hp: True


@dataclasses.dataclass(frozen=True)
class Reference:
    """One optimizer's restatement, the configurations to test, and its capabilities.

    Attributes:
      rule: ``rule(**kwargs) -> (init, step)``; see the module docstring.
      configs: keyword arguments to test; ``configs[0]`` is the main configuration.
      complex_leaves: complex parameters are supported (with ``|g|²``).
      needs_value: ``update`` needs ``value=`` (the loss); the reference's ``step``
        then takes it as a keyword argument too.
      needs_value_fn: ``update`` also needs ``value_fn=`` (params -> loss, which it
        evaluates and differentiates, as a line search does); the reference's
        ``step`` then takes ``value_and_grad=``, a NumPy function of the list of
        leaves returning ``(loss, [gradient per leaf])``.
      differentiable: whether ``jax.grad`` goes through ``update`` in a configuration
        (reverse mode cannot go through a ``lax.while_loop``); the gradient test runs
        the first configuration for which it holds.
      still_without_gradient: a zero gradient leaves the parameters unchanged when
        ``weight_decay`` is 0 (or absent).
      float32_rtol: tolerance of float32 runs against the float64 reference.
      matrix_state: besides state shaped like each parameter, the state holds square
        matrices, one ``(d, d)`` per axis of length ``d`` (SOAP's preconditioners), in
        a tuple at the parameter's path.
      torch: the torch.optim calls this alias ports.
      decay_arguments: the arguments that shrink the parameters even without a
        gradient (``weight_decay``; ASGD's ``lambd`` too): a configuration with all of
        them 0 stands still on a zero gradient.
      factored: the state keeps factored statistics for leaves of 2 dims or more
        (shapes ``(…, n, 1)`` and ``(…, 1, m)``) and leaves a field ``None`` where a
        parameter does not use it (Adafactor).
      vector_state: the state holds the trained entries of all leaves as one vector,
        ``n`` entries long, and histories of them: shapes ``(n,)``, ``(m, n)`` and
        ``(m,)`` (L-BFGS).
      tested_elsewhere: arguments no configuration here sets, because the generic suite
        runs on one device: where the work runs (``mesh``, ``axis``), which
        ``tests/test_owner_sharding.py`` covers on 8 devices and 2 processes.
      unset_fields: state fields that hold NaN until the optimizer has seen what they
        record (L-BFGS's ``prev_value``, the loss at the last iteration's start).
      whole_tree: the rule steps the list of all leaves at once (see the module
        docstring), for optimizers whose leaves are coupled.
    """

    rule: Callable[..., tuple[Callable, Callable]]
    configs: tuple[Mapping[str, Any], ...]
    complex_leaves: bool = True
    needs_value: bool = False
    needs_value_fn: bool = False
    differentiable: Callable[[Mapping[str, Any]], bool] = lambda kwargs: True
    still_without_gradient: bool = True
    float32_rtol: float = 1e-5
    matrix_state: bool = False
    torch: tuple[TorchPort, ...] = ()
    decay_arguments: tuple[str, ...] = ("weight_decay",)
    factored: bool = False
    vector_state: bool = False
    unset_fields: tuple[str, ...] = ()
    tested_elsewhere: tuple[str, ...] = ()
    whole_tree: bool = False

    def tree_rule(self, **kwargs: Any) -> tuple[Callable, Callable]:
        """``(init, step)`` over a list of leaves, whatever form the rule has.

        ``init(leaves) -> state`` and ``step(leaves, grads, state, t, **extra) ->
        (new_leaves, new_state)``; a per-leaf rule is applied to each leaf in turn.
        """
        init, step = self.rule(**kwargs)
        if self.whole_tree:
            return init, step

        def tree_init(leaves):
            return [init(p) for p in leaves]

        def tree_step(leaves, grads, states, t, **extra):
            results = [
                step(p, g, s, t, **extra) for p, g, s in zip(leaves, grads, states, strict=True)
            ]
            return [r[0] for r in results], [r[1] for r in results]

        return tree_init, tree_step

    @property
    def main(self) -> Mapping[str, Any]:
        return self.configs[0]

    @property
    def differentiable_config(self) -> Mapping[str, Any]:
        """The first configuration ``jax.grad`` goes through (see ``differentiable``)."""
        return next(c for c in self.configs if self.differentiable(c))

    def defaults(self) -> dict[str, Any]:
        return {
            name: p.default
            for name, p in inspect.signature(self.rule).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    def state_shape_ok(self, state_shape: tuple[int, ...], shape: tuple[int, ...], trained: int):
        """Whether a state leaf may have ``state_shape`` for a parameter of ``shape``,
        ``trained`` the number of trained entries in the whole tree."""
        histories = len(state_shape) == 1 or (len(state_shape) == 2 and state_shape[1] == trained)
        vector = self.vector_state and histories
        return vector or state_shape in self.state_shapes(shape)

    def state_shapes(self, shape: tuple[int, ...]) -> set[tuple[int, ...]]:
        """The shapes a state leaf may have for a parameter of ``shape``."""
        shapes = {(), shape}
        if self.factored and len(shape) >= 2:
            shapes |= {(*shape[:-1], 1), (*shape[:-2], 1, shape[-1])}
        if self.matrix_state:  # one square matrix per axis
            shapes |= {(n, n) for n in shape}
        return shapes

    def decays(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether ``kwargs`` (over the defaults) has a non-zero decay argument: one of
        ``decay_arguments`` or any argument named ``*_weight_decay`` (``None`` is no
        value)."""
        values = {**self.defaults(), **kwargs}
        return any(bool(v) for k, v in values.items() if self.is_decay(k, v))

    def is_decay(self, name: str, value: Any) -> bool:
        """Whether argument ``name`` is a decay amount (not a flag such as
        ``decoupled_weight_decay``) with a value."""
        named = name in self.decay_arguments or name.endswith("weight_decay")
        return named and value is not None and not isinstance(value, bool)


# --- float64 restatements ----------------------------------------------------------------


def sq(x: np.ndarray) -> np.ndarray:
    """``|x|²`` as a real array."""
    return (x * np.conj(x)).real


def stored(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` rounded to a moment's storage ``dtype`` (``None``: kept as it is).

    A complex moment kept in a real dtype is stored in the matching complex dtype.
    """
    if dtype is None:
        return x
    target = jnp.dtype(dtype)
    if np.iscomplexobj(x):
        target = np.result_type(target, np.complex64)
    return np.asarray(x).astype(target).astype(x.dtype)


# --- torch.optim state and argument names shared by several ports --------------------------

ADAM_STATE = {"exp_avg": "mu", "exp_avg_sq": "nu", "max_exp_avg_sq": "nu_max", "step": "count"}
BETAS = ("b1", "b2")


def decoupled(hp: Mapping[str, Any]) -> bool:
    return bool(hp.get("decoupled_weight_decay", False))
