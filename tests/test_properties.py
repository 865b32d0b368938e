"""Property-based tests over random trees and hyperparameters (hypothesis).

Trees nest dicts, lists and tuples; leaves have 0 to 3 dimensions (0-size included) and
float32, float64, bfloat16, float16, complex64, int32 or bool dtypes, or are ``None``.
Every optimizer is drawn with random hyperparameters.  Properties:

* ``update`` returns updates with the gradients' tree structure and dtypes, and a state
  with the structure and dtypes it was given;
* finite gradients give finite states, updates and parameters;
* a zero gradient leaves the parameters of an optimizer without weight decay unchanged.

Example counts are modest so that the file runs in well under a minute.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jopt

# Compared with float64 restatements: 64-bit types on for every test here.
pytestmark = __import__("pytest").mark.float64

# Derandomized, with no example database: the same examples on every run and machine,
# so a failure in CI reproduces locally and the suite is never flaky.
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DTYPES = ["float32", "float64", "bfloat16", "float16", "complex64", "int32", "bool"]
FLOAT_DTYPES = {"float32", "float64", "bfloat16", "float16", "complex64"}


def _is_none(x):
    return x is None


# --- trees -----------------------------------------------------------------------------

leaf_specs = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(DTYPES),
        st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple),
    ),
)
keys = st.text("abcdefgh", min_size=1, max_size=3)
tree_specs = st.recursive(
    leaf_specs,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=3),
    ),
    max_leaves=8,
)


def _is_spec(x):
    return x is None or (isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str))


def _materialize(spec, rng: np.random.Generator, scale: float = 1.0, zero: bool = False):
    """Arrays for a tree spec: normal(0, scale) floats (complex: both parts), small ints.

    The tree is put under a dict key: a bare ``None`` tree would read as "no params".
    """

    def leaf(s):
        if s is None:
            return None
        dtype, shape = s
        if dtype == "bool":
            return jnp.asarray(rng.integers(0, 2, size=shape).astype(bool))
        if dtype == "int32":
            return jnp.asarray(rng.integers(-5, 5, size=shape), jnp.int32)
        values = rng.normal(scale=scale, size=shape)
        if dtype == "complex64":
            values = values + 1j * rng.normal(scale=scale, size=shape)
        return jnp.asarray(np.zeros(shape) if zero else values, jnp.dtype(dtype))

    return {"root": jax.tree.map(leaf, spec, is_leaf=_is_spec)}


def _grads_like(params, rng, scale, zero=False):
    """Gradients for ``params``: integer and boolean leaves get zeros of their own dtype."""

    def leaf(p):
        if p is None:
            return None
        if not jnp.issubdtype(p.dtype, jnp.inexact):
            return jnp.zeros_like(p)
        values = np.zeros(p.shape) if zero else rng.normal(scale=scale, size=p.shape)
        if jnp.iscomplexobj(p) and not zero:
            values = values + 1j * rng.normal(scale=scale, size=p.shape)
        return jnp.asarray(values, p.dtype)

    return jax.tree.map(leaf, params, is_leaf=_is_none)


# --- optimizers with drawn hyperparameters ----------------------------------------------

lr = st.floats(0.0, 1.0)
decay_rate = st.floats(0.0, 0.99)
eps = st.floats(1e-8, 1e-2)
weight_decay = st.floats(0.0, 0.1)


def _configs(with_decay: bool):
    """``(name, kwargs)`` strategies; ``with_decay=False`` pins every weight decay to 0."""
    wd = weight_decay if with_decay else st.just(0.0)
    # adamw and adamax take the same hyperparameters.
    adam_like = st.fixed_dictionaries(
        {"learning_rate": lr, "b1": decay_rate, "b2": decay_rate, "eps": eps, "weight_decay": wd}
    )
    return st.one_of(
        st.tuples(
            st.just("sgd"),
            st.fixed_dictionaries(
                {"learning_rate": lr, "momentum": decay_rate, "weight_decay": wd}
            ),
        ),
        st.tuples(
            st.just("nesterov"),
            st.fixed_dictionaries(
                {"learning_rate": lr, "momentum": st.floats(0.1, 0.99), "weight_decay": wd}
            ),
        ),
        st.tuples(
            st.just("adagrad"),
            st.fixed_dictionaries(
                {
                    "learning_rate": lr,
                    "initial_accumulator_value": st.floats(0.0, 1.0),
                    "eps": eps,
                    "weight_decay": wd,
                }
            ),
        ),
        st.tuples(
            st.just("adadelta"),
            st.fixed_dictionaries(
                {"learning_rate": lr, "rho": decay_rate, "eps": eps, "weight_decay": wd}
            ),
        ),
        st.tuples(
            st.just("rmsprop"),
            st.fixed_dictionaries(
                {
                    "learning_rate": lr,
                    "decay": decay_rate,
                    "eps": eps,
                    "centered": st.booleans(),
                    "momentum": decay_rate,
                    "weight_decay": wd,
                }
            ),
        ),
        st.tuples(
            st.just("adam"),
            st.fixed_dictionaries(
                {
                    "learning_rate": lr,
                    "b1": decay_rate,
                    "b2": decay_rate,
                    "eps": eps,
                    "amsgrad": st.booleans(),
                    "weight_decay": wd,
                }
            ),
        ),
        st.tuples(
            st.just("adamw"),
            adam_like,
        ),
        st.tuples(
            st.just("adamax"),
            adam_like,
        ),
    )


def _structure(tree):
    return jax.tree.structure(tree, is_leaf=_is_none)


def _dtypes(tree):
    return [
        None if x is None else jnp.asarray(x).dtype for x in jax.tree.leaves(tree, is_leaf=_is_none)
    ]


def _all_finite(tree):
    return all(
        bool(
            np.all(np.isfinite(np.asarray(x, np.complex128 if jnp.iscomplexobj(x) else np.float64)))
        )
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    )


STEPS = 3


@SETTINGS
@given(spec=tree_specs, config=_configs(with_decay=True), seed=st.integers(0, 2**32 - 1))
def test_update_preserves_structure_and_dtypes(spec, config, seed):
    rng = np.random.default_rng(seed)
    name, kwargs = config
    optimizer = getattr(jopt, name)(**kwargs)
    params = _materialize(spec, rng)
    state = optimizer.init(params)
    state_structure, state_dtypes = _structure(state), _dtypes(state)
    for _ in range(STEPS):
        grads = _grads_like(params, rng, scale=1.0)
        updates, state = optimizer.update(grads, state, params)
        assert _structure(updates) == _structure(grads)
        assert _dtypes(updates) == _dtypes(grads)
        assert _structure(state) == state_structure
        assert _dtypes(state) == state_dtypes
        new_params = jopt.apply_updates(params, updates)
        assert _structure(new_params) == _structure(params)
        assert _dtypes(new_params) == _dtypes(params)
        # Integer and boolean leaves are untouched.
        for old, new in zip(jax.tree.leaves(params), jax.tree.leaves(new_params)):
            if not jnp.issubdtype(old.dtype, jnp.inexact):
                np.testing.assert_array_equal(new, old)
        params = new_params


@SETTINGS
@given(spec=tree_specs, config=_configs(with_decay=True), seed=st.integers(0, 2**32 - 1))
def test_finite_gradients_give_finite_states(spec, config, seed):
    rng = np.random.default_rng(seed)
    name, kwargs = config
    optimizer = getattr(jopt, name)(**kwargs)
    params = _materialize(spec, rng)
    state = optimizer.init(params)
    for _ in range(STEPS):
        # Gradients up to a few times 10: squares stay far inside float16's range.
        grads = _grads_like(params, rng, scale=10.0)
        updates, state = optimizer.update(grads, state, params)
        assert _all_finite(state), (name, kwargs)
        assert _all_finite(updates), (name, kwargs)
        params = jopt.apply_updates(params, updates)
        assert _all_finite(params), (name, kwargs)


@SETTINGS
@given(spec=tree_specs, config=_configs(with_decay=False), seed=st.integers(0, 2**32 - 1))
def test_zero_gradient_leaves_undecayed_params_unchanged(spec, config, seed):
    rng = np.random.default_rng(seed)
    name, kwargs = config
    optimizer = getattr(jopt, name)(**kwargs)
    params = _materialize(spec, rng)
    state = optimizer.init(params)
    new_params = params
    for _ in range(STEPS):
        updates, state = optimizer.update(
            _grads_like(params, rng, 1.0, zero=True), state, new_params
        )
        new_params = jopt.apply_updates(new_params, updates)
    for old, new in zip(jax.tree.leaves(params), jax.tree.leaves(new_params)):
        assert new.dtype == old.dtype
        np.testing.assert_array_equal(new, old)
