"""Bad input fails fast and readably at construction: the case tables.

Each row of the tables below is one bad input, the exception it must raise, and the
pieces of text the message must contain: the argument's name and the offending value.
Half-precision 0-d arrays and edge values in range are accepted.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from validation_support import INF, NAN

import jopt


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
