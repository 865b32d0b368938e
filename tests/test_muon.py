"""``jopt.muon`` beyond the generic suite: torch's own numbers, every shape of matrix, routing.

The generic suite checks ``muon`` against its float64 restatement of torch's
algorithm (``ref_muon`` in ``references``) to 1e-10 on a (3, 2) matrix and a 0-d
leaf.  Here:

* torch itself, from ``tests/golden/muon/muon.json`` (``tools/golden_muon.py``):
  torch's ``Muon`` runs Newton–Schulz in bfloat16, so ``ns_dtype=bfloat16`` in torch's
  (out, in) layout reproduces it, on CPU, to float64 rounding (1e-10, the golden
  standard); the float32/float64 iteration and the float64 restatement agree with
  it to bfloat16's precision (rtol 5e-2 on an orthogonalization, where one step
  fewer is off by 0.3), and a layout misread is caught;
* the float64 restatement on the golden model (tall, square and wide matrices, four
  torch configurations) to 1e-10;
* layouts: (in, out) and torch's (out, in) give the same update transposed, with
  ``adjust_lr_fn`` read from the right dimensions; HWIO and OIHW convolutions;
* stacked layers batched, not flattened; routing, labels, and their errors;
* gradients through the orthogonalization, exact state bytes, injection.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import GOLDEN_RTOL, jopt_from_torch
from references import REFERENCES, ref_newton_schulz
from support import make_step, noises, run_jopt, run_reference

import jopt

GOLDEN = Path(__file__).parent / "golden" / "muon" / "muon.json"
CPU = jax.devices("cpu")[0]


def _array(value) -> np.ndarray:
    return np.asarray(value["data"], np.float64).reshape(value["shape"])


def _golden() -> dict:
    return json.loads(GOLDEN.read_text())


def _relative(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def _loss(layout: str, x, y):
    """The golden model, ``mlp3_tanh_nobias_v1``, on params in ``layout``."""

    def matrix(w):
        return w.T if layout == "out_in" else w

    def loss(params):
        hidden = jnp.tanh(jnp.tanh(x @ matrix(params["W1"])) @ matrix(params["W2"]))
        return jnp.mean((hidden @ matrix(params["W3"]) - y) ** 2)

    return loss


def _in_layout(params: dict, layout: str) -> dict:
    """Golden (torch, out × in) params in ``layout``."""
    return {k: v if layout == "out_in" else v.T for k, v in params.items()}


def _run(optimizer, golden: dict, run: dict, layout: str):
    """jopt in closed loop on the golden problem: per step, params and momentum buffers
    in torch's layout."""
    loss = _loss(layout, _array(golden["data"]["x"]), _array(golden["data"]["y"]))
    params = _in_layout({k: _array(v) for k, v in golden["initial_params"].items()}, layout)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        return jopt.apply_updates(params, updates), state

    path = []
    for _ in range(run["num_steps"]):
        params, state = step(params, state)
        buffers = jopt.tree_get(state, "EmaMomentumState").mu
        path.append(
            (
                _in_layout({k: np.asarray(v) for k, v in params.items()}, layout),
                _in_layout({k: np.asarray(v) for k, v in buffers.items()}, layout),
            )
        )
    return path


def _torch_path(run: dict):
    return [
        (
            {k: _array(v) for k, v in point["params"].items()},
            {k: _array(v["momentum_buffer"]) for k, v in point["state"].items()},
        )
        for point in run["steps"]
    ]


# --- torch's numbers ----------------------------------------------------------------------


