"""Clipping, masked weight decay, parameter groups and gradient accumulation.

References are independent of the code under test: NumPy norms and clips, and optax's
optimizers run separately on the sub-trees a group holds (``partition``, ``masked``) or
on the large-batch gradient (``accumulate``).  64-bit types are on for the tests that
compare with them at float64 precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jopt


def nbytes(tree) -> int:
    return sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree))


def _leaves(tree):
    return jax.tree.leaves(tree)


def make_params(rng):
    """A two-group model: weight matrices and (1-d or 0-d) biases and norm scales."""
    return {
        "encoder": {"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=3)},
        "norm": {"scale": rng.normal(size=3)},
        "head": {"kernel": rng.normal(size=(3, 2)), "bias": np.asarray(rng.normal())},
    }


def _gradient_stream(params, steps, seed=5):
    """A noisy quadratic: ∇ = θ − target + 0.3·noiseₜ, leaf by leaf."""
    rng = np.random.default_rng(seed)
    target = jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params)
    noise = [jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params) for _ in range(steps)]
    return lambda theta, t: jax.tree.map(lambda p, c, n: p - c + 0.3 * n, theta, target, noise[t])


def _run(optimizer, params, gradient, steps):
    """Closed loop with any (jopt or optax) transformation; the final params and state."""
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    for t in range(steps):
        updates, state = update(gradient(params, t), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


# --- clipping ---------------------------------------------------------------------------


def test_clip_matches_numpy(nested_tree):
    # float32, as users run it: clipping is exact.
    grads = jax.tree.map(lambda x: np.float32(3) * x.astype(np.float32), nested_tree)
    clipped, _ = jopt.clip(0.5).update(grads, jopt.clip(0.5).init(nested_tree))
    for got, g in zip(_leaves(clipped), _leaves(grads), strict=True):
        np.testing.assert_array_equal(got, np.clip(g, -0.5, 0.5))
    assert any(np.any(np.abs(g) > 0.5) for g in _leaves(grads))


@pytest.mark.float64
def test_clip_complex_keeps_the_phase_and_ints_pass():
    g = {"z": jnp.asarray([3 + 4j, 0.3 - 0.4j, 0j]), "n": jnp.asarray([7, -9])}
    out, _ = jopt.clip(1.0).update(g, None)
    np.testing.assert_allclose(out["z"], [0.6 + 0.8j, 0.3 - 0.4j, 0j], rtol=1e-15)
    np.testing.assert_array_equal(out["n"], [7, -9])


def _np_global_norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.abs(np.asarray(x)) ** 2) for x in _leaves(tree))))


@pytest.mark.float64
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 5.0, 1e3])
def test_clip_by_global_norm_matches_numpy(max_norm, nested_tree):
    norm = _np_global_norm(nested_tree)
    transform = jopt.clip_by_global_norm(max_norm)
    clipped, _ = jax.jit(transform.update)(nested_tree, transform.init(nested_tree))
    factor = min(1.0, max_norm / norm)
    for got, g in zip(_leaves(clipped), _leaves(nested_tree), strict=True):
        np.testing.assert_allclose(got, g * factor, rtol=1e-14)
    np.testing.assert_allclose(_np_global_norm(clipped), min(norm, max_norm), rtol=1e-13)
    if max_norm > norm:  # unclipped updates pass bit for bit
        for got, g in zip(_leaves(clipped), _leaves(nested_tree), strict=True):
            np.testing.assert_array_equal(got, g)


def test_clip_by_global_norm_is_safe_on_zero_updates(nested_tree):
    zeros = jax.tree.map(np.zeros_like, nested_tree)
    transform = jopt.clip_by_global_norm(1.0)
    clipped, _ = jax.jit(transform.update)(zeros, transform.init(zeros))
    for got in _leaves(clipped):
        np.testing.assert_array_equal(got, 0.0)

    # Differentiable there too (meta-gradients through the clipping stay finite).
    def total(g):
        out, _ = transform.update(g, None)
        return sum(jnp.sum(x + x**2) for x in _leaves(out))

    for d in _leaves(jax.jit(jax.grad(total))(zeros)):
        np.testing.assert_array_equal(d, 1.0)


@pytest.mark.float64
def test_clip_by_global_norm_mixed_precision_and_ints():
    g = {
        "a": jnp.full(4, 3.0, jnp.float32),
        "b": jnp.full(2, 4.0, jnp.float64),
        "i": jnp.ones(3, int),
    }
    out, _ = jopt.clip_by_global_norm(1.0).update(g, None)
    norm = np.sqrt(4 * 9 + 2 * 16)
    assert out["a"].dtype == jnp.float32 and out["i"].dtype == g["i"].dtype
    np.testing.assert_allclose(out["a"], 3.0 / norm, rtol=1e-6)
    np.testing.assert_allclose(out["b"], 4.0 / norm, rtol=1e-14)
    np.testing.assert_array_equal(out["i"], 1)


@pytest.mark.parametrize(
    "factory, arg, error",
    [
        (jopt.clip, -1.0, ValueError),
        (jopt.clip, float("nan"), ValueError),
        (jopt.clip, "big", TypeError),
        (jopt.clip_by_global_norm, 0.0, ValueError),
        (jopt.clip_by_global_norm, -1.0, ValueError),
        (jopt.clip_by_global_norm, float("nan"), ValueError),
    ],
)
def test_clip_validation(factory, arg, error):
    name = "max_delta" if factory is jopt.clip else "max_norm"
    with pytest.raises(error, match=name):
        factory(arg)


# --- masked weight decay ---------------------------------------------------------------


def decay_mask(params):
    """True for weight matrices, False for biases and norm scales (ndim <= 1)."""
    return jax.tree.map(lambda p: np.ndim(p) > 1, params)


@pytest.mark.float64
@pytest.mark.parametrize("as_function", [False, True])
def test_add_decayed_weights_mask(as_function, rng):
    params = make_params(rng)
    grads = jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params)
    mask = decay_mask if as_function else decay_mask(params)
    block = jopt.add_decayed_weights(0.1, mask=mask)
    out, _ = jax.jit(block.update)(grads, block.init(params), params)
    for got, g, p in zip(_leaves(out), _leaves(grads), _leaves(params), strict=True):
        expected = g + 0.1 * p if np.ndim(p) > 1 else g
        np.testing.assert_allclose(got, expected, rtol=1e-15)


@pytest.mark.float64
def test_add_decayed_weights_mask_prefix_and_bad_masks(rng):
    params = make_params(rng)
    grads = jax.tree.map(np.zeros_like, params)
    block = jopt.add_decayed_weights(1.0, mask={"encoder": True, "norm": False, "head": False})
    out, _ = block.update(grads, block.init(params), params)
    np.testing.assert_array_equal(out["encoder"]["bias"], params["encoder"]["bias"])
    np.testing.assert_array_equal(out["head"]["kernel"], 0.0)
    with pytest.raises(ValueError, match="mask"):
        jopt.add_decayed_weights(1.0, mask={"encoder": True}).init(params)
    with pytest.raises(TypeError, match="mask"):
        jopt.add_decayed_weights(1.0, mask=jax.tree.map(lambda p: 1.0, params)).init(params)


@pytest.mark.float64
def test_readme_recipe_no_weight_decay_on_biases_and_norms(rng):
    """The README recipe equals optax.adamw with the same mask, and the masked leaves
    follow plain Adam."""
    params = make_params(rng)
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
    opt = jopt.chain(jopt.scale_by_adam(), jopt.add_decayed_weights(0.1, mask=decay_mask),
                     jopt.scale_by_learning_rate(1e-2))  # fmt: skip
    gradient = _gradient_stream(params, 20)
    ours, _ = _run(opt, params, gradient, 20)
    theirs, _ = _run(optax.adamw(1e-2, weight_decay=0.1, mask=decay_mask), params, gradient, 20)
    for a, b in zip(_leaves(ours), _leaves(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    no_decay, _ = _run(optax.adamw(1e-2, weight_decay=0.0), params, gradient, 20)
    np.testing.assert_allclose(ours["norm"]["scale"], no_decay["norm"]["scale"], rtol=1e-12)
    assert not np.allclose(ours["encoder"]["kernel"], no_decay["encoder"]["kernel"], rtol=1e-6)


# --- parameter groups -------------------------------------------------------------------


def _paths(tree):
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def _subtree(params, keep):
    """The leaves whose path is in ``keep``, as a flat dict (a separate model)."""
    return {
        jax.tree_util.keystr(p): x
        for p, x in jax.tree_util.tree_leaves_with_path(params)
        if jax.tree_util.keystr(p) in keep
    }


LABELS = {
    # a prefix tree of labels
    "prefix": {"encoder": "slow", "norm": "fast", "head": "fast"},
    # a function of the params: matrices vs vectors and scalars
    "function": lambda params: jax.tree.map(lambda p: "slow" if np.ndim(p) > 1 else "fast", params),
}


@pytest.mark.float64
@pytest.mark.parametrize("labels_kind", sorted(LABELS))
def test_partition_equals_separately_optimized_subtrees(labels_kind, rng):
    params = make_params(rng)
    labels = LABELS[labels_kind]
    label_tree = labels(params) if callable(labels) else labels
    full_labels = jax.tree.map(
        lambda lab, sub: jax.tree.map(lambda _: lab, sub), label_tree, params
    )
    groups = {
        lab: {p for p, x in zip(_paths(params), _leaves(full_labels), strict=True) if x == lab}
        for lab in ("slow", "fast")
    }
    assert all(groups.values())
    steps = 15
    gradient = _gradient_stream(params, steps)
    opt = jopt.partition(
        {"slow": jopt.sgd(0.05, momentum=0.9), "fast": jopt.adam(0.02, b1=0.8)}, labels=labels
    )
    ours, state = _run(opt, params, gradient, steps)

    # Each group alone, with optax, on a separate model holding only its leaves.
    references = {"slow": optax.sgd(0.05, momentum=0.9), "fast": optax.adam(0.02, b1=0.8)}
    flat_gradient = lambda sub, t: {
        k: v for k, v in _subtree(gradient(_rebuild(params, sub), t), sub).items()
    }
    for lab, reference in references.items():
        sub, sub_state = _run(reference, _subtree(params, groups[lab]), flat_gradient, steps)
        mine = _subtree(ours, groups[lab])
        for path in groups[lab]:
            np.testing.assert_allclose(mine[path], sub[path], rtol=1e-12, err_msg=path)
        # State only for the group's own leaves: as much as the separate run's.
        assert nbytes(state.inner_states[lab]) == nbytes(sub_state)


def _rebuild(params, flat):
    """``params`` with the leaves named in ``flat`` replaced (the others are irrelevant)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, x: flat.get(jax.tree_util.keystr(p), x), params
    )


