"""Schedule-free AdamW and SGD, and Prodigy, against optax.contrib and the references.

* **optax.contrib.**  Where its schedule-free and Prodigy compute what the reference
  packages compute, jopt agrees with it live (and ``schedule_free_eval_params`` means
  the same thing); where they differ (optax's warmup is one step late, its Prodigy
  always corrects the bias), the difference is pinned, as ``docs/porting.md`` says.
* **Readers and state.**  ``schedule_free_eval_params`` under ``partition`` and
  ``inject_hyperparams``, ``prodigy_d``, the steps Prodigy does not take, schedules
  against the float64 references, and the exact bytes of each state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_replay import golden_loss
from references import REFERENCES
from support import (
    assert_trajectories_close,
    noises,
    run_jopt,
    run_reference,
    run_side_by_side,
    small_tree,
)
from tuning_free_support import load

import jopt

pytestmark = pytest.mark.float64


# --- optax.contrib ---------------------------------------------------------------------


def _final(run):
    updates, params, state = run[-1]
    return params, state


def test_schedule_free_matches_optax_contrib_without_warmup(rng):
    params = small_tree(rng)
    cases = [
        (
            jopt.schedule_free_adamw(0.02, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.01),
            optax.contrib.schedule_free_adamw(0.02, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.01),
        ),
        (
            jopt.schedule_free_sgd(0.1, momentum=0.8, weight_decay=0.01, weight_lr_power=1.0),
            optax.contrib.schedule_free_sgd(0.1, b1=0.8, weight_decay=0.01, weight_lr_power=1.0),
        ),
    ]
    for ours, theirs in cases:
        runs = run_side_by_side([ours, theirs], params, steps=15, jit=True)
        for (_, p1, _), (_, p2, _) in zip(*runs, strict=True):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), p1, p2)
        (y1, s1), (y2, s2) = _final(runs[0]), _final(runs[1])
        # Same meaning: x from each library's own state.
        x1 = jopt.schedule_free_eval_params(s1, y1)
        x2 = optax.contrib.schedule_free_eval_params(s2, y2)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-11), x1, x2)
        assert not np.allclose(jax.tree.leaves(x1)[0], jax.tree.leaves(y1)[0])


def test_optax_contrib_warmup_is_one_step_late():
    """optax's warmup schedule is 0 at its first step, schedulefree's is 1/warmup_steps
    (docs/porting.md): on the golden warmup run optax leaves the trajectory."""
    record = load("schedule_free_sgd_warmup")
    hp = record["hyperparameters"]
    theirs = optax.contrib.schedule_free_sgd(
        hp["lr"],
        warmup_steps=hp["warmup_steps"],
        b1=hp["momentum"],
        weight_decay=hp["weight_decay"],
        weight_lr_power=hp["weight_lr_power"],
    )
    ours = jopt.schedule_free_sgd(
        hp["lr"],
        momentum=hp["momentum"],
        weight_decay=hp["weight_decay"],
        warmup_steps=hp["warmup_steps"],
        weight_lr_power=hp["weight_lr_power"],
    )
    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    grads = jax.jit(jax.grad(golden_loss(record)))(params)
    first = [jax.jit(tx.update)(grads, tx.init(params), params)[0]["W1"] for tx in (ours, theirs)]
    # optax: z does not move, y = b1·z + (1 − b1)·z up to rounding.
    assert np.max(np.abs(first[1])) < 1e-15 and np.max(np.abs(first[0])) > 1e-3


def test_prodigy_matches_optax_contrib_with_bias_correction(rng):
    params = small_tree(rng)
    kwargs = dict(eps=1e-6, weight_decay=0.01, d0=1e-4, d_coef=0.7)
    ours = jopt.prodigy(0.5, b1=0.8, b2=0.99, b3=0.95, use_bias_correction=True, **kwargs)
    theirs = optax.contrib.prodigy(
        0.5, betas=(0.8, 0.99), beta3=0.95, eps=1e-6, weight_decay=0.01,
        estim_lr0=1e-4, estim_lr_coef=0.7,
    )  # fmt: skip
    runs = run_side_by_side([ours, theirs], params, steps=15, jit=True)
    for (_, p1, s1), (_, p2, s2) in zip(*runs, strict=True):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-11), p1, p2)
        np.testing.assert_allclose(jopt.prodigy_d(s1), s2.estim_lr, rtol=1e-11)
    assert jopt.prodigy_d(runs[0][-1][2]) > 5 * 1e-4  # d grew
    # prodigyopt's default, no bias correction, is not optax's.
    plain = jopt.prodigy(0.5, b1=0.8, b2=0.99, b3=0.95, **kwargs)
    other = run_side_by_side([plain], params, steps=15, jit=True)[0]
    assert not np.allclose(jax.tree.leaves(other[-1][1])[0], jax.tree.leaves(runs[1][-1][1])[0])


# --- schedules, against the float64 references -----------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("schedule_free_adamw", {"warmup_steps": 3, "weight_decay": 0.05}),
        ("schedule_free_sgd", {"momentum": 0.8}),
        ("prodigy", {"use_bias_correction": True}),
    ],
)
def test_learning_rate_schedules_follow_the_references(name, kwargs, rng):
    # A schedule that starts at 0: Prodigy takes no step until η > 0.
    schedule = lambda count: 0.3 * jnp.minimum(count, 4) / 4 * 0.9**count  # noqa: E731
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=())}
    noise = noises(rng, params, 12)
    optimizer = getattr(jopt, name)(schedule, **kwargs)
    step = jax.jit(lambda p, s, n: _noisy_step(optimizer, p, s, n))
    as_float = lambda count: float(schedule(count))  # noqa: E731
    expected = run_reference(name, {"learning_rate": as_float, **kwargs}, params, noise)
    actual = run_jopt(step, optimizer, params, noise)
    assert_trajectories_close(actual, expected, rtol=1e-10)


def _noisy_step(optimizer, params, state, noise):
    grads = jax.tree.map(lambda p, n: p + n, params, noise)
    updates, state = optimizer.update(grads, state, params)
    return jopt.apply_updates(params, updates), state


# --- readers -----------------------------------------------------------------------------------


def test_eval_params_under_partition_and_injection(rng):
    params = {"a": jnp.asarray(rng.normal(size=3)), "b": jnp.asarray(rng.normal(size=2))}
    labels = {"a": "free", "b": "adam"}
    injected = jopt.inject_hyperparams(jopt.schedule_free_sgd)(0.1, momentum=0.5)
    optimizer = jopt.partition({"free": injected, "adam": jopt.adam(0.1)}, labels=labels)
    state = optimizer.init(params)
    grads = {"a": jnp.ones(3), "b": jnp.ones(2)}
    update = jax.jit(optimizer.update)
    for _ in range(3):
        updates, state = update(grads, state, params)
        params = jopt.apply_updates(params, updates)
    x = jopt.schedule_free_eval_params(state, params)
    np.testing.assert_array_equal(x["b"], params["b"])  # Adam's leaf: as given
    # x = y − (1 − β)·(1 − c)·m, here with β = 0.5 and c = 1/3 (three equal weights).
    m = jopt.tree_get(state, "z_minus_previous_x")["a"]
    np.testing.assert_allclose(x["a"], params["a"] - 0.5 * (2 / 3) * m, rtol=1e-14)
    assert not np.allclose(x["a"], params["a"])


def test_eval_params_refuses_what_it_cannot_do():
    params = jnp.ones(2)
    with pytest.raises(ValueError, match="no ScaleByScheduleFreeState"):
        jopt.schedule_free_eval_params(jopt.adam().init(params), params)
    with pytest.raises(
        ValueError, match=r"^params: shape \(3,\) vs state\[0\]\.z_minus_previous_x"
    ):
        jopt.schedule_free_eval_params(jopt.schedule_free_sgd().init(params), jnp.ones(3))


def test_eval_params_with_b1_zero_is_the_average_of_the_iterates(rng):
    """β = 0 (SGDScheduleFree refuses it) is Polyak averaging: y = z are the SGD
    iterates and x, with constant weights, is their plain mean (after each update)."""
    optimizer = jopt.schedule_free_sgd(0.1, momentum=0.0)
    params = jnp.asarray(rng.normal(size=4))
    state, iterates = optimizer.init(params), []
    for _ in range(5):
        grads = params - jnp.asarray(rng.normal(size=4))
        updates, state = optimizer.update(grads, state, params)
        params = jopt.apply_updates(params, updates)
        iterates.append(np.asarray(params))
    x = jopt.schedule_free_eval_params(state, params)
    np.testing.assert_allclose(x, np.mean(iterates, axis=0), rtol=1e-13)


def test_prodigy_d_reads_the_estimate():
    params = {"w": jnp.ones(3)}
    injected = jopt.inject_hyperparams(jopt.prodigy)(d0=1e-3)
    state = injected.init(params)
    assert float(jopt.prodigy_d(state)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="no ScaleByProdigyState"):
        jopt.prodigy_d(jopt.adam().init(params))
    two = jopt.partition({"a": jopt.prodigy(), "b": jopt.prodigy()}, labels={"w": "a"})
    with pytest.raises(KeyError, match="ambiguous"):
        jopt.prodigy_d(two.init(params))


def test_prodigy_takes_no_step_until_it_sees_a_gradient(rng):
    """As prodigyopt: with ‖s‖₁ = 0 or η = 0 neither the parameters, nor d, nor the step
    count k move (the update count does); the first real step is the reference's."""
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)))}
    optimizer = jopt.prodigy(1.0, use_bias_correction=True, weight_decay=0.1)
    state = optimizer.init(params)
    for _ in range(2):
        updates, state = optimizer.update({"w": jnp.zeros((3, 2))}, state, params)
        assert np.all(np.asarray(updates["w"]) == 0)
    assert (int(state.k), int(state.count), float(state.d)) == (0, 2, 1e-6)
    frozen = jopt.prodigy(0.0).init(params)
    _, after = jopt.prodigy(0.0).update({"w": jnp.ones((3, 2))}, frozen, params)
    jax.tree.map(np.testing.assert_array_equal, after._replace(count=0), frozen)
    grads = {"w": params["w"] + 1.0}
    updates, state = optimizer.update(grads, state, params)
    init, step = REFERENCES["prodigy"].tree_rule(use_bias_correction=True, weight_decay=0.1)
    w, g = np.asarray(params["w"]), np.asarray(grads["w"])
    [expected], _ = step([w], [g], init([w]), 1)
    np.testing.assert_allclose(params["w"] + updates["w"], expected, rtol=1e-12)