@pytest.mark.float64
def test_newton_schulz_is_torchs_in_bfloat16_and_close_in_float64():
    cases = _golden()["newton_schulz"]
    settings = [
        {"ns_coefficients": tuple(c["ns_coefficients"]), "ns_steps": c["ns_steps"], "eps": c["eps"]}
        for c in cases
    ]

    @jax.jit
    def orthogonalized(inputs):  # every case in one program: one compilation
        return [
            (
                jopt.newton_schulz(g, ns_dtype=jnp.bfloat16, **kwargs),
                jopt.newton_schulz(g.astype(jnp.float32), **kwargs),
                jopt.newton_schulz(g, **kwargs),
            )
            for g, kwargs in zip(inputs, settings, strict=True)
        ]

    with jax.default_device(CPU):
        results = orthogonalized([jnp.asarray(_array(c["input"])) for c in cases])
    for case, kwargs, (bf16, f32, f64) in zip(cases, settings, results, strict=True):
        g, torch_out = _array(case["input"]), _array(case["output"])
        restated = ref_newton_schulz(g, *kwargs.values())
        assert bf16.dtype == jnp.bfloat16 and f32.dtype == jnp.float32
        # torch's arithmetic: the same roundings, so the same bits on CPU.
        np.testing.assert_allclose(np.asarray(bf16, np.float64), torch_out, rtol=GOLDEN_RTOL)
        np.testing.assert_allclose(f64, restated, rtol=1e-12, atol=1e-14)
        for ours in (f32, f64, restated):
            assert _relative(ours, torch_out) < 5e-2, g.shape
        if kwargs["ns_steps"] == 5:  # the quintic is far from converged: a step counts
            fewer = ref_newton_schulz(g, kwargs["ns_coefficients"], 4, kwargs["eps"])
            assert _relative(fewer, torch_out) > 0.25, g.shape


@pytest.mark.float64
@pytest.mark.parametrize("name", ["defaults", "plain_momentum_original", "match_rms_adamw",
                                  "custom_iteration"])  # fmt: skip
def test_bfloat16_iteration_in_torchs_layout_replays_torch(name):
    golden = _golden()
    run = golden["runs"][name]
    optimizer = jopt_from_torch(run, ns_dtype=jnp.bfloat16, layout="out_in")
    with jax.default_device(CPU):
        path = _run(optimizer, golden, run, "out_in")
    for t, ((params, buffers), (torch_params, torch_buffers)) in enumerate(
        zip(path, _torch_path(run), strict=True), start=1
    ):
        for k in torch_params:
            np.testing.assert_allclose(params[k], torch_params[k], rtol=GOLDEN_RTOL, err_msg=f"{t}")
            np.testing.assert_allclose(buffers[k], torch_buffers[k], rtol=GOLDEN_RTOL, atol=1e-15)


@pytest.mark.float64
def test_float64_iteration_follows_torch_to_bfloat16_and_the_restatement_exactly():
    # jopt's own layout (params transposed); float64 Newton–Schulz.  torch's bfloat16
    # steps move the trajectory by up to 6e-3 in 8 steps; reading torch's layout as
    # jopt's swaps fan_in and fan_out in adjust_lr_fn and moves it by far more.
    golden = _golden()
    for name in ("defaults", "custom_iteration"):
        run = golden["runs"][name]
        torch_path = _torch_path(run)
        path = _run(jopt_from_torch(run), golden, run, "in_out")
        restated = _restated(golden, run)
        for t, ((params, _), (torch_params, _), ref) in enumerate(
            zip(path, torch_path, restated, strict=True), start=1
        ):
            for k in torch_params:
                np.testing.assert_allclose(params[k], ref[k], rtol=1e-10, err_msg=f"{name} {t}")
                assert np.max(np.abs(params[k] - torch_params[k])) < 1e-2, (name, t, k)
                assert np.max(np.abs(ref[k] - torch_params[k])) < 1e-2, (name, t, k)
    run = golden["runs"]["defaults"]
    misread = _run(jopt_from_torch(run, layout="in_out"), golden, run, "out_in")
    worst = max(np.max(np.abs(misread[-1][0][k] - v)) for k, v in _torch_path(run)[-1][0].items())
    assert worst > 3e-2


def _restated(golden: dict, run: dict) -> list[dict]:
    """``ref_muon`` (per leaf, torch's layout as "out_in") on the golden problem."""
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in run["hyperparameters"].items()}
    init, step = REFERENCES["muon"].rule(hp.pop("lr"), layout="out_in", **hp)
    grad = jax.jit(jax.grad(_loss("out_in", *(_array(golden["data"][k]) for k in "xy"))))
    params = {k: _array(v) for k, v in golden["initial_params"].items()}
    states = {k: init(v) for k, v in params.items()}
    path = []
    for t in range(1, run["num_steps"] + 1):
        g = {k: np.asarray(v) for k, v in grad(params).items()}
        results = {k: step(params[k], g[k], states[k], t) for k in params}
        params = {k: r[0] for k, r in results.items()}
        states = {k: r[1] for k, r in results.items()}
        path.append(params)
    return path