def test_partition_errors(rng):
    params = make_params(rng)
    opt = jopt.partition({"a": jopt.sgd(0.1)}, labels={"encoder": "a", "norm": "a", "head": "b"})
    with pytest.raises(ValueError, match="'b'"):
        opt.init(params)
    with pytest.raises(ValueError, match="labels"):
        jopt.partition({"a": jopt.sgd(0.1)}, labels={"encoder": "a"}).init(params)
    with pytest.raises(TypeError, match="transforms"):
        jopt.partition([jopt.sgd(0.1)], labels="a")
    with pytest.raises(TypeError, match=r"transforms\['a'\]"):
        jopt.partition({"a": "sgd"}, labels="a")


@pytest.mark.float64
def test_partition_passes_none_and_integer_leaves(rng):
    params = {"w": rng.normal(size=3), "none": None, "step": np.asarray(3)}
    opt = jopt.partition({"x": jopt.adam(0.1)}, labels="x")
    state = opt.init(params)
    updates, _ = opt.update({"w": np.ones(3), "none": None, "step": np.asarray(0)}, state, params)
    assert updates["none"] is None
    np.testing.assert_array_equal(updates["step"], 0)
    np.testing.assert_allclose(updates["w"], -0.1 / (1 + 1e-8), rtol=1e-12)


