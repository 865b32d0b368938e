"""Reliability: complex parameters, mixed precision, saturating counts, NaN steps.

References are float64 NumPy restatements written here, closed forms, or runs that
never saw the steps a wrapper is supposed to skip.  ``None``, integer and boolean leaves
and complex parameters are checked for every registry entry in ``test_registry.py``;
``skip_nonfinite`` is checked around every registry entry here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import REFERENCES
from support import INT32_MAX, assert_trees_bitwise_equal, extra_args, small_tree

import jopt

# Every registry entry with the options that add state (its main configuration), and
# a schedule, which adds a step count.
OPTIMIZERS = {
    **{
        name: functools.partial(jopt.optimizers.ALL[name], **reference.main)
        for name, reference in REFERENCES.items()
    },
    "adam-schedule": lambda: jopt.adam(lambda count: 1e-2 / (1.0 + count)),
}


# --- complex parameters ----------------------------------------------------------------


def test_complex_adam_steps_along_the_gradient_not_per_component():
    """|g|² couples the real and imaginary parts: the first Adam step (ε = 0) is
    ``−η·g/|g|``, here ``−η·(0.6 + 0.8i)`` for ``g = 3 + 4i``.  torch's Adam, which views
    the tensor as pairs of reals, would step ``−η·(1 + 1i)`` instead."""
    eta = 0.1
    optimizer = jopt.adam(eta, eps=0.0)
    params = jnp.asarray([1.0 + 1.0j], jnp.complex64)
    updates, state = optimizer.update(
        jnp.asarray([3.0 + 4.0j], jnp.complex64), optimizer.init(params)
    )
    assert updates.dtype == jnp.complex64
    # rtol: 1 − β₂ in float32 differs from 0.001 by 1e-5 relative.
    np.testing.assert_allclose(np.asarray(updates), [-eta * (0.6 + 0.8j)], rtol=2e-5)
    nu = jopt.tree_get(state, "nu")
    assert nu.dtype == jnp.float32  # a real second moment: (1 − β₂)·25
    np.testing.assert_allclose(np.asarray(nu), [0.001 * 25.0], rtol=1e-6)


# --- mixed precision -------------------------------------------------------------------

MIXED = {
    "adam": lambda **kw: jopt.adam(1e-2, **kw),
    "adam-amsgrad": lambda **kw: jopt.adam(1e-2, amsgrad=True, **kw),
    "adamw": lambda **kw: jopt.adamw(1e-2, **kw),
    "adamax": lambda **kw: jopt.adamax(1e-2, **kw),
}


@pytest.mark.parametrize("name", MIXED)
def test_bfloat16_params_keep_float32_moments(name):
    optimizer = MIXED[name](mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    params = {"w": jnp.asarray([[0.5, -1.0], [2.0, 0.0]], jnp.bfloat16), "n": jnp.asarray(3)}
    grads = {"w": jnp.asarray([[0.1, -0.3], [1e-3, 2.0]], jnp.bfloat16), "n": jnp.asarray(0)}
    state = optimizer.init(params)
    for _ in range(3):
        updates, state = jax.jit(optimizer.update)(grads, state, params)
        params = jopt.apply_updates(params, updates)
    assert updates["w"].dtype == jnp.bfloat16 and params["w"].dtype == jnp.bfloat16
    for field in ("mu", "nu"):
        assert jopt.tree_get(state, field)["w"].dtype == jnp.float32, field
        assert jopt.tree_get(state, field)["n"] is None
    # The bias corrections did not round 1 − β₂ᵗ to 0 (which would give inf or 0):
    # each entry moved by about η per step, the sign of its constant gradient.
    step = np.asarray(updates["w"], np.float64)
    np.testing.assert_allclose(np.abs(step), 1e-2, rtol=0.05)
    np.testing.assert_array_equal(np.sign(step), -np.sign(np.asarray(grads["w"], np.float64)))


@pytest.mark.float64
def test_complex_params_with_a_real_moment_dtype_keep_their_imaginary_part():
    optimizer = jopt.adam(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    params = jnp.asarray([1.0 + 1.0j], jnp.complex128)
    state = optimizer.init(params)
    mu, nu = jopt.tree_get(state, "mu"), jopt.tree_get(state, "nu")
    assert mu.dtype == jnp.complex64 and nu.dtype == jnp.float32
    _, state = optimizer.update(jnp.asarray([3.0 + 4.0j]), state)
    np.testing.assert_allclose(np.asarray(jopt.tree_get(state, "mu")), [0.3 + 0.4j], rtol=1e-6)


def _second_moment_after(nu_dtype, grads):
    optimizer = jopt.scale_by_adam(b2=0.999, nu_dtype=nu_dtype)
    params = jnp.zeros(grads.shape[1:], jnp.bfloat16)

    def body(state, g):
        return optimizer.update(g, state)[1], None

    state, _ = jax.jit(lambda s: jax.lax.scan(body, s, grads))(optimizer.init(params))
    return np.asarray(state.nu, np.float64)


def test_float32_second_moments_track_the_average_that_bfloat16_ones_lose(rng):
    """In bfloat16, ``0.999·v`` rounds back to ``v`` and ``0.001·g²`` is below half an
    ulp of ``v``: the average freezes.  float32 storage follows the float64 average."""
    grads = jnp.asarray(rng.uniform(0.5, 1.5, size=(1500, 8)), jnp.bfloat16)
    g = np.asarray(grads, np.float64)
    expected = np.zeros(8)
    for row in g:
        expected = 0.999 * expected + 0.001 * row**2
    np.testing.assert_allclose(_second_moment_after(jnp.float32, grads), expected, rtol=1e-5)
    frozen = _second_moment_after(None, grads)
    # Above v = 0.5 an increment 0.001·(g² − v) < 0.00175 is below half an ulp (0.00195).
    assert np.all(frozen <= 0.5) and np.all(expected > 0.7)


def test_bfloat16_trajectory_with_float32_moments_follows_float64_adam(rng):
    """bf16 parameters, f32 moments: against a float64 Adam whose update and parameters
    are rounded to bfloat16 where jopt stores them.  Rounding flips from the f32 vs f64
    moments stay within a few bfloat16 ulps."""
    eta, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    bf16 = jnp.bfloat16
    p0 = np.asarray(rng.uniform(0.5, 2.0, size=16), bf16)
    grads = np.asarray(rng.normal(size=(30, 16)), bf16)
    optimizer = jopt.adam(eta, b1=b1, b2=b2, eps=eps, mu_dtype=jnp.float32, nu_dtype=jnp.float32)

    def body(carry, g):
        p, state = carry
        updates, state = optimizer.update(g, state, p)
        return (jopt.apply_updates(p, updates), state), None

    (p, _), _ = jax.jit(lambda p: jax.lax.scan(body, (p, optimizer.init(p)), grads))(
        jnp.asarray(p0)
    )
    assert p.dtype == bf16

    ref = p0.copy()
    m = v = np.zeros(16)
    for t, g in enumerate(grads.astype(np.float64), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        u = ((m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)).astype(bf16)
        step = (np.float32(-eta) * u.astype(np.float32)).astype(bf16)
        ref = (ref.astype(np.float32) + step.astype(np.float32)).astype(bf16)
    ulp = 2.0**-7 * np.maximum(np.abs(ref.astype(np.float64)), 2.0**-7)
    np.testing.assert_array_less(
        np.abs(np.asarray(p, np.float64) - ref.astype(np.float64)), 3 * ulp
    )


# --- step counts saturate --------------------------------------------------------------


@pytest.mark.float64
def test_adam_count_saturates_at_int32_max(rng):
    b1, b2, eps, eta = 0.9, 0.999, 1e-8, 0.1
    optimizer = jopt.adam(eta, b1=b1, b2=b2, eps=eps)
    mu, nu = rng.normal(size=4), rng.uniform(0.1, 1.0, size=4)
    state = (
        jopt.ScaleByAdamState(jnp.asarray(INT32_MAX - 2, jnp.int32), mu, nu),
        jopt.EmptyState(),
    )
    step = jax.jit(optimizer.update)
    counts = []
    for _ in range(4):
        g = rng.normal(size=4)
        updates, state = step(g, state)
        counts.append(int(state[0].count))
        assert state[0].count.dtype == jnp.int32
        # At t ≈ 2³¹ both βᵗ are 0: the bias corrections are exactly 1.
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g**2
        np.testing.assert_allclose(updates, -eta * mu / (np.sqrt(nu) + eps), rtol=1e-10)
    assert counts == [INT32_MAX - 1, INT32_MAX, INT32_MAX, INT32_MAX]


@pytest.mark.float64
def test_schedule_and_adamax_counts_saturate():
    schedule = jopt.scale_by_schedule(lambda count: count.astype(jnp.float64))
    state = jopt.ScaleByScheduleState(jnp.asarray(INT32_MAX - 1, jnp.int32))
    seen = []
    for _ in range(3):
        updates, state = jax.jit(schedule.update)(jnp.ones(()), state)
        seen.append(float(updates))  # the schedule's argument: the count before the step
    assert seen == [INT32_MAX - 1, INT32_MAX, INT32_MAX]

    adamax = jopt.scale_by_adamax()
    state = adamax.init(jnp.ones(2))._replace(count=jnp.asarray(INT32_MAX, jnp.int32))
    updates, state = adamax.update(jnp.ones(2), state)
    assert int(state.count) == INT32_MAX and np.all(np.isfinite(updates))


def test_skip_counters_saturate():
    optimizer = jopt.skip_nonfinite(jopt.sgd(0.1))
    state = optimizer.init(jnp.ones(2))
    state = state._replace(
        total_skipped=jnp.asarray(INT32_MAX - 1, jnp.int32),
        consecutive_nonfinite=jnp.asarray(INT32_MAX - 1, jnp.int32),
    )
    for _ in range(3):
        _, state = jax.jit(optimizer.update)(jnp.asarray([jnp.nan, 1.0]), state)
    assert int(state.total_skipped) == INT32_MAX
    assert int(state.consecutive_nonfinite) == INT32_MAX


# --- skip_nonfinite --------------------------------------------------------------------

BAD_STEPS = {2: np.nan, 5: np.inf, 6: -np.inf, 10: np.nan}
STEPS = 12


def _clean_grads(rng, params, steps=STEPS):
    return [
        jax.tree.map(lambda p: np.asarray(rng.normal(size=np.shape(p)), p.dtype), params)
        for _ in range(steps)
    ]


def _poison(grads, value, rng):
    """Put ``value`` into one entry of one (randomly chosen) leaf."""
    leaves, treedef = jax.tree.flatten(grads)
    sizable = [i for i, leaf in enumerate(leaves) if np.size(leaf) > 0]
    i = sizable[rng.integers(len(sizable))]
    leaf = np.array(leaves[i])
    leaf.reshape(-1)[rng.integers(leaf.size)] = value
    leaves[i] = leaf
    return treedef.unflatten(leaves)


def _step(optimizer, jit=True, extra=None):
    def step(params, state, g):
        updates, state = optimizer.update(g, state, params, **(extra or {}))
        return jopt.apply_updates(params, updates), state

    return jax.jit(step) if jit else step


def _run(optimizer, params, grads, jit=True, step=None, extra=None):
    step = step or _step(optimizer, jit, extra)
    state = optimizer.init(params)
    history = []
    for g in grads:
        params, state = step(params, state, g)
        history.append((params, state))
    return history


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_skipped_steps_are_as_if_never_seen(name, rng):
    """NaN/±inf at chosen steps, against a run that never saw those steps.

    Under jit the reference is the same compiled step fed only the clean steps: a
    different program (the bare optimizer) may be compiled with different fusions and
    differ in the last bit (seen: 1 ulp for centered RMSprop and AdamW).  Eagerly, op
    by op, the reference is the bare optimizer itself.
    """
    # small_tree's shapes: the generic suite has compiled their eager operations.
    params = small_tree(rng, np.float32)
    grads = _clean_grads(rng, params)
    poisoned = [_poison(g, BAD_STEPS[t], rng) if t in BAD_STEPS else g for t, g in enumerate(grads)]
    clean = [g for t, g in enumerate(grads) if t not in BAD_STEPS]
    optimizer = jopt.skip_nonfinite(OPTIMIZERS[name]())
    extra = extra_args(name) if name in REFERENCES else {}
    step = _step(optimizer, extra=extra)  # one compiled program for both runs
    wrapped = _run(optimizer, params, poisoned, step=step)
    reference = _run(optimizer, params, clean, step=step)

    final_params, final_state = wrapped[-1]
    assert_trees_bitwise_equal(final_params, reference[-1][0])
    assert_trees_bitwise_equal(final_state.inner_state, reference[-1][1].inner_state)
    assert int(final_state.total_skipped) == len(BAD_STEPS)
    assert int(reference[-1][1].total_skipped) == 0
    assert int(final_state.consecutive_nonfinite) == 0
    # A skipped step returns the parameters bit for bit.
    for t in BAD_STEPS:
        before = wrapped[t - 1][0] if t else params
        assert_trees_bitwise_equal(wrapped[t][0], jax.tree.map(jnp.asarray, before))

    # Eagerly, against the bare optimizer (first 7 steps: three of them poisoned).
    eager = _run(
        jopt.skip_nonfinite(OPTIMIZERS[name]()), params, poisoned[:7], jit=False, extra=extra
    )
    bare = _run(
        OPTIMIZERS[name](),
        params,
        [g for t, g in enumerate(grads[:7]) if t not in BAD_STEPS],
        jit=False,
        extra=extra,
    )
    assert_trees_bitwise_equal(eager[-1][0], bare[-1][0])
    assert_trees_bitwise_equal(eager[-1][1].inner_state, bare[-1][1])


def _expected_counters(finite, max_consecutive):
    """A plain restatement of the documented rule, step by step."""
    total = consecutive = 0
    rows = []
    for ok in finite:
        skip = not ok and (max_consecutive is None or consecutive < max_consecutive)
        total += skip
        consecutive = 0 if ok else consecutive + 1
        rows.append((skip, total, consecutive))
    return rows


@pytest.mark.parametrize("max_consecutive", [None, 0, 2])
def test_counters_and_max_consecutive(max_consecutive):
    finite = [True, False, False, False, True, False, True, False, False]
    optimizer = jopt.skip_nonfinite(jopt.sgd(0.5), max_consecutive=max_consecutive)
    state = optimizer.init(jnp.zeros(2))
    step = jax.jit(optimizer.update)
    for ok, (skip, total, consecutive) in zip(
        finite, _expected_counters(finite, max_consecutive), strict=True
    ):
        g = jnp.asarray([1.0, 2.0]) if ok else jnp.asarray([jnp.nan, 2.0])
        updates, state = step(g, state)
        assert int(state.total_skipped) == total and int(state.consecutive_nonfinite) == consecutive
        if skip:
            np.testing.assert_array_equal(updates, [0.0, 0.0])
            assert np.all(np.signbit(updates))  # −0.0: x + (−0.0) is x, even for x = −0.0
        elif ok:
            np.testing.assert_array_equal(updates, [-0.5, -1.0])
        else:  # let through: the NaN reaches the parameters
            assert np.isnan(updates[0]) and updates[1] == -1.0


def test_a_skipped_step_keeps_negative_zero_and_ignores_untrained_leaves():
    optimizer = jopt.skip_nonfinite(jopt.adam(0.1))
    params = {"w": jnp.asarray([-0.0, 0.0, 1.5]), "count": jnp.asarray(3), "none": None}
    state = optimizer.init(params)
    nan = {"w": jnp.asarray([1.0, jnp.nan, 1.0]), "count": jnp.asarray(0), "none": None}
    updates, new_state = jax.jit(optimizer.update)(nan, state, params)
    assert_trees_bitwise_equal(jopt.apply_updates(params, updates), params)
    assert_trees_bitwise_equal(new_state.inner_state, state.inner_state)
    # Integer leaves are never looked at: a finite float part is not skipped.
    fine = {"w": jnp.ones(3), "count": jnp.asarray(INT32_MAX), "none": None}
    _, new_state = optimizer.update(fine, state, params)
    assert int(new_state.total_skipped) == 0


def test_a_complex_nan_in_the_imaginary_part_is_caught():
    optimizer = jopt.skip_nonfinite(jopt.adam(0.1))
    params = jnp.asarray([1.0 + 1.0j, 2.0])
    state = optimizer.init(params)
    updates, state = optimizer.update(jnp.asarray([1.0 + 1j * np.nan, 1.0]), state, params)
    assert int(state.total_skipped) == 1
    assert_trees_bitwise_equal(jopt.apply_updates(params, updates), params)


def test_no_retrace_when_a_step_is_skipped(trace_counter):
    optimizer = jopt.skip_nonfinite(jopt.adam(0.1), max_consecutive=1)
    step = jax.jit(trace_counter.wrap(optimizer.update))
    state = optimizer.init(jnp.ones(3))
    for value in [1.0, np.nan, np.nan, 1.0, np.inf]:
        _, state = step(jnp.full(3, value), state, jnp.ones(3))
    assert trace_counter.count == 1
    assert int(state.total_skipped) == 2


def test_vmap_skips_only_the_problems_that_saw_a_nan():
    optimizer = jopt.skip_nonfinite(jopt.sgd(1.0))
    params = jnp.zeros((3, 2))
    grads = jnp.asarray([[1.0, 1.0], [jnp.nan, 1.0], [2.0, 2.0]])
    state = jax.vmap(optimizer.init)(params)
    updates, state = jax.vmap(optimizer.update)(grads, state, params)
    np.testing.assert_array_equal(updates, [[-1.0, -1.0], [0.0, 0.0], [-2.0, -2.0]])
    np.testing.assert_array_equal(state.total_skipped, [0, 1, 0])


def test_wraps_an_optax_optimizer():
    optimizer = jopt.skip_nonfinite(optax.adam(0.1))
    params = jnp.ones(2)
    state = optimizer.init(params)
    _, state = optimizer.update(jnp.ones(2), state, params, unknown_extra_arg=1)
    _, skipped = optimizer.update(jnp.asarray([1.0, jnp.inf]), state, params)
    assert_trees_bitwise_equal(skipped.inner_state, state.inner_state)
    assert int(skipped.total_skipped) == 1