# --- layouts, convolutions, stacks --------------------------------------------------------


def _updates(optimizer, params, grads_list):
    """The updates of ``optimizer`` for the given gradients, one after the other."""
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    out = []
    for grads in grads_list:
        updates, state = update(grads, state, params)
        params = jopt.apply_updates(params, updates)
        out.append(updates)
    return out


@pytest.mark.float64
@pytest.mark.parametrize("adjust_lr_fn", [None, "match_rms_adamw"])
def test_in_out_and_out_in_give_the_same_update_transposed(adjust_lr_fn, rng):
    # (out, in) = (7, 3): the "original" factor is √(7/3) for a 3 → 7 layer, which
    # only the right reading of the axes gives; the restatement is torch's, on (out, in).
    torch_layout = {"w": rng.normal(size=(7, 3)), "v": rng.normal(size=(2, 5))}
    grads = [jax.tree.map(lambda w: rng.normal(size=w.shape), torch_layout) for _ in range(3)]
    kwargs = {"learning_rate": 0.1, "adjust_lr_fn": adjust_lr_fn}
    theirs = _updates(jopt.muon(**kwargs, layout="out_in"), torch_layout, grads)
    ours = _updates(
        jopt.muon(**kwargs),
        jax.tree.map(np.transpose, torch_layout),
        [jax.tree.map(np.transpose, g) for g in grads],
    )
    for a, b in zip(ours, theirs, strict=True):
        for k in a:
            np.testing.assert_allclose(a[k].T, b[k], rtol=1e-12, atol=1e-15)
    init, step = REFERENCES["muon"].rule(0.1, adjust_lr_fn=adjust_lr_fn, layout="out_in")
    w, state = torch_layout["w"], init(torch_layout["w"])
    new_w, _ = step(w, grads[0]["w"], state, 1)
    np.testing.assert_allclose(theirs[0]["w"], new_w - w, rtol=1e-10)
    # The factor is not symmetric in the dimensions: the layout matters.
    misread = _updates(jopt.muon(**kwargs), torch_layout, grads)[0]["w"]
    if adjust_lr_fn is None:
        np.testing.assert_allclose(
            np.linalg.norm(theirs[0]["w"] + 0.1 * 0.1 * w) / np.linalg.norm(misread + 0.01 * w),
            np.sqrt(7 / 3),
            rtol=1e-10,
        )


def _trajectory(optimizer, params, noise_list):
    """jopt's params after each step on the noisy quadratic (gradient ``p + n``)."""
    return run_jopt(jax.jit(make_step(optimizer)), optimizer, params, noise_list)


@pytest.mark.float64
def test_convolution_kernels_are_matrices_of_their_flattened_input_axes(rng):
    # HWIO (3, 3, 2, 4) is a (18, 4) matrix, fan_in = 18: the restatement (torch's
    # rule on the (4, 18) matrix), the 2-d path on the reshaped kernel, and the same
    # kernel stored OIHW (torch's layout, flattened as (O, I·H·W)) agree.
    kernel = rng.normal(size=(3, 3, 2, 4))
    noise = noises(rng, kernel, 3)
    kwargs = {"learning_rate": 0.05, "adjust_lr_fn": "match_rms_adamw"}

    def run(params, noise, **extra):
        path = _trajectory(jopt.muon(**kwargs, **extra), {"k": params}, [{"k": n} for n in noise])
        return [p["k"] for p in path]

    conv = run(kernel, noise)
    matrix = run(kernel.reshape(18, 4), [n.reshape(18, 4) for n in noise])
    to_oihw = (3, 2, 0, 1)
    oihw = run(kernel.transpose(to_oihw), [n.transpose(to_oihw) for n in noise], layout="out_in")
    expected = run_reference("muon", kwargs, kernel, noise)
    for t in range(3):
        np.testing.assert_allclose(conv[t], expected[t][0], rtol=1e-10)
        np.testing.assert_allclose(conv[t], matrix[t].reshape(kernel.shape), rtol=1e-12)
        np.testing.assert_allclose(conv[t], oihw[t].transpose(2, 3, 1, 0), rtol=1e-10)


