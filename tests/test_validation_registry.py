"""Bad hyperparameters fail fast and readably: the registry walk.

For every optimizer of ``jopt.optimizers.ALL`` (and every block of ``jopt.transforms``),
every argument is in the validation vocabulary; values out of its range or of the wrong
type, derived from the vocabulary's own specs (``tests/validation_support.py``), raise
``ValueError`` or ``TypeError`` naming the argument; values in range are accepted; and
``jopt.set_hyperparams`` accepts and refuses exactly what the factory does, for each live
hyperparameter (no second table can drift from the first).  The argument combinations an
optimizer refuses (Nesterov without momentum) are the ones its reference in
``references`` refuses.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import REFERENCES
from support import extra_args, returns_transformation
from validation_support import _arguments, _expected, _outcome, _spec, bad_values, good_values

import jopt
from jopt._validation import VOCABULARY


@pytest.mark.parametrize("name", REFERENCES)
def test_every_argument_is_in_the_vocabulary(name):
    missing = [
        a for a in _arguments(name) if a not in VOCABULARY and f"{name}.{a}" not in VOCABULARY
    ]
    assert not missing, f"{name}: {missing} not in jopt._validation.VOCABULARY"


@pytest.mark.parametrize("name", REFERENCES)
def test_bad_values_raise_naming_the_argument(name):
    factory, main = jopt.optimizers.ALL[name], dict(REFERENCES[name].main)
    for argument in _arguments(name):
        for value, exception in bad_values(_spec(name, argument)):
            kwargs = {**main, argument: value}
            raised, message = _outcome(lambda kwargs=kwargs: factory(**kwargs))
            where = f"{name}({argument}={value!r})"
            assert raised is exception, f"{where} raised {raised}, not {exception.__name__}"
            assert argument in message, f"{where}: {message!r} does not name the argument"
            if isinstance(value, (float, str)) and not isinstance(value, bool):
                shown = value if isinstance(value, str) else repr(float(value))
                assert shown in message, f"{where}: {message!r} does not show the value"


@pytest.mark.parametrize("name", REFERENCES)
def test_good_values_are_accepted(name):
    factory, main = jopt.optimizers.ALL[name], dict(REFERENCES[name].main)
    for argument in _arguments(name):
        for value in good_values(_spec(name, argument)):
            kwargs = {**main, argument: value}
            raised, message = _outcome(lambda kwargs=kwargs: factory(**kwargs))
            expected = _expected(name, kwargs)
            assert raised is expected, f"{name}({argument}={value!r}): {raised} {message}"


# --- the blocks: the same walk ---------------------------------------------------------------


def _blocks() -> list[str]:
    return [name for name in jopt.transforms.__all__ if returns_transformation(getattr(jopt, name))]


# Values for the blocks' arguments that have no default.
_BLOCK_REQUIRED = {
    "scale": {"factor": 0.5},
    "scale_by_learning_rate": {"learning_rate": 0.1},
    "scale_by_schedule": {"step_size_fn": lambda count: 0.1},
    "trace": {"decay": 0.9},
    "clip": {"max_delta": 1.0},
    "clip_by_global_norm": {"max_norm": 1.0},
}
# Arguments that are not hyperparameters: trees (or functions returning trees), checked
# against the parameters by the wrapper they build.
_NOT_IN_VOCABULARY = {("add_decayed_weights", "mask")}


def _block_arguments(name: str) -> list[str]:
    arguments = inspect.signature(getattr(jopt, name)).parameters
    return [a for a in arguments if (name, a) not in _NOT_IN_VOCABULARY]


@pytest.mark.parametrize("name", _blocks())
def test_every_block_argument_is_in_the_vocabulary(name):
    missing = [
        a for a in _block_arguments(name) if a not in VOCABULARY and f"{name}.{a}" not in VOCABULARY
    ]
    assert not missing, f"{name}: {missing} not in jopt._validation.VOCABULARY"


@pytest.mark.parametrize("name", _blocks())
def test_bad_block_values_raise_naming_the_argument(name):
    factory = getattr(jopt, name)
    base = _BLOCK_REQUIRED.get(name, {})
    for argument in _block_arguments(name):
        if argument not in VOCABULARY and f"{name}.{argument}" not in VOCABULARY:
            continue  # reported by the test above
        for value, exception in bad_values(_spec(name, argument)):
            kwargs = {**base, argument: value}
            raised, message = _outcome(lambda kwargs=kwargs: factory(**kwargs))
            where = f"{name}({argument}={value!r})"
            assert raised is exception, f"{where} raised {raised}, not {exception.__name__}"
            assert argument in message, f"{where}: {message!r} does not name the argument"
        for value in good_values(_spec(name, argument)):
            kwargs = {**base, argument: value}
            raised, message = _outcome(lambda kwargs=kwargs: factory(**kwargs))
            assert raised is None, f"{name}({argument}={value!r}): {raised} {message}"


def test_every_block_without_defaults_has_values_here():
    for name in _blocks():
        parameters = inspect.signature(getattr(jopt, name)).parameters.values()
        required = {p.name for p in parameters if p.default is inspect.Parameter.empty}
        assert required <= set(_BLOCK_REQUIRED.get(name, {})), name


def _live_outcome(state, argument, value):
    return _outcome(lambda: jopt.set_hyperparams(state, **{argument: value}))


@pytest.mark.parametrize("name", REFERENCES)
def test_set_hyperparams_accepts_and_refuses_what_the_factory_does(name):
    """No drift: for every live hyperparameter and every candidate value (in and out of
    range, of every type), ``set_hyperparams`` and the factory agree."""
    factory, main = jopt.optimizers.ALL[name], dict(REFERENCES[name].main)
    state = jopt.inject_hyperparams(factory)(**main).init({"w": jnp.ones(3)})
    live = sorted(state.hyperparams)
    assert "learning_rate" in live
    disagreements = []
    for argument in live:
        spec = _spec(name, argument)
        candidates = good_values(spec) + [value for value, _ in bad_values(spec)]
        for value in candidates:
            if callable(value):
                continue  # a schedule is not a value; set_hyperparams refuses it by design
            kwargs = {**main, argument: value}
            by_factory, _ = _outcome(lambda kwargs=kwargs: factory(**kwargs))
            by_setter, message = _live_outcome(state, argument, value)
            if by_factory is not by_setter:
                disagreements.append(f"{argument}={value!r}: factory {by_factory}, "
                                     f"set_hyperparams {by_setter} {message}")  # fmt: skip
    assert not disagreements, "\n".join(disagreements)


@pytest.mark.parametrize("name", REFERENCES)
def test_traced_hyperparameters_are_not_checked_eagerly(name):
    """Under jit a value is unknown at construction: building must not fail or block,
    and the traced build computes what the concrete one does."""
    factory, main = jopt.optimizers.ALL[name], dict(REFERENCES[name].main)
    numeric = {
        k: v for k, v in main.items() if isinstance(v, float) and not isinstance(v, bool) and v != 0
    }

    def update(hyperparams, g):
        transformation = factory(**{**main, **hyperparams})
        return transformation.update(g, transformation.init(g), g, **extra_args(name))[0]

    g = {"w": jnp.asarray([0.5, -1.0, 2.0])}
    traced = jax.jit(update)(numeric, g)
    np.testing.assert_allclose(traced["w"], update(numeric, g)["w"], rtol=1e-6)
