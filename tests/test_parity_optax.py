"""Numerical parity of jopt with optax (live).

Where optax implements the same formula, jopt's optimizers (and chains of jopt's
blocks, which take optax's defaults) and optax's are run side by side on nested
trees and must agree to rounding; ``test_blocks_optax.py`` does the same block by block.
Where the aliases differ by design (adagrad, rmsprop, adadelta's
``learning_rate=None``, amsgrad's order), a test pins the difference:
jopt equals optax under the hyperparameter mapping of ``docs/porting.md``, and
optax's own rule is restated so that a change on either side is noticed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_replay import GOLDEN_RTOL, load_golden, replay
from support import run_side_by_side

import jopt

# Torch trajectories and optax runs agree with jopt's to 1e-10 and 1e-12 relative:
# 64-bit types on for every test here.
pytestmark = pytest.mark.float64


# --- live comparison with optax -----------------------------------------------------------


def _assert_trees_close(a, b, rtol=1e-12, atol=1e-14):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def _assert_same_trajectory(jopt_tx, optax_tx, params, moments=()):
    """Updates and params agree to rounding at every step; so do the named moments
    (pairs of jopt field, optax field)."""
    ours, theirs = run_side_by_side([jopt_tx, optax_tx], params, steps=50, jit=True)
    for (u1, p1, s1), (u2, p2, s2) in zip(ours, theirs, strict=True):
        _assert_trees_close(u1, u2)
        _assert_trees_close(p1, p2)
        for ours_field, optax_field in moments:
            _assert_trees_close(
                jopt.tree_get(s1, ours_field), optax.tree_utils.tree_get(s2, optax_field)
            )


SAME_FORMULA = {
    "sgd": (lambda: jopt.sgd(0.05), lambda: optax.sgd(0.05), ()),
    "momentum": (
        lambda: jopt.momentum(0.05, momentum=0.8),
        lambda: optax.sgd(0.05, momentum=0.8),
        [("trace", "trace")],
    ),
    "sgd_momentum": (
        lambda: jopt.sgd(0.05, momentum=0.8),
        lambda: optax.sgd(0.05, momentum=0.8),
        [("trace", "trace")],
    ),
    "nesterov": (
        lambda: jopt.nesterov(0.05, momentum=0.8),
        lambda: optax.sgd(0.05, momentum=0.8, nesterov=True),
        [("trace", "trace")],
    ),
    "sgd_weight_decay": (
        lambda: jopt.sgd(0.05, momentum=0.8, weight_decay=0.1),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.05, momentum=0.8)),
        [("trace", "trace")],
    ),
    "adam": (
        lambda: jopt.adam(0.02, b1=0.8, b2=0.95, eps=1e-6),
        lambda: optax.adam(0.02, b1=0.8, b2=0.95, eps=1e-6),
        [("mu", "mu"), ("nu", "nu"), ("count", "count")],
    ),
    "adam_eps_root": (
        lambda: jopt.adam(0.02, b1=0.8, b2=0.95, eps=0.0, eps_root=1e-6),
        lambda: optax.adam(0.02, b1=0.8, b2=0.95, eps=0.0, eps_root=1e-6),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "adamw": (
        lambda: jopt.adamw(0.02, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1),
        lambda: optax.adamw(0.02, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "adamax": (
        lambda: jopt.adamax(0.02, b1=0.8, b2=0.95, eps=1e-6),
        lambda: optax.adamax(0.02, b1=0.8, b2=0.95, eps=1e-6),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "adadelta": (
        lambda: jopt.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.05),
        lambda: optax.adadelta(0.5, rho=0.8, eps=1e-4, weight_decay=0.05),
        [("grad_sq_avg", "e_g"), ("delta_sq_avg", "e_x")],
    ),
    # optax's defaults differ (see below); these are the mapped hyperparameters.
    "rmsprop_eps_outside": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=1e-4),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False),
        [("nu", "nu")],
    ),
    "rmsprop_eps_inside": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=0.0, eps_root=1e-4),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4),
        [("nu", "nu")],
    ),
    "rmsprop_centered": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=1e-4, centered=True),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False, centered=True),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "rmsprop_momentum_constant_lr": (
        lambda: jopt.rmsprop(0.01, decay=0.9, eps=1e-4, momentum=0.7),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False, momentum=0.7),
        [("nu", "nu")],
    ),
    "rmsprop_nesterov_chain": (
        lambda: jopt.chain(
            jopt.scale_by_rms(0.9, eps=1e-4, eps_in_sqrt=False),
            jopt.trace(0.7, nesterov=True),
            jopt.scale_by_learning_rate(0.01),
        ),
        lambda: optax.rmsprop(
            0.01, decay=0.9, eps=1e-4, eps_in_sqrt=False, momentum=0.7, nesterov=True
        ),
        [("nu", "nu")],  # optax's trace holds η·buf, jopt's holds buf
    ),
    "rmsprop_bias_correction_chain": (
        lambda: jopt.chain(
            jopt.scale_by_rms(0.9, eps=1e-4, bias_correction=True),
            jopt.scale_by_learning_rate(0.01),
        ),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-4, bias_correction=True),
        [("nu", "nu"), ("count", "count")],
    ),
    # The blocks take optax's defaults: optax.adagrad is scale_by_rss() and a rate.
    "adagrad_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_rss(), jopt.scale_by_learning_rate(0.1)),
        lambda: optax.adagrad(0.1),
        [("sum_of_squares", "sum_of_squares")],
    ),
    "rmsprop_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_rms(), jopt.scale_by_learning_rate(0.01)),
        lambda: optax.rmsprop(0.01),
        [("nu", "nu")],
    ),
    "centered_rmsprop_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_stddev(), jopt.scale_by_learning_rate(0.01)),
        lambda: optax.rmsprop(0.01, centered=True),
        [("mu", "mu"), ("nu", "nu")],
    ),
    "amsgrad_chain_of_blocks": (
        lambda: jopt.chain(jopt.scale_by_amsgrad(0.8), jopt.scale_by_learning_rate(0.01)),
        lambda: optax.amsgrad(0.01, b1=0.8),
        [("mu", "mu"), ("nu", "nu"), ("nu_max", "nu_max")],
    ),
    "adagrad_optax_defaults": (
        lambda: jopt.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0, eps_root=1e-7),
        lambda: optax.adagrad(0.1),
        [("sum_of_squares", "sum_of_squares")],
    ),
}


@pytest.mark.parametrize("name", SAME_FORMULA)
def test_jopt_matches_optax(name, nested_tree):
    make_ours, make_theirs, moments = SAME_FORMULA[name]
    _assert_same_trajectory(make_ours(), make_theirs(), nested_tree, moments)


def test_side_by_side_comparison_can_fail(nested_tree):
    """The comparison notices a changed hyperparameter."""
    with pytest.raises(AssertionError):
        _assert_same_trajectory(
            jopt.adam(0.02, b1=0.8, b2=0.95, eps=1e-6),
            optax.adam(0.02, b1=0.8, b2=0.95, eps=1e-5),
            nested_tree,
        )


def _first_update(tx, grads, params):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def _small_gradients(nested_tree):
    # Small gradients make eps and the initial accumulator matter.
    return jax.tree.map(lambda p: jnp.asarray(1e-3 * (p + 0.5)), nested_tree)


def test_adagrad_defaults_differ_from_optax_as_documented(nested_tree):
    """jopt/torch: G₀ = 0, g / (√G + 1e-10).  optax: G₀ = 0.1, g / √(G + 1e-7)."""
    grads = _small_gradients(nested_tree)
    ours = _first_update(jopt.adagrad(0.1), grads, nested_tree)
    theirs = _first_update(optax.adagrad(0.1), grads, nested_tree)
    _assert_trees_close(ours, jax.tree.map(lambda g: -0.1 * g / (np.abs(g) + 1e-10), grads))
    _assert_trees_close(
        theirs, jax.tree.map(lambda g: -0.1 * g / np.sqrt(0.1 + g * g + 1e-7), grads)
    )
    # The first jopt step has size η per coordinate; optax's is ~ η·|g|/√0.1.
    ratio = jax.tree.map(lambda a, b: np.abs(a / b), ours, theirs)
    assert min(float(np.min(r)) for r in jax.tree.leaves(ratio)) > 10


def test_rmsprop_defaults_differ_from_optax_as_documented(nested_tree):
    """Same defaults (decay 0.9, eps 1e-8) but optax puts eps inside the root."""
    grads = _small_gradients(nested_tree)
    ours = _first_update(jopt.rmsprop(0.01), grads, nested_tree)
    theirs = _first_update(optax.rmsprop(0.01), grads, nested_tree)
    _assert_trees_close(
        ours, jax.tree.map(lambda g: -0.01 * g / (np.sqrt(0.1 * g * g) + 1e-8), grads)
    )
    _assert_trees_close(
        theirs, jax.tree.map(lambda g: -0.01 * g / np.sqrt(0.1 * g * g + 1e-8), grads)
    )
    assert not np.allclose(jax.tree.leaves(ours)[0], jax.tree.leaves(theirs)[0], rtol=1e-3)


def test_rmsprop_momentum_with_schedule_differs_from_optax(nested_tree):
    """jopt (and torch) keep η outside the momentum buffer, optax puts it inside.

    With a constant η the two agree (``test_jopt_matches_optax``); with a schedule,
    jopt's step is η(t)·buf, so it is the constant-η step rescaled by η(t)/η, while
    optax's buffer mixes earlier learning rates.
    """
    schedule = lambda count: 0.01 * 0.5 ** (count // 3)
    kwargs = dict(decay=0.9, eps=1e-4, momentum=0.7)
    grads_seq = [jax.tree.map(lambda p, k=k: np.cos(k + p), nested_tree) for k in range(8)]

    def updates_of(tx):
        state, out = tx.init(nested_tree), []
        for g in grads_seq:  # open loop: the same gradients for every run
            u, state = tx.update(g, state, nested_tree)
            out.append(u)
        return out

    constant = updates_of(jopt.rmsprop(0.01, **kwargs))
    ours = updates_of(jopt.rmsprop(schedule, **kwargs))
    theirs = updates_of(optax.rmsprop(schedule, eps_in_sqrt=False, **kwargs))
    for t, (c, a, b) in enumerate(zip(constant, ours, theirs, strict=True)):
        factor = schedule(t) / 0.01
        _assert_trees_close(a, jax.tree.map(lambda x, f=factor: f * x, c))
        if factor == 1:
            _assert_trees_close(a, b)
        else:
            assert not np.allclose(jax.tree.leaves(a)[0], jax.tree.leaves(b)[0], rtol=1e-6)


def test_optax_adadelta_default_learning_rate_ascends(nested_tree):
    """optax.adadelta() (learning_rate=None) returns +Δθ, i.e. the ascent direction.

    It is exactly the negative of jopt.adadelta(learning_rate=1.0), and it raises the
    loss that jopt lowers.
    """
    loss = lambda p: sum(jnp.sum(q**2) for q in jax.tree.leaves(p))
    ours_tx, theirs_tx = jopt.adadelta(), optax.adadelta(rho=0.9, eps=1e-6)
    ours_state, theirs_state = ours_tx.init(nested_tree), theirs_tx.init(nested_tree)
    for _ in range(10):  # open loop at fixed params: the states stay comparable
        grads = jax.grad(loss)(nested_tree)
        ours, ours_state = ours_tx.update(grads, ours_state, nested_tree)
        theirs, theirs_state = theirs_tx.update(grads, theirs_state, nested_tree)
        _assert_trees_close(theirs, jax.tree.map(jnp.negative, ours))
    start = loss(nested_tree)
    assert loss(jopt.apply_updates(nested_tree, ours)) < start
    assert loss(optax.apply_updates(nested_tree, theirs)) > start


def test_amsgrad_bias_correction_order_differs_from_optax(nested_tree):
    """torch and jopt: v_max = max(v_max, v), then divide by 1 − β₂ᵗ.
    optax.amsgrad: v_max = max(v_max, v / (1 − β₂ᵗ)).

    The first step coincides; once the gradients shrink, the two maxima differ.
    Each library's maximum is checked against its own rule.
    """
    b1, b2 = 0.9, 0.99
    ours_tx = jopt.adam(0.01, b1=b1, b2=b2, eps=1e-8, amsgrad=True)
    theirs_tx = optax.amsgrad(0.01, b1=b1, b2=b2, eps=1e-8)
    ours_state, theirs_state = ours_tx.init(nested_tree), theirs_tx.init(nested_tree)
    nu = jax.tree.map(np.zeros_like, nested_tree)
    max_raw, max_corrected = nu, nu
    first, differs = True, False
    for t in range(1, 21):
        grads = jax.tree.map(lambda p, t=t: (p + 0.5) * 0.7**t, nested_tree)
        ours, ours_state = ours_tx.update(grads, ours_state, nested_tree)
        theirs, theirs_state = theirs_tx.update(grads, theirs_state, nested_tree)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, grads)
        max_raw = jax.tree.map(np.maximum, max_raw, nu)
        max_corrected = jax.tree.map(
            lambda m, v, t=t: np.maximum(m, v / (1 - b2**t)), max_corrected, nu
        )
        _assert_trees_close(jopt.tree_get(ours_state, "nu_max"), max_raw)
        _assert_trees_close(optax.tree_utils.tree_get(theirs_state, "nu_max"), max_corrected)
        _assert_trees_close(
            jopt.tree_get(ours_state, "nu"), optax.tree_utils.tree_get(theirs_state, "nu")
        )
        if first:
            _assert_trees_close(ours, theirs)
            first = False
        else:
            differs |= not all(
                np.allclose(a, b, rtol=1e-6)
                for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
            )
    assert differs


def test_optax_amsgrad_is_not_torch():
    """Replaying the torch amsgrad golden file with optax.amsgrad leaves 1e-10 parity."""
    record = load_golden("adam_amsgrad")
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    errors = replay(
        {**record, "optimizer": "Adam", "checkpoints": []},
        optax.amsgrad(hp["lr"], b1=b1, b2=b2, eps=hp["eps"]),
    )
    assert errors["loss"] > GOLDEN_RTOL


def test_optax_adam_replays_torch_golden():
    """optax.adam reproduces torch's Adam trajectory too (same formula)."""
    record = load_golden("adam_plain")
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    errors = replay(record, optax.adam(hp["lr"], b1=b1, b2=b2, eps=hp["eps"]))
    assert max(errors.values()) <= GOLDEN_RTOL, errors
