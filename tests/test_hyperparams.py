"""Live hyperparameters: inject_hyperparams, get_hyperparams, set_hyperparams.

An injected optimizer must follow the same trajectory as the plain one (every registry
entry, in its main configuration; the plain ones follow their references in
``test_registry.py``), keep the same state structure from ``init`` to ``update`` (so
``lax.scan`` and ``jit`` accept it), and let ``set_hyperparams`` change a value with no
retracing; the trajectories after a change are checked against NumPy restatements of
the update rules.  The state is laid out as optax's (``count``, ``hyperparams``,
``inner_state``), ``hyperparams`` holding the current value of scheduled
hyperparameters too, checked against optax live (issue 14, item 8).  Dtype arguments
stay static in every form (item 1); half-precision values are numbers (item 2).
"""

from __future__ import annotations

import functools
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import REFERENCES
from support import extra_args

import jopt
from jopt import schedules
from jopt._validation import VOCABULARY, DType

STEPS = 12


def _noisy_quadratic_run(optimizer, params, steps=STEPS, seed=3, jit=True, extra=None):
    """Closed loop on ``½‖θ − target‖² + noise``; returns the params after every step."""
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree.flatten(params)
    target = treedef.unflatten([rng.normal(size=np.shape(x)) for x in leaves])
    noise = [
        treedef.unflatten([rng.normal(size=np.shape(x)) for x in leaves]) for _ in range(steps)
    ]
    state = optimizer.init(params)

    def loss(params, noise):
        terms = jax.tree.map(
            lambda p, t, n: 0.5 * jnp.sum((p - t) ** 2) + 0.3 * jnp.sum(n * p),
            params,
            target,
            noise,
        )
        return sum(jax.tree.leaves(terms))

    def step(params, state, noise):
        grads = jax.tree.map(lambda p, t, n: p - t + 0.3 * n, params, target, noise)
        given = dict(extra or {})
        if "value_fn" in given:  # a line search: the loss of these gradients, and its value
            given.update(value_fn=functools.partial(loss, noise=noise), value=loss(params, noise))
        updates, state = optimizer.update(grads, state, params, **given)
        return jopt.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    path = []
    for t in range(steps):
        params, state = step(params, state, noise[t])
        path.append(params)
    return path, state


# Every registry entry in its main configuration, and the cases that change what is
# live: a literal zero (static, its block left out), schedules, a live zero.
OPTIMIZERS = [
    (name, jopt.optimizers.ALL[name], dict(reference.main))
    for name, reference in REFERENCES.items()
] + [
    ("adagrad-eps-root", jopt.adagrad, dict(learning_rate=0.1, eps=0.0, eps_root=1e-6)),
    (
        "sgd-momentum-schedule",
        jopt.sgd,
        dict(
            learning_rate=schedules.exponential_decay(
                0.1, decay_rate=0.5, transition_steps=3, staircase=True
            ),
            momentum=0.9,
        ),
    ),
    (
        "adam-schedule",
        jopt.adam,
        dict(
            learning_rate=schedules.warmup_cosine_decay(
                0.0, peak_value=0.05, warmup_steps=3, decay_steps=10
            ),
            b1=0.8,
        ),
    ),
    ("sgd-live-zero-momentum", jopt.sgd, dict(learning_rate=0.1, momentum=jnp.asarray(0.0))),
]


