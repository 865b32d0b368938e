"""Live hyperparameters: change a learning rate (or any numeric hyperparameter) without
recompiling.

``inject_hyperparams(jopt.adam)(learning_rate=1e-3)`` builds the same optimizer as
``jopt.adam(learning_rate=1e-3)``, except that its numeric hyperparameters live in the
state as arrays instead of being baked into the compiled update as constants.  A jitted
training step then takes them as inputs, so :func:`set_hyperparams` changes them between
steps with no retracing, and :func:`get_hyperparams` reads them (e.g. to log the current
learning rate).
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _core, _numerics, _placement
from jopt._core import GradientTransformation
from jopt._validation import VOCABULARY, as_number, checked, is_concrete, is_static_zero

__all__ = [
    "InjectHyperparamsState",
    "inject_hyperparams",
    "get_hyperparams",
    "set_hyperparams",
]


class InjectHyperparamsState(NamedTuple):
    """The state of an optimizer built by :func:`inject_hyperparams`.

    Attributes:
      count: the number of updates applied so far (int32, saturating); a schedule is
        evaluated at this count.
      hyperparams: the live numeric hyperparameters, ``name -> 0-d array``; change them
        with :func:`set_hyperparams`.
      scheduled: the hyperparameters given as schedules, ``name -> 0-d array``: the
        value the latest update used, ``schedule(count − 1)`` (``schedule(0)``, the value
        the first update will use, in the state ``init`` returns).
      inner_state: the state of the optimizer built with these values.
    """

    count: jax.Array
    hyperparams: dict[str, jax.Array]
    scheduled: dict[str, jax.Array]
    inner_state: Any


def _is_numeric_scalar(value: Any) -> bool:
    """A real (non-boolean) number or a 0-d array of a real numeric dtype."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    dtype = getattr(value, "dtype", None)
    if dtype is None or np.shape(value) != ():
        return False
    return bool(jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))


