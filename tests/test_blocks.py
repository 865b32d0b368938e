"""Blocks that share a name with optax compute what optax computes (issue 14, item 9).

Every block of ``jopt.transforms`` (and ``jopt.identity``) whose name optax also uses
is found automatically, and a test asserts that :data:`CASES` covers exactly those.
Each is run side by side with optax, live, for the same arguments (its defaults, each
option alone, and the flags in every combination), over several closed-loop steps on
a nested tree: updates, parameters and state agree to rounding (float64, rtol 1e-12).
The same holds for the wrappers that share a name with optax.

jopt's additions (``eps_root``, ``eps_in_sqrt=False`` for ``scale_by_rss``,
``correct_after_max``, ``nu_dtype``, and ``mu_dtype`` for ``scale_by_adamax`` and
``scale_by_belief``) have
no optax counterpart: they are compared with float64 NumPy restatements written here.

Stateless blocks compute in at least float32 and round once to the update's dtype
(issue 14, item 3): checked bit for bit on bfloat16 and float16 updates.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import stored
from support import is_none, make_nested_tree, returns_transformation, run_side_by_side

import jopt

STEPS = 6


def _shared_with_optax(names) -> set[str]:
    return {
        name
        for name in names
        if returns_transformation(getattr(jopt, name)) and callable(getattr(optax, name, None))
    }


SHARED_BLOCKS = _shared_with_optax([*jopt.transforms.__all__, "identity"])
SHARED_WRAPPERS = _shared_with_optax(jopt.wrappers.__all__)


def _schedule(count):
    return 0.1 * 0.7**count


def _decay_schedule(count):
    return 0.05 + 0.01 * count


def _ndim_mask(params):
    return jax.tree.map(lambda p: np.ndim(p) > 1, params)


_PREFIX_MASK = {"dense": True, "stack": False, "scalar": True}

# (block, positional arguments, keyword arguments): called the same way on both sides.
# The first argument goes by position (optax's ``scale`` calls it ``step_size``).
CASES = [
    ("identity", (), {}),
    ("scale", (-0.3,), {}),
    ("scale_by_learning_rate", (0.1,), {}),
    ("scale_by_learning_rate", (0.1,), {"flip_sign": False}),
    ("scale_by_learning_rate", (_schedule,), {}),
    ("scale_by_schedule", (_schedule,), {}),
    ("add_decayed_weights", (), {}),
    ("add_decayed_weights", (0.1,), {}),
    ("add_decayed_weights", (_decay_schedule,), {}),
    ("add_decayed_weights", (0.1,), {"mask": _ndim_mask}),
    ("add_decayed_weights", (0.1,), {"mask": _PREFIX_MASK}),
    ("add_decayed_weights", (_decay_schedule,), {"mask": _ndim_mask}),
    ("clip", (0.5,), {}),
    ("clip_by_global_norm", (1.0,), {}),
    ("clip_by_global_norm", (100.0,), {}),
    ("trace", (0.9,), {}),
    ("trace", (0.7,), {"nesterov": True}),
    ("trace", (0.7,), {"accumulator_dtype": jnp.float32}),
    ("trace", (0.7,), {"nesterov": True, "accumulator_dtype": jnp.bfloat16}),
    ("scale_by_rss", (), {}),
    ("scale_by_rss", (0.0,), {"eps": 1e-3}),
    *[
        (block, (), {"eps": 1e-4, "initial_scale": s, "eps_in_sqrt": e, "bias_correction": b})
        for block in ("scale_by_rms", "scale_by_stddev")
        for s in (0.0, 0.5)
        for e in (True, False)
        for b in (False, True)
        # Left out: centred, bias-corrected, from 0, ε outside the root.  The first
        # step's variance ν̂ − μ̂² = g² − g² is 0 up to rounding, whose sign decides
        # between a huge step and NaN (in optax and torch too).
        if not (block == "scale_by_stddev" and s == 0.0 and b and not e)
    ],
    ("scale_by_rms", (), {}),
    ("scale_by_rms", (0.8,), {}),
    ("scale_by_stddev", (), {}),
    ("scale_by_stddev", (0.8,), {}),
    ("scale_by_adadelta", (), {}),
    ("scale_by_adadelta", (0.8,), {"eps": 1e-4}),
    ("scale_by_adam", (), {}),
    ("scale_by_adam", (0.8,), {"b2": 0.95, "eps": 1e-6, "eps_root": 1e-8}),
    ("scale_by_adam", (0.8,), {"nesterov": True}),
    ("scale_by_adam", (0.8,), {"nesterov": True, "eps": 0.0, "eps_root": 1e-6}),
    ("scale_by_adam", (), {"mu_dtype": jnp.bfloat16}),
    ("scale_by_amsgrad", (), {}),
    ("scale_by_amsgrad", (0.8,), {"b2": 0.95, "eps": 1e-6, "eps_root": 1e-8}),
    ("scale_by_amsgrad", (), {"bias_correction_mu": False}),
    ("scale_by_amsgrad", (), {"bias_correction_nu": False}),
    ("scale_by_amsgrad", (), {"bias_correction_mu": False, "bias_correction_nu": False}),
    ("scale_by_amsgrad", (), {"mu_dtype": jnp.float32}),
    ("scale_by_adamax", (), {}),
    ("scale_by_adamax", (0.8,), {"b2": 0.95, "eps": 1e-6}),
    ("scale_by_belief", (), {}),
    ("scale_by_belief", (0.8,), {"b2": 0.95, "eps": 1e-6, "eps_root": 1e-4}),
    ("scale_by_belief", (0.8,), {"eps": 1e-8, "eps_root": 0.0, "nesterov": True}),
    ("scale_by_lion", (), {}),
    ("scale_by_lion", (0.8,), {"b2": 0.9}),
    ("scale_by_lion", (), {"mu_dtype": jnp.float32}),
    ("scale_by_lion", (), {"mode": "smooth", "smooth_beta": 3.0}),
    ("scale_by_lion", (0.5,), {"mode": "refined"}),
    ("scale_by_trust_ratio", (), {}),
    ("scale_by_trust_ratio", (0.5,), {"trust_coefficient": 0.3, "eps": 1e-3}),
    ("scale_by_trust_ratio", (2.0,), {}),
    # β₂ = 0.8 (ρ∞ = 9): ρₜ passes 3 at t = 4 and 4 at t = 5, so both branches run
    # within the steps; with the defaults only the first does.
    ("scale_by_radam", (), {}),
    ("scale_by_radam", (0.8,), {"b2": 0.8, "eps": 1e-6, "eps_root": 1e-8, "threshold": 3.0}),
    ("scale_by_radam", (0.8,), {"b2": 0.8, "threshold": 4.0, "nesterov": True}),
]

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


def _case_id(case) -> str:
    name, args, kwargs = case
    shown = [getattr(a, "__name__", repr(a)) for a in args]
    shown += [f"{k}={getattr(v, '__name__', v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(str(s) for s in shown)})"


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


# --- side by side with optax ---------------------------------------------------------------


def _make(library, name, args, kwargs):
    return getattr(library, name)(*args, **kwargs)


def _assert_trees_close(a, b, rtol=1e-12, atol=1e-14, what=""):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b), what
    for x, y in zip(leaves_a, leaves_b, strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype, what
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol, err_msg=what
        )


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


# --- stateless blocks: compute in at least float32, round once --------------------------------

# Each stateless block with a float32 restatement ``(g, p) -> u`` computed in NumPy
# float32 (Python numbers rounded to float32 first), rounded once to g's dtype.
_F = np.float32


def _global_norm_factor(gs, c):
    total = sum(np.sum(np.asarray(g, _F) ** 2, dtype=_F) for g in gs)
    norm = np.sqrt(total, dtype=_F)
    return _F(min(_F(1), _F(c) / norm))


def _f32_norm(x):
    return np.sqrt(np.sum(np.asarray(x, _F) ** 2, dtype=_F), dtype=_F)


STATELESS = {
    "scale": (lambda: jopt.scale(-0.7), lambda g, p, gs: _F(-0.7) * g),
    "scale_by_learning_rate": (
        lambda: jopt.scale_by_learning_rate(1e-3),
        lambda g, p, gs: _F(-1e-3) * g,
    ),
    "scale_by_learning_rate(schedule)": (
        lambda: jopt.scale_by_learning_rate(lambda count: 1e-3 * 0.5**count),
        lambda g, p, gs: _F(-1e-3) * g,
    ),
    "scale_by_schedule": (
        lambda: jopt.scale_by_schedule(lambda count: 1e-3 * (1 + count)),
        lambda g, p, gs: _F(1e-3) * g,
    ),
    "add_decayed_weights": (
        lambda: jopt.add_decayed_weights(1e-3),
        lambda g, p, gs: g + _F(1e-3) * p,
    ),
    "add_decayed_weights(schedule)": (
        lambda: jopt.add_decayed_weights(lambda count: 1e-3 * (1 + count)),
        lambda g, p, gs: g + _F(1e-3) * p,
    ),
    "add_decayed_weights(mask)": (
        lambda: jopt.add_decayed_weights(1e-3, mask=lambda t: jax.tree.map(lambda _: True, t)),
        lambda g, p, gs: g + _F(1e-3) * p,
    ),
    "scale_by_trust_ratio": (
        lambda: jopt.scale_by_trust_ratio(trust_coefficient=0.3),
        lambda g, p, gs: g * (_F(0.3) * _f32_norm(p) / _f32_norm(g)),
    ),
    "clip": (lambda: jopt.clip(0.1234), lambda g, p, gs: np.clip(g, -_F(0.1234), _F(0.1234))),
    "clip_by_global_norm": (
        lambda: jopt.clip_by_global_norm(0.777),
        lambda g, p, gs: g * _global_norm_factor(gs, 0.777),
    ),
}


def _is_stateless(name) -> bool:
    """No state array shaped like the parameters (a step count may be kept)."""
    first_case = next(case for case in CASES if case[0] == name)
    state = _make(jopt, *first_case).init({"w": jnp.ones(3)})
    return not any(np.shape(x) == (3,) for x in jax.tree.leaves(state))


def test_every_stateless_block_is_checked_for_rounding():
    stateless = {name for name in SHARED_BLOCKS - {"identity"} if _is_stateless(name)}
    assert stateless == {key.split("(")[0] for key in STATELESS}


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("name", STATELESS)
def test_stateless_blocks_round_once(name, dtype):
    make, restated = STATELESS[name]
    # 3.0 is the issue's example: bfloat16(float32(−1e-3)·3) = −0.0030060, where
    # rounding 1e-3 to bfloat16 first gives −0.0029907.
    g = jnp.asarray([3.0, -1.7, 0.3, 250.0], dtype)
    p = jnp.asarray([1.5, -2.25, 0.1, 7.0], dtype)
    transform = make()
    updates, _ = transform.update({"g": g}, transform.init({"g": p}), {"g": p})
    assert updates["g"].dtype == dtype
    g32, p32 = np.asarray(g, _F), np.asarray(p, _F)
    expected = np.asarray(restated(g32, p32, [g32]), _F).astype(dtype)
    np.testing.assert_array_equal(
        np.asarray(updates["g"]).view(np.uint16), expected.view(np.uint16), err_msg=name
    )


def test_the_issue_example_rounds_once():
    updates, _ = jopt.scale_by_learning_rate(1e-3).update(
        jnp.asarray([3.0], jnp.bfloat16), jopt.EmptyState()
    )
    assert float(updates[0]) == float(np.asarray(-0.0030060, jnp.bfloat16))
    assert float(updates[0]) != float(np.asarray(-0.0029907, jnp.bfloat16))


def test_add_decayed_weights_needs_params():
    transform = jopt.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="params"):
        transform.update(jnp.ones(3), transform.init(jnp.ones(3)))


@pytest.mark.parametrize("name", STATELESS)
def test_integer_and_none_leaves_pass_through_stateless_blocks(name):
    tree = {"w": jnp.ones(2, jnp.bfloat16), "n": jnp.asarray([3, 4]), "none": None}
    transform = STATELESS[name][0]()
    updates, _ = transform.update(tree, transform.init(tree), tree)
    assert updates["none"] is None
    np.testing.assert_array_equal(updates["n"], tree["n"])
    assert jax.tree.structure(updates, is_leaf=is_none) == jax.tree.structure(tree, is_leaf=is_none)
