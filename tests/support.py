"""Helpers shared by the test modules (no test module imports another).

* Trees: :func:`make_nested_tree` (the fixture's), :func:`small_tree` (the generic
  suite's: nested, a matrix and a 0-d leaf, two leaves to keep compiling cheap).
* Runs: per-step gradient noise, the float64 reference's trajectory, jopt's.
* Comparisons: trajectories within a tolerance, trees bit for bit.
* Checkpoints: the training run that ``test_checkpoint`` saves, restores, and resumes
  in a fresh process (``python -c "import support; support.resume_all(...)"``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from references import REFERENCES

import jopt
from jopt._numerics import is_trainable

INT32_MAX = int(np.iinfo(np.int32).max)


def is_none(x: Any) -> bool:
    return x is None


# --- trees ---------------------------------------------------------------------------------


def make_nested_tree(rng: np.random.Generator, dtype=np.float64):
    """A tree of dicts, lists, tuples and scalars with leaves of mixed shapes."""

    def leaf(*shape):
        return np.asarray(rng.normal(size=shape), dtype=dtype)

    return {
        "dense": {"w": leaf(3, 4), "b": leaf(4)},
        "stack": [leaf(2, 2, 3), (leaf(5), leaf())],
        "scalar": leaf(),
    }


def small_tree(rng: np.random.Generator, dtype=np.float64):
    """Dict, list and tuple nesting, a matrix and a 0-d leaf: compiling costs per leaf."""

    def leaf(*shape):
        return np.asarray(rng.normal(size=shape), dtype=dtype)

    return {"w": leaf(3, 2), "stack": [(leaf(),)]}


def returns_transformation(fn) -> bool:
    """Whether ``fn`` is a factory of transformations (by its return annotation)."""
    if inspect.isclass(fn) or not callable(fn):
        return False
    try:
        annotation = inspect.signature(fn, eval_str=True).return_annotation
    except NameError:  # an annotation imported for type checking only
        annotation = inspect.signature(fn).return_annotation
    return annotation in (jopt.GradientTransformation, "GradientTransformation")


# --- runs ----------------------------------------------------------------------------------


def noises(rng: np.random.Generator, like, steps: int, dtype=None):
    """Per-step gradient noise shaped like ``like``, of varying size (so maxima bite)."""

    def draw(x, size):
        return np.asarray(size * rng.normal(size=np.shape(x)), dtype or np.asarray(x).dtype)

    return [
        jax.tree.map(functools.partial(draw, size=rng.uniform(0.1, 2.0)), like)
        for _ in range(steps)
    ]


def complex_noises(rng: np.random.Generator, like, steps: int):
    real, imaginary = noises(rng, like, steps), noises(rng, like, steps)
    return [
        jax.tree.map(lambda a, b: a + 1j * b, r, i) for r, i in zip(real, imaginary, strict=True)
    ]


def gradient(p, n):
    """The gradient of ``½|θ|² + ⟨n, θ⟩``: depends on θ, so errors compound."""
    return p + n


def loss_value(params, noise):
    """``Σ ½|θ|² + Re⟨n, θ⟩`` over the leaves, for optimizers that need ``value=``."""
    total = 0.0
    for p, n in zip(jax.tree.leaves(params), jax.tree.leaves(noise), strict=True):
        total = total + 0.5 * jnp.sum(jnp.abs(p) ** 2) + jnp.sum(jnp.real(jnp.conj(n) * p))
    return total


def resting_loss(params):
    """``Σ ½|θ|²`` over the trainable leaves: the generic ``value_fn`` of the tests whose
    loss does not matter (its gradient is ``params``)."""
    leaves = [p for p in jax.tree.leaves(params) if is_trainable(p)]
    return sum((0.5 * jnp.sum(jnp.abs(p) ** 2) for p in leaves), jnp.zeros([]))


def extra_args(name: str, value: Any = 1.0, value_fn: Any = resting_loss) -> dict[str, Any]:
    """The extra keyword arguments ``update`` needs for registry entry ``name``.

    ``{"value": value}`` (the loss) for an optimizer that needs it, with ``value_fn``
    (params -> loss) for one that also needs that, else nothing; for the tests whose
    loss does not matter (dtypes, trees, structure), any number and
    :func:`resting_loss` do.
    """
    reference, extra = REFERENCES[name], {}
    if reference.needs_value or reference.needs_value_fn:
        extra["value"] = jnp.asarray(value)
    if reference.needs_value_fn:
        extra["value_fn"] = value_fn
    return extra


def reference_extra_args(name: str, value: float = 1.0) -> dict[str, Any]:
    """:func:`extra_args` for the reference's ``step``: the NumPy ``value_and_grad`` of
    :func:`resting_loss` in place of ``value_fn``."""
    reference, extra = REFERENCES[name], {}
    if reference.needs_value or reference.needs_value_fn:
        extra["value"] = value
    if reference.needs_value_fn:
        extra["value_and_grad"] = lambda leaves: (
            float(sum(0.5 * np.sum(np.abs(p) ** 2) for p in leaves)),
            list(leaves),
        )
    return extra


def _numpy_loss(leaves, noise_leaves) -> tuple[float, list]:
    """:func:`loss_value` and :func:`gradient` on lists of NumPy leaves (real)."""
    pairs = list(zip(leaves, noise_leaves, strict=True))
    value = sum(0.5 * np.sum(p * p) + np.sum(n * p) for p, n in pairs)
    return float(value), [gradient(p, n) for p, n in pairs]


def run_reference(name: str, kwargs: Mapping[str, Any], params, noise_list, dtype=np.float64):
    """The reference's parameter trajectory (a list of leaf lists), in ``dtype``."""
    reference = REFERENCES[name]
    init, step = reference.tree_rule(**kwargs)
    leaves = [np.asarray(leaf, dtype) for leaf in jax.tree.leaves(params)]
    state = init(leaves)
    trajectory = []
    for t, noise in enumerate(noise_list, start=1):
        noise_leaves = [np.asarray(n, dtype) for n in jax.tree.leaves(noise)]
        extra = {}
        if reference.needs_value or reference.needs_value_fn:
            extra["value"] = float(loss_value(leaves, noise_leaves))
        if reference.needs_value_fn:
            extra["value_and_grad"] = functools.partial(_numpy_loss, noise_leaves=noise_leaves)
        grads = [gradient(p, n) for p, n in zip(leaves, noise_leaves, strict=True)]
        leaves, state = step(leaves, grads, state, t, **extra)
        trajectory.append(leaves)
    return trajectory