@pytest.mark.float64
def test_stacked_layers_are_orthogonalized_one_by_one(rng):
    # Three layers of a scan: (3, 4, 5) kernels and (3, 5) biases, stack_axes=1.  Each
    # layer's update is muon's on that layer alone (the 2-d path, proven against the
    # restatement); flattening the stack into one (12, 5) matrix would couple them.
    params = {"kernel": rng.normal(size=(3, 4, 5)), "bias": rng.normal(size=(3, 5))}
    grads = [jax.tree.map(lambda p: rng.normal(size=p.shape), params) for _ in range(2)]
    forms = (1, {"kernel": 1, "bias": 1}, lambda tree: jax.tree.map(lambda _: 1, tree))
    for stack_axes in forms:
        assert jopt.muon_labels(params, stack_axes=stack_axes) == {"kernel": "muon", "bias": "adam"}
        buffers = jopt.tree_get(jopt.muon(stack_axes=stack_axes).init(params), "EmaMomentumState")
        assert buffers.mu["kernel"].shape == (3, 4, 5) and buffers.mu["bias"] is None
    stacked = _updates(jopt.muon(0.05, stack_axes=forms[2]), params, grads)
    alone = _updates(
        jopt.muon(0.05),
        {"kernel": params["kernel"][0]},
        [{"kernel": g["kernel"][0]} for g in grads],
    )
    for t in range(2):
        np.testing.assert_allclose(stacked[t]["kernel"][0], alone[t]["kernel"], rtol=1e-12)
    flattened = _updates(jopt.muon(0.05), params, grads)
    assert not np.allclose(flattened[0]["kernel"], stacked[0]["kernel"], rtol=1e-3)
    # Against the restatement, which orthogonalizes each matrix of the stack.
    kwargs = {"learning_rate": 0.05, "stack_axes": 1}
    noise = noises(rng, params, 3)
    expected = run_reference("muon", kwargs, params, noise)
    actual = _trajectory(jopt.muon(**kwargs), params, noise)
    for t in range(3):
        for i, k in enumerate(sorted(params)):
            np.testing.assert_allclose(actual[t][k], expected[t][i], rtol=1e-10)


# --- routing and labels -------------------------------------------------------------------


def _model(rng):
    """Embeddings, a block, an output head, and the leaves Muon must leave to AdamW."""
    return {
        "embed": rng.normal(size=(10, 4)),
        "block": {"w": rng.normal(size=(4, 4)), "b": rng.normal(size=4)},
        "head": rng.normal(size=(4, 10)),
        "scale": np.asarray(rng.normal()),
        "phase": rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)),
        "step": jnp.asarray(3, jnp.int32),
        "none": None,
    }


def embeddings_and_head_to_adamw(params):
    """The labels of docs/porting.md: the Muon papers' split, over the default one."""

    def label(path, default):
        name = jax.tree_util.keystr(path)
        return "adam" if "embed" in name or "head" in name else default

    return jax.tree_util.tree_map_with_path(label, jopt.muon_labels(params))


