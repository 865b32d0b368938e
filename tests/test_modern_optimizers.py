"""Lion, LAMB and LARS against their references.

Golden data
    ``tools/golden_modern.py`` trained the float64 tanh network of ``make_golden.py``
    with lion-pytorch's ``Lion`` and pytorch-optimizer's ``Lamb`` and ``LARS``, and wrote
    the trajectories to ``tests/golden/modern/``.  jopt replays each in closed loop (its
    own ``jax.grad``) and must stay within 1e-10 relative of the parameters and state at
    every checkpoint.  Where a port departs from its paper (pytorch-optimizer's LAMB and
    LARS), the port's own form is restated here as ``docs/porting.md`` describes it and
    replayed too, and jopt's alias is shown to differ from it.

Live and restated
    jopt's LAMB and Lion are optax's; LARS is optax's except for the denominator of the
    trust ratio, and a chain of jopt blocks gives optax's.  LAMB's state bytes are
    counted from shapes and dtypes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_replay import fields_named, golden_loss
from modern_support import RTOL, _assert_replays, _betas, _same, load, replay
from support import run_side_by_side

import jopt

# --- Lion ----------------------------------------------------------------------------


@pytest.mark.float64
@pytest.mark.parametrize("name", ["lion", "lion_weight_decay"])
def test_lion_replays_lion_pytorch(name):
    record = load(name)
    hp = record["arguments"]
    optimizer = jopt.lion(hp["lr"], **_betas(record), weight_decay=hp.get("weight_decay", 0.0))
    _assert_replays(replay(record, optimizer, {"exp_avg": ("mu", _same)}), {"exp_avg"})


@pytest.mark.float64
def test_lion_replay_catches_a_wrong_beta():
    record = load("lion")
    errors = replay(record, jopt.lion(record["arguments"]["lr"], b2=0.95), {"exp_avg": None})
    assert errors["loss"] > 1e-6


@pytest.mark.float64
def test_lion_is_optax_lion():
    params = {"w": np.linspace(-1, 1, 6).reshape(2, 3), "b": [np.asarray(0.3)]}
    ours, theirs = run_side_by_side(
        [
            jopt.lion(0.01, b1=0.8, b2=0.95, weight_decay=0.1),
            optax.lion(0.01, b1=0.8, b2=0.95, weight_decay=0.1),
        ],
        params,
        steps=6,
        jit=True,
    )
    for (u1, p1, _), (u2, p2, _) in zip(ours, theirs, strict=True):
        for a, b in zip(jax.tree.leaves((u1, p1)), jax.tree.leaves((u2, p2)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# --- LAMB ----------------------------------------------------------------------------

_LAMB_FIELDS = {
    "exp_avg": ("mu", _same),
    "exp_avg_sq": ("nu", _same),
    "weight_norm": None,
    "adam_norm": None,
    "trust_ratio": None,
}


@pytest.mark.float64
def test_lamb_replays_pytorch_optimizer_where_it_is_the_paper():
    # With ε = 0, no decay and adam_debias=True, the port's missing bias corrections
    # scale r by a number that the trust ratio cancels (and ‖θ‖ stays below its clip).
    record = load("lamb_paper")
    optimizer = jopt.lamb(record["arguments"]["lr"], **_betas(record), eps=0.0)
    _assert_replays(replay(record, optimizer, _LAMB_FIELDS), {"exp_avg", "exp_avg_sq"})


def _port_lamb(lr, b1, b2, eps, weight_decay, decoupled):
    """pytorch-optimizer's ``Lamb`` as docs/porting.md states it: m and v not
    bias-corrected, the step size η/(1 − β₁ᵗ) outside the ratio, ε added to ‖r‖ too,
    ‖θ‖ clipped at 10, and decoupled decay applied to θ before the ratio."""

    def step(p, g, m, v, t):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        r = m / (np.sqrt(v) + eps) + (0.0 if decoupled else weight_decay * p)
        p_norm, r_norm = min(np.linalg.norm(p), 10.0), np.linalg.norm(r)
        ratio = 1.0 if p_norm == 0 or r_norm == 0 else p_norm / (r_norm + eps)
        return p - lr / (1 - b1**t) * ratio * r, m, v

    return step


def _run_numpy(record, step, steps):
    """Closed loop of a per-leaf NumPy ``step(p, g, m, v, t)`` on the record's problem."""
    loss_fn = jax.jit(jax.grad(golden_loss(record)))
    params = {k: np.asarray(v) for k, v in record["initial_params"].items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for t in range(1, steps + 1):
        grads = {k: np.asarray(g) for k, g in loss_fn(params).items()}
        for k in params:
            params[k], m[k], v[k] = step(params[k], grads[k], m[k], v[k], t)
    return params


@pytest.mark.float64
@pytest.mark.parametrize(
    "name, decoupled", [("lamb_port_l2", False), ("lamb_port_decoupled", True)]
)
def test_lamb_port_differs_from_the_paper_as_documented(name, decoupled):
    record = load(name)
    hp = record["arguments"]
    b1, b2 = hp["betas"]
    final = record["checkpoints"][-1]
    port = _run_numpy(
        record,
        _port_lamb(hp["lr"], b1, b2, hp["eps"], hp["weight_decay"], decoupled),
        final["step"],
    )
    for k, expected in final["params"].items():
        np.testing.assert_allclose(port[k], expected, rtol=RTOL)
    ours = jopt.lamb(hp["lr"], b1=b1, b2=b2, eps=hp["eps"], weight_decay=hp["weight_decay"])
    assert replay(record, ours, _LAMB_FIELDS)["loss"] > 1e-6


@pytest.mark.float64
def test_lamb_is_optax_lamb():
    params = {"w": np.linspace(-1, 1, 6).reshape(2, 3), "b": [np.asarray(0.3), np.zeros(2)]}
    ours, theirs = run_side_by_side(
        [
            jopt.lamb(0.05, b1=0.8, b2=0.99, eps=1e-4, weight_decay=0.1),
            optax.lamb(0.05, b1=0.8, b2=0.99, eps=1e-4, weight_decay=0.1),
        ],
        params,
        steps=6,
        jit=True,
    )
    for (u1, p1, s1), (u2, p2, s2) in zip(ours, theirs, strict=True):
        pairs = zip(jax.tree.leaves((u1, p1, s1)), jax.tree.leaves((u2, p2, s2)), strict=True)
        for a, b in pairs:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "mu_dtype, nu_dtype",
    [(None, None), (jnp.bfloat16, jnp.float32), (jnp.float32, jnp.bfloat16), (jnp.float16, None)],
)
def test_lamb_state_bytes(mu_dtype, nu_dtype):
    shapes = {"w": (7, 5), "b": (5,), "s": ()}
    params = {k: jnp.zeros(s, jnp.bfloat16) for k, s in shapes.items()}
    state = jopt.lamb(mu_dtype=mu_dtype, nu_dtype=nu_dtype).init(params)
    n = sum(int(np.prod(s)) for s in shapes.values())
    size = {None: 2, jnp.bfloat16: 2, jnp.float16: 2, jnp.float32: 4}
    expected = 4 + n * size[mu_dtype] + n * size[nu_dtype]  # int32 count, m, v
    assert sum(leaf.nbytes for leaf in jax.tree.leaves(state)) == expected
    mu, nu = fields_named(state, "mu")[0], fields_named(state, "nu")[0]
    assert mu["w"].dtype == (mu_dtype or jnp.bfloat16)
    assert nu["w"].dtype == (nu_dtype or jnp.bfloat16)