def make_step(
    optimizer: jopt.GradientTransformation, needs_value: bool = False, needs_value_fn: bool = False
):
    """``step(params, state, noise) -> (params, state)`` on the noisy quadratic.

    With ``needs_value`` the update gets ``value=`` the loss at ``params``; with
    ``needs_value_fn`` also ``value_fn=`` the loss as a function of the params (for
    this step's noise).
    """

    def step(params, state, noise):
        grads = jax.tree.map(gradient, params, noise)
        extra = {}
        if needs_value or needs_value_fn:
            extra["value"] = loss_value(params, noise)
        if needs_value_fn:
            extra["value_fn"] = functools.partial(loss_value, noise=noise)
        updates, state = optimizer.update(grads, state, params, **extra)
        return jopt.apply_updates(params, updates), state

    return step


def run_jopt(step, optimizer, params, noise_list):
    state = optimizer.init(params)
    trajectory = []
    for noise in noise_list:
        params, state = step(params, state, noise)
        trajectory.append(params)
    return trajectory


def assert_trajectories_close(actual, expected, rtol, atol=0.0):
    assert len(actual) == len(expected)
    for t, (params, leaves) in enumerate(zip(actual, expected, strict=True), start=1):
        for i, (a, e) in enumerate(zip(jax.tree.leaves(params), leaves, strict=True)):
            np.testing.assert_allclose(
                np.asarray(a, np.result_type(e)),
                e,
                rtol=rtol,
                atol=atol,
                err_msg=f"step {t}, leaf {i}",
            )


def run_side_by_side(transforms, params, steps: int, *, jit: bool = False, seed: int = 1):
    """Each transformation in closed loop on a noisy quadratic over ``params``.

    The gradient at step t is ``p − target + noiseₜ``, leaf by leaf, the same noise for
    every run; jopt's and optax's transformations alike.  Returns, per run, the list of
    (updates, params, state) after each step.
    """
    rng = np.random.default_rng(seed)
    target = jax.tree.map(lambda p: rng.normal(size=np.shape(p)), params)
    noise_list = [
        jax.tree.map(lambda p: 0.3 * rng.normal(size=np.shape(p)), params) for _ in range(steps)
    ]
    runs = []
    for tx in transforms:
        update = jax.jit(tx.update) if jit else tx.update
        p, state, history = jax.tree.map(jnp.asarray, params), tx.init(params), []
        for noise in noise_list:
            grads = jax.tree.map(lambda q, c, n: q - c + n, p, target, noise)
            updates, state = update(grads, state, p)
            p = jopt.apply_updates(p, updates)
            history.append((updates, p, state))
        runs.append(history)
    return runs


# --- bit-for-bit comparison ------------------------------------------------------------------


def bits(x) -> bytes:
    """The bytes of an array: equality is bit for bit (NaN payloads and −0.0 included)."""
    x = np.asarray(x)
    return x.dtype.str.encode() + str(x.shape).encode() + x.tobytes()


def assert_trees_bitwise_equal(actual, expected):
    assert jax.tree.structure(actual, is_leaf=is_none) == jax.tree.structure(
        expected, is_leaf=is_none
    )
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(actual, is_leaf=is_none)[0],
        jax.tree.leaves(expected, is_leaf=is_none),
        strict=True,
    ):
        if a is None or b is None:
            assert a is b, jax.tree_util.keystr(path)
        else:
            assert bits(a) == bits(b), jax.tree_util.keystr(path)


