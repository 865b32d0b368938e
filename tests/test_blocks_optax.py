"""Blocks that share a name with optax compute what optax computes (issue 14, item 9).

Every block of ``jopt.transforms`` (and ``jopt.identity``) whose name optax also uses
is found automatically, and a test asserts that ``CASES`` (``tests/block_support.py``)
covers exactly those.  Each is run side by side with optax, live, for the same arguments
(its defaults, each option alone, and the flags in every combination), over several
closed-loop steps on a nested tree: updates, parameters and state agree to rounding
(float64, rtol 1e-12).  The blocks and wrappers take optax's argument names and defaults.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from block_support import (
    CASES,
    SHARED_BLOCKS,
    SHARED_WRAPPERS,
    STEPS,
    _assert_trees_close,
    _case_id,
    _make,
)
from support import make_nested_tree, run_side_by_side

import jopt

# Cases whose states are not laid out alike: compared on updates and parameters only.
# optax's masked state keeps a placeholder for masked-out leaves, jopt's keeps none.
_STATE_LAYOUT_DIFFERS = {"mask"}


def _tolerance(name, kwargs) -> float:
    """rtol (and atol) of a side by side comparison: float64 rounding, but for two cases.

    With a storage dtype, optax rounds intermediate products to it (``b1 * mu`` in
    bfloat16) where jopt computes in the update's dtype and rounds once: the two differ
    by about one unit of the storage dtype.  Centred and bias-corrected from 0, the
    first step divides by ``√(ν̂ − μ̂² + ε)`` with ``ν̂ − μ̂²`` = 0 up to rounding.
    """
    dtypes = [v for k, v in kwargs.items() if k.endswith("_dtype") and v is not None]
    if dtypes:
        return 4 * max(float(jnp.finfo(d).eps) for d in dtypes)
    if name == "scale_by_stddev" and kwargs.get("bias_correction") and not kwargs["initial_scale"]:
        return 1e-9
    return 1e-12


def test_the_cases_cover_every_block_shared_with_optax():
    assert {case[0] for case in CASES} == SHARED_BLOCKS
    # The discovery finds what it should: the shared blocks of issue 14, item 9.
    assert {"trace", "scale_by_adam", "scale_by_rss", "scale_by_rms", "identity"} <= SHARED_BLOCKS
    assert "ScaleByAdamState" not in SHARED_BLOCKS  # a state type, not a block


# (block, optax's argument name) -> jopt's name for it.
RENAMED = {
    ("partition", "param_labels"): "labels",
    ("lookahead", "slow_step_size"): "alpha",
}


@pytest.mark.parametrize("name", sorted(SHARED_BLOCKS | SHARED_WRAPPERS))
def test_shared_arguments_have_optax_names_and_defaults(name):
    """Each optax argument after the first exists in jopt with the same default.

    The first argument may be renamed (``scale``: ``factor`` for optax's
    ``step_size``; the wrappers' inner transformation) and jopt may add keyword-only
    arguments, which default to optax's behaviour (checked by the side-by-side tests).
    optax's ``mask_compatible_extra_args`` is not offered.  The renamings jopt keeps
    are pinned in :data:`RENAMED`.
    """
    ours = inspect.signature(getattr(jopt, name)).parameters
    theirs = list(inspect.signature(getattr(optax, name)).parameters.values())
    for parameter in theirs[1:]:
        if parameter.name == "mask_compatible_extra_args":
            continue
        our_name = RENAMED.get((name, parameter.name), parameter.name)
        assert our_name in ours, f"{name}: no argument {parameter.name}"
        assert (name, parameter.name) not in RENAMED or parameter.name not in ours, name
        # Where optax requires an argument jopt may give it a default (lookahead's
        # sync_period and alpha are issue 16's 5 and 0.5); otherwise the same default.
        if parameter.default is not inspect.Parameter.empty:
            assert ours[our_name].default == parameter.default, (name, parameter.name)
    if theirs and list(ours.values())[0].default is not inspect.Parameter.empty:
        assert list(ours.values())[0].default == theirs[0].default, name


@pytest.mark.float64
@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[_case_id(c) for c in CASES])
def test_block_computes_what_optax_computes(name, args, kwargs, rng):
    params = make_nested_tree(rng)
    ours, theirs = run_side_by_side(
        [_make(jopt, name, args, kwargs), _make(optax, name, args, kwargs)], params, STEPS
    )
    moved = False
    rtol = _tolerance(name, kwargs)
    atol = max(rtol, 1e-14)  # the values are of order 1; a sum can cancel
    for t, ((u1, p1, s1), (u2, p2, s2)) in enumerate(zip(ours, theirs, strict=True), start=1):
        _assert_trees_close(u1, u2, rtol, atol, what=f"updates, step {t}")
        _assert_trees_close(p1, p2, rtol, atol, what=f"params, step {t}")
        if not _STATE_LAYOUT_DIFFERS & set(kwargs):
            _assert_trees_close(s1, s2, rtol, atol, what=f"state, step {t}")
        moved |= any(np.any(np.asarray(u) != 0) for u in jax.tree.leaves(u1))
    assert moved, "the comparison never saw a non-zero update"


@pytest.mark.float64
def test_side_by_side_comparison_can_fail(rng):
    # A changed ε is noticed.
    params = make_nested_tree(rng)
    ours, theirs = run_side_by_side(
        [jopt.scale_by_adam(0.8, eps=1e-6), optax.scale_by_adam(0.8, eps=1e-5)], params, STEPS
    )
    with pytest.raises(AssertionError):
        _assert_trees_close(ours[-1][0], theirs[-1][0])