# --- LARS ----------------------------------------------------------------------------


def _lars_as_the_port(hp):
    """pytorch-optimizer's LARS: the trust ratio on matrices only; vectors and scalars
    take momentum SGD without decay (docs/porting.md)."""
    lr, momentum, nesterov = hp["lr"], hp["momentum"], hp.get("nesterov", False)
    matrices = jopt.lars(
        lr,
        momentum=momentum,
        weight_decay=hp["weight_decay"],
        trust_coefficient=hp["trust_coefficient"],
        nesterov=nesterov,
    )
    others = jopt.sgd(lr, momentum=momentum, nesterov=nesterov)
    labels = lambda params: jax.tree.map(lambda p: "matrix" if p.ndim > 1 else "other", params)  # noqa: E731
    return jopt.partition({"matrix": matrices, "other": others}, labels=labels)


@pytest.mark.float64
@pytest.mark.parametrize("name", ["lars", "lars_nesterov"])
def test_lars_replays_pytorch_optimizer(name):
    record = load(name)
    hp = record["arguments"]
    # jopt's LARS buffer holds the steps (η inside, as the paper), the port's the
    # directions; the other leaves' buffers are torch's in both.
    fields = {"momentum_buffer": ("trace", lambda v, key: v / -hp["lr"] if key == "W1" else v)}
    errors = replay(record, _lars_as_the_port(hp), fields)
    _assert_replays(errors, {"momentum_buffer"})


@pytest.mark.float64
def test_lars_on_every_leaf_is_not_the_port():
    record = load("lars")
    hp = record["arguments"]
    everywhere = jopt.lars(
        hp["lr"],
        momentum=hp["momentum"],
        weight_decay=hp["weight_decay"],
        trust_coefficient=hp["trust_coefficient"],
    )
    assert replay(record, everywhere, {"momentum_buffer": None})["loss"] > 1e-6


def _optax_lars_in_jopt(lr, weight_decay, trust_coefficient, eps, momentum, nesterov):
    """optax's ``lars`` from jopt's blocks: its ratio divides by ‖g + βθ‖."""
    return jopt.chain(
        jopt.add_decayed_weights(weight_decay),
        jopt.scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
        jopt.scale_by_learning_rate(lr),
        jopt.trace(momentum, nesterov=nesterov),
    )


@pytest.mark.float64
def test_lars_and_optax_lars():
    params = {"w": np.linspace(-1, 1, 6).reshape(2, 3), "b": [np.asarray(0.3), np.zeros(2)]}
    kwargs = dict(trust_coefficient=0.02, eps=1e-3, momentum=0.8, nesterov=True)

    def final(tx):
        return run_side_by_side([tx], params, steps=6, jit=True)[0][-1][1]

    def close(a, b):
        return all(
            np.allclose(x, y, rtol=1e-12, atol=1e-14)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        )

    # Without decay the two denominators agree: jopt.lars is optax.lars.
    assert close(final(jopt.lars(0.5, **kwargs)), final(optax.lars(0.5, **kwargs)))
    # With decay they do not; the chain of docs/porting.md is optax's.
    ours = final(jopt.lars(0.5, weight_decay=0.1, **kwargs))
    theirs = final(optax.lars(0.5, weight_decay=0.1, **kwargs))
    assert not close(ours, theirs)
    assert close(final(_optax_lars_in_jopt(0.5, 0.1, **kwargs)), theirs)
