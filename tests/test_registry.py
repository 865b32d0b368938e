"""The generic suite: every optimizer of ``jopt.optimizers.ALL`` against its reference.

``tests/references/`` holds, for each registry name, a float64 NumPy restatement
written from the paper and torch.optim, the configurations to test and the
optimizer's capabilities.  Every test here is parametrized over that table, so a new
registry entry with its reference gets all of them:

* the registry and the references name the same optimizers, with the same signatures;
* every configuration follows its reference in float64 (rtol 1e-10) eagerly, with a
  state whose types never change (so a jitted step never retraces); the main
  configuration does under jit, traced once, and in float32 to float32 rounding;
* ``vmap`` over independent problems, ``grad`` through ``update`` (against central
  differences);
* parameters keep their dtype (bfloat16, float16, float32, float64); ``None``,
  integer and boolean leaves pass through with no state; complex leaves follow the
  reference with ``|g|²``; a zero gradient leaves the parameters where they are;
* trees that disagree raise errors naming the path, at trace time.

Problems are small (one nested tree of two leaves, 10 to 30 steps) and only the main
configuration is compiled, to keep the cost per registry entry low (compiling is most
of it).  Jitted runs with integer, boolean and ``None`` leaves are in
``test_checkpoint.py``, over every registry entry.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import REFERENCES, all_configs, config_id, main_configs
from support import (
    assert_trajectories_close,
    complex_noises,
    extra_args,
    make_step,
    noises,
    reference_extra_args,
    run_jopt,
    run_reference,
    small_tree,
)

import jopt

STEPS = 30
EAGER_STEPS = 10


def _params(selected):
    return [pytest.param(name, kwargs, id=config_id(name, kwargs)) for name, kwargs in selected]


def _build(name, kwargs):
    return getattr(jopt, name)(**kwargs)


def _step(name, optimizer):
    reference = REFERENCES[name]
    return make_step(optimizer, reference.needs_value, reference.needs_value_fn)


# --- the registry and the references --------------------------------------------------------


def test_registry_and_references_name_the_same_optimizers_in_order():
    assert list(jopt.optimizers.ALL) == list(REFERENCES)
    for name, factory in jopt.optimizers.ALL.items():
        assert getattr(jopt, name) is factory


def _signature(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", REFERENCES)
def test_signature_is_the_references(name):
    # Names, defaults and kinds are the contract: the first argument positional or
    # keyword, every later one keyword-only.
    alias = _signature(jopt.optimizers.ALL[name])
    assert alias == _signature(REFERENCES[name].rule)
    assert alias[0][1] is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in alias[1:])


@pytest.mark.parametrize("name", REFERENCES)
def test_every_option_is_tested(name):
    # Each argument is set away from its default by at least one configuration.
    reference = REFERENCES[name]
    defaults = reference.defaults()
    untested = [
        arg
        for arg, default in defaults.items()
        if arg not in reference.tested_elsewhere
        and not any(
            arg in c and c[arg] is not default and c[arg] != default for c in reference.configs
        )
    ]
    assert not untested, f"{name}: no configuration sets {untested}"
    for kwargs in reference.configs:
        reference.rule(**kwargs)  # each configuration is one the reference accepts


# --- against the reference ------------------------------------------------------------------


def _signature_of(tree):
    """What a jitted function's cache is keyed on: every leaf's shape, dtype, weak type."""
    return jax.tree.structure(tree), [jax.typeof(leaf) for leaf in jax.tree.leaves(tree)]


@pytest.mark.float64
@pytest.mark.parametrize("name, kwargs", _params(all_configs()))
def test_matches_reference_float64(name, kwargs, rng):
    # Eagerly, op by op, every configuration.  The state keeps its structure, dtypes
    # and weak types from init on, so a jitted step is traced once (checked under jit
    # in the next test).
    params = small_tree(rng)
    noise = noises(rng, params, EAGER_STEPS)
    expected = run_reference(name, kwargs, params, noise)
    optimizer = _build(name, kwargs)
    step = _step(name, optimizer)
    state = optimizer.init(jax.tree.map(jnp.asarray, params))
    signature = _signature_of(state)
    trajectory = []
    for n in noise:
        params, state = step(params, state, n)
        assert _signature_of(state) == signature
        trajectory.append(params)
    assert_trajectories_close(trajectory, expected, 1e-10)


@pytest.mark.float64
@pytest.mark.parametrize("name, kwargs", _params(main_configs()))
def test_matches_reference_float64_jitted_traced_once(name, kwargs, rng, trace_counter):
    params = small_tree(rng)
    noise = noises(rng, params, STEPS)
    expected = run_reference(name, kwargs, params, noise)
    optimizer = _build(name, kwargs)
    jitted = jax.jit(trace_counter.wrap(_step(name, optimizer)))
    params = jax.tree.map(jnp.asarray, params)
    assert_trajectories_close(run_jopt(jitted, optimizer, params, noise), expected, 1e-10)
    assert trace_counter.count == 1, "the jitted step was traced again after the first step"


@pytest.mark.parametrize("name, kwargs", _params(main_configs()))
def test_matches_reference_float32(name, kwargs, rng):
    # float32 parameters and gradients, as users run them, against the float64
    # reference started from the same float32 values: the difference is float32
    # rounding (the largest measured over 30 steps, |Δ|/(1 + |θ|), was 7e-7, AdamW).
    params = small_tree(rng, np.float32)
    noise = noises(rng, params, STEPS)
    expected = run_reference(name, kwargs, params, noise)
    optimizer = _build(name, kwargs)
    actual = run_jopt(jax.jit(_step(name, optimizer)), optimizer, params, noise)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(actual[-1]))
    tolerance = REFERENCES[name].float32_rtol
    assert_trajectories_close(actual, expected, rtol=tolerance, atol=tolerance)


# --- vmap and grad ------------------------------------------------------------------------


@pytest.mark.float64
@pytest.mark.parametrize("name, kwargs", _params(main_configs()))
def test_update_under_vmap_over_independent_problems(name, kwargs, rng):
    # Three problems that differ in parameters, gradients and learning rate, batched
    # on a leading axis; each is compared with its own reference run.
    batch, steps = 3, 8
    trees = [small_tree(rng) for _ in range(batch)]
    noise = [noises(rng, trees[0], steps) for _ in range(batch)]
    rates = np.array([0.5, 1.0, 2.0]) * kwargs["learning_rate"]

    def stack(trees):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)

    @jax.jit
    @jax.vmap
    def batched_step(params, state, noise, learning_rate):
        optimizer = _build(name, {**kwargs, "learning_rate": learning_rate})
        return _step(name, optimizer)(params, state, noise)

    params = stack(trees)
    state = jax.vmap(_build(name, kwargs).init)(params)
    for t in range(steps):
        params, state = batched_step(params, state, stack([n[t] for n in noise]), rates)
    for i in range(batch):
        expected = run_reference(name, {**kwargs, "learning_rate": rates[i]}, trees[i], noise[i])
        actual = jax.tree.map(lambda x, i=i: x[i], params)
        assert_trajectories_close([actual], expected[-1:], rtol=1e-10)


@pytest.mark.float64
@pytest.mark.parametrize(
    "name, kwargs",
    _params([(name, ref.differentiable_config) for name, ref in REFERENCES.items()]),
)
def test_update_is_differentiable(name, kwargs, rng):
    # The loss ½|θ₂|² after two steps, as a function of the learning rate and of the
    # initial parameters: jax.grad against central differences (float64, h = 1e-6).
    # One leaf: compiling the backward pass is the cost here, trees are tested above.
    # The main configuration, or the first one reverse mode goes through (L-BFGS's
    # line search is a while loop).
    params = {"w": rng.normal(size=3)}
    noise = noises(rng, params, 2)
    rate = kwargs["learning_rate"]

    def loss(learning_rate, params):
        optimizer = _build(name, {**kwargs, "learning_rate": learning_rate})
        step = _step(name, optimizer)
        state = optimizer.init(params)
        for n in noise:
            params, state = step(params, state, n)
        return 0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))

    # One compiled program: its values give the differences, its gradient the check.
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))

    def value(learning_rate, params):
        return value_and_grad(learning_rate, params)[0]

    _, (grad_rate, grad_params) = value_and_grad(rate, params)
    h = 1e-6
    finite_difference = (value(rate + h, params) - value(rate - h, params)) / (2 * h)
    np.testing.assert_allclose(grad_rate, finite_difference, rtol=1e-6)
    assert abs(grad_rate) > 1e-3

    direction = jax.tree.map(lambda x: rng.normal(size=np.shape(x)), params)
    shifted = [jax.tree.map(lambda p, d, s=s: p + s * h * d, params, direction) for s in (1, -1)]
    finite_difference = (value(rate, shifted[0]) - value(rate, shifted[1])) / (2 * h)
    directional = sum(
        np.vdot(g, d)
        for g, d in zip(jax.tree.leaves(grad_params), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(directional, finite_difference, rtol=1e-6)


# --- dtypes and special leaves ---------------------------------------------------------------

DTYPES = [
    pytest.param(jnp.bfloat16, id="bfloat16"),
    pytest.param(jnp.float16, id="float16"),
    pytest.param(jnp.float32, id="float32"),
    pytest.param(jnp.float64, id="float64", marks=pytest.mark.float64),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REFERENCES)
def test_parameters_keep_their_dtype(name, dtype, rng):
    for kwargs in REFERENCES[name].configs:
        params = {"w": jnp.asarray(rng.normal(size=3), dtype), "b": jnp.asarray(0.5, dtype)}
        optimizer = _build(name, kwargs)
        state = optimizer.init(params)
        for t in range(2):
            noise = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), dtype), params)
            params, state = _step(name, optimizer)(params, state, noise)
            for leaf in jax.tree.leaves(params):
                assert leaf.dtype == dtype, (kwargs, t)
                assert np.all(np.isfinite(np.asarray(leaf, np.float64))), (kwargs, t)


def _odd_params(rng):
    # The float shapes are small_tree's: eager dispatch compiles per shape and dtype.
    return {
        "w": rng.normal(size=(3, 2)),
        "none": None,
        "step": jnp.full(5, 7, jnp.int32),
        "mask": jnp.asarray([True, False]),
        "nested": [None, jnp.asarray(rng.normal(), jnp.float32)],
    }


def _odd_loss(params):
    return 0.5 * jnp.sum(params["w"] ** 2) + 0.5 * jnp.sum(params["nested"][1] ** 2)


def _check_odd_step(name, kwargs, optimizer, params, step):
    """Two steps on a tree with None, integer and boolean leaves; returns the new params."""
    state = optimizer.init(params)
    grads = jax.grad(_odd_loss, allow_int=True)(params)  # float0 for the integer leaves
    assert grads["step"].dtype == jax.dtypes.float0
    updates, new_state = step(grads, state, params, **extra_args(name))
    assert updates["none"] is None and updates["nested"][0] is None
    new_params = jopt.apply_updates(params, updates)
    assert new_params["none"] is None and new_params["nested"][0] is None
    for key in ("step", "mask"):
        assert new_params[key].dtype == params[key].dtype
        np.testing.assert_array_equal(new_params[key], params[key])
    assert new_params["nested"][1].dtype == jnp.float32
    # No state for the untrained leaves: where a state tree mirrors the params, their
    # place holds None, and no state leaf has their shapes.  (A trained leaf's place
    # may hold None too: in the state of a parameter group that does not train it, as
    # under jopt.partition, in a factored state's field it does not use, or in the
    # matrix slot of an axis that has none.)
    reference = REFERENCES[name]
    for tree in (state, new_state):
        flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)[0]
        for path, leaf in flat:
            key = jax.tree_util.keystr(path)
            if any(k in key for k in ("['step']", "['mask']", "['none']", "['nested'][0]")):
                assert leaf is None, key
            else:
                # 7 trained entries: the (3, 2) matrix and the 0-d leaf.
                assert leaf is None or reference.state_shape_ok(np.shape(leaf), (3, 2), 7), key
    # The float64 leaf took exactly the reference's first step, the reference given
    # the trained leaves only (whole-tree references couple them).
    init, ref_step = REFERENCES[name].tree_rule(**kwargs)
    trained = [params["w"], np.asarray(params["nested"][1], np.float64)]
    [expected, _], _ = ref_step(trained, trained, init(trained), 1, **reference_extra_args(name))
    np.testing.assert_allclose(new_params["w"], expected, rtol=1e-10, err_msg=str(kwargs))
    return new_params


@pytest.mark.float64
@pytest.mark.parametrize("name", REFERENCES)
def test_none_integer_and_boolean_leaves_pass_through_without_state(name, rng):
    params = _odd_params(rng)
    for kwargs in REFERENCES[name].configs:
        optimizer = _build(name, kwargs)
        _check_odd_step(name, kwargs, optimizer, params, optimizer.update)


@pytest.mark.float64
@pytest.mark.parametrize("name", REFERENCES)
def test_complex_parameters_use_squared_magnitudes(name, rng):
    reference = REFERENCES[name]
    optimizer = _build(name, reference.main)
    params = jax.tree.map(lambda x: x + 1j * rng.normal(size=np.shape(x)), small_tree(rng))
    if not reference.complex_leaves:
        with pytest.raises((TypeError, ValueError), match="complex"):
            optimizer.init(params)
        return
    noise = complex_noises(rng, params, EAGER_STEPS)
    expected = run_reference(name, reference.main, params, noise, np.complex128)
    actual = run_jopt(_step(name, optimizer), optimizer, params, noise)
    assert_trajectories_close(actual, expected, rtol=1e-10)
    assert all(leaf.dtype == jnp.complex128 for leaf in jax.tree.leaves(actual[-1]))
    # The squared-magnitude accumulators are stored real.
    state = optimizer.init(params)
    for field in ("nu", "sum_of_squares", "grad_sq_avg", "delta_sq_avg"):
        for _, leaf in _fields_named(state, field):
            assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(leaf)), field


def _fields_named(tree, name):
    """Every NamedTuple field called ``name`` in ``tree``, with its path (depth first)."""
    found = []

    def visit(node, path):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for field, child in zip(node._fields, node, strict=True):
                if field == name:
                    found.append((f"{path}.{field}", child))
                visit(child, f"{path}.{field}")
        elif isinstance(node, (tuple, list)):
            for i, child in enumerate(node):
                visit(child, f"{path}[{i}]")
        elif isinstance(node, dict):
            for key, child in node.items():
                visit(child, f"{path}[{key!r}]")

    visit(tree, "")
    return found


@pytest.mark.parametrize("name", REFERENCES)
def test_zero_gradient_leaves_parameters_unchanged(name, rng):
    reference = REFERENCES[name]
    still = [c for c in reference.configs if not reference.decays(c)]
    assert still or not reference.still_without_gradient, "no configuration without decay"
    params = jax.tree.map(jnp.asarray, small_tree(rng, np.float32))
    zeros = jax.tree.map(jnp.zeros_like, params)
    for kwargs in still:
        optimizer = _build(name, kwargs)
        state = optimizer.init(params)
        for _ in range(3):
            updates, state = optimizer.update(zeros, state, params, **extra_args(name))
            new_params = jopt.apply_updates(params, updates)
            if reference.still_without_gradient:
                for new, old in zip(
                    jax.tree.leaves(new_params), jax.tree.leaves(params), strict=True
                ):
                    np.testing.assert_array_equal(new, old, err_msg=str(kwargs))
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
            key = jax.tree_util.keystr(path)
            if not any(f".{field}" in key for field in reference.unset_fields):
                assert np.all(np.isfinite(leaf)), (kwargs, key)


# --- trees that disagree ----------------------------------------------------------------------


def _tree(w_shape=(3, 4)):
    return {"dense": {"w": jnp.ones(w_shape), "b": jnp.zeros(4)}, "scale": jnp.ones(())}


@pytest.mark.parametrize("name", REFERENCES)
def test_trees_that_disagree_raise_naming_the_path(name):
    optimizer = _build(name, REFERENCES[name].main)
    grads = _tree()
    state = optimizer.init(grads)
    # Params of another shape, at trace time (jax.eval_shape only traces).
    extra = extra_args(name)
    with pytest.raises(ValueError) as raised:
        jax.eval_shape(lambda *a: optimizer.update(*a, **extra), grads, state, _tree((4, 3)))
    message = str(raised.value)
    assert message.startswith("updates['dense']['w']: shape (3, 4) vs "), message
    assert message.endswith(" (4, 3)"), message
    # A state built for other shapes.
    with pytest.raises(ValueError, match=r"\['dense'\]\['w'\]"):
        optimizer.update(grads, optimizer.init(_tree((4, 3))), grads, **extra)
    # A leaf missing from the updates.
    partial = {"dense": {"w": grads["dense"]["w"]}, "scale": grads["scale"]}
    with pytest.raises(ValueError, match=r"\['dense'\]\['b'\]"):
        optimizer.update(partial, state, grads, **extra)
    with pytest.raises(ValueError, match=r"\['dense'\]\['w'\]"):
        jopt.apply_updates(_tree((4, 3)), grads)