@pytest.mark.float64
def test_matrices_go_to_muon_and_the_rest_to_adamw(rng):
    params = _model(rng)
    assert jopt.muon_labels(params) == {
        "embed": "muon",
        "block": {"w": "muon", "b": "adam"},
        "head": "muon",
        "scale": "adam",
        "phase": "adam",  # complex: AdamW, with |g|²
        "step": "adam",  # not trained: AdamW passes it through
        "none": None,
    }
    # With the papers' labels, each leaf takes exactly its group's optimizer alone:
    # AdamW's (proven against torch in test_parity_torch.py), or Muon's on that matrix.
    optimizer = jopt.muon(0.02, labels=embeddings_and_head_to_adamw)
    grads = [jax.tree.map(lambda p: p * 0.3 + 0.1, params) for _ in range(2)]
    grads = [{**g, "step": None, "none": None} for g in grads]
    params_no_int = {**params, "step": None}
    ours = _updates(optimizer, params_no_int, grads)
    adam_keys = ("embed", "head", "scale", "phase")

    def pick(tree, keys):
        return {k: tree[k] for k in keys}

    adamw = _updates(
        jopt.adamw(0.02, weight_decay=0.1),
        {**pick(params, adam_keys), "b": params["block"]["b"]},
        [{**pick(g, adam_keys), "b": g["block"]["b"]} for g in grads],
    )
    muon_alone = _updates(
        jopt.muon(0.02), {"w": params["block"]["w"]}, [{"w": g["block"]["w"]} for g in grads]
    )
    for t in range(2):
        for k in adam_keys:
            np.testing.assert_allclose(ours[t][k], adamw[t][k], rtol=1e-12)
        np.testing.assert_allclose(ours[t]["block"]["b"], adamw[t]["b"], rtol=1e-12)
        np.testing.assert_allclose(ours[t]["block"]["w"], muon_alone[t]["w"], rtol=1e-12)
    state = optimizer.init(params)
    assert set(jopt.tree_get(state, "EmaMomentumState").mu["block"]) == {"w", "b"}
    assert jopt.tree_get(state, "EmaMomentumState").mu["embed"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": {"embed": "muon", "block": "muon", "head": "adam", "scale": "adam",
                     "phase": "adam", "step": "adam", "none": None}},
         r"labels: params\['block'\]\['b'\] is labelled 'muon' but is of shape \(4,\)"),
        ({"labels": lambda p: jax.tree.map(lambda _: "muon", p)},
         r"params\['block'\]\['b'\] is labelled 'muon'"),
        ({"labels": lambda p: {**jax.tree.map(lambda _: "adam", p), "phase": "muon"}},
         r"labels: params\['phase'\] is labelled 'muon' but is complex"),
        ({"labels": lambda p: jax.tree.map(lambda _: "sgd", p)},
         r"labels\['block'\]\['b'\] must be one of 'muon', 'adam', got 'sgd'"),
        ({"labels": {"embed": "adam"}}, "labels must have the tree structure of the params"),
        ({"stack_axes": lambda p: jax.tree.map(lambda _: -1, p)},
         r"stack_axes\['block'\]\['b'\] must be an integer >= 0, got -1"),
    ],
)  # fmt: skip
def test_labels_and_stack_axes_that_do_not_fit_fail_at_init(kwargs, message, rng):
    with pytest.raises(ValueError, match=message):
        jopt.muon(**kwargs).init(_model(rng))


def test_the_orthogonalization_refuses_vectors_and_complex_leaves():
    block = jopt.scale_by_newton_schulz()
    with pytest.raises(ValueError, match=r"updates\['b'\] of shape \(3,\) is 1-d after 0"):
        block.update({"b": jnp.ones(3)}, block.init({"b": jnp.ones(3)}))
    with pytest.raises(ValueError, match=r"updates\['w'\] of shape \(2, 2\) is complex"):
        block.update({"w": jnp.ones((2, 2), jnp.complex64)}, jopt.EmptyState())


# --- gradients, state, injection --------------------------------------------------------


