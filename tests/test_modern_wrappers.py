"""The cautious and slow-weights (Lookahead) wrappers against their references.

Golden data
    ``tools/golden_modern.py`` trained the float64 tanh network of ``make_golden.py``
    with lion-pytorch's cautious ``Lion``, pytorch-optimizer's ``Lookahead`` and the
    authors' C-AdamW; jopt replays each in closed loop within 1e-10 relative.

Restated
    The wrappers are compared with float64 NumPy restatements of their papers' rules.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from modern_support import _assert_replays, _betas, _same, load, replay

import jopt

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
