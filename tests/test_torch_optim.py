"""NAdam, RAdam, ASGD, Rprop and Adafactor beyond the generic suite and the golden runs.

* Adafactor's state memory, counted in bytes from the shapes and dtypes alone, against
  Adam's; and a 3-d leaf against the float64 reference of ``references``.
* ASGD's averaged parameters (``jopt.asgd_averaged_params``) against the plain mean of
  the iterates the run went through.
* RAdam's jopt-only switches (torch's ε placement, the strict threshold) against a
  float64 restatement, at a step where ρₜ equals the threshold exactly.
* Where optax shares an optimizer's name and differs, the difference is pinned: optax's
  NAdam (no momentum schedule) is ``scale_by_adam(nesterov=True)``, and optax's
  ``scale_by_rprop`` returns jopt's update one step late.
  optax's ``nadam``, ``radam`` and ``rprop`` do not replay torch's golden runs.
* NAdam's and RAdam's state bytes with ``mu_dtype`` and ``nu_dtype``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_replay import GOLDEN_RTOL, load_golden, replay
from references import REFERENCES
from support import run_side_by_side

import jopt


def _nbytes(tree) -> int:
    return sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree))


# --- Adafactor's memory ---------------------------------------------------------------

_SHAPES = {
    "embed": ((50, 16), jnp.float32),
    "stack": ((3, 16, 8), jnp.float32),
    "half": ((12, 6), jnp.bfloat16),
    "bias": ((10,), jnp.float32),
    "scale": ((), jnp.float32),
}


def _factored_bytes(shape, dtype) -> int:
    """Bytes of Adafactor's statistics for one leaf, from the algorithm: n + m numbers
    per (n, m) matrix of the last two axes, one per entry below 2 dims."""
    itemsize = jnp.dtype(dtype).itemsize
    if len(shape) < 2:
        return math.prod(shape) * itemsize
    *lead, n, m = shape
    return math.prod(lead) * (n + m) * itemsize


def test_adafactor_state_bytes_are_rows_plus_columns():
    params = {k: jnp.zeros(shape, dtype) for k, (shape, dtype) in _SHAPES.items()}
    counts = 2 * 4  # two int32 step counts: the statistics' and the relative step's
    expected = counts + sum(_factored_bytes(*spec) for spec in _SHAPES.values())
    assert _nbytes(jopt.adafactor(1e-2, weight_decay=0.1).init(params)) == expected
    # Adam keeps two moments of every parameter and a count.
    adam = 4 + 2 * sum(math.prod(s) * jnp.dtype(d).itemsize for s, d in _SHAPES.values())
    assert _nbytes(jopt.adam(1e-3).init(params)) == adam
    assert expected < adam / 4


def test_adafactor_state_is_linear_in_the_sides_of_a_large_matrix():
    # Shapes only (jax.eval_shape allocates nothing): 8192 + 4096 numbers, not 8192·4096.
    params = {"w": jax.ShapeDtypeStruct((8192, 4096), jnp.float32)}
    state = jax.eval_shape(jopt.adafactor().init, params)
    nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    assert nbytes == 4 * (8192 + 4096) + 2 * 4


def test_benchmark_row_counts_adafactor_state_from_the_shapes():
    # The row of benchmarks/torch_optim.py on the transformer tree (eval_shape only).
    from benchmarks import shapes, torch_optim

    tree = shapes.transformer()
    expected = 2 * 4 + sum(_factored_bytes(s, jnp.float32) for s in tree.leaves.values())
    assert torch_optim.jopt_state_bytes("adafactor", tree) == expected
    assert torch_optim.jopt_state_bytes("adam", tree) == 4 + 2 * 4 * tree.n_params


@pytest.mark.float64
def test_adafactor_on_a_3d_leaf_follows_the_reference(rng):
    # The generic suite's tree has a matrix and a 0-d leaf; here a stacked (2, 3, 4) leaf
    # (one factorization per leading index) and a vector, against references.
    kwargs = {"learning_rate": 0.05, "weight_decay": 0.05, "d": 1.2}
    params = {"stack": rng.normal(size=(2, 3, 4)), "bias": rng.normal(size=5)}
    optimizer = jopt.adafactor(**kwargs)
    init, step = REFERENCES["adafactor"].rule(**kwargs)
    ref_params = dict(params)
    ref_state = {k: init(v) for k, v in params.items()}
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    for t in range(1, 11):
        noise = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
        grads = {k: params[k] + noise[k] for k in params}
        updates, state = update(grads, state, params)
        params = jopt.apply_updates(params, updates)
        for k in params:
            ref_grad = ref_params[k] + noise[k]
            ref_params[k], ref_state[k] = step(ref_params[k], ref_grad, ref_state[k], t)
            np.testing.assert_allclose(params[k], ref_params[k], rtol=1e-10, err_msg=f"{k} {t}")
    rows = jopt.tree_get(state, "nu_row")["stack"]
    np.testing.assert_allclose(rows, ref_state["stack"]["row"], rtol=1e-10)
    assert rows.shape == (2, 3, 1)


def test_adafactor_refuses_complex_parameters():
    with pytest.raises(TypeError, match="complex"):
        jopt.adafactor().init({"w": jnp.ones((2, 2), jnp.complex64)})


# --- ASGD's average ---------------------------------------------------------------------


@pytest.mark.float64
def test_asgd_averaged_params_are_the_mean_of_the_iterates(rng):
    # With t0 = 3 the weight of update t is 1/max(1, t − 4) (torch's μ, set one update
    # ahead): the average is the latest iterate up to t = 5, then the plain mean of the
    # iterates from update 5 on.
    t0 = 3.0
    optimizer = jopt.inject_hyperparams(jopt.asgd)(0.05, lambd=0.01, t0=t0)
    params = {"w": rng.normal(size=(3, 2)), "b": np.asarray(rng.normal())}
    state = optimizer.init(params)
    before = jopt.asgd_averaged_params(state)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(before))
    iterates = []
    step = jax.jit(optimizer.update)
    for t in range(1, 16):
        grads = jax.tree.map(lambda p: p + rng.normal(size=np.shape(p)), params)
        updates, state = step(grads, state, params)
        params = jopt.apply_updates(params, updates)
        iterates.append(params)
        first = min(t, int(t0) + 2)  # 1-based index of the oldest iterate averaged
        expected = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *iterates[first - 1 :])
        average = jopt.asgd_averaged_params(state)
        for x, y in zip(jax.tree.leaves(average), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, err_msg=f"update {t}")
    assert not np.allclose(jopt.asgd_averaged_params(state)["w"], params["w"])


def test_asgd_averaged_params_needs_an_asgd_state():
    with pytest.raises(ValueError, match="ScaleByAsgdState"):
        jopt.asgd_averaged_params(jopt.adam().init(jnp.ones(3)))


# --- RAdam's switches -------------------------------------------------------------------


def _radam_reference(b1, b2, eps, threshold, strict, eps_before_correction):
    rho_inf = 2 / (1 - b2) - 1

    def run(grads):
        m = v = 0.0
        out = []
        for t, g in enumerate(grads, start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, correction = m / (1 - b1**t), 1 - b2**t
            rho = rho_inf - 2 * t * b2**t / correction
            if (rho > threshold) if strict else (rho >= threshold):
                r = math.sqrt(
                    (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
                )
                if eps_before_correction:
                    out.append(r * m_hat * math.sqrt(correction) / (np.sqrt(v) + eps))
                else:
                    out.append(r * m_hat / (np.sqrt(v / correction) + eps))
            else:
                out.append(m_hat)
        return out

    return run


@pytest.mark.float64
@pytest.mark.parametrize("eps_before_correction", [False, True])
def test_scale_by_radam_eps_placement(eps_before_correction, rng):
    # β₂ = 0.75 (ρ∞ = 7): ρₜ passes 5 at t = 8, so both regimes run.
    block = jopt.scale_by_radam(0.8, b2=0.75, eps=1e-2, eps_before_correction=eps_before_correction)
    grads = [rng.normal(size=4) * 0.1 for _ in range(10)]
    state = block.init(grads[0])
    expected = _radam_reference(0.8, 0.75, 1e-2, 5.0, False, eps_before_correction)(grads)
    for t, (g, e) in enumerate(zip(grads, expected, strict=True), start=1):
        u, state = block.update(g, state)
        np.testing.assert_allclose(u, e, rtol=1e-12, err_msg=f"step {t}")


@pytest.mark.float64
@pytest.mark.parametrize("strict", [False, True])
def test_scale_by_radam_strict_threshold(strict, rng):
    # ρ₁ = 1 exactly (for any β₂): a threshold of 1 separates ≥ from > at t = 1.
    block = jopt.scale_by_radam(0.8, b2=0.75, eps=1e-2, threshold=1.0, strict_threshold=strict)
    g = rng.normal(size=4) * 0.1
    u, _ = block.update(g, block.init(g))
    expected = _radam_reference(0.8, 0.75, 1e-2, 1.0, strict, False)([g])[0]
    np.testing.assert_allclose(u, expected, rtol=1e-12)
    if strict:
        np.testing.assert_allclose(u, g, rtol=1e-12)  # momentum SGD: m̂₁ = g
    else:
        assert not np.allclose(u, g, rtol=1e-3)


# --- optax's NAdam and Rprop --------------------------------------------------------------


@pytest.mark.float64
def test_optax_nadam_is_scale_by_adam_with_nesterov(rng):
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    chain = jopt.chain(
        jopt.scale_by_adam(0.8, b2=0.95, eps=1e-6, nesterov=True),
        jopt.scale_by_learning_rate(0.02),
    )
    ours, theirs = run_side_by_side(
        [chain, optax.nadam(0.02, b1=0.8, b2=0.95, eps=1e-6)], params, steps=6
    )
    for (u1, _, _), (u2, _, _) in zip(ours, theirs, strict=True):
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # torch's NAdam (jopt.nadam) has Dozat's schedule: a different first step.
    (torch_form,) = run_side_by_side([jopt.nadam(0.02, b1=0.8, b2=0.95, eps=1e-6)], params, 1)
    first = jax.tree.leaves(torch_form[0][0])[0]
    assert not np.allclose(first, jax.tree.leaves(ours[0][0])[0], rtol=1e-3)


@pytest.mark.float64
def test_optax_scale_by_rprop_lags_one_step(rng):
    """optax 0.2.8's ``scale_by_rprop`` returns jopt's update of the step before (zero
    at first, and zero where the sign flips now); the step sizes agree.  When optax is
    fixed, this test says so."""
    grads = [rng.normal(size=6) for _ in range(8)]
    ours_block = jopt.scale_by_irprop_minus(0.1)
    theirs_block = optax.scale_by_rprop(0.1)
    ours_state, theirs_state = ours_block.init(grads[0]), theirs_block.init(grads[0])
    previous, flips = np.zeros(6), 0
    for t, g in enumerate(grads):
        flipped = g * ours_state.prev_grad < 0
        u, ours_state = ours_block.update(g, ours_state)
        v, theirs_state = theirs_block.update(g, theirs_state)
        np.testing.assert_allclose(ours_state.step_size, theirs_state.step_sizes, rtol=1e-12)
        np.testing.assert_allclose(v, np.where(flipped, 0.0, previous), rtol=1e-12, err_msg=t)
        previous, flips = np.asarray(u), flips + int(np.sum(flipped))
    assert flips > 0 and np.any(previous != 0)


# --- NAdam's and RAdam's state bytes -------------------------------------------------------


@pytest.mark.parametrize("name", ["nadam", "radam"])
def test_moment_dtypes_set_the_state_bytes(name):
    params = {"w": jnp.zeros((7, 5), jnp.bfloat16), "b": jnp.zeros(5, jnp.float32)}
    factory = jopt.optimizers.ALL[name]
    state = factory(1e-3, mu_dtype=jnp.float32, nu_dtype=jnp.bfloat16).init(params)
    # mu in float32, nu in bfloat16, one int32 count; NAdam's product a 0-d float32.
    expected = 40 * 4 + 40 * 2 + 4 + (4 if name == "nadam" else 0)
    assert _nbytes(state) == expected
    assert _nbytes(factory(1e-3).init(params)) == 2 * (35 * 2 + 5 * 4) + 4 + (
        4 if name == "nadam" else 0
    )


def _optax_port(record):
    hp = record["hyperparameters"]
    if record["optimizer"] == "Rprop":
        return optax.rprop(hp["lr"])
    b1, b2 = hp["betas"]
    make = optax.nadam if record["optimizer"] == "NAdam" else optax.radam
    return make(hp["lr"], b1=b1, b2=b2, eps=hp["eps"])


@pytest.mark.float64
@pytest.mark.parametrize("name", ["nadam", "radam", "rprop"])
def test_optax_namesakes_do_not_replay_torch(name):
    """optax's nadam, radam and rprop leave torch's golden trajectory (jopt's aliases
    follow it to 1e-10 in test_parity_torch): the differences the porting guide lists."""
    record = load_golden(name)
    errors = replay({**record, "checkpoints": []}, _optax_port(record))
    assert errors["loss"] > 1e3 * GOLDEN_RTOL, errors