@pytest.mark.float64
@pytest.mark.parametrize("name, factory, kwargs", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_injected_optimizer_follows_the_plain_trajectory(name, factory, kwargs, rng):
    # A small tree keeps the compilation cheap; nested trees are covered below.  The
    # plain optimizers are proven against their references in test_registry.py; they
    # run eagerly here, the injected one (hyperparameters traced) under jit.
    params = {"w": rng.normal(size=(3, 2)), "b": np.asarray(rng.normal())}
    extra = extra_args(name) if name in REFERENCES else {}
    plain = factory(**kwargs)
    plain_path, plain_state = _noisy_quadratic_run(plain, params, jit=False, extra=extra)
    injected = jopt.inject_hyperparams(factory)(**kwargs)
    injected_path, injected_state = _noisy_quadratic_run(injected, params, extra=extra)
    for t, (a, b) in enumerate(zip(injected_path, plain_path, strict=True)):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15, err_msg=f"step {t + 1}")
    # The paths really move (a no-op on both sides would pass the comparison).
    assert not np.allclose(plain_path[-1]["w"], params["w"])

    # Numbers are live, except literal zeros (they leave their block out of the chain).
    zeros = {k for k, v in kwargs.items() if isinstance(v, float) and v == 0}
    live = {k for k, v in kwargs.items() if isinstance(v, float | jax.Array)} - zeros
    scheduled = {k for k, v in kwargs.items() if callable(v)}
    hyperparams = jopt.get_hyperparams(injected_state)
    assert live <= set(hyperparams) and scheduled <= set(hyperparams)
    assert not zeros & set(hyperparams)
    if not scheduled:
        # Same blocks, same state: literal zeros stayed static, so no block was added.
        assert jax.tree.structure(injected_state.inner_state) == jax.tree.structure(plain_state)
        for x, y in zip(
            jax.tree.leaves(injected_state.inner_state), jax.tree.leaves(plain_state), strict=True
        ):
            np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)


@pytest.mark.float64
def test_which_hyperparameters_are_live():
    sgd = jopt.inject_hyperparams(jopt.sgd)(learning_rate=0.1, momentum=0.9)
    assert set(sgd.init(jnp.zeros(3)).hyperparams) == {"learning_rate", "momentum"}
    # The first argument is bound by name too; the literal-zero weight_decay stays
    # static and leaves its block out, as without injection.
    sgd = jopt.inject_hyperparams(jopt.sgd)(0.1, momentum=0.9, nesterov=True)
    state = sgd.init(jnp.zeros(3))
    assert set(state.hyperparams) == {"learning_rate", "momentum"}
    adam = jopt.inject_hyperparams(jopt.adam)(learning_rate=1e-3)
    state = adam.init(jnp.zeros(3))
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps"}
    assert jax.tree.structure(state.inner_state) == jax.tree.structure(
        jopt.adam(1e-3).init(jnp.zeros(3))
    )
    # static_args keeps a numeric argument out; a dtype argument is always static.
    adam = jopt.inject_hyperparams(jopt.adam, static_args=("eps",))(learning_rate=1e-3)
    state = adam.init(jnp.zeros(3))
    assert "eps" not in state.hyperparams
    hp = jopt.get_hyperparams(state)
    assert all(v.dtype == jnp.float64 and v.shape == () for v in hp.values())


def test_hyperparam_dtype():
    opt = jopt.inject_hyperparams(jopt.adam, hyperparam_dtype=jnp.float32)(learning_rate=0.1)
    state = opt.init({"w": jnp.ones(3, jnp.float32)})
    assert {v.dtype for v in jopt.get_hyperparams(state).values()} == {jnp.dtype(jnp.float32)}
    state = jopt.set_hyperparams(state, learning_rate=0.5)
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    assert float(state.hyperparams["learning_rate"]) == 0.5


