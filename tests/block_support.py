"""The blocks and wrappers jopt shares with optax, and the cases they are run on.

Shared by the block tests: the names found automatically (every block of
``jopt.transforms``, ``jopt.identity`` and every wrapper whose name optax also uses),
:data:`CASES` (each block with its defaults, each option alone, and the flags in every
combination), and the tree comparison used side by side with optax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from support import returns_transformation

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


def _case_id(case) -> str:
    name, args, kwargs = case
    shown = [getattr(a, "__name__", repr(a)) for a in args]
    shown += [f"{k}={getattr(v, '__name__', v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(str(s) for s in shown)})"


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
