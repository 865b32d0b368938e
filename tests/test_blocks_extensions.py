"""jopt's additions to the blocks optax shares, against float64 restatements.

``eps_root``, ``eps_in_sqrt=False`` for ``scale_by_rss``, ``correct_after_max``,
``nu_dtype``, and ``mu_dtype`` for ``scale_by_adamax`` and ``scale_by_belief`` have no
optax counterpart: they are compared with float64 NumPy restatements written here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from block_support import STEPS, _assert_trees_close, _case_id
from references import stored

import jopt

# --- jopt's additions, against float64 restatements ------------------------------------------


def _run_block(transform, grads):
    """The block's outputs and states for a sequence of gradient trees, eagerly."""
    state = transform.init(grads[0])
    outputs, states = [], []
    for g in grads:
        u, state = transform.update(g, state)
        outputs.append(u)
        states.append(state)
    return outputs, states


def _grads(rng, steps=STEPS):
    like = {"w": np.zeros((3, 2)), "b": [np.zeros(())]}
    return [jax.tree.map(lambda x: rng.normal(size=np.shape(x)) * rng.uniform(0.1, 2), like)
            for _ in range(steps)]  # fmt: skip


def _sq(x):
    return (x * np.conj(x)).real


def _rms_reference(stddev, decay, eps, eps_root, eps_in_sqrt, bias_correction, initial_scale):
    def run(gs):
        nu, mu, out = initial_scale, 0.0, []
        for t, g in enumerate(gs, start=1):
            nu = decay * nu + (1 - decay) * _sq(g)
            mu = decay * mu + (1 - decay) * g
            correction = (1 - decay**t) if bias_correction else 1.0
            second = nu / correction - (_sq(mu / correction) if stddev else 0.0)
            if eps_in_sqrt:
                out.append(g / np.sqrt(second + eps_root + eps))
            else:
                out.append(g / (np.sqrt(second + eps_root) + eps))
        return out

    return run


def _rss_reference(initial, eps, eps_root, eps_in_sqrt):
    def run(gs):
        total, out = initial, []
        for g in gs:
            total = total + _sq(g)
            if eps_in_sqrt:
                u = g / np.sqrt(total + eps_root + eps)
            else:
                u = g / (np.sqrt(total + eps_root) + eps)
            out.append(np.where(total > 0, u, 0.0))
        return out

    return run


