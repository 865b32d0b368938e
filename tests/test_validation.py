"""Bad input fails fast and readably: hyperparameters at construction, trees at trace time.

The registry walk: for every optimizer of ``jopt.optimizers.ALL``, every argument is
in the validation vocabulary; values out of its range or of the wrong type, derived
from the vocabulary's own specs, raise ``ValueError`` or ``TypeError`` naming the
argument; values in range (in every numeric form: Python and NumPy scalars, 0-d arrays
of bfloat16, float16 and float32) are accepted; and ``jopt.set_hyperparams`` accepts
and refuses exactly what the factory does, for each live hyperparameter (no second
table can drift from the first).  The argument combinations an optimizer refuses
(Nesterov without momentum) are the ones its reference in ``references.py`` refuses.

Each row of the tables below is one bad input, the exception it must raise, and the
pieces of text the message must contain: the argument's name and the offending value.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import REFERENCES
from support import extra_args, returns_transformation

import jopt
from jopt._validation import (
    VOCABULARY,
    Choice,
    DType,
    Flag,
    Function,
    Instance,
    Integer,
    Items,
    PerLeaf,
    Real,
    Spec,
)

NAN, INF = float("nan"), float("inf")


# --- the registry walk --------------------------------------------------------------------


def _spec(factory_name: str, argument: str) -> Spec:
    scoped = f"{factory_name}.{argument}"
    return VOCABULARY[scoped] if scoped in VOCABULARY else VOCABULARY[argument]


def _inside(spec: Real) -> float:
    """A value well inside a real range."""
    low, high = spec.low, spec.high
    if math.isfinite(low) and math.isfinite(high):
        return low + (high - low) / 2
    if math.isfinite(low):
        return low + 0.5
    return high - 0.5 if math.isfinite(high) else 0.5


def _numeric_forms(value: float) -> list:
    """The forms a number may take: all must be accepted alike."""
    forms = [value, np.float32(value), jnp.asarray(value, jnp.float32)]
    forms += [jnp.asarray(value, jnp.bfloat16), jnp.asarray(value, jnp.float16)]
    return forms


def good_values(spec: Spec) -> list:
    """Values the spec accepts, boundaries included."""
    if isinstance(spec, Real):
        values = _numeric_forms(_inside(spec))
        if math.isfinite(spec.low) and not spec.low_open:
            values += [spec.low, int(spec.low)] if spec.low == int(spec.low) else [spec.low]
        if math.isfinite(spec.high) and not spec.high_open:
            values.append(spec.high)
        if spec.schedule:
            values.append(lambda count: 0.5 * _inside(spec) / (1 + count))
        if spec.optional:
            values.append(None)
        return values
    if isinstance(spec, Flag):
        return [True, False, np.bool_(True)]
    if isinstance(spec, DType):
        return [None, jnp.float32, "bfloat16", np.dtype("float16")]
    if isinstance(spec, Integer):
        low = spec.low if spec.low is not None else 0
        return [low, low + 1, np.int64(low + 1)] + ([None] if spec.optional else [])
    if isinstance(spec, Choice):
        return list(spec.options)
    if isinstance(spec, Function):
        return [lambda *args: 0.0]
    if isinstance(spec, Items):
        each = [good_values(item) for item in spec.items]
        return [tuple(values[0] for values in each), [values[-1] for values in each]]
    if isinstance(spec, Instance):
        values = [None] if spec.optional else []
        if jax.sharding.Mesh in spec.types:
            values.append(jax.make_mesh((1,), ("data",)))
        if str in spec.types:
            values.append("data")
        return values
    if isinstance(spec, PerLeaf):
        # One value for every leaf, a tree of values, a function of the params.
        values = [v for v in good_values(spec.item) if v is not None]
        return values + [{"w": values[0]}, lambda params: params] + [None] * spec.optional
    raise AssertionError(f"no good values for {spec}")


def bad_values(spec: Spec) -> list[tuple]:
    """``(value, exception)`` pairs the spec refuses."""
    if isinstance(spec, Real):
        bad = [("0.1", TypeError), (True, TypeError), ([0.1], TypeError), (1j, TypeError)]
        bad += [(jnp.ones(2), TypeError), (NAN, ValueError), (jnp.asarray(NAN), ValueError)]
        if not spec.optional:
            bad.append((None, TypeError))
        if not spec.allow_inf:
            bad += [(INF, ValueError), (-INF, ValueError)]
        if math.isfinite(spec.low):
            below = spec.low if spec.low_open else spec.low - 0.5
            bad += [(below, ValueError), (jnp.asarray(below, jnp.bfloat16), ValueError)]
        if math.isfinite(spec.high):
            bad.append((spec.high if spec.high_open else spec.high + 0.5, ValueError))
        return bad
    if isinstance(spec, Flag):
        return [(1, TypeError), (None, TypeError), ("yes", TypeError), (0.0, TypeError)]
    if isinstance(spec, DType):
        return [("float13", TypeError), (jnp.int32, ValueError), (bool, ValueError)]
    if isinstance(spec, Integer):
        low = spec.low if spec.low is not None else 0
        return [(1.5, TypeError), (True, TypeError), (low - 1, ValueError), ("1", TypeError)]
    if isinstance(spec, Choice):
        return [(1, TypeError), ("no such option", ValueError)]
    if isinstance(spec, Function):
        return [(1, TypeError)]
    if isinstance(spec, Items):
        first = good_values(spec.items[0])[0]
        bad = [(first, TypeError), ((first,) * (len(spec.items) + 1), ValueError)]
        for i, item in enumerate(spec.items):
            rest = [good_values(other)[0] for other in spec.items]
            bad += [(tuple(rest[:i] + [value] + rest[i + 1 :]), e) for value, e in bad_values(item)]
        return bad
    if isinstance(spec, Instance):
        return [(1, TypeError)] + [(None, TypeError)] * (not spec.optional)
    if isinstance(spec, PerLeaf):
        # A bad value alone, and as a leaf of a tree.
        bad = [(v, e) for v, e in bad_values(spec.item) if v is not None or not spec.optional]
        return bad + [({"w": value}, e) for value, e in bad[:2]]
    raise AssertionError(f"no bad values for {spec}")


def _outcome(make):
    """The exception type ``make()`` raises (and its message), or ``(None, "")``."""
    try:
        make()
    except (TypeError, ValueError) as error:
        return type(error), str(error)
    return None, ""


def _expected(name: str, kwargs: dict, bad_exception=None):
    """What the factory must do with ``kwargs``: the spec's exception for a bad value,
    else ``ValueError`` where the reference refuses the combination, else accept."""
    if bad_exception is not None:
        return bad_exception
    try:
        REFERENCES[name].rule(**kwargs)
    except ValueError:
        return ValueError
    return None


def _arguments(name: str) -> list[str]:
    return list(inspect.signature(jopt.optimizers.ALL[name]).parameters)


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


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_half_precision_hyperparameters_are_numbers(dtype):
    """Issue 14, item 2: a 0-d array of any real floating dtype is a number."""
    g = jnp.asarray([1.0, -2.0])
    sgd = jopt.sgd(jnp.asarray(0.5, dtype))
    updates, _ = sgd.update(g, sgd.init(g))
    np.testing.assert_allclose(updates, [-0.5, 1.0])
    adam = jopt.adam(jnp.asarray(0.5, dtype), b1=jnp.asarray(0.5, dtype))
    updates, _ = adam.update(g, adam.init(g))
    # The first Adam step is −η·sign(g), up to float32 bias corrections (1e-5).
    np.testing.assert_allclose(updates, [-0.5, 0.5], rtol=1e-5)


# (id, constructor, exception, substrings the message must contain)
CASES = [
    # learning rates, shared by every optimizer through scale_by_learning_rate
    ("sgd-lr-negative", lambda: jopt.sgd(-0.1), ValueError, ["learning_rate", "-0.1"]),
    ("sgd-lr-nan", lambda: jopt.sgd(NAN), ValueError, ["learning_rate", "nan"]),
    ("adam-lr-inf", lambda: jopt.adam(INF), ValueError, ["learning_rate", "inf"]),
    ("adam-lr-array-negative", lambda: jopt.adam(jnp.array(-1.0)), ValueError, ["-1.0"]),
    ("sgd-lr-string", lambda: jopt.sgd("0.1"), TypeError, ["learning_rate", "'0.1'"]),
    ("sgd-lr-none", lambda: jopt.sgd(None), TypeError, ["learning_rate", "None"]),
    ("sgd-lr-list", lambda: jopt.sgd([0.1]), TypeError, ["learning_rate", "[0.1]"]),
    ("sgd-lr-vector", lambda: jopt.sgd(jnp.ones(2)), TypeError, ["learning_rate", "(2,)"]),
    ("adamax-lr-negative", lambda: jopt.adamax(-2e-3), ValueError, ["learning_rate", "-0.002"]),
    ("rmsprop-lr-complex", lambda: jopt.rmsprop(1j), TypeError, ["learning_rate", "1j"]),
    # momentum and Nesterov
    ("sgd-momentum-negative", lambda: jopt.sgd(momentum=-0.9), ValueError, ["momentum", "-0.9"]),
    ("sgd-momentum-one", lambda: jopt.sgd(momentum=1.0), ValueError, ["momentum", "1.0"]),
    # everything after the first argument is keyword-only
    ("sgd-positional-momentum", lambda: jopt.sgd(0.1, 0.9), TypeError, ["positional"]),
    ("momentum-negative", lambda: jopt.momentum(momentum=-0.1), ValueError, ["momentum", "-0.1"]),
    ("rmsprop-momentum-negative", lambda: jopt.rmsprop(momentum=-0.5), ValueError,
     ["momentum", "-0.5"]),
    # weight decay
    ("sgd-weight-decay", lambda: jopt.sgd(weight_decay=-1e-4), ValueError,
     ["weight_decay", "-0.0001"]),
    ("adam-weight-decay", lambda: jopt.adam(weight_decay=-0.01), ValueError,
     ["weight_decay", "-0.01"]),
    ("adamw-weight-decay", lambda: jopt.adamw(weight_decay=-0.01), ValueError,
     ["weight_decay", "-0.01"]),
    ("adagrad-weight-decay-nan", lambda: jopt.adagrad(weight_decay=NAN), ValueError,
     ["weight_decay", "nan"]),
    # eps and accumulators
    ("adagrad-eps", lambda: jopt.adagrad(eps=-1e-10), ValueError, ["eps", "-1e-10"]),
    ("adagrad-eps-root", lambda: jopt.adagrad(eps_root=-1.0), ValueError, ["eps_root", "-1.0"]),
    ("adagrad-initial-accumulator", lambda: jopt.adagrad(initial_accumulator_value=-0.1),
     ValueError, ["initial_accumulator_value", "-0.1"]),
    ("adadelta-eps", lambda: jopt.adadelta(eps=-1e-6), ValueError, ["eps", "-1e-06"]),
    ("adam-eps", lambda: jopt.adam(eps=-1e-8), ValueError, ["eps", "-1e-08"]),
    ("adamax-eps", lambda: jopt.adamax(eps=-1.0), ValueError, ["eps", "-1.0"]),
    ("rmsprop-eps-nan", lambda: jopt.rmsprop(eps=NAN), ValueError, ["eps", "nan"]),
    # decay rates in [0, 1)
    ("adadelta-rho-one", lambda: jopt.adadelta(rho=1.0), ValueError, ["rho", "1.0"]),
    ("adadelta-rho-negative", lambda: jopt.adadelta(rho=-0.1), ValueError, ["rho", "-0.1"]),
    ("rmsprop-decay-one", lambda: jopt.rmsprop(decay=1.0), ValueError, ["decay", "1.0"]),
    ("rmsprop-decay-nan", lambda: jopt.rmsprop(decay=NAN), ValueError, ["decay", "nan"]),
    ("adam-b1-one", lambda: jopt.adam(b1=1.0), ValueError, ["b1", "1.0"]),
    ("adam-b2-above-one", lambda: jopt.adam(b2=1.5), ValueError, ["b2", "1.5"]),
    ("adam-b1-negative", lambda: jopt.adam(b1=-0.1), ValueError, ["b1", "-0.1"]),
    ("adamw-b2-one", lambda: jopt.adamw(b2=1.0), ValueError, ["b2", "1.0"]),
    ("adamax-b1-one", lambda: jopt.adamax(b1=1.0), ValueError, ["b1", "1.0"]),
    ("adam-b1-bool", lambda: jopt.adam(b1=True), TypeError, ["b1", "True"]),
    ("adam-b1-vector", lambda: jopt.adam(b1=jnp.array([0.9, 0.9])), TypeError, ["b1", "(2,)"]),
    # flags and dtypes
    ("rmsprop-centered-not-bool", lambda: jopt.rmsprop(centered=1), TypeError, ["centered", "1"]),
    ("adam-amsgrad-not-bool", lambda: jopt.adam(amsgrad="yes"), TypeError,
     ["amsgrad", "'yes'"]),
    ("adam-mu-dtype-int", lambda: jopt.adam(mu_dtype=jnp.int32), ValueError,
     ["mu_dtype", "int32"]),
    ("adamw-nu-dtype-unknown", lambda: jopt.adamw(nu_dtype="float13"), TypeError,
     ["nu_dtype", "float13"]),
    ("adamax-mu-dtype-bool", lambda: jopt.adamax(mu_dtype=bool), ValueError,
     ["mu_dtype", "bool"]),
    # building blocks
    ("scale-nan", lambda: jopt.scale(NAN), ValueError, ["factor", "nan"]),
    ("scale-string", lambda: jopt.scale("2"), TypeError, ["factor", "'2'"]),
    ("trace-negative", lambda: jopt.trace(-0.5), ValueError, ["decay", "-0.5"]),
    ("trace-nesterov-none", lambda: jopt.trace(0.9, nesterov=None), TypeError,
     ["nesterov", "None"]),
    ("scale-by-rss-eps", lambda: jopt.scale_by_rss(eps=-1.0), ValueError, ["eps", "-1.0"]),
    ("scale-by-rms-decay", lambda: jopt.scale_by_rms(decay=1.0), ValueError, ["decay", "1.0"]),
    ("scale-by-adadelta-rho", lambda: jopt.scale_by_adadelta(rho=2), ValueError, ["rho", "2.0"]),
    ("scale-by-adam-b1", lambda: jopt.scale_by_adam(b1=1.0), ValueError, ["b1", "1.0"]),
    ("scale-by-adamax-b2", lambda: jopt.scale_by_adamax(b2=-0.1), ValueError, ["b2", "-0.1"]),
    ("add-decayed-weights", lambda: jopt.add_decayed_weights(-0.1), ValueError,
     ["weight_decay", "-0.1"]),
    ("scale-by-learning-rate", lambda: jopt.scale_by_learning_rate(-1), ValueError,
     ["learning_rate", "-1.0"]),
    ("scale-by-schedule-not-callable", lambda: jopt.scale_by_schedule(0.1), TypeError,
     ["step_size_fn", "0.1"]),
    ("chain-not-a-transformation", lambda: jopt.chain(jopt.identity(), "adam"), TypeError,
     ["argument 1", "'adam'"]),
    # wrappers
    ("skip-nonfinite-negative", lambda: jopt.skip_nonfinite(jopt.adam(), max_consecutive=-1),
     ValueError, ["max_consecutive", "-1"]),
    ("skip-nonfinite-float", lambda: jopt.skip_nonfinite(jopt.adam(), max_consecutive=1.5),
     TypeError, ["max_consecutive", "1.5"]),
    ("skip-nonfinite-not-optimizer", lambda: jopt.skip_nonfinite("adam"), TypeError,
     ["optimizer", "'adam'"]),
]  # fmt: skip


def _initializer_cases():
    """Bad input to ``jopt.initializers``: kept apart so the list above never needs it."""
    init = jopt.initializers
    key = jax.random.key(0)
    return [
        ("xavier-1d-shape", lambda: init.xavier_uniform()(key, (3,)), ValueError,
         ["shape", "(3,)"]),
        ("kaiming-0d-shape", lambda: init.kaiming_normal()(key, ()), ValueError,
         ["shape", "()"]),
        ("kaiming-nonlinearity", lambda: init.kaiming_uniform(nonlinearity="swish"), ValueError,
         ["nonlinearity", "'swish'"]),
        ("kaiming-mode", lambda: init.kaiming_uniform(mode="fan_sum"), ValueError,
         ["mode", "'fan_sum'"]),
        ("gain-nonlinearity", lambda: init.calculate_gain("swish"), ValueError,
         ["nonlinearity", "'swish'"]),
        ("normal-stddev", lambda: init.normal(stddev=-1.0), ValueError, ["stddev", "-1.0"]),
        ("xavier-gain", lambda: init.xavier_normal(gain=-1.0), ValueError, ["gain", "-1.0"]),
        ("orthogonal-scale", lambda: init.orthogonal(scale=-1.0), ValueError, ["scale", "-1.0"]),
        ("uniform-low-high", lambda: init.uniform_range(low=1.0, high=0.0), ValueError,
         ["low=1.0", "high=0.0"]),
        ("truncated-bounds", lambda: init.truncated_normal(lower=2.0, upper=-2.0), ValueError,
         ["lower=2.0", "upper=-2.0"]),
        ("normal-int-dtype", lambda: init.normal()(key, (3, 3), jnp.int32), ValueError,
         ["dtype", "int32"]),
        ("variance-scaling-distribution",
         lambda: init.variance_scaling(1.0, "fan_in", "cauchy"), ValueError,
         ["distribution", "'cauchy'"]),
        ("variance-scaling-scale", lambda: init.variance_scaling(-1.0, "fan_in", "normal"),
         ValueError, ["scale", "-1.0"]),
        ("compute-fans-1d", lambda: init.compute_fans((3,)), ValueError, ["shape", "(3,)"]),
    ]  # fmt: skip


def _check_case(make, exception, fragments):
    with pytest.raises(exception) as raised:
        make()
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("make, exception, fragments", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_fails_at_construction(make, exception, fragments):
    _check_case(make, exception, fragments)


def test_bad_input_to_initializers():
    for name, make, exception, fragments in _initializer_cases():
        try:
            _check_case(make, exception, fragments)
        except (AssertionError, pytest.fail.Exception) as error:
            raise AssertionError(f"case {name}: {error}") from None


@pytest.mark.parametrize(
    "make",
    [
        lambda: jopt.sgd(0.0),
        lambda: jopt.sgd(0.1, momentum=0.0, nesterov=False, weight_decay=0.0),
        lambda: jopt.nesterov(0.1, momentum=0.5),
        # Nesterov with γ = 0 is plain SGD (tests/test_optimizers.py checks the path).
        lambda: jopt.sgd(0.1, nesterov=True),
        lambda: jopt.nesterov(momentum=jnp.array(0.0)),
        lambda: jopt.adam(jnp.array(1e-3), b1=0.0, b2=0.0, eps=0.0),
        lambda: jopt.adam(lambda count: 1e-3 * 0.5**count),
        lambda: jopt.adamw(np.float32(1e-3), mu_dtype=jnp.float32, nu_dtype="bfloat16"),
        lambda: jopt.rmsprop(1e-3, centered=np.bool_(True)),
        lambda: jopt.scale(-1.0),
        lambda: jopt.skip_nonfinite(jopt.adam(), max_consecutive=0),
        lambda: jopt.skip_nonfinite(jopt.adam(), max_consecutive=np.int64(3)),
    ],
)
def test_good_edge_values_are_accepted(make):
    transformation = make()
    state = transformation.init({"w": jnp.ones(2)})
    updates, _ = transformation.update({"w": jnp.ones(2)}, state, {"w": jnp.ones(2)})
    assert np.all(np.isfinite(np.asarray(updates["w"], np.float64)))


# --- structure errors ----------------------------------------------------------------


def _tree(w_shape=(3, 4)):
    return {"dense": {"w": jnp.ones(w_shape), "b": jnp.zeros(4)}, "scale": jnp.ones(())}


def _message(fn, *args):
    with pytest.raises(ValueError) as raised:
        fn(*args)
    return str(raised.value)


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_params_of_another_shape_name_the_path(wrap):
    optimizer = jopt.adam(1e-3, weight_decay=0.1)
    grads = _tree()
    state = optimizer.init(grads)
    message = _message(wrap(optimizer.update), grads, state, _tree((4, 3)))
    assert message == "updates['dense']['w']: shape (3, 4) vs params (4, 3)"


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_state_of_another_shape_names_the_path_and_the_field(wrap):
    optimizer = jopt.adam(1e-3)
    state = optimizer.init(_tree((4, 3)))
    message = _message(wrap(optimizer.update), _tree(), state, _tree())
    assert message == "updates['dense']['w']: shape (3, 4) vs state.mu (4, 3)"


def test_a_missing_leaf_is_named():
    optimizer = jopt.rmsprop(1e-3, centered=True)
    state = optimizer.init(_tree())
    grads = _tree()
    del grads["dense"]["b"]
    message = _message(optimizer.update, grads, state)
    assert message == "state.mu['dense']['b']: present in state.mu but not in updates"


def test_an_extra_leaf_is_named():
    optimizer = jopt.adagrad(1e-2)
    state = optimizer.init(_tree())
    grads = {**_tree(), "extra": jnp.ones(2)}
    message = _message(optimizer.update, grads, state)
    assert message == "updates['extra']: present in updates but not in state.sum_of_squares"


def test_a_leaf_against_a_subtree_is_named():
    optimizer = jopt.momentum(1e-2)
    state = optimizer.init({"a": {"x": jnp.ones(2)}, "b": jnp.ones(2)})
    grads = {"a": {"x": jnp.ones(2)}, "b": {"y": jnp.ones(2)}}
    message = _message(optimizer.update, grads, state)
    assert "['b']" in message and "state" in message


@pytest.mark.parametrize(
    "optimizer",
    [
        jopt.sgd(0.1),
        jopt.sgd(0.1, momentum=0.9),
        jopt.adagrad(),
        jopt.adadelta(),
        jopt.rmsprop(),
        jopt.adam(),
        jopt.adamw(),
        jopt.adamax(),
        jopt.adam(lambda count: 0.1 / (1 + count)),
    ],
    ids=[
        "sgd",
        "momentum",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "adamw",
        "adamax",
        "adam-schedule",
    ],
)
def test_every_optimizer_checks_params_at_trace_time(optimizer):
    """``jax.eval_shape`` only traces: the error comes from shapes, before any compute."""
    grads = _tree()
    state = optimizer.init(grads)
    message = _message(jax.eval_shape, optimizer.update, grads, state, _tree((4, 3)))
    assert message.startswith("updates['dense']['w']: shape (3, 4) vs ")
    assert message.endswith(" (4, 3)")


def test_a_chain_with_the_wrong_number_of_states():
    optimizer = jopt.adam(1e-3, weight_decay=0.1)  # three blocks
    message = _message(optimizer.update, _tree(), jopt.adam(1e-3).init(_tree()))
    assert "chain of 3 transformations" in message and "length 2" in message


def test_structure_checks_cost_nothing_at_run_time():
    """Passing params (which are checked against the updates) adds no operation to the
    staged program of an optimizer that does not otherwise use them."""
    optimizer = jopt.adam(1e-3)
    grads = _tree()
    state = optimizer.init(grads)
    with_params = jax.make_jaxpr(optimizer.update)(grads, state, grads)
    without = jax.make_jaxpr(lambda g, s: optimizer.update(g, s))(grads, state)
    assert len(with_params.jaxpr.eqns) == len(without.jaxpr.eqns)
    assert str(with_params.jaxpr.eqns) == str(without.jaxpr.eqns)
