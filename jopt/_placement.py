"""Where new state lives: per-parameter state follows its parameter, scalars replicate.

``init`` called eagerly on sharded parameters returns state laid out like them, so a
jitted step sees the same shardings before and after its first call and compiles once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jopt._numerics import dtype_of, is_none, is_trainable, real_dtype

PyTree = Any


def leaf_dtype(param: Any, dtype=None, *, real: bool = False):
    """The storage dtype of a state leaf for ``param``.

    ``dtype`` (default: the parameter's) sets the precision; a complex parameter keeps a
    complex state unless ``real`` (accumulators of squared magnitudes are real).
    """
    result = dtype if dtype is not None else dtype_of(param)
    if dtype is not None and jnp.iscomplexobj(param):
        # A real storage dtype for a complex parameter sets its precision only: storing
        # a complex moment as real would drop its imaginary part.
        result = jnp.promote_types(result, jnp.complex64)
    result = real_dtype(result) if real else jnp.dtype(result)
    # float64 parameters (NumPy's default) get float32 state when 64-bit types are off,
    # as jnp.asarray would give them, instead of a truncation warning.
    return jax.dtypes.canonicalize_dtype(result)


def full_like(param: Any, value: Any = 0.0, dtype=None, *, real: bool = False) -> jax.Array:
    """An array shaped like ``param`` filled with ``value``, on ``param``'s devices.

    ``jnp.full_like`` keeps the parameter's sharding (or device), so ``init`` on sharded
    params gives state sharded alike.
    """
    return jnp.full_like(param, value, dtype=leaf_dtype(param, dtype, real=real))


def zeros_like(params: PyTree, dtype=None, *, real: bool = False) -> PyTree:
    """Zeros shaped like each trainable leaf of ``params``, ``None`` for every other leaf."""
    return jax.tree.map(
        lambda p: full_like(p, 0, dtype, real=real) if is_trainable(p) else None,
        params,
        is_leaf=is_none,
    )


def scalar_like(params: PyTree, value: Any, dtype) -> jax.Array:
    """A replicated state array for ``params``: 0-d (a step count, an injected
    hyperparameter), or of ``value``'s shape (state that belongs to no one parameter,
    such as L-BFGS's vectors over all of them).

    Scalars are replicated, never split.  When ``params`` holds concrete arrays laid
    out over a multi-device mesh (a ``jax.sharding.NamedSharding``), the scalar
    is placed replicated on that mesh, which is where a jitted update returns it: the
    state's shardings are then the same before and after the first step, and the step
    compiles once.  Otherwise (tracers, NumPy or single-device arrays) it is a plain
    ``jnp.asarray(value, dtype)``; so is a traced ``value`` (``init`` under ``jit``).
    """
    if isinstance(value, jax.core.Tracer):
        return jnp.asarray(value, dtype)
    scalar = np.asarray(value, dtype)
    for leaf in jax.tree.leaves(params):
        sharding = getattr(leaf, "sharding", None)
        if (
            isinstance(leaf, jax.Array)
            and not isinstance(leaf, jax.core.Tracer)
            and isinstance(sharding, jax.sharding.NamedSharding)
            and len(sharding.device_set) > 1
        ):
            replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            # make_array_from_callback also works when the mesh spans several hosts.
            return jax.make_array_from_callback(
                scalar.shape, replicated, lambda index: np.asarray(scalar[index])
            )
    return jnp.asarray(scalar)


def fits_param(shape, param_shape) -> bool:
    """Whether a state leaf of ``shape`` belongs to a parameter of ``param_shape``: the
    same shape, or the same with axes reduced to size 1 (a statistic kept with
    ``keepdims=True``, such as Adafactor's row and column factors)."""
    shape, param_shape = tuple(shape), tuple(param_shape)
    return len(shape) == len(param_shape) and all(
        n in (m, 1) for n, m in zip(shape, param_shape, strict=True)
    )


def reduced_sharding(sharding, shape, param_shape):
    """The layout of a state leaf of ``shape`` reduced from a parameter laid out by
    ``sharding``: the same ``NamedSharding``, unsharded on the axes reduced to 1."""
    if tuple(shape) == tuple(param_shape) or not isinstance(sharding, jax.sharding.NamedSharding):
        return sharding
    spec = list(sharding.spec) + [None] * (len(shape) - len(sharding.spec))
    kept = [e if n == m else None for e, n, m in zip(spec, shape, param_shape, strict=True)]
    while kept and kept[-1] is None:  # the form XLA gives back: P("data"), not P("data", None)
        kept.pop()
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*kept))
