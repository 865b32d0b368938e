"""Live hyperparameters: change a learning rate (or any numeric hyperparameter) without
recompiling.

``inject_hyperparams(jopt.adam)(learning_rate=1e-3)`` builds the same optimizer as
``jopt.adam(learning_rate=1e-3)``, except that its numeric hyperparameters live in the
state as arrays instead of being baked into the compiled update as constants.  A jitted
training step then takes them as inputs, so [`set_hyperparams`][jopt.hyperparams.set_hyperparams]
changes them between steps with no retracing, and
[`get_hyperparams`][jopt.hyperparams.get_hyperparams] (or ``state.hyperparams``, as in optax) reads
them, e.g. to log the current learning rate.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _core, _numerics, _placement
from jopt._core import GradientTransformation
from jopt._specs import Real
from jopt._validation import VOCABULARY, as_number, checked, is_concrete, is_static_zero

__all__ = [
    "InjectHyperparamsState",
    "inject_hyperparams",
    "get_hyperparams",
    "set_hyperparams",
]


class InjectHyperparamsState(NamedTuple):
    """The state of an optimizer built by
    [`inject_hyperparams`][jopt.hyperparams.inject_hyperparams].

    The first three fields are optax's.

    Attributes:
      count: the number of updates applied so far (int32, saturating); a schedule is
        evaluated at this count.
      hyperparams: every numeric hyperparameter, ``name -> 0-d array``.  A live one
        holds its value (change it with [`set_hyperparams`][jopt.hyperparams.set_hyperparams]); one
        given as a schedule holds the value the latest update used, ``schedule(count − 1)``
        (``schedule(0)``, the value the first update will use, in the state ``init``
        returns).
      inner_state: the state of the optimizer built with these values.
      scheduled: the names of the hyperparameters that follow a schedule, as a dict
        ``name -> None`` (it holds no arrays, so the state stays a tree of arrays).
    """

    count: jax.Array
    hyperparams: dict[str, jax.Array]
    inner_state: Any
    scheduled: dict[str, None]


def _is_dtype(value: Any) -> bool:
    """A dtype in any of its forms: ``jnp.float32``, ``np.dtype('bfloat16')``, ``'int8'``."""
    if isinstance(value, np.dtype):
        return True
    if isinstance(value, type):
        try:
            np.dtype(value)
        except TypeError:
            return False
        return True
    return False


def _may_be_live(name: str, owner: str | None) -> bool:
    """Whether argument ``name`` of factory ``owner`` can be live: the vocabulary knows
    it as a real number (or not at all).  Counts (``ns_steps``, ``warmup_steps``),
    per-leaf trees and functions (``muon``'s ``labels``) and tuples shape the
    computation: they stay static."""
    spec = VOCABULARY.get(f"{owner}.{name}") or VOCABULARY.get(name)
    return spec is None or isinstance(spec, Real)


def _is_numeric_scalar(value: Any) -> bool:
    """A real (non-boolean) number or a 0-d array of a real dtype, bfloat16 included."""
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


def _stored(name: str, value: Any, dtype) -> jax.Array:
    """``value`` as a 0-d array of ``dtype``, or a ValueError if rounding breaks it."""
    vocabulary_name = name if name in VOCABULARY else "value"
    checked(vocabulary_name, value)
    stored = jnp.asarray(value, dtype=dtype)
    try:
        checked(vocabulary_name, stored)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} rounds to {float(stored)!r} in {jnp.dtype(dtype).name} "
            f"(hyperparam_dtype), out of its range: keep it static with "
            f"static_args=({name!r},) or store hyperparameters in a wider dtype"
        ) from None
    return stored


def _sort_arguments(
    named: dict[str, Any], static_names: frozenset[str], dtype, owner: str | None = None
) -> tuple:
    """``(static, live, schedules)``: how each argument of the factory is injected."""
    static, live, schedules = {}, {}, {}
    for name, value in named.items():
        if (
            name in static_names
            or isinstance(value, (bool, np.bool_, str))
            or _is_dtype(value)
            or not _may_be_live(name, owner)
        ):
            static[name] = value
        elif callable(value):
            schedules[name] = value
        elif _is_numeric_scalar(value) and not is_static_zero(value):
            live[name] = _stored(name, value, dtype)
        else:
            static[name] = value
    return static, live, schedules


def _check_static_names(static_names: frozenset[str], named: dict, factory) -> None:
    unknown = sorted(static_names - set(named))
    if unknown:
        raise ValueError(
            f"static_args names {unknown} that are not arguments of {factory!r}: {sorted(named)}"
        )


def inject_hyperparams(
    factory: Callable[..., GradientTransformation],
    *,
    static_args: Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so that its numeric hyperparameters live in the state.

    ``inject_hyperparams(jopt.adam)(learning_rate=1e-3, b1=0.9)`` takes the factory's
    arguments (positional or by name, defaults included) and sorts each one:

    * a real number or 0-d real array (any float dtype, bfloat16 included) is *live*:
      stored in ``state.hyperparams[name]`` as a 0-d array of ``hyperparam_dtype`` and
      changeable with [`set_hyperparams`][jopt.hyperparams.set_hyperparams];
    * a callable is a *schedule*: evaluated at the number of updates applied before
      this one (the first update uses ``schedule(0)``) and stored in
      ``state.hyperparams[name]``, so after an update it holds the value that update
      used (as optax's);
    * everything else stays *static*, passed to the factory unchanged: booleans such as
      ``nesterov``, ``None``, strings, dtypes in any form (``mu_dtype=jnp.bfloat16``),
      arrays that are not 0-d, the names in ``static_args``, numbers that are a
      literal Python ``0``, and every argument that the validation vocabulary does not
      know as a real number: integer counts (``ns_steps``, ``warmup_steps``), tuples
      (``ns_coefficients``), per-leaf trees and functions (``muon``'s ``labels``).

    A literal Python ``0`` stays static because the optimizers leave the block it
    controls out of the chain (the default ``weight_decay=0.0`` costs nothing and
    ``momentum=0.0`` keeps no momentum buffer), exactly as without injection.  To tune
    such a hyperparameter live from zero, pass it as an array,
    ``weight_decay=jnp.asarray(0.0)``: the block is then in the chain from the start.

    ``update`` rebuilds ``factory(**static, **hyperparams)`` with the state's values
    (traced arrays under ``jit``) and runs its update; the inner chain, and so its
    state, has the same structure as at ``init`` because the values are arrays both
    times.  The trajectory equals the one of the factory called with the same numbers.

    Args:
      factory: a function returning a
        [`GradientTransformation`][jopt.GradientTransformation], such as
        [`jopt.adam`][jopt.adam]; every argument must be passable by name.
      static_args: names of arguments to keep static even if numeric or callable
        (e.g. an integer that the factory uses as a Python int).
      hyperparam_dtype: the dtype of the stored hyperparameters (default: the default
        float dtype, float64 when x64 is enabled).

    Returns:
      A function with the factory's signature that returns the wrapped
      transformation, whose state is an
      [`InjectHyperparamsState`][jopt.hyperparams.InjectHyperparamsState].
    """
    checked("factory", factory)
    if isinstance(static_args, str):
        static_args = (static_args,)
    static_names = frozenset(static_args)
    hyperparam_dtype = checked("hyperparam_dtype", hyperparam_dtype)

    @functools.wraps(factory)
    def wrapped_factory(*args: Any, **kwargs: Any) -> GradientTransformation:
        named = _named_arguments(factory, args, kwargs)
        _check_static_names(static_names, named, factory)
        dtype = hyperparam_dtype if hyperparam_dtype is not None else jnp.result_type(float)
        owner = getattr(factory, "__name__", None)
        static, live, schedules = _sort_arguments(named, static_names, dtype, owner)

        def with_schedules(hyperparams: dict, count: jax.Array) -> dict[str, jax.Array]:
            scheduled = {name: jnp.asarray(s(count), dtype=dtype) for name, s in schedules.items()}
            return {**hyperparams, **scheduled}

        def build(hyperparams: dict) -> GradientTransformation:
            transform = factory(**static, **hyperparams)
            return _core._as_transformation(transform, "factory(...)")

        # Build once now so that a bad hyperparameter fails here, not at the first step.
        count0 = jnp.zeros([], jnp.int32)
        build(with_schedules(live, count0))

        def init(params):
            hyperparams = with_schedules(live, count0)
            # The 0-d state arrays are laid out like the inner state's step counts.
            return InjectHyperparamsState(
                count=_placement.scalar_like(params, count0, jnp.int32),
                hyperparams={
                    name: _placement.scalar_like(params, value, dtype)
                    for name, value in hyperparams.items()
                },
                inner_state=build(hyperparams).init(params),
                scheduled=dict.fromkeys(schedules),
            )

        def update(updates, state, params=None, **extra_args):
            if not isinstance(state, InjectHyperparamsState):
                raise ValueError(
                    f"state must be the InjectHyperparamsState that init returned, got "
                    f"{type(state).__name__}"
                )
            hyperparams = with_schedules(state.hyperparams, state.count)
            inner = build(hyperparams)
            updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
            return updates, state._replace(
                count=_numerics.safe_increment(state.count),
                hyperparams=hyperparams,
                inner_state=inner_state,
            )

        return GradientTransformation(init, update)

    return wrapped_factory


# --- reading and writing the live values ------------------------------------------------


def _is_injected(x: Any) -> bool:
    return isinstance(x, InjectHyperparamsState)


def _find_injected(state: Any) -> InjectHyperparamsState:
    """The one [`InjectHyperparamsState`][jopt.hyperparams.InjectHyperparamsState] inside
    ``state``."""
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

    ``state`` is the state of [`inject_hyperparams`][jopt.hyperparams.inject_hyperparams]'s
    transformation, or any pytree (a chain's tuple, a dict) holding exactly one such state.  The
    values are ``state.hyperparams``: live values, and for a scheduled hyperparameter the value
    the latest update used.  Static hyperparameters are not included.

    Args:
      state: an injected optimizer's state, or a pytree holding exactly one.

    Returns:
      A new dict ``{name: 0-d array}``.

    Raises:
      ValueError: when ``state`` holds no injected state, or several.
    """
    return dict(_find_injected(state).hyperparams)


def _check_new_value(name: str, value: Any, old: jax.Array) -> jax.Array:
    as_number(name, value)  # TypeError for what is not a real 0-d number, as the factory
    # The factory's own checks, by name: one vocabulary for both.
    checked(name if name in VOCABULARY else "value", value)
    # Same dtype, shape and placement as before: a jitted step sees the same input type
    # and does not retrace.
    if isinstance(old, jax.Array) and is_concrete(old) and is_concrete(value):
        return _placement.scalar_like(old, np.asarray(value, np.float64), old.dtype)
    return jnp.asarray(value, dtype=old.dtype)


def set_hyperparams(state: Any, **values: float | jax.Array) -> Any:
    """A copy of ``state`` with the named live hyperparameters changed.

    ``set_hyperparams(state, learning_rate=1e-4)`` returns a new state (the old one is
    unchanged) whose values have the same dtype and shape as before, so a jitted step
    runs on it without retracing.  ``state`` is as in
    [`get_hyperparams`][jopt.hyperparams.get_hyperparams].  Each value is checked against the same
    vocabulary as the factories' arguments.

    Args:
      state: an injected optimizer's state, or a pytree holding exactly one.
      **values: the new values, by hyperparameter name: real numbers or 0-d arrays.

    Returns:
      The state, with those values (cast to the stored dtype) in place of the old.

    Raises:
      ValueError: for a name that is not a live hyperparameter (a static one, an
        unknown one, or one that follows a schedule), or a value out of range or not
        0-d.
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