def _amsgrad_reference(b1, b2, eps, eps_root, correct_after_max, nu_dtype):
    # torch's order with correct_after_max: v_max = max(v_max, v), then / (1 − β₂ᵗ).
    def run(gs):
        m = v = v_max = 0.0
        out = []
        for t, g in enumerate(gs, start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * _sq(g)
            if correct_after_max:
                v_max = np.maximum(v_max, v)
                v_hat = v_max / (1 - b2**t)
            else:
                v_max = np.maximum(v_max, v / (1 - b2**t))
                v_hat = v_max
            out.append(m / (1 - b1**t) / (np.sqrt(v_hat + eps_root) + eps))
            v, v_max = stored(np.asarray(v), nu_dtype), stored(np.asarray(v_max), nu_dtype)
        return out

    return run


def _adam_reference(b1, b2, eps, nu_dtype):
    def run(gs):
        m = v = 0.0
        out = []
        for t, g in enumerate(gs, start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * _sq(g)
            out.append(m / (1 - b1**t) / (np.sqrt(v / (1 - b2**t)) + eps))
            v = stored(np.asarray(v), nu_dtype)
        return out

    return run


def _adamax_reference(b1, b2, eps, mu_dtype, nu_dtype):
    def run(gs):
        m = u = 0.0
        out = []
        for t, g in enumerate(gs, start=1):
            m = b1 * m + (1 - b1) * g
            u = np.maximum(b2 * u, np.abs(g) + eps)
            out.append(m / (1 - b1**t) / u)
            m, u = stored(np.asarray(m), mu_dtype), stored(np.asarray(u), nu_dtype)
        return out

    return run


def _belief_reference(b1, b2, eps, eps_root, mu_dtype, nu_dtype):
    # Zhuang et al.: s = β₂s + (1 − β₂)(g − m)² + eps_root, u = m̂ / (√ŝ + eps).
    def run(gs):
        m = s = 0.0
        out = []
        for t, g in enumerate(gs, start=1):
            m = b1 * m + (1 - b1) * g
            s = b2 * s + (1 - b2) * _sq(g - m) + eps_root
            out.append(m / (1 - b1**t) / (np.sqrt(s / (1 - b2**t)) + eps))
            m, s = stored(np.asarray(m), mu_dtype), stored(np.asarray(s), nu_dtype)
        return out

    return run


_RMS = {"decay": 0.8, "eps": 1e-3, "eps_root": 1e-4, "initial_scale": 0.0}
EXTENSIONS = [
    *[
        (
            block,
            {**_RMS, "eps_in_sqrt": e, "bias_correction": b},
            _rms_reference(block == "scale_by_stddev", 0.8, 1e-3, 1e-4, e, b, 0.0),
        )
        for block in ("scale_by_rms", "scale_by_stddev")
        for e in (True, False)
        for b in (False, True)
    ],
    *[
        (
            "scale_by_rss",
            {"initial_accumulator_value": 0.0, "eps": 1e-3, "eps_in_sqrt": e, "eps_root": r},
            _rss_reference(0.0, 1e-3, r, e),
        )
        for e, r in ((False, 0.0), (False, 1e-2), (True, 1e-2))
    ],
    (
        "scale_by_amsgrad",
        {"b1": 0.8, "b2": 0.95, "eps": 1e-6, "correct_after_max": True},
        _amsgrad_reference(0.8, 0.95, 1e-6, 0.0, True, None),
    ),
    (
        "scale_by_amsgrad",
        {"b1": 0.8, "b2": 0.95, "eps": 1e-6, "eps_root": 1e-4, "nu_dtype": jnp.bfloat16},
        _amsgrad_reference(0.8, 0.95, 1e-6, 1e-4, False, jnp.bfloat16),
    ),
    (
        "scale_by_amsgrad",
        {"correct_after_max": True, "nu_dtype": jnp.float32},
        _amsgrad_reference(0.9, 0.999, 1e-8, 0.0, True, jnp.float32),
    ),
    (
        "scale_by_adam",
        {"b1": 0.8, "b2": 0.95, "eps": 1e-6, "nu_dtype": jnp.bfloat16},
        _adam_reference(0.8, 0.95, 1e-6, jnp.bfloat16),
    ),
    (
        "scale_by_adamax",
        {"b1": 0.8, "b2": 0.95, "eps": 1e-6, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
        _adamax_reference(0.8, 0.95, 1e-6, jnp.bfloat16, jnp.float32),
    ),
    (
        "scale_by_belief",
        {
            "b1": 0.8,
            "b2": 0.95,
            "eps": 1e-6,
            "eps_root": 1e-4,
            "mu_dtype": jnp.bfloat16,
            "nu_dtype": jnp.float32,
        },
        _belief_reference(0.8, 0.95, 1e-6, 1e-4, jnp.bfloat16, jnp.float32),
    ),
]


@pytest.mark.float64
@pytest.mark.parametrize(
    "name, kwargs, reference",
    EXTENSIONS,
    ids=[_case_id((n, (), k)) for n, k, _ in EXTENSIONS],
)
def test_jopt_only_options_match_their_restatement(name, kwargs, reference, rng):
    grads = _grads(rng)
    outputs, states = _run_block(getattr(jopt, name)(**kwargs), grads)
    for i in range(len(jax.tree.leaves(grads[0]))):
        expected = reference([jax.tree.leaves(g)[i] for g in grads])
        for t, (u, e) in enumerate(zip(outputs, expected, strict=True), start=1):
            np.testing.assert_allclose(jax.tree.leaves(u)[i], e, rtol=1e-10, err_msg=f"step {t}")
    for dtype_arg in ("mu_dtype", "nu_dtype"):
        if kwargs.get(dtype_arg) is not None:
            field = dtype_arg[:2]
            assert all(
                leaf.dtype == jnp.dtype(kwargs[dtype_arg])
                for leaf in jax.tree.leaves(getattr(states[-1], field))
            ), dtype_arg


@pytest.mark.float64
def test_amsgrad_orders_differ_while_the_bias_correction_grows(rng):
    """optax's order (the default) and torch's (``correct_after_max``) part ways once
    a gradient shrinks; each follows its own restatement (above), so they differ."""
    grads = [jax.tree.map(lambda g, t=t: g * 0.6**t, g) for t, g in enumerate(_grads(rng, 12))]
    optax_order, _ = _run_block(jopt.scale_by_amsgrad(b2=0.9), grads)
    torch_order, _ = _run_block(jopt.scale_by_amsgrad(b2=0.9, correct_after_max=True), grads)
    _assert_trees_close(optax_order[0], torch_order[0])
    assert not np.allclose(jax.tree.leaves(optax_order[-1])[0], jax.tree.leaves(torch_order[-1])[0])