@pytest.mark.float64
def test_state_types_are_the_same_after_update_so_scan_accepts_them(nested_tree):
    """init and update give states of identical structure, dtypes and weak types."""
    schedule = schedules.cosine_decay(0.1, decay_steps=5)
    opt = jopt.inject_hyperparams(jopt.rmsprop)(learning_rate=schedule, momentum=0.5)
    state = opt.init(nested_tree)
    grads = jax.tree.map(jnp.ones_like, nested_tree)

    def body(carry, _):
        params, state = carry
        updates, state = opt.update(grads, state, params)
        return (jopt.apply_updates(params, updates), state), jopt.get_hyperparams(state)

    (params, final), logged = jax.lax.scan(body, (nested_tree, state), length=7)
    assert jax.tree.structure(final) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(state), strict=True):
        assert jax.typeof(a) == jax.typeof(b)
    expected = 0.1 * 0.5 * (1 + np.cos(np.pi * np.minimum(np.arange(7), 5) / 5))
    np.testing.assert_allclose(logged["learning_rate"], expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_array_equal(logged["momentum"], 0.5)


@pytest.mark.float64
def test_scheduled_value_in_state_is_the_one_the_update_used():
    """At init the state holds schedule(0); after update t (1-based), schedule(t − 1)."""
    schedule = schedules.linear(1.0, end_value=0.0, transition_steps=8)
    opt = jopt.inject_hyperparams(jopt.sgd)(learning_rate=schedule)
    params = jnp.zeros([])
    state = opt.init(params)
    assert float(jopt.get_hyperparams(state)["learning_rate"]) == 1.0
    for t in range(1, 11):
        updates, state = opt.update(jnp.ones([]), state, params)
        used = -float(updates)  # gradient 1, so the update is −η
        expected = 1.0 - min((t - 1) / 8, 1.0)
        assert used == pytest.approx(expected, rel=1e-14, abs=1e-16)
        assert float(jopt.get_hyperparams(state)["learning_rate"]) == pytest.approx(used, rel=1e-14)
        assert int(state.count) == t


# --- set_hyperparams ------------------------------------------------------------------------


@pytest.mark.float64
def test_set_hyperparams_changes_values_without_retracing(trace_counter):
    """Heavy ball on ½(θ − c)², with η and γ changed halfway, against NumPy."""
    opt = jopt.inject_hyperparams(jopt.sgd)(learning_rate=0.1, momentum=0.9)
    target = np.array([1.0, -2.0, 0.5])
    params = jnp.zeros(3)
    state = opt.init(params)

    def step(params, state):
        updates, state = opt.update(params - target, state, params)
        return jopt.apply_updates(params, updates), state

    step = jax.jit(trace_counter.wrap(step))
    theta, velocity = np.zeros(3), np.zeros(3)
    for t in range(8):
        if t == 4:
            old = state
            state = jopt.set_hyperparams(state, learning_rate=0.02, momentum=0.5)
            # The old state is unchanged.
            assert float(jopt.get_hyperparams(old)["learning_rate"]) == 0.1
        lr, gamma = (0.1, 0.9) if t < 4 else (0.02, 0.5)
        params, state = step(params, state)
        velocity = gamma * velocity + (theta - target)
        theta = theta - lr * velocity
        np.testing.assert_allclose(params, theta, rtol=1e-14, atol=1e-16)
    assert trace_counter.count == 1
    assert float(jopt.get_hyperparams(state)["momentum"]) == 0.5


@pytest.mark.float64
def test_set_hyperparams_on_adam_betas_without_retracing(trace_counter, nested_tree):
    opt = jopt.inject_hyperparams(jopt.adam)(learning_rate=0.01)
    state = opt.init(nested_tree)
    grads = jax.tree.map(jnp.ones_like, nested_tree)
    update = jax.jit(trace_counter.wrap(opt.update))
    _, state = update(grads, state, nested_tree)
    state = jopt.set_hyperparams(state, b1=0.5, b2=0.9, eps=1e-3, learning_rate=0.1)
    updates, state = update(grads, state, nested_tree)
    assert trace_counter.count == 1
    # Adam on a constant gradient g = 1: step 1 with the defaults, step 2 with the new values.
    m = v = 0.0
    for t, (b1, b2, eps, lr) in enumerate([(0.9, 0.999, 1e-8, 0.01), (0.5, 0.9, 1e-3, 0.1)], 1):
        m, v = b1 * m + (1 - b1), b2 * v + (1 - b2)
        u = -lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    for leaf in jax.tree.leaves(updates):
        np.testing.assert_allclose(leaf, u, rtol=1e-13)


@pytest.mark.float64
def test_a_live_zero_can_be_switched_on():
    """``momentum=jnp.asarray(0.0)`` keeps the trace block, so momentum can start later."""
    opt = jopt.inject_hyperparams(jopt.sgd)(learning_rate=0.1, momentum=jnp.asarray(0.0))
    params, theta, velocity = jnp.asarray(2.0), 2.0, 0.0
    state = opt.init(params)
    update = jax.jit(opt.update)
    for t in range(6):
        gamma = 0.0 if t < 3 else 0.9
        if t == 3:
            state = jopt.set_hyperparams(state, momentum=0.9)
        updates, state = update(params, state, params)  # J = θ²/2
        params = jopt.apply_updates(params, updates)
        velocity = gamma * velocity + theta
        theta = theta - 0.1 * velocity
        assert float(params) == pytest.approx(theta, rel=1e-14)


BAD_VALUES = [
    ("lr", 0.1, ValueError, "'lr' is not a live hyperparameter"),
    ("momentum", 0.9, ValueError, "momentum"),  # a literal zero: static
    ("nesterov", True, ValueError, "nesterov"),
    ("learning_rate", -0.1, ValueError, "learning_rate"),
    ("learning_rate", float("nan"), ValueError, "learning_rate"),
    ("learning_rate", float("inf"), ValueError, "learning_rate"),
    ("learning_rate", np.ones(2), TypeError, "learning_rate must be a scalar"),
    ("learning_rate", "fast", TypeError, "learning_rate"),
    ("learning_rate", True, TypeError, "learning_rate"),
    ("b1", 1.0, ValueError, "b1"),
    ("b2", -0.1, ValueError, "b2"),
    ("eps", -1e-8, ValueError, "eps"),
]


@pytest.mark.parametrize("name, value, error, match", BAD_VALUES)
def test_set_hyperparams_validates(name, value, error, match):
    state = jopt.inject_hyperparams(jopt.adam)(learning_rate=0.1).init(jnp.zeros(2))
    with pytest.raises(error, match=re.escape(match)):
        jopt.set_hyperparams(state, **{name: value})


def test_set_hyperparams_refuses_a_scheduled_value():
    opt = jopt.inject_hyperparams(jopt.sgd)(learning_rate=schedules.constant(0.1))
    with pytest.raises(ValueError, match="learning_rate follows a schedule"):
        jopt.set_hyperparams(opt.init(jnp.zeros(2)), learning_rate=0.2)


def test_bad_hyperparameters_fail_at_construction():
    with pytest.raises(ValueError, match="b1"):
        jopt.inject_hyperparams(jopt.adam)(learning_rate=0.1, b1=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        jopt.inject_hyperparams(jopt.sgd)(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="learning_rate"):
        jopt.inject_hyperparams(jopt.sgd)(learning_rate=-1.0)
    with pytest.raises(ValueError, match="static_args"):
        jopt.inject_hyperparams(jopt.sgd, static_args=("lr",))(learning_rate=0.1)
    with pytest.raises(TypeError, match="factory"):
        jopt.inject_hyperparams(lambda *args: jopt.sgd(*args))(0.1)
    with pytest.raises(TypeError):
        jopt.inject_hyperparams(jopt.sgd)(lr=0.1)


# --- finding the injected state inside others ----------------------------------------------


@pytest.mark.float64
def test_get_and_set_inside_a_chain_and_a_partition():
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    chained = jopt.chain(
        jopt.clip_by_global_norm(10.0), jopt.inject_hyperparams(jopt.sgd)(learning_rate=0.1)
    )
    state = chained.init(params)
    assert float(jopt.get_hyperparams(state)["learning_rate"]) == 0.1
    state = jopt.set_hyperparams(state, learning_rate=0.3)
    assert isinstance(state, tuple) and float(state[1].hyperparams["learning_rate"]) == 0.3
    updates, _ = chained.update(params, state, params)
    np.testing.assert_allclose(updates["b"], -0.3)

    groups = jopt.partition(
        {
            "x": jopt.inject_hyperparams(jopt.sgd)(learning_rate=0.1),
            "y": jopt.inject_hyperparams(jopt.adam)(learning_rate=0.2),
        },
        labels={"a": "x", "b": "y"},
    )
    state = groups.init(params)
    with pytest.raises(ValueError, match="2 injected optimizers"):
        jopt.get_hyperparams(state)
    assert float(jopt.get_hyperparams(state.inner_states["y"])["learning_rate"]) == 0.2
    with pytest.raises(ValueError, match="no injected hyperparameters"):
        jopt.get_hyperparams(jopt.adam().init(params))


@pytest.mark.float64
def test_injects_into_an_optax_factory(nested_tree):
    """An optax factory works too and follows optax's own trajectory."""
    kwargs = dict(learning_rate=0.01, b1=0.8, b2=0.99)
    ours, _ = _noisy_quadratic_run(jopt.inject_hyperparams(optax.adam)(**kwargs), nested_tree)
    theirs, _ = _noisy_quadratic_run(optax.adam(**kwargs), nested_tree)
    for a, b in zip(jax.tree.leaves(ours[-1]), jax.tree.leaves(theirs[-1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


# --- issue 14, item 8: the state is laid out as optax's -------------------------------------


def test_injected_state_has_optax_field_names_first():
    fields = optax.InjectHyperparamsState._fields
    assert fields == ("count", "hyperparams", "inner_state")
    assert jopt.InjectHyperparamsState._fields[: len(fields)] == fields


def _lockstep(ours, theirs, steps=6):
    """``state.hyperparams`` of both after init and after each update, the same grads."""
    params = {"w": jnp.asarray([1.0, -2.0, 0.5])}
    states = [ours.init(params), theirs.init(params)]
    history = [tuple(s.hyperparams for s in states)]
    for t in range(steps):
        grads = {"w": jnp.asarray([0.3, -0.1, 0.2]) * (t + 1)}
        states = [
            tx.update(grads, s, params)[1] for tx, s in zip((ours, theirs), states, strict=True)
        ]
        history.append(tuple(s.hyperparams for s in states))
    return history


def test_scheduled_hyperparameters_are_in_state_hyperparams_as_in_optax():
    """The common logging line ``state.hyperparams["learning_rate"]`` works with a
    schedule and gives what optax gives: the value the latest update used."""
    schedule = lambda count: 0.1 * 0.5**count
    ours = jopt.inject_hyperparams(optax.sgd)(learning_rate=schedule, momentum=0.9)
    theirs = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule, momentum=0.9)
    for t, (mine, optax_values) in enumerate(_lockstep(ours, theirs)):
        assert set(mine) == set(optax_values), t
        for key, value in optax_values.items():
            np.testing.assert_allclose(mine[key], value, rtol=1e-6, err_msg=f"{key}, update {t}")
        # After update t (1-based) the value is schedule(t − 1); at init schedule(0).
        np.testing.assert_allclose(mine["learning_rate"], schedule(max(t - 1, 0)), rtol=1e-6)


def test_jopt_optimizers_keep_scheduled_values_in_state_hyperparams():
    schedule = schedules.linear(0.1, end_value=0.0, transition_steps=4)
    injected = jopt.inject_hyperparams(jopt.adam)(learning_rate=schedule, b1=0.8)
    params = jnp.ones(3)
    state = injected.init(params)
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps"}
    update = jax.jit(injected.update)
    for t in range(1, 7):
        _, state = update(jnp.ones(3), state, params)
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(
            float(schedule(t - 1)), rel=1e-6, abs=1e-9
        )
    with pytest.raises(ValueError, match="learning_rate follows a schedule"):
        jopt.set_hyperparams(state, learning_rate=0.1)


# --- issue 14, items 1 and 2: dtypes stay static, half precision is a number ------------------


def _dtype_arguments():
    return [
        (name, argument)
        for name in REFERENCES
        for argument in inspect.signature(jopt.optimizers.ALL[name]).parameters
        # Storage dtypes: a compute dtype (muon's ns_dtype) is held by no state.
        if isinstance(VOCABULARY.get(argument), DType) and VOCABULARY[argument].storage
    ]


@pytest.mark.parametrize(
    "form",
    [jnp.bfloat16, jnp.float32, "bfloat16", jnp.dtype("float32")],
    ids=["bfloat16-class", "float32-class", "string", "dtype"],
)
@pytest.mark.parametrize("name, argument", _dtype_arguments())
def test_dtype_arguments_stay_static(name, argument, form):
    """A dtype class is callable but not a schedule: it reaches the factory as given."""
    kwargs = {**REFERENCES[name].main, argument: form}
    injected = jopt.inject_hyperparams(jopt.optimizers.ALL[name])(**kwargs)
    plain = jopt.optimizers.ALL[name](**kwargs)
    params = {"w": jnp.asarray([1.0, -2.0, 0.5])}
    state, plain_state = injected.init(params), plain.init(params)
    assert argument not in jopt.get_hyperparams(state)
    assert [x.dtype for x in jax.tree.leaves(state.inner_state)] == [
        x.dtype for x in jax.tree.leaves(plain_state)
    ]
    assert jnp.dtype(form) in {x.dtype for x in jax.tree.leaves(state.inner_state)}
    grads = {"w": jnp.asarray([0.3, -0.1, 0.2])}
    ours, _ = injected.update(grads, state, params, **extra_args(name))
    theirs, _ = plain.update(grads, plain_state, params, **extra_args(name))
    # float32 arrays for b1, b2 against Python floats: 1 − β₂ differs by 1e-5 relative.
    np.testing.assert_allclose(ours["w"], theirs["w"], rtol=1e-4)


def test_half_precision_hyperparam_dtype():
    """Issue 14, item 2: ``hyperparam_dtype=bfloat16`` is a real floating dtype."""
    injected = jopt.inject_hyperparams(jopt.sgd, hyperparam_dtype=jnp.bfloat16)(0.1, momentum=0.9)
    state = injected.init(jnp.ones(2))
    assert {v.dtype for v in jopt.get_hyperparams(state).values()} == {jnp.dtype(jnp.bfloat16)}
    updates, _ = injected.update(jnp.ones(2), state)
    # bfloat16(0.1) = 0.10009765625: the stored value is the one used.
    np.testing.assert_allclose(updates, -0.10009765625, rtol=1e-6)
    # Adam's b2 = 0.999 rounds to 1.0 in bfloat16: refused as out of range, by name,
    # not as "not a number".
    with pytest.raises(ValueError, match=r"b2.*1\.0"):
        jopt.inject_hyperparams(jopt.adam, hyperparam_dtype=jnp.bfloat16)(1e-3)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_set_hyperparams_takes_half_precision_values(dtype):
    state = jopt.inject_hyperparams(jopt.sgd)(0.1, momentum=0.9).init(jnp.ones(2))
    state = jopt.set_hyperparams(state, learning_rate=jnp.asarray(0.25, dtype))
    assert float(jopt.get_hyperparams(state)["learning_rate"]) == 0.25
    assert jopt.get_hyperparams(state)["learning_rate"].dtype == jnp.float32


def test_integer_arguments_stay_static():
    # Step counts and periods are Python ints in their factories (the vocabulary types
    # them as integers): injected as float arrays they would be refused.
    injected = jopt.inject_hyperparams(jopt.ademamix)(learning_rate=1e-3, alpha_beta3_warmup=10)
    state = injected.init(jnp.ones(3))
    assert "alpha_beta3_warmup" not in state.hyperparams
    assert {"learning_rate", "alpha", "b3"} <= set(state.hyperparams)
