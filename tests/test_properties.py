"""Property-based tests over random trees and hyperparameters (hypothesis).

Trees nest dicts, lists and tuples; leaves have 0 to 3 dimensions (0-size included) and
float32, bfloat16, float16, complex64, int32 or bool dtypes, or are ``None`` (64-bit
types are off, as for users; float64 leaves are in ``test_registry.py``).  Every
optimizer of the registry is run with hyperparameters drawn from the ranges of the
validation vocabulary (or ``PROPERTY_RANGES`` of ``references``).  Properties:

* ``update`` returns updates with the gradients' tree structure and dtypes, and a state
  with the structure and dtypes it was given;
* finite gradients give finite states, updates and parameters;
* a zero gradient leaves the parameters of an optimizer without weight decay unchanged.

Example counts are small (a few per optimizer): the cost is per registry entry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from references import PROPERTY_RANGES, REFERENCES
from support import extra_args

import jopt
from jopt._validation import VOCABULARY, Choice, DType, Flag, Integer, Items, PerLeaf, Real

EXAMPLES = 4

# Derandomized, with no example database: the same examples on every run and machine,
# so a failure in CI reproduces locally and the suite is never flaky.  A few examples
# per optimizer: the cost is per registry entry.
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DTYPES = ["float32", "bfloat16", "float16", "complex64", "int32", "bool"]


def _is_none(x):
    return x is None


# --- trees -----------------------------------------------------------------------------

# Dimensions of 0 to 2 entries, at most two of them: every corner (0-d, 0-size) with
# few distinct shapes, since eager dispatch compiles each primitive once per shape.
shapes = st.lists(st.integers(0, 2), min_size=0, max_size=2).map(tuple)
leaf_specs = st.one_of(st.none(), st.tuples(st.sampled_from(DTYPES), shapes))
# Every tree holds at least one trained leaf of at least one entry.
anchor_specs = st.tuples(
    st.sampled_from(["float32", "bfloat16", "float16", "complex64"]),
    st.lists(st.integers(1, 2), min_size=0, max_size=2).map(tuple),
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


def _materialize(
    spec, rng: np.random.Generator, scale: float = 1.0, zero: bool = False, real: bool = False
):
    """Arrays for a tree spec: normal(0, scale) floats (complex: both parts), small ints.

    ``spec`` is a tree spec and an anchor leaf spec; the tree is put under a dict key
    (a bare ``None`` tree would read as "no params"), next to the anchor leaf.  With
    ``real`` (an optimizer that refuses complex parameters) complex leaves are float32.
    """

    def leaf(s):
        if s is None:
            return None
        dtype, shape = s
        if real and dtype == "complex64":
            dtype = "float32"
        if dtype == "bool":
            return jnp.asarray(rng.integers(0, 2, size=shape).astype(bool))
        if dtype == "int32":
            return jnp.asarray(rng.integers(-5, 5, size=shape), jnp.int32)
        values = rng.normal(scale=scale, size=shape)
        if dtype == "complex64":
            values = values + 1j * rng.normal(scale=scale, size=shape)
        return jnp.asarray(np.zeros(shape) if zero else values, jnp.dtype(dtype))

    tree, anchor = spec
    return {"root": jax.tree.map(leaf, tree, is_leaf=_is_spec), "anchor": leaf(anchor)}


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


def _strategy(name: str, default, owner: str = ""):
    """Values for one hyperparameter, from its vocabulary entry (the owner's own entry
    first, as the factory looks it up) or from PROPERTY_RANGES.

    Per-leaf values (trees, functions) and tuples of unbounded numbers (Newton-Schulz
    coefficients) keep their default: they shape the computation rather than scale
    it, and have tests of their own.
    """
    if owner in REFERENCES and name in REFERENCES[owner].tested_elsewhere:
        return st.just(default)  # where the work runs (mesh=): tested on 8 devices
    spec = VOCABULARY.get(f"{owner}.{name}")
    if spec is None and name in PROPERTY_RANGES:
        return st.floats(*PROPERTY_RANGES[name])
    spec = spec or VOCABULARY[name]
    unbounded = isinstance(spec, Items) and any(
        isinstance(item, Real) and not np.isfinite(item.low) for item in spec.items
    )
    if isinstance(spec, PerLeaf) or unbounded:
        return st.just(default)
    return _spec_strategy(spec, name)


def _spec_strategy(spec, name: str):
    if isinstance(spec, Flag):
        return st.booleans()
    if isinstance(spec, DType):
        return st.sampled_from([None, jnp.float32, jnp.bfloat16])
    if isinstance(spec, Real):
        low = spec.low if np.isfinite(spec.low) else -1.0
        high = min(spec.high, low + 1.0)
        values = st.floats(low, high - 0.01 if spec.high_open else high, exclude_min=spec.low_open)
        return st.one_of(st.none(), values) if spec.optional else values
    if isinstance(spec, Integer):
        low = spec.low if spec.low is not None else 0
        return st.integers(low, low + 5)
    if isinstance(spec, Choice):
        return st.sampled_from(spec.options)
    if isinstance(spec, Items):
        return st.tuples(*(_spec_strategy(item, name) for item in spec.items))
    raise AssertionError(f"no strategy for {name}: add a range to PROPERTY_RANGES")


@st.composite
def _config(draw, name: str, with_decay: bool):
    """Keyword arguments for ``name``, each drawn; a combination the reference refuses
    (Nesterov without momentum) is rejected.  ``with_decay=False`` pins weight decay
    to 0 (AdamW's default is not 0)."""
    reference = REFERENCES[name]
    kwargs = {
        arg: draw(_strategy(arg, default, name)) for arg, default in reference.defaults().items()
    }
    if not with_decay:  # weight_decay, a second group's (muon's adam_weight_decay), lambd
        kwargs.update({k: 0.0 for k, v in kwargs.items() if reference.is_decay(k, v)})
    try:
        reference.rule(**kwargs)
    except ValueError:
        assume(False)
    return kwargs


def test_every_hyperparameter_has_a_strategy():
    for name, reference in REFERENCES.items():
        for arg, default in reference.defaults().items():
            assert _strategy(arg, default, name) is not None, (name, arg)


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


@pytest.mark.parametrize("name", REFERENCES)
def test_update_preserves_structure_dtypes_and_finiteness(name):
    @SETTINGS
    @given(
        spec=st.tuples(tree_specs, anchor_specs),
        kwargs=_config(name, with_decay=True),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(spec, kwargs, seed):
        rng = np.random.default_rng(seed)
        optimizer = getattr(jopt, name)(**kwargs)
        params = _materialize(spec, rng, real=not REFERENCES[name].complex_leaves)
        state = optimizer.init(params)
        state_structure, state_dtypes = _structure(state), _dtypes(state)
        for _ in range(STEPS):
            # Gradients up to a few times 10: squares stay far inside float16's range.
            grads = _grads_like(params, rng, scale=10.0)
            updates, state = optimizer.update(grads, state, params, **extra_args(name))
            assert _structure(updates) == _structure(grads)
            assert _dtypes(updates) == _dtypes(grads)
            assert _structure(state) == state_structure
            assert _dtypes(state) == state_dtypes
            assert _all_finite(state) and _all_finite(updates)
            new_params = jopt.apply_updates(params, updates)
            assert _structure(new_params) == _structure(params)
            assert _dtypes(new_params) == _dtypes(params)
            assert _all_finite(new_params)
            # Integer and boolean leaves are untouched.
            for old, new in zip(jax.tree.leaves(params), jax.tree.leaves(new_params), strict=True):
                if not jnp.issubdtype(old.dtype, jnp.inexact):
                    np.testing.assert_array_equal(new, old)
            params = new_params

    check()


@pytest.mark.parametrize("name", REFERENCES)
def test_zero_gradient_leaves_undecayed_params_unchanged(name):
    if not REFERENCES[name].still_without_gradient:
        pytest.fail(f"{name} moves without a gradient: give it a property of its own")

    @SETTINGS
    @given(
        spec=st.tuples(tree_specs, anchor_specs),
        kwargs=_config(name, with_decay=False),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(spec, kwargs, seed):
        rng = np.random.default_rng(seed)
        optimizer = getattr(jopt, name)(**kwargs)
        params = _materialize(spec, rng, real=not REFERENCES[name].complex_leaves)
        state = optimizer.init(params)
        new_params = params
        for _ in range(STEPS):
            zeros = _grads_like(params, rng, 1.0, zero=True)
            updates, state = optimizer.update(zeros, state, new_params, **extra_args(name))
            new_params = jopt.apply_updates(new_params, updates)
        for old, new in zip(jax.tree.leaves(params), jax.tree.leaves(new_params), strict=True):
            assert new.dtype == old.dtype
            np.testing.assert_array_equal(new, old)

    check()