@pytest.mark.float64
@pytest.mark.parametrize("as_function", [False, True])
def test_masked_optimizes_masked_in_leaves_only(as_function, rng):
    params = make_params(rng)
    mask = decay_mask if as_function else decay_mask(params)
    opt = jopt.masked(jopt.adam(0.05), mask=mask)
    state = opt.init(params)
    grads = jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params)
    updates, state = jax.jit(opt.update)(grads, state, params)
    kernels = {p for p in _paths(params) if "kernel" in p}
    kernel_grads = _subtree(grads, kernels)
    reference, _ = optax.adam(0.05).update(kernel_grads, optax.adam(0.05).init(kernel_grads))
    for path, got, g in zip(_paths(params), _leaves(updates), _leaves(grads), strict=True):
        if path in kernels:
            np.testing.assert_allclose(got, reference[path], rtol=1e-13)
        else:  # passed through unchanged
            np.testing.assert_array_equal(got, g)
    # Adam keeps moments for the kernels only: a count plus two moments of each.
    kernel_bytes = nbytes(_subtree(params, kernels))
    assert nbytes(state) == 4 + 2 * kernel_bytes


def test_freeze_zeroes_frozen_leaves_and_keeps_no_state(rng):
    params = make_params(rng)
    frozen = {"encoder": True, "norm": False, "head": False}
    grads = jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params)
    block = jopt.freeze(frozen)
    state = block.init(params)
    assert nbytes(state) == 0
    updates, _ = block.update(grads, state, params)
    np.testing.assert_array_equal(updates["encoder"]["kernel"], 0.0)
    np.testing.assert_array_equal(updates["encoder"]["bias"], 0.0)
    np.testing.assert_array_equal(updates["head"]["kernel"], grads["head"]["kernel"])


