"""The wrappers that share a name with optax compute what optax computes.

``masked``, ``freeze`` and ``partition`` run side by side with optax's namesakes around
the same optax transformations; ``lookahead`` (slow weights in the state, where optax
keeps them in the parameters) is compared by trajectory.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from block_support import _PREFIX_MASK, SHARED_WRAPPERS, STEPS, _assert_trees_close, _ndim_mask
from support import make_nested_tree, run_side_by_side

import jopt

# --- the wrappers optax shares a name with --------------------------------------------------

_LABELS = {"dense": "slow", "stack": "fast", "scalar": "fast"}

WRAPPER_CASES = {
    "masked": lambda lib: lib.masked(optax.scale_by_adam(b1=0.8), mask=_ndim_mask),
    "freeze": lambda lib: lib.freeze(_PREFIX_MASK),
    # optax names the labels param_labels; the transforms and labels are the same.
    "partition": lambda lib: lib.partition(
        {"slow": optax.sgd(0.05, momentum=0.9), "fast": optax.adam(0.02)},
        **{"labels" if lib is jopt else "param_labels": _LABELS},
    ),
}


def test_the_wrapper_cases_cover_every_wrapper_shared_with_optax():
    # lookahead keeps its slow weights in the state, optax's in the parameters: it is
    # compared by trajectory in test_lookahead_follows_optax_lookahead instead.
    assert set(WRAPPER_CASES) | {"lookahead"} == SHARED_WRAPPERS


@pytest.mark.float64
@pytest.mark.parametrize("reset_state", [False, True], ids=["keep", "reset"])
def test_lookahead_follows_optax_lookahead(reset_state, rng):
    """Same fast and slow weights as optax's lookahead, whose params hold both."""
    params = make_nested_tree(rng)
    target = jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params)

    def grad(p):  # ∇ of ½|p − target|², so that both sides see the same gradients
        return jax.tree.map(lambda a, b: a - b, p, target)

    ours = jopt.lookahead(optax.adam(0.05), sync_period=3, alpha=0.4, reset_state=reset_state)
    theirs = optax.lookahead(
        optax.adam(0.05), sync_period=3, slow_step_size=0.4, reset_state=reset_state
    )
    p, state = params, ours.init(params)
    both = optax.LookaheadParams.init_synced(params)
    their_state = theirs.init(both)
    for _ in range(10):
        updates, state = ours.update(grad(p), state, p)
        p = jopt.apply_updates(p, updates)
        their_updates, their_state = theirs.update(grad(both.fast), their_state, both)
        both = optax.apply_updates(both, their_updates)
        _assert_trees_close(p, both.fast)
        _assert_trees_close(jopt.slow_params(state), both.slow)


@pytest.mark.float64
@pytest.mark.parametrize("name", sorted(WRAPPER_CASES))
def test_wrapper_computes_what_optax_computes(name, rng):
    # The same optax transformations inside: only the wrappers differ.
    params = make_nested_tree(rng)
    ours, theirs = run_side_by_side(
        [WRAPPER_CASES[name](jopt), WRAPPER_CASES[name](optax)], params, STEPS
    )
    for t, ((u1, p1, _), (u2, p2, _)) in enumerate(zip(ours, theirs, strict=True), start=1):
        _assert_trees_close(u1, u2, what=f"updates, step {t}")
        _assert_trees_close(p1, p2, what=f"params, step {t}")