# --- checkpoints -----------------------------------------------------------------------------


def _checkpoint_optimizers() -> dict[str, Any]:
    """Every registry entry in its main configuration, and the cases that add state."""
    optimizers = {
        name: functools.partial(getattr(jopt, name), **ref.main) for name, ref in REFERENCES.items()
    }
    optimizers.update(
        {
            "adam-schedule": lambda: jopt.adam(lambda count: 1e-2 / (1.0 + 0.1 * count)),
            "adam-bf16-params": lambda: jopt.adam(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
            "skip-nonfinite-adam": lambda: jopt.skip_nonfinite(jopt.adam(1e-2), max_consecutive=3),
            "injected-adam": lambda: jopt.inject_hyperparams(jopt.adam)(
                learning_rate=lambda count: 1e-2 / (1.0 + 0.1 * count), b1=0.8
            ),
        }
    )
    return optimizers


CHECKPOINT_OPTIMIZERS = _checkpoint_optimizers()

# Data as NumPy, so that importing this module creates no JAX array.
_DATA = np.random.default_rng(1234)
CHECKPOINT_X = _DATA.normal(size=(8, 5, 4)).astype(np.float32)
CHECKPOINT_Y = _DATA.normal(size=(8, 5, 3)).astype(np.float32)


def checkpoint_params(name: str):
    """A small tanh layer, with integer, boolean and ``None`` leaves along for the ride."""
    rng = np.random.default_rng(7)
    dtype = jnp.bfloat16 if "bf16" in name else jnp.float32
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)) / 2, dtype),
        "b": jnp.zeros(3, dtype),
        "count": jnp.asarray(5, jnp.int32),
        "mask": jnp.asarray([True, False]),
        "none": None,
    }


def _tanh_loss(params, x, y):
    prediction = jnp.tanh(x @ params["w"] + params["b"])
    return jnp.mean((prediction - y) ** 2)


def checkpoint_step(name: str, optimizer):
    """The jitted training step; for skip_nonfinite, step 3 of every 17 sees NaNs."""
    poison = name.startswith("skip-nonfinite")
    reference = REFERENCES.get(name)
    needs_value_fn = reference is not None and reference.needs_value_fn
    needs_value = reference is not None and (reference.needs_value or needs_value_fn)

    @jax.jit
    def step(params, state, t):
        x, y = jnp.asarray(CHECKPOINT_X)[t % 8], jnp.asarray(CHECKPOINT_Y)[t % 8]
        if poison:
            x = x * jnp.where(t % 17 == 3, jnp.nan, 1.0)
        value, grads = jax.value_and_grad(_tanh_loss, allow_int=True)(params, x, y)
        extra = {"value": value} if needs_value else {}
        if needs_value_fn:
            extra["value_fn"] = functools.partial(_tanh_loss, x=x, y=y)
        updates, state = optimizer.update(grads, state, params, **extra)
        return jopt.apply_updates(params, updates), state

    return step


def train(step, params, state, start: int, steps: int):
    for t in range(start, start + steps):
        params, state = step(params, state, jnp.asarray(t, jnp.int32))
    return params, state


def save(path: Path, params, opt_state) -> None:
    """README: save."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, {"params": params, "opt_state": opt_state})


def restore(path: Path, optimizer, params):
    """README: restore against the abstract tree of fresh params and a fresh state."""
    import orbax.checkpoint as ocp

    target = jax.eval_shape(lambda: {"params": params, "opt_state": optimizer.init(params)})
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path, target)


def abstract_checkpoint(names) -> dict:
    """``{name: {"params", "opt_state"}}`` as shapes and dtypes, for orbax to restore."""
    targets = {}
    for name in names:
        optimizer, params = CHECKPOINT_OPTIMIZERS[name](), checkpoint_params(name)
        targets[name] = jax.eval_shape(
            lambda o=optimizer, p=params: {"params": p, "opt_state": o.init(p)}
        )
    return targets


def resume_all(directory: Path) -> None:
    """In a fresh process: restore every optimizer at step 50 and train to step 100.

    ``directory / "step50"`` is one orbax checkpoint of ``{name: {"params",
    "opt_state"}}``; each result is written to ``directory / name / "step100.msgpack"``.
    """
    import orbax.checkpoint as ocp
    from flax import serialization

    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(
            directory / "step50", abstract_checkpoint(CHECKPOINT_OPTIMIZERS)
        )
    for name, factory in CHECKPOINT_OPTIMIZERS.items():
        optimizer = factory()
        params, state = train(
            checkpoint_step(name, optimizer),
            restored[name]["params"],
            restored[name]["opt_state"],
            50,
            50,
        )
        blob = serialization.to_bytes({"params": params, "opt_state": state})
        (directory / name).mkdir(parents=True, exist_ok=True)
        (directory / name / "step100.msgpack").write_bytes(blob)
