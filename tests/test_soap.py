"""SOAP (Vyas et al., 2025) beyond the generic suite.

* Golden trajectories of the authors' code (github.com/nikhilvyas/SOAP) and of
  pytorch-optimizer's port, written by ``tools/golden_soap.py`` in float64 and
  replayed here without torch: the parameters after each of 30 steps to 1e-8, and the
  statistics ``GG`` (which do not depend on the basis) after the last.
* The eigenbasis is defined up to the signs and the order of its columns: a run whose
  bases are flipped and shuffled after the first update follows the same trajectory.
* The refresh lives under one ``lax.switch``: the compiled step is one program, traced
  once, whose eigendecomposition and QR decomposition are only inside its branches.
* Tensors of rank 3 and 1-D leaves with ``precondition_1d`` against the float64 NumPy
  restatement of ``references``.
* State bytes, counted from the shapes, and the storage dtypes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import read_json
from references import REFERENCES
from support import assert_trajectories_close, make_step, noises, run_jopt, run_reference

import jopt

pytestmark = pytest.mark.float64

GOLDEN = Path(__file__).parent / "golden" / "soap" / "soap.json"
TRAJECTORY_RTOL = 1e-8  # the tolerance; the two torch codes agree to 1e-9

# torch keyword -> jopt keyword (docs/porting.md); the port spells the last one
# max_precondition_dim.
ARGUMENTS = {
    "lr": "learning_rate",
    "betas": ("b1", "b2"),
    "eps": "eps",
    "weight_decay": "weight_decay",
    "precondition_frequency": "precondition_frequency",
    "max_precond_dim": "max_precond_dim",
    "precondition_1d": "precondition_1d",
}


@cache
def _golden() -> dict:
    return read_json(GOLDEN)


def _jopt_kwargs(hyperparameters: dict) -> dict:
    kwargs = {}
    for name, value in hyperparameters.items():
        target = ARGUMENTS[name]
        if isinstance(target, tuple):
            kwargs.update(zip(target, value, strict=True))
        else:
            kwargs[target] = value
    return kwargs


def soap_tanh_v1_loss(params, x, y):
    """The loss of tag ``soap_tanh_v1`` (see tools/golden_soap.py)."""
    z = jnp.einsum("nd,dhk->nhk", x, params["W"]) + params["B"]
    h = jnp.tanh(z) * params["s"][None, :, None]
    prediction = jnp.einsum("nhk,hk->n", h, params["V"]) + params["c"]
    return jnp.mean((prediction - y) ** 2)


def _leaf_deviation(actual, expected) -> float:
    """``max|a − e| / max|e|`` over one leaf: relative to the leaf's scale, so that an
    entry crossing zero is held to the same absolute accuracy as its neighbours."""
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    return float(np.max(np.abs(np.asarray(actual) - expected))) / scale


def _replay(optimizer, record: dict, steps: int):
    x, y = (jnp.asarray(record["data"][k]) for k in ("x", "y"))

    @jax.jit
    def step(params, state):
        grads = jax.grad(soap_tanh_v1_loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state

    params = {k: jnp.asarray(v) for k, v in record["initial_params"].items()}
    state = optimizer.init(params)
    trajectory = []
    for _ in range(steps):
        params, state = step(params, state)
        trajectory.append(params)
    return trajectory, state


@pytest.mark.parametrize("name", sorted(_golden()["configs"]))
def test_follows_the_reference_implementations(name):
    record = _golden()
    config = record["configs"][name]
    optimizer = jopt.soap(**_jopt_kwargs(config["hyperparameters"]))
    trajectory, state = _replay(optimizer, record, record["num_steps"])
    worst = max(
        _leaf_deviation(params[key], expected[key])
        for params, expected in zip(trajectory, config["params"], strict=True)
        for key in record["param_order"]
    )
    print(f"{name}: largest deviation {worst:.1e}")
    assert worst < TRAJECTORY_RTOL, worst
    stats = jopt.tree_get(state, "stats")
    for key in record["param_order"]:
        expected = config["statistics"][key]
        assert [m is None for m in stats[key]] == [m is None for m in expected], key
        for actual, matrix in zip(stats[key], expected, strict=True):
            if matrix is not None:
                np.testing.assert_allclose(actual, matrix, rtol=TRAJECTORY_RTOL, atol=1e-14)


# --- the basis is defined up to signs and order -------------------------------------------


def _quadratic_run(step, optimizer, params, noise, edit=None):
    """Closed loop on the noisy quadratic; ``edit(state)`` after the first step."""
    state = optimizer.init(params)
    trajectory = []
    for t, n in enumerate(noise):
        params, state = step(params, state, n)
        if t == 0 and edit is not None:
            state = edit(state)
        trajectory.append(params)
    return trajectory


def test_trajectory_does_not_depend_on_the_signs_and_order_of_the_eigenvectors(rng):
    """Each column of Qᵢ may be negated and the columns reordered: m and v live in the
    rotated coordinates, Adam's elementwise rule commutes with a signed permutation of
    them, and the refresh sorts the columns by their eigenvalue estimate before its QR
    (whose columns are again defined up to sign).  After the first update (m = v = 0)
    every basis is multiplied by a random signed permutation: the 25 steps that follow,
    three refreshes among them, are the same to rounding."""
    params = {
        "m": jnp.asarray(rng.normal(size=(4, 3))),
        "t": jnp.asarray(rng.normal(size=(3, 2, 2))),
    }
    noise = noises(rng, params, 25)
    optimizer = jopt.soap(0.02, precondition_frequency=7)
    step = jax.jit(make_step(optimizer))

    def shuffle(state):
        inner, rest = state[0], state[1:]

        def signed_permutation(q):
            d = q.shape[0]
            return q[:, rng.permutation(d)] * rng.choice([-1.0, 1.0], size=d)

        bases = jax.tree.map(signed_permutation, inner.bases)
        assert not np.allclose(bases["m"][0], inner.bases["m"][0])
        return (inner._replace(bases=bases), *rest)

    plain = _quadratic_run(step, optimizer, params, noise)
    shuffled = _quadratic_run(step, optimizer, params, noise, edit=shuffle)
    expected = [[np.asarray(x) for x in jax.tree.leaves(p)] for p in plain]
    assert_trajectories_close(shuffled, expected, rtol=1e-10)
    moved = np.abs(plain[-1]["m"] - params["m"]).max()
    assert moved > 0.1, moved


# --- one compiled program ----------------------------------------------------------------


def _primitives(jaxpr, inside_cond=False, found=None):
    """``{(primitive name, whether under a cond)}`` over a jaxpr and its sub-jaxprs."""
    found = set() if found is None else found
    for eqn in jaxpr.eqns:
        found.add((eqn.primitive.name, inside_cond))
        under = inside_cond or eqn.primitive.name == "cond"
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            _primitives(sub, under, found)
    return found


def test_refresh_sits_under_one_switch_and_never_retraces(trace_counter, rng):
    params = {"m": rng.normal(size=(4, 3)), "b": rng.normal(size=3), "s": rng.normal(size=())}
    params = jax.tree.map(jnp.asarray, params)
    optimizer = jopt.soap(0.01, precondition_frequency=3)
    step = make_step(optimizer)
    noise = noises(rng, params, 12)
    state = optimizer.init(params)
    primitives = _primitives(jax.make_jaxpr(step)(params, state, noise[0]).jaxpr)
    # The eigendecomposition (first update) and the QR refresh run only inside the
    # switch; a plain update runs neither.
    assert {("eigh", True), ("qr", True)} <= primitives, primitives
    assert ("eigh", False) not in primitives and ("qr", False) not in primitives
    assert sum(name == "cond" for name, _ in primitives) == 1
    jitted = jax.jit(trace_counter.wrap(step))
    for n in noise:  # the first update, plain ones and refreshes (steps 4, 7, 10)
        params, state = jitted(params, state, n)
    assert trace_counter.count == 1
    assert jitted._cache_size() == 1


# --- rank-3 tensors, 1-D leaves, identity axes ----------------------------------------------


def test_tensors_vectors_and_identity_axes_follow_the_reference(rng):
    # Leaves small enough that their first statistic has no repeated eigenvalue; the
    # 4-long axis of "m" is past max_precond_dim and keeps the identity.
    kwargs = {
        "learning_rate": 0.02,
        "precondition_frequency": 4,
        "precondition_1d": True,
        "max_precond_dim": 3,
    }
    params = {
        "t": rng.normal(size=(3, 2, 2)),
        "v": rng.normal(size=2),
        "m": rng.normal(size=(4, 3)),
    }
    noise = noises(rng, params, 30)
    expected = run_reference("soap", kwargs, params, noise)
    optimizer = jopt.soap(**kwargs)
    actual = run_jopt(jax.jit(make_step(optimizer)), optimizer, params, noise)
    assert_trajectories_close(actual, expected, rtol=1e-10)


# --- state: bytes and dtypes -----------------------------------------------------------------


def test_state_bytes_are_the_moments_and_one_matrix_pair_per_preconditioned_axis():
    shapes = {"w": (6, 5), "t": (2, 3, 4), "b": (5,), "s": (), "wide": (12, 3)}
    params = {k: jnp.zeros(s, jnp.bfloat16) for k, s in shapes.items()}
    params["n"] = jnp.zeros(3, jnp.int32)
    for precondition_1d in (False, True):
        optimizer = jopt.soap(
            max_precond_dim=10,
            precondition_1d=precondition_1d,
            mu_dtype=jnp.float32,
            nu_dtype=jnp.float16,
        )
        state = optimizer.init(params)
        moments = sum(int(np.prod(s)) for s in shapes.values()) * (4 + 2)
        # (d, d) statistic and basis per axis of length <= 10, in float32 (at least the
        # compute dtype): w 6 and 5, t 2, 3 and 4, wide 3 only; b 5 with precondition_1d.
        axes = [6, 5, 2, 3, 4, 3] + ([5] if precondition_1d else [])
        matrices = sum(2 * d * d * 4 for d in axes)
        counts = 2 * 4  # scale_by_soap's and soap_descent's int32 counts
        nbytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
        assert nbytes == moments + matrices + counts, (precondition_1d, nbytes)


def test_storage_dtypes_half_precision_and_donation(rng):
    params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.bfloat16)}
    optimizer = jopt.soap(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.bfloat16)
    state = optimizer.init(params)
    inner = state[0]
    assert inner.mu["w"].dtype == jnp.float32 and inner.nu["w"].dtype == jnp.bfloat16
    assert all(m.dtype == jnp.float32 for m in jax.tree.leaves((inner.stats, inner.bases)))
    # Donated: every state leaf is its own buffer (statistics and bases start equal).
    step = jax.jit(make_step(optimizer), donate_argnums=(0, 1))
    for _ in range(12):
        noise = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.bfloat16)}
        params, state = step(params, state, noise)
    assert params["w"].dtype == jnp.bfloat16
    assert np.all(np.isfinite(np.asarray(params["w"], np.float32)))
    assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(
        lambda x: x.dtype, optimizer.init(params)
    )


# --- the step block --------------------------------------------------------------------------


def test_soap_descent_decays_the_stepped_parameters_and_skips_the_first_update():
    """``u = −η·d − η·λ·(θ − η·d)``, from the second update on, with η a schedule at the
    number of earlier updates (closed form, d = 1, θ = 2, λ = 0.5)."""
    block = jopt.soap_descent(lambda count: 0.1 * (count + 1), weight_decay=0.5)
    theta, d = jnp.asarray([2.0]), jnp.asarray([1.0])
    state = block.init(theta)
    got = []
    for _ in range(3):
        u, state = block.update(d, state, theta)
        got.append(float(u[0]))
    eta = [0.1, 0.2, 0.3]
    expected = [0.0] + [-e * 1 - e * 0.5 * (2 - e * 1) for e in eta[1:]]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="needs params"):
        block.update(d, state)


def test_reference_is_registered():
    assert REFERENCES["soap"].matrix_state


def test_porting_guide_covers_every_constructor_argument():
    """Each argument of both references' constructors (recorded in the golden file, so
    torch is not needed) is named in the guide's SOAP section."""
    guide = (Path(__file__).parent.parent / "docs" / "porting.md").read_text()
    section = guide[guide.index("## SOAP") :]
    for implementation, arguments in _golden()["constructor_arguments"].items():
        missing = [a for a in arguments if f"`{a}`" not in section and f"`{a}=" not in section]
        assert not missing, f"docs/porting.md's SOAP section misses {implementation} {missing}"


def test_benchmark_counts_the_transformer_state_from_its_shapes():
    """benchmarks/soap.py's count from the shapes (two moments per parameter, two
    float32 matrices per axis up to 10000 of every leaf of rank 2 or more, two counts)
    is jopt's state on the transformer tree (1.39 GB for 24.6 M parameters)."""
    from benchmarks import shapes
    from benchmarks.soap import expected_state_bytes

    leaves = shapes.transformer().leaves
    params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in leaves.items()}
    state = jax.eval_shape(jopt.soap().init, params)
    nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    assert nbytes == expected_state_bytes(leaves)["total"]
