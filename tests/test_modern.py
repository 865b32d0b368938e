"""Lion, LAMB, LARS and the cautious and slow-weights wrappers against their references.

Golden data
    ``tools/golden_modern.py`` trained the float64 tanh network of ``make_golden.py``
    with lion-pytorch's ``Lion`` (plain and cautious), pytorch-optimizer's ``Lamb``,
    ``LARS`` and ``Lookahead``, and the authors' C-AdamW, and wrote the trajectories to
    ``tests/golden/modern/``.  jopt replays each in closed loop (its own ``jax.grad``)
    and must stay within 1e-10 relative of the parameters and state at every
    checkpoint.  Where a port departs from its paper (pytorch-optimizer's LAMB and
    LARS), the port's own form is restated here as ``docs/porting.md`` describes it and
    replayed too, and jopt's alias is shown to differ from it.

Live and restated
    jopt's LAMB and Lion are optax's; LARS is optax's except for the denominator of the
    trust ratio, and a chain of jopt blocks gives optax's.  The wrappers are compared
    with float64 NumPy restatements of their papers' rules, and LAMB's state bytes are
    counted from shapes and dtypes.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from golden_replay import fields_named, golden_loss
from support import run_side_by_side

import jopt

GOLDEN_DIR = Path(__file__).parent / "golden" / "modern"
RTOL = 1e-10


# --- golden files ----------------------------------------------------------------------


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"shape", "data"}:
            return np.asarray(value["data"], np.float64).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@cache
def _text(name: str) -> str:
    return (GOLDEN_DIR / f"{name}.json").read_text()


def load(name: str) -> dict:
    return _decode(json.loads(_text(name)))


def _relative(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    diff = np.abs(actual - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(expected))
    return float(np.where(np.isnan(rel), np.inf, rel).max(initial=0.0))


def _state_leaf(state, field: str, key: str):
    """The one ``field`` of the state that holds parameter ``key`` (a partition keeps
    one per group, with ``None`` for the other group's leaves)."""
    values = [v[key] for v in fields_named(state, field) if v[key] is not None]
    assert len(values) == 1, f"{len(values)} fields {field} hold {key}"
    return values[0]


def replay(record: dict, optimizer, fields: dict) -> dict[str, float]:
    """Largest relative error per quantity over the record's closed loop.

    ``fields``: reference state entry -> (jopt field, ``(value, parameter name) ->``
    the reference's value), or None for an entry jopt does not keep.  Every entry the reference
    recorded must be listed.
    """
    loss_fn = golden_loss(record)
    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    checkpoints = {c["step"]: c for c in record["checkpoints"]}
    errors: dict[str, float] = {}

    def note(key, actual, expected):
        errors[key] = max(errors.get(key, 0.0), _relative(actual, expected))

    for t in range(1, record["num_steps"] + 1):
        params, state, loss = step(params, state)
        note("loss", loss, record["loss_history"][t - 1])
        if t not in checkpoints:
            continue
        for k, expected in checkpoints[t]["params"].items():
            note(f"params/{k}", params[k], expected)
        for k, entries in checkpoints[t]["state"].items():
            for name, expected in entries.items():
                if fields[name] is None:
                    continue
                field, convert = fields[name]
                note(name, convert(_state_leaf(state, field, k), k), expected)
    return errors


def _assert_replays(errors: dict[str, float], compared: set[str]):
    worst = {k: v for k, v in errors.items() if v > RTOL}
    assert not worst, f"relative error above {RTOL:g}: {worst}"
    assert compared <= set(errors), f"not compared: {compared - set(errors)}"


def _same(x, key):
    return x


def _betas(record):
    b1, b2 = record["arguments"]["betas"]
    return {"b1": b1, "b2": b2}


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


# --- cautious ------------------------------------------------------------------------


@pytest.mark.float64
def test_cautious_lion_replays_lion_pytorch():
    record = load("cautious_lion")
    hp = record["arguments"]
    optimizer = jopt.cautious(jopt.lion(hp["lr"], **_betas(record)))
    _assert_replays(replay(record, optimizer, {"exp_avg": ("mu", _same)}), {"exp_avg"})


def _decay_outside(direction, weight_decay, lr):
    """``direction`` (a block whose output is subtracted) made cautious, then decoupled
    decay that the mask does not touch: the recipe of cautious's docstring."""
    return jopt.chain(
        jopt.cautious(jopt.chain(direction, jopt.scale(-1.0))),
        jopt.scale(-1.0),
        jopt.add_decayed_weights(weight_decay),
        jopt.scale_by_learning_rate(lr),
    )


@pytest.mark.float64
def test_cautious_lion_with_decay_replays_lion_pytorch():
    record = load("cautious_lion_weight_decay")
    hp = record["arguments"]
    b = _betas(record)
    optimizer = _decay_outside(
        jopt.scale_by_lion(b["b1"], b2=b["b2"]), hp["weight_decay"], hp["lr"]
    )
    _assert_replays(replay(record, optimizer, {"exp_avg": ("mu", _same)}), {"exp_avg"})
    # Masking the decay too is another algorithm.
    masked_decay = jopt.cautious(jopt.lion(hp["lr"], **b, weight_decay=hp["weight_decay"]))
    assert replay(record, masked_decay, {"exp_avg": None})["loss"] > 1e-6


@pytest.mark.float64
def test_cautious_adamw_replays_the_authors_reference():
    record = load("c_adamw")
    hp = record["arguments"]
    b = _betas(record)
    adam = jopt.scale_by_adam(b["b1"], b2=b["b2"], eps=hp["eps"])
    optimizer = _decay_outside(adam, hp["weight_decay"], hp["lr"])
    fields = {"exp_avg": ("mu", _same), "exp_avg_sq": ("nu", _same), "step": None}
    _assert_replays(replay(record, optimizer, fields), {"exp_avg", "exp_avg_sq"})


def _caution(u, g):
    """C-Optim's rule in the additive convention: keep where u·g < 0, scale by
    1/max(kept fraction, 1e-3), per leaf."""
    keep = np.real(u * np.conj(g)) < 0
    return np.where(keep, u / max(keep.mean(), 1e-3), 0.0)


@pytest.mark.float64
def test_cautious_matches_its_restatement(rng):
    # Heavy-ball momentum proposes u = −η·v with v = γv + g; cautious masks it.
    params = {
        "w": rng.normal(size=(4, 3)),
        "s": [rng.normal(size=())],
        "n": None,
        "i": jnp.arange(3),
    }
    optimizer = jopt.cautious(jopt.momentum(0.1, momentum=0.9))
    state, update = optimizer.init(params), jax.jit(optimizer.update)
    buffers = {"w": np.zeros((4, 3)), "s": np.zeros(())}
    for _ in range(8):
        grads = {
            "w": rng.normal(size=(4, 3)),
            "s": [rng.normal(size=())],
            "n": None,
            "i": jnp.zeros(3),
        }
        updates, state = update(grads, state, params)
        for key, g, u in (("w", grads["w"], updates["w"]), ("s", grads["s"][0], updates["s"][0])):
            buffers[key] = 0.9 * buffers[key] + g
            np.testing.assert_allclose(u, _caution(-0.1 * buffers[key], g), rtol=1e-13)
        assert updates["n"] is None
        np.testing.assert_array_equal(updates["i"], grads["i"])


def test_cautious_kept_fraction_has_a_floor_and_complex_leaves_use_the_real_part():
    n = 4000
    g = jnp.ones(n).at[0].set(-1.0)  # u = g everywhere: only entry 0 points downhill
    fixed = jopt.GradientTransformation(lambda p: jopt.EmptyState(), lambda u, s, p=None: (g, s))
    updates, _ = jax.jit(jopt.cautious(fixed).update)(jnp.ones(n), jopt.EmptyState())
    # Kept fraction 1/4000 < 1e-3: the scale is 1/1e-3, not 4000.
    np.testing.assert_allclose(updates[0], -1.0 / 1e-3, rtol=1e-6)
    assert np.count_nonzero(np.asarray(updates)) == 1
    u = jnp.asarray([1 + 1j, 1 - 1j, -1 + 0j, 2j])
    proposing = jopt.GradientTransformation(
        lambda p: jopt.EmptyState(), lambda x, s, p=None: (u, s)
    )
    g = jnp.asarray([-1 + 0j, 1 + 0j, 1j, -1j])
    got, _ = jax.jit(jopt.cautious(proposing).update)(g, jopt.EmptyState())
    np.testing.assert_allclose(got, _caution(np.asarray(u), np.asarray(g)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(got) != 0, [True, False, False, True])


def test_cautious_keeps_dtypes_jits_and_refuses_a_non_transformation():
    params = {"w": jnp.ones(5, jnp.bfloat16)}
    optimizer = jopt.cautious(jopt.lion(0.1))
    grads = {"w": jnp.asarray([1.0, -2.0, 0.5, -0.1, 3.0], jnp.bfloat16)}
    updates, _ = jax.jit(optimizer.update)(grads, optimizer.init(params), params)
    assert updates["w"].dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="inner"):
        jopt.cautious(0.1)


# --- slow weights (Lookahead) --------------------------------------------------------


@pytest.mark.float64
def test_lookahead_replay_pytorch_optimizer_lookahead_around_adam():
    record = load("lookahead_adam")
    hp, inner = record["arguments"], record["inner"]["arguments"]
    b1, b2 = inner["betas"]
    adam = jopt.adam(inner["lr"], b1=b1, b2=b2, eps=inner["eps"])
    optimizer = jopt.lookahead(adam, sync_period=hp["k"], alpha=hp["alpha"])
    fields = {
        "slow_params": ("slow_params", _same),
        "exp_avg": ("mu", _same),
        "exp_avg_sq": ("nu", _same),
        "step": None,
    }
    _assert_replays(replay(record, optimizer, fields), {"slow_params", "exp_avg", "exp_avg_sq"})


@pytest.mark.float64
def test_lookahead_replay_pytorch_optimizer_lookahead_around_sgd():
    record = load("lookahead_sgd")
    hp, inner = record["arguments"], record["inner"]["arguments"]
    sgd = jopt.momentum(inner["lr"], momentum=inner["momentum"])
    optimizer = jopt.lookahead(sgd, sync_period=hp["k"], alpha=hp["alpha"])
    fields = {"slow_params": ("slow_params", _same), "momentum_buffer": ("trace", _same)}
    _assert_replays(replay(record, optimizer, fields), {"slow_params", "momentum_buffer"})
    wrong = jopt.lookahead(sgd, sync_period=hp["k"] + 1, alpha=hp["alpha"])
    assert replay(record, wrong, {k: None for k in fields})["loss"] > 1e-6


def _lookahead_restated(params, grads, lr, k, alpha):
    """Zhang et al.'s Algorithm 1 around plain gradient descent, in float64 NumPy."""
    fast, slow, path = dict(params), dict(params), []
    for t, g in enumerate(grads, start=1):
        fast = {key: fast[key] - lr * g[key] for key in fast}
        if t % k == 0:
            slow = {key: slow[key] + alpha * (fast[key] - slow[key]) for key in slow}
            fast = dict(slow)
        path.append((fast, slow))
    return path


@pytest.mark.float64
@pytest.mark.parametrize("k, alpha", [(1, 0.5), (3, 0.3), (4, 0.0), (2, 1.0)])
def test_lookahead_match_their_restatement(k, alpha, rng):
    params = {"w": rng.normal(size=(3, 2)), "s": rng.normal(size=()), "n": None, "i": jnp.arange(2)}
    grads = [
        {"w": rng.normal(size=(3, 2)), "s": rng.normal(size=()), "n": None, "i": jnp.zeros(2)}
        for _ in range(9)
    ]
    optimizer = jopt.lookahead(jopt.sgd(0.1), sync_period=k, alpha=alpha)
    step = jax.jit(optimizer.update)
    current, state = params, optimizer.init(params)
    assert state.slow_params["n"] is None and state.slow_params["i"] is None
    floats = lambda tree: {key: tree[key] for key in ("w", "s")}  # noqa: E731
    expected = _lookahead_restated(floats(params), [floats(g) for g in grads], 0.1, k, alpha)
    for g, (fast, slow) in zip(grads, expected, strict=True):
        updates, state = step(g, state, current)
        current = jopt.apply_updates(current, updates)
        for key in ("w", "s"):
            np.testing.assert_allclose(current[key], fast[key], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(jopt.slow_params(state)[key], slow[key], rtol=1e-12)
        np.testing.assert_array_equal(current["i"], params["i"])
        assert 0 <= int(state.steps_since_sync) < k


def test_lookahead_refuse_bad_input():
    sgd = jopt.sgd(0.1)
    with pytest.raises(ValueError, match="sync_period"):
        jopt.lookahead(sgd, sync_period=0)
    with pytest.raises(TypeError, match="sync_period"):
        jopt.lookahead(sgd, sync_period=2.5)
    with pytest.raises(ValueError, match="alpha.*1.5"):
        jopt.lookahead(sgd, alpha=1.5)
    with pytest.raises(TypeError, match="inner"):
        jopt.lookahead("sgd")
    with pytest.raises(TypeError, match="positional"):
        jopt.lookahead(sgd, 5)
    optimizer = jopt.lookahead(sgd)
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
        optimizer.update(params, optimizer.init(params))
    with pytest.raises(ValueError, match=r"\['w'\]"):
        optimizer.update({"w": jnp.ones(3)}, optimizer.init({"w": jnp.ones(3)}), params)
    with pytest.raises(ValueError, match="SlowWeightsState"):
        jopt.slow_params(sgd.init(params))