@pytest.mark.float64
def test_update_is_differentiable_through_the_orthogonalization(rng):
    # The generic test differentiates a 1-d problem (AdamW); here a (3, 2) matrix:
    # the loss ½|θ|² after two steps against central differences (h = 1e-6).
    params = {"w": rng.normal(size=(3, 2))}
    noise = noises(rng, params, 2)

    def loss(learning_rate, params):
        optimizer = jopt.muon(learning_rate, momentum=0.9)
        step, state = make_step(optimizer), optimizer.init(params)
        for n in noise:
            params, state = step(params, state, n)
        return 0.5 * jnp.sum(params["w"] ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    _, (grad_rate, grad_params) = value_and_grad(0.1, params)
    h = 1e-6
    difference = (value_and_grad(0.1 + h, params)[0] - value_and_grad(0.1 - h, params)[0]) / (2 * h)
    np.testing.assert_allclose(grad_rate, difference, rtol=1e-6)
    direction = rng.normal(size=(3, 2))
    shifted = [{"w": params["w"] + s * h * direction} for s in (1, -1)]
    difference = (value_and_grad(0.1, shifted[0])[0] - value_and_grad(0.1, shifted[1])[0]) / (2 * h)
    np.testing.assert_allclose(np.vdot(grad_params["w"], direction), difference, rtol=1e-6)


def _state_bytes(state) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


@pytest.mark.parametrize("mu_dtype, nu_dtype", [(None, None), (jnp.float32, jnp.bfloat16)])
def test_state_bytes(mu_dtype, nu_dtype):
    # One buffer per matrix (mu_dtype, else the param's), AdamW's two moments and its
    # int32 count for the rest; nothing for integer leaves; no buffer without momentum.
    shapes = {"w": ((6, 4), jnp.float32), "k": ((3, 3, 2, 4), jnp.bfloat16),
              "b": ((4,), jnp.float32), "s": ((), jnp.bfloat16)}  # fmt: skip
    params = {k: jnp.zeros(shape, dtype) for k, (shape, dtype) in shapes.items()}
    params["n"] = jnp.zeros(3, jnp.int32)

    def size(key, dtype):
        shape, own = shapes[key]
        return int(np.prod(shape)) * jnp.dtype(dtype or own).itemsize

    buffers = size("w", mu_dtype) + size("k", mu_dtype)
    adam = sum(size(k, mu_dtype) + size(k, nu_dtype) for k in ("b", "s")) + 4
    optimizer = jopt.muon(mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    assert _state_bytes(optimizer.init(params)) == buffers + adam
    without_momentum = jopt.muon(momentum=0.0, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    assert _state_bytes(without_momentum.init(params)) == adam
    assert jopt.tree_get(without_momentum.init(params), "EmaMomentumState") is None


def test_injected_muon_keeps_counts_tuples_and_labels_static():
    factory = jopt.inject_hyperparams(jopt.muon)
    optimizer = factory(0.02, ns_steps=3, labels=embeddings_and_head_to_adamw, stack_axes=0,
                        ns_dtype=jnp.bfloat16, adjust_lr_fn="match_rms_adamw")  # fmt: skip
    params = {"embed": jnp.ones((5, 3)), "w": jnp.eye(3), "b": jnp.zeros(3)}
    state = optimizer.init(params)
    live = {"learning_rate", "weight_decay", "momentum", "eps", "adam_b1", "adam_b2", "adam_eps"}
    assert set(jopt.get_hyperparams(state)) == live
    state = jopt.set_hyperparams(state, learning_rate=0.01)
    grads = jax.tree.map(jnp.ones_like, params)
    ours, _ = jax.jit(optimizer.update)(grads, state, params)
    plain = jopt.muon(0.01, ns_steps=3, labels=embeddings_and_head_to_adamw,
                      ns_dtype=jnp.bfloat16, adjust_lr_fn="match_rms_adamw")  # fmt: skip
    theirs, _ = plain.update(grads, plain.init(params), params)
    for k in params:  # float32 β₂ against a Python float: 1 − β₂ differs by 1e-5
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-4)


def _guide_section() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "porting.md").read_text()
    start = text.index("## Muon")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_porting_guide_maps_every_torch_argument_and_its_recipe_runs(rng):
    section = _guide_section()
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")]
    torch_arguments = _golden()["runs"]["defaults"]["torch_arguments"]
    missing = [a for a in torch_arguments if not any(f"`{a}`" in cell for cell in rows)]
    assert not missing, f"docs/porting.md's Muon section has no row for {missing}"
    assert "`momentum_buffer`" in section and "`EmaMomentumState.mu`" in section
    # The labels recipe, run as written, is the one tested above.
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"jax": jax, "jopt": jopt}
    exec(code, namespace)
    params = _model(rng)
    assert namespace["labels"](params) == embeddings_and_head_to_adamw(params)
    namespace["optimizer"].init(params)
