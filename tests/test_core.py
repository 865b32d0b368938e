"""The core: GradientTransformation, chain, identity, apply_updates, tree_get, and the
interchangeability with optax and flax.

Where jopt is compared with optax, optax runs live as the independent restatement.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import REFERENCES
from support import extra_args, reference_extra_args

import jopt

INT32_MAX = np.iinfo(np.int32).max


# --- GradientTransformation, chain, identity -----------------------------------------


def test_gradient_transformation_has_optax_shape():
    assert jopt.GradientTransformation._fields == optax.GradientTransformation._fields
    init, update = jopt.adam()  # a plain NamedTuple: unpacks like optax's
    assert callable(init) and callable(update)


def test_identity_returns_updates_unchanged(nested_tree):
    transform = jopt.identity()
    state = transform.init(nested_tree)
    assert state == jopt.EmptyState()
    updates, new_state = transform.update(nested_tree, state, nested_tree, value=1.0)
    assert updates is nested_tree and new_state == state


@pytest.mark.float64
def test_chain_applies_members_in_order(rng):
    params, grads = rng.normal(size=4), rng.normal(size=4)
    scale_then_decay = jopt.chain(jopt.scale(2.0), jopt.add_decayed_weights(0.5))
    decay_then_scale = jopt.chain(jopt.add_decayed_weights(0.5), jopt.scale(2.0))
    for transform, expected in (
        (scale_then_decay, 2.0 * grads + 0.5 * params),
        (decay_then_scale, 2.0 * (grads + 0.5 * params)),
    ):
        state = transform.init(params)
        assert state == (jopt.EmptyState(), jopt.EmptyState())
        updates, _ = transform.update(grads, state, params)
        np.testing.assert_allclose(updates, expected, rtol=1e-14)


def test_chain_state_is_the_tuple_of_member_states():
    params = {"w": jnp.ones(3)}
    state = jopt.chain(jopt.trace(0.9), jopt.scale_by_adam()).init(params)
    assert isinstance(state, tuple) and len(state) == 2
    assert isinstance(state[0], jopt.TraceState) and isinstance(state[1], jopt.ScaleByAdamState)
    assert jopt.chain().init(params) == ()
    updates, _ = jopt.chain().update(params, (), params)
    assert updates is params


def test_chain_rejects_bad_members_and_states():
    with pytest.raises(TypeError, match="argument 1"):
        jopt.chain(jopt.identity(), "sgd")
    transform = jopt.chain(jopt.identity(), jopt.identity())
    with pytest.raises(ValueError, match="2 transformations"):
        transform.update(jnp.ones(2), (jopt.EmptyState(),))


@pytest.mark.float64
@pytest.mark.parametrize("name", REFERENCES)
def test_unknown_keyword_arguments_are_ignored(name, rng):
    # optax-style callers pass value=, grad=, value_fn= and the like.
    params, grads = rng.normal(size=3), rng.normal(size=3)
    kwargs = REFERENCES[name].main
    optimizer = getattr(jopt, name)(**kwargs)
    state = optimizer.init(params)
    extra = {"value": 1.0, "grad": grads, "whatever": "x", **extra_args(name)}
    updates, _ = optimizer.update(grads, state, params, **extra)
    init, step = REFERENCES[name].tree_rule(**kwargs)
    [expected], _ = step([params], [grads], init([params]), 1, **reference_extra_args(name))
    np.testing.assert_allclose(params + updates, expected, rtol=1e-12)


# --- apply_updates ---------------------------------------------------------------------


@pytest.mark.float64
def test_apply_updates_adds_leaf_by_leaf(nested_tree, rng):
    updates = jax.tree.map(lambda x: rng.normal(size=np.shape(x)), nested_tree)
    result = jopt.apply_updates(nested_tree, updates)
    assert jax.tree.structure(result) == jax.tree.structure(nested_tree)
    for r, p, u in zip(*map(jax.tree.leaves, (result, nested_tree, updates)), strict=True):
        np.testing.assert_array_equal(r, p + u)


@pytest.mark.float64
def test_apply_updates_keeps_each_parameter_dtype():
    params = {
        "bf16": jnp.ones(2, jnp.bfloat16),
        "f16": jnp.ones(2, jnp.float16),
        "f32": jnp.ones(2, jnp.float32),
        "c64": jnp.ones(2, jnp.complex64),
    }
    # float64 updates must not promote the parameters.
    result = jopt.apply_updates(params, jax.tree.map(lambda p: jnp.full(2, 0.5), params))
    for key, leaf in result.items():
        assert leaf.dtype == params[key].dtype
        np.testing.assert_array_equal(np.asarray(leaf, np.complex128), 1.5)


def test_apply_updates_leaves_none_and_integer_parameters():
    params = {"w": jnp.ones(2), "none": None, "step": jnp.asarray(3), "mask": jnp.asarray(True)}
    updates = {"w": jnp.ones(2), "none": None, "step": jnp.asarray(1), "mask": jnp.asarray(1.0)}
    result = jopt.apply_updates(params, updates)
    assert result["none"] is None
    assert int(result["step"]) == 3 and result["step"].dtype == params["step"].dtype
    assert bool(result["mask"]) and result["mask"].dtype == jnp.bool_
    np.testing.assert_array_equal(result["w"], [2.0, 2.0])


@pytest.mark.parametrize(
    "updates, match",
    [
        ({"dense": {"w": jnp.ones((4,))}}, r"\['dense'\]\['w'\]: shape \(4,\)"),
        ({"dense": {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}}, r"\['dense'\]\['b'\]"),
    ],
    ids=["shape", "structure"],
)
def test_apply_updates_refuses_what_does_not_match(updates, match):
    # A (4,) update would broadcast into the (3, 4) parameter without the check.
    params = {"dense": {"w": jnp.ones((3, 4))}}
    with pytest.raises(ValueError, match=match):
        jopt.apply_updates(params, updates)


# --- tree_get --------------------------------------------------------------------------


class _Inner(NamedTuple):
    mu: object
    nu: object


class _Outer(NamedTuple):
    count: object
    inner: object


def test_tree_get_searches_depth_first():
    state = (_Outer(count=1, inner=_Inner(mu="first", nu=2)), {"x": 3}, [4])
    assert jopt.tree_get(state, "mu") == "first"
    assert jopt.tree_get(state, "count") == 1
    assert jopt.tree_get(state, "x") == 3
    assert jopt.tree_get(state, "missing") is None
    assert jopt.tree_get(state, "missing", default=-1) == -1
    assert jopt.tree_get(({}, [_Inner(None, "deep")]), "nu") == "deep"


def test_tree_get_finds_optimizer_state_fields(rng):
    params = jnp.asarray(rng.normal(size=3))
    state = jopt.adam(weight_decay=0.1).init(params)
    assert jopt.tree_get(state, "mu").shape == (3,)
    assert int(jopt.tree_get(state, "count")) == 0


def _two_adam_groups():
    params = {"w": jnp.ones(2), "v": jnp.ones(3)}
    groups = jopt.partition({"a": jopt.adam(), "b": jopt.adam()}, labels={"w": "a", "v": "b"})
    return groups.init(params)


def _path_text(path) -> str:
    return path if isinstance(path, str) else jax.tree_util.keystr(path)


def test_tree_get_refuses_an_ambiguous_name_and_lists_the_paths():
    """Issue 14, item 7: under two Adam groups "mu" names two moments."""
    state = _two_adam_groups()
    with pytest.raises(KeyError) as raised:
        jopt.tree_get(state, "mu")
    message = str(raised.value)
    assert "mu" in message and "'a'" in message and "'b'" in message, message
    with pytest.raises(KeyError):
        jopt.tree_get(state, "count")
    # Ambiguity is an error even where the matches hold equal values.
    with pytest.raises(KeyError):
        jopt.tree_get((_Inner(mu=1, nu=2), {"mu": 1}), "mu")


def test_tree_get_all_returns_every_match_with_its_path():
    state = _two_adam_groups()
    found = jopt.tree_get_all(state, "mu")
    assert len(found) == 2
    paths = [_path_text(path) for path, _ in found]
    assert len(set(paths)) == 2
    by_group = {
        "'a'" if "'a'" in p else "'b'": value for p, (_, value) in zip(paths, found, strict=True)
    }
    assert by_group["'a'"] is state.inner_states["a"][0].mu
    assert by_group["'b'"] is state.inner_states["b"][0].mu
    # One match, no match.
    single = jopt.adam().init(jnp.ones(2))
    [(path, value)] = jopt.tree_get_all(single, "nu")
    assert value is single[0].nu and "nu" in _path_text(path)
    assert jopt.tree_get_all(single, "missing") == []


# --- step counts -----------------------------------------------------------------------


@pytest.mark.float64
def test_counts_saturate_in_an_optimizer_with_a_schedule(rng):
    # Adam with a scheduled learning rate keeps two counts; started near the int32
    # limit, both stop at it instead of wrapping to a negative step.
    b1, b2, eps = 0.9, 0.999, 1e-8

    def schedule(count):
        return 1e-3 * (1.0 + (count == INT32_MAX))

    optimizer = jopt.adam(learning_rate=schedule)
    params = rng.normal(size=3)
    state = optimizer.init(params)
    near = jnp.asarray(INT32_MAX - 1, jnp.int32)
    state = jax.tree.map(lambda x: near if x.dtype == jnp.int32 else x, state)
    step = jax.jit(optimizer.update)
    m = v = np.zeros(3)
    counts = []
    for i in range(3):
        g = rng.normal(size=3)
        updates, state = step(g, state, params)
        counts.append([int(c) for c in jax.tree.leaves(state) if c.dtype == jnp.int32])
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        rate = 1e-3 if i == 0 else 2e-3  # the schedule saw INT32_MAX - 1, then INT32_MAX
        # At t ≈ 2³¹ both βᵗ underflow to 0: the bias corrections are 1.
        np.testing.assert_allclose(updates, -rate * m / (np.sqrt(v) + eps), rtol=1e-10)
    assert counts == [[INT32_MAX, INT32_MAX]] * 3


# --- optax and flax --------------------------------------------------------------------


def _run(transform, params, grads_fn, steps):
    update = jax.jit(transform.update)
    state = transform.init(params)
    for _ in range(steps):
        updates, state = update(grads_fn(params), state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.fixture
def small_tree(rng):
    # Two leaves, one of them 0-d: the interop tests compile optax and jopt chains,
    # which costs per leaf.
    return {"w": rng.normal(size=(2, 3)), "b": [np.asarray(rng.normal())]}


def _loss_grad(params):
    return jax.tree.map(lambda p: p - 0.5 + 0.1 * p**3, params)


@pytest.mark.float64
def test_optax_chain_accepts_jopt_transformations(small_tree):
    # optax.chain(jopt blocks...) is optax.adamw, live.
    ours = optax.chain(jopt.scale_by_adam(), jopt.add_decayed_weights(0.1), optax.scale(-0.01))
    expected = _run(optax.adamw(0.01, weight_decay=0.1), small_tree, _loss_grad, 20)
    actual = _run(ours, small_tree, _loss_grad, 20)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10)
    # optax's extra-args chain passes keyword arguments on; jopt ignores them.
    state = ours.init(small_tree)
    ours.update(small_tree, state, small_tree, value=1.0)


@pytest.mark.float64
def test_jopt_chain_accepts_optax_transformations(small_tree):
    # L2 decay (optax) → RMS scaling with ε outside the root (jopt) → learning rate
    # (optax) is jopt.rmsprop with weight_decay, checked against its NumPy restatement.
    ours = jopt.chain(
        optax.add_decayed_weights(0.1),
        jopt.scale_by_rms(0.9, eps_in_sqrt=False),
        optax.scale(-0.01),
    )
    init, step = REFERENCES["rmsprop"].rule(learning_rate=0.01, weight_decay=0.1)
    actual = _run(ours, small_tree, _loss_grad, 20)
    for leaf, a in zip(jax.tree.leaves(small_tree), jax.tree.leaves(actual), strict=True):
        p, s = leaf, init(leaf)
        for t in range(1, 21):
            p, s = step(p, _loss_grad(p), s, t)
        np.testing.assert_allclose(a, p, rtol=1e-10)
    # A plain optax transformation (no **extra_args) inside a jopt chain still gets
    # called when the chain is given keyword arguments.
    state = ours.init(small_tree)
    ours.update(small_tree, state, small_tree, value=1.0, grad=small_tree)


def test_extra_arguments_reach_members_that_take_them():
    def update(updates, state, params=None, *, value=1.0, **extra_args):
        return updates * value, state

    takes_value = jopt.GradientTransformation(lambda params: jopt.EmptyState(), update)
    transform = jopt.chain(takes_value, optax.scale(2.0))
    updates, _ = transform.update(jnp.ones(2), transform.init(jnp.ones(2)), value=3.0)
    np.testing.assert_allclose(updates, 6.0)


def _tiny_regression(rng):
    x = jnp.asarray(rng.normal(size=(8, 3)))
    y = jnp.asarray(rng.normal(size=(8, 2)))
    return x, y


def _train_state_params(tx, x, y, steps=5):
    from flax import linen as nn
    from flax.training import train_state

    model = nn.Dense(2, param_dtype=jnp.float64)
    params = model.init(jax.random.key(0), x)

    def loss(params):
        return jnp.mean((model.apply(params, x) - y) ** 2)

    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    step = jax.jit(lambda state: state.apply_gradients(grads=jax.grad(loss)(state.params)))
    for _ in range(steps):
        state = step(state)
    return state.params


@pytest.mark.float64
def test_flax_train_state_trains_with_a_jopt_optimizer(rng):
    x, y = _tiny_regression(rng)
    ours = _train_state_params(jopt.adam(0.05), x, y)
    theirs = _train_state_params(optax.adam(0.05), x, y)
    for a, e in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10)


def _nnx_params(tx, x, y, steps=5):
    from flax import nnx

    model = nnx.Linear(3, 2, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda model: jnp.mean((model(x) - y) ** 2))(model)
        optimizer.update(model, grads)

    for _ in range(steps):
        step(model, optimizer)
    return nnx.state(model, nnx.Param)


@pytest.mark.float64
def test_flax_nnx_optimizer_trains_with_a_jopt_optimizer(rng):
    x, y = _tiny_regression(rng)
    ours = _nnx_params(jopt.nesterov(0.05, momentum=0.9), x, y)
    theirs = _nnx_params(optax.sgd(0.05, momentum=0.9, nesterov=True), x, y)
    for a, e in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10)