def _named_arguments(factory: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Every argument of ``factory(*args, **kwargs)`` by name, defaults included."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError) as error:
        raise TypeError(f"factory: cannot read the signature of {factory!r}") from error
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
            raise TypeError(
                f"factory: inject_hyperparams needs every argument of {factory!r} to be "
                f"passable by name, but {parameter.name!r} is positional-only or *args"
            )
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    named = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return named


def inject_hyperparams(
    factory: Callable[..., GradientTransformation],
    static_args: Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so that its numeric hyperparameters live in the state.

    ``inject_hyperparams(jopt.adam)(learning_rate=1e-3, b1=0.9)`` takes the factory's
    arguments (positional or by name, defaults included) and sorts each one:

    * a real number or 0-d real array is *live*: stored in
      ``state.hyperparams[name]`` as a 0-d array of ``hyperparam_dtype`` (default: the
      default float dtype, float64 when x64 is enabled) and changeable with
      :func:`set_hyperparams`;
    * a callable is a *schedule*: evaluated at the number of updates applied before
      this one (the first update uses ``schedule(0)``) and stored in
      ``state.scheduled[name]``, so ``get_hyperparams(state)[name]`` after an update is
      the value that update used;
    * everything else (booleans such as ``nesterov``, ``amsgrad``, ``centered``,
      ``None``, dtypes, strings, arrays that are not 0-d), the names in
      ``static_args``, and numbers that are a literal Python ``0`` stay *static*: they
      are passed to the factory unchanged.

    A literal Python ``0`` stays static because the optimizers leave the block it
    controls out of the chain (the default ``weight_decay=0.0`` costs nothing and
    ``momentum=0.0`` keeps no momentum buffer), exactly as without injection.  To tune
    such a hyperparameter live from zero, pass it as an array,
    ``weight_decay=jnp.asarray(0.0)``: the block is then in the chain from the start.

    ``update`` rebuilds ``factory(**static, **live, **scheduled)`` with the state's
    values (traced arrays under ``jit``) and runs its update; the structure of the
    inner chain, and so of its state, is the same as at ``init`` because the values
    are arrays both times.  The trajectory equals the one of the factory called with
    the same numbers.  A hyperparameter given as a schedule reaches the factory as a
    number each step, so the inner state has no schedule step count of its own.

    Args:
      factory: a function returning a :class:`~jopt.GradientTransformation`, such as
        :func:`jopt.adam`; every argument must be passable by name.
      static_args: names of arguments to keep static even if numeric or callable
        (e.g. an integer that the factory uses as a Python int).
      hyperparam_dtype: the dtype of the stored hyperparameters.

    Returns:
      A function with the factory's signature that returns the wrapped
      transformation, whose state is an :class:`InjectHyperparamsState`.
    """
    checked("factory", factory)
    if isinstance(static_args, str):
        static_args = (static_args,)
    static_names = frozenset(static_args)
    if hyperparam_dtype is not None:
        hyperparam_dtype = checked("hyperparam_dtype", hyperparam_dtype)

    @functools.wraps(factory)
    def wrapped_factory(*args: Any, **kwargs: Any) -> GradientTransformation:
        named = _named_arguments(factory, args, kwargs)
        unknown = sorted(static_names - set(named))
        if unknown:
            raise ValueError(
                f"static_args names {unknown} that are not arguments of {factory!r}: "
                f"{sorted(named)}"
            )
        dtype = hyperparam_dtype if hyperparam_dtype is not None else jnp.result_type(float)

        static, live, schedules = {}, {}, {}
        for name, value in named.items():
            if name in static_names or isinstance(value, (bool, np.bool_, str)):
                static[name] = value
            elif callable(value):
                schedules[name] = value
            elif _is_numeric_scalar(value) and not is_static_zero(value):
                if is_concrete(value) and not math.isfinite(float(value)):
                    raise ValueError(f"{name} must be finite, got {value!r}")
                live[name] = jnp.asarray(value, dtype=dtype)
            else:
                static[name] = value

        def evaluate_schedules(count: jax.Array) -> dict[str, jax.Array]:
            return {
                name: jnp.asarray(schedule(count), dtype=dtype)
                for name, schedule in schedules.items()
            }

        def build(hyperparams: dict, scheduled: dict) -> GradientTransformation:
            transform = factory(**static, **hyperparams, **scheduled)
            return _core._as_transformation(transform, "factory(...)")

        # Build once now so that a bad hyperparameter fails here, not at the first step.
        count0 = jnp.zeros([], jnp.int32)
        build(live, evaluate_schedules(count0))

        def init(params):
            scheduled = evaluate_schedules(count0)
            inner_state = build(live, scheduled).init(params)
            # The 0-d state arrays are laid out like the inner state's step counts.
            return InjectHyperparamsState(
                _placement.scalar_like(params, count0, jnp.int32),
                {
                    name: _placement.scalar_like(params, value, dtype)
                    for name, value in live.items()
                },
                {
                    name: _placement.scalar_like(params, value, dtype)
                    for name, value in scheduled.items()
                },
                inner_state,
            )

        def update(updates, state, params=None, **extra_args):
            if not isinstance(state, InjectHyperparamsState):
                raise ValueError(
                    f"state must be the InjectHyperparamsState that init returned, got "
                    f"{type(state).__name__}"
                )
            scheduled = evaluate_schedules(state.count)
            inner = build(state.hyperparams, scheduled)
            updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
            new_state = InjectHyperparamsState(
                _numerics.safe_increment(state.count), state.hyperparams, scheduled, inner_state
            )
            return updates, new_state

        return GradientTransformation(init, update)

    return wrapped_factory


# --- reading and writing the live values ------------------------------------------------


def _is_injected(x: Any) -> bool:
    return isinstance(x, InjectHyperparamsState)


def _find_injected(state: Any) -> InjectHyperparamsState:
    """The one :class:`InjectHyperparamsState` inside ``state``."""
    found, _ = jax.tree_util.tree_flatten_with_path(state, is_leaf=_is_injected)
    found = [(path, leaf) for path, leaf in found if _is_injected(leaf)]
    if not found:
        raise ValueError(
            f"state holds no injected hyperparameters (got {type(state).__name__}): build "
            f"the optimizer with jopt.inject_hyperparams(factory)(...)"
        )
    if len(found) > 1:
        paths = [jax.tree_util.keystr(path) for path, _ in found]
        raise ValueError(
            f"state holds {len(found)} injected optimizers, at {paths}: pass the sub-state "
            f"you mean, e.g. state{paths[0]}"
        )
    return found[0][1]


def get_hyperparams(state: Any) -> dict[str, jax.Array]:
    """The hyperparameters of an injected optimizer's state, ``name -> 0-d array``.

    ``state`` is the state of :func:`inject_hyperparams`'s transformation, or any
    pytree (a chain's tuple, a dict) holding exactly one such state.  The dict has the
    live values and, for a hyperparameter given as a schedule, the value the latest
    update used (``schedule(t)`` for the ``t``-th update, counting from 0; in the state
    from ``init``, ``schedule(0)``, the value the first update will use).  Static
    hyperparameters are not included.
    """
    injected = _find_injected(state)
    return {**injected.hyperparams, **injected.scheduled}


def _check_new_value(name: str, value: Any, old: jax.Array) -> jax.Array:
    if hasattr(value, "shape") and np.shape(value) != np.shape(old):
        raise ValueError(
            f"{name} must have shape {np.shape(old)} like the value it replaces, got shape "
            f"{np.shape(value)}"
        )
    as_number(name, value)  # TypeError for what is not a real number
    if name in VOCABULARY:
        checked(name, value)
    else:
        checked("value", value)  # at least finite
    # Same dtype, shape and placement as before: a jitted step sees the same input type
    # and does not retrace.
    if isinstance(old, jax.Array) and is_concrete(old) and is_concrete(value):
        return _placement.scalar_like(old, np.asarray(value), old.dtype)
    return jnp.asarray(value, dtype=old.dtype)


def set_hyperparams(state: Any, **values: float | jax.Array) -> Any:
    """A copy of ``state`` with the named live hyperparameters changed.

    ``set_hyperparams(state, learning_rate=1e-4)`` returns a new state (the old one is
    unchanged) whose values have the same dtype and shape as before, so a jitted step
    runs on it without retracing.  ``state`` is as in :func:`get_hyperparams`.

    Raises:
      ValueError: for a name that is not a live hyperparameter (a static one, an
        unknown one, or one that follows a schedule), for a value that is not finite
        or not 0-d, and for a value out of range for jopt's shared names
        (``learning_rate``, ``momentum``, ``weight_decay``, ``eps``, ``eps_root``,
        ``initial_accumulator_value`` must be ``>= 0``; ``b1``, ``b2``, ``decay``,
        ``rho`` must be in ``[0, 1)``).
      TypeError: for a value that is not a real number.
    """
    injected = _find_injected(state)
    new_values = dict(injected.hyperparams)
    for name, value in values.items():
        if name in injected.scheduled:
            raise ValueError(
                f"{name} follows a schedule and is recomputed at every update; to set it "
                f"by hand, build the optimizer with a number for {name}"
            )
        if name not in injected.hyperparams:
            raise ValueError(
                f"{name!r} is not a live hyperparameter of this state (live: "
                f"{sorted(injected.hyperparams)}); literal Python zeros, booleans and other "
                f"non-numeric arguments stay static"
            )
        new_values[name] = _check_new_value(name, value, injected.hyperparams[name])
    replaced = injected._replace(hyperparams=new_values)
    return jax.tree.map(lambda x: replaced if x is injected else x, state, is_leaf=_is_injected)