# --- state bytes ---------------------------------------------------------------------------


def _bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


@pytest.mark.parametrize(
    "name, kwargs, per_leaf",
    [
        # (alias, arguments, the dtypes of its per-parameter state)
        ("schedule_free_adamw", {}, ("param", "param")),
        ("schedule_free_adamw", {"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
         ("bfloat16", "float32")),
        ("schedule_free_sgd", {"mu_dtype": jnp.float32}, ("float32",)),
        ("prodigy", {}, ("param",) * 4),
        ("prodigy", {"mu_dtype": jnp.float32, "nu_dtype": jnp.float32},
         ("float32", "float32", "param", "param")),
        ("prodigy", {"b1": 0.0}, ("param",) * 3),
    ],
)  # fmt: skip
def test_state_bytes_are_exact(name, kwargs, per_leaf):
    """Every state byte accounted for: the per-parameter buffers in their dtypes, the
    int32 counts and the float32 scalars (64-bit types off, as for users)."""
    with jax.enable_x64(False):
        params = {
            "w": jnp.zeros((64, 32), jnp.bfloat16),
            "b": jnp.zeros(32, jnp.float32),
            "c": jnp.zeros(3, jnp.complex64),
            "n": jnp.zeros(4, jnp.int32),
            "none": None,
        }
        state = getattr(jopt, name)(**kwargs).init(params)
        expected = 0
        for p in (params["w"], params["b"], params["c"]):
            for i, dtype in enumerate(per_leaf):
                dtype = p.dtype if dtype == "param" else jnp.dtype(dtype)
                # Second moments of complex parameters are real; others keep the phase.
                second_moment = (name == "prodigy" and i == (0 if "b1" in kwargs else 1)) or (
                    name == "schedule_free_adamw" and i == 1
                )
                if jnp.iscomplexobj(p):
                    dtype = (
                        jnp.finfo(dtype).dtype
                        if second_moment
                        else jnp.promote_types(dtype, jnp.complex64)
                    )
                expected += p.size * jnp.dtype(dtype).itemsize
        # Scalars: schedule-free keeps a count and b1, lr_max, weight_sum, scheduled_lr,
        # ckp1, previous_ckp1; Prodigy two counts and d, d_max, d_numerator.
        scalars = {"schedule_free_adamw": 4 + 6 * 4, "schedule_free_sgd": 4 + 6 * 4}
        expected += scalars.get(name, 2 * 4 + 3 * 4)
        assert _bytes(state) == expected