@pytest.mark.float64
def test_freeze_recipes_hold_frozen_params_still(rng):
    params = make_params(rng)
    steps = 8
    gradient = _gradient_stream(params, steps)
    frozen = {"encoder": True, "norm": False, "head": False}

    # Last in a chain: even decoupled weight decay cannot move the frozen leaves.
    chained, _ = _run(
        jopt.chain(jopt.adamw(0.05, weight_decay=0.1), jopt.freeze(frozen)),
        params,
        gradient,
        steps,
    )
    # As a group of partition: no optimizer state for the frozen leaves at all.
    labels = {"encoder": "frozen", "norm": "train", "head": "train"}
    grouped, state = _run(
        jopt.partition(
            {"train": jopt.adamw(0.05, weight_decay=0.1), "frozen": jopt.freeze(True)},
            labels=labels,
        ),
        params,
        gradient,
        steps,
    )
    for result in (chained, grouped):
        for a, b in zip(_leaves(result["encoder"]), _leaves(params["encoder"]), strict=True):
            np.testing.assert_array_equal(a, b)
        assert not np.allclose(result["head"]["kernel"], params["head"]["kernel"])
    trainable = {k: params[k] for k in ("norm", "head")}
    assert nbytes(state) == 4 + 2 * nbytes(trainable)
    np.testing.assert_allclose(grouped["head"]["kernel"], chained["head"]["kernel"], rtol=1e-13)


# --- gradient accumulation ----------------------------------------------------------------


def _regression(rng, examples=12):
    x = rng.normal(size=(examples, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=examples)
    params = {"w": np.zeros(3), "b": np.asarray(0.0)}

    def loss(params, xb, yb):
        return jnp.mean((xb @ params["w"] + params["b"] - yb) ** 2)

    return x, y, params, jax.jit(jax.grad(loss))


@pytest.mark.float64
@pytest.mark.parametrize("every_k", [1, 3, 4])
def test_accumulate_equals_the_large_batch_run(every_k, rng):
    """k micro-batches of a mean loss, accumulated, = one step on the whole batch."""
    x, y, params, grad = _regression(rng)
    rounds = 5
    opt = jopt.accumulate(jopt.adam(0.05, b1=0.8), every_k=every_k)
    state = opt.init(params)
    update = jax.jit(opt.update)
    reference = optax.adam(0.05, b1=0.8)
    ref_params, ref_state = params, reference.init(params)
    batches = np.array_split(np.arange(len(y)), every_k)
    for _ in range(rounds):
        before = params
        for i, rows in enumerate(batches):
            updates, state = update(grad(params, x[rows], y[rows]), state, params)
            params = jopt.apply_updates(params, updates)
            if i < every_k - 1:  # micro-steps do not move the params
                for a, b in zip(_leaves(params), _leaves(before), strict=True):
                    np.testing.assert_array_equal(a, b)
        big, ref_state = reference.update(grad(ref_params, x, y), ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, big)
        for a, b in zip(_leaves(params), _leaves(ref_params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert int(state.micro_step) == 0
    assert int(jopt.tree_get(state.inner_state, "count")) == rounds


@pytest.mark.float64
def test_accumulate_memory_is_inner_state_plus_one_gradient(nested_tree):
    inner = jopt.adam(1e-3)
    state = jopt.accumulate(inner, every_k=4).init(nested_tree)
    counter = 4  # the int32 micro-step
    assert nbytes(state) == nbytes(inner.init(nested_tree)) + nbytes(nested_tree) + counter
    assert nbytes(state.grad_sum) == nbytes(nested_tree)


def test_accumulate_runs_the_inner_update_only_on_the_kth_micro_step(nested_tree):
    calls = []

    def counting():
        def update(updates, state, params=None, **extra_args):
            jax.debug.callback(lambda: calls.append(1))
            return updates, state

        return jopt.GradientTransformation(lambda params: jopt.EmptyState(), update)

    opt = jopt.accumulate(jopt.chain(counting(), jopt.sgd(0.1)), every_k=4)
    state = opt.init(nested_tree)
    update = jax.jit(opt.update)
    grads = jax.tree.map(jnp.ones_like, nested_tree)
    for _ in range(12):
        _, state = update(grads, state, nested_tree)
    jax.effects_barrier()
    assert len(calls) == 3  # not 12: no compute-then-select


def test_accumulate_validation():
    with pytest.raises(ValueError, match="every_k"):
        jopt.accumulate(jopt.sgd(0.1), every_k=0)
    with pytest.raises(TypeError, match="every_k"):
        jopt.accumulate(jopt.sgd(0.1), every_k=2.0)
    with pytest.raises(TypeError, match="optimizer"):
        jopt.accumulate("sgd", every_k=2)
