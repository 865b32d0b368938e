"""SOAP (Vyas et al., 2025): Adam in the eigenbasis of Shampoo's preconditioner.

For a parameter of shape ``(d₁, …, d_k)`` and each of its axes ``i`` that is
preconditioned, SOAP keeps Shampoo's statistic ``Lᵢ`` (a ``dᵢ × dᵢ`` Hermitian matrix,
the moving average over updates of ``G`` contracted with ``Ḡ`` over every other axis;
for a matrix, ``L = E[G·Gᴴ]`` and ``R = E[Gᵀ·Ḡ]``) and an orthonormal basis ``Qᵢ`` of
its eigenvectors.  Adam then runs on the rotated gradient ``G' = G ×ᵢ Qᵢᴴ`` (every
axis rotated by its basis), and its step is rotated back.

The per-matrix pieces, ``axis_statistic``, ``initial_eigenbasis`` and
``refreshed_eigenbasis`` (in ``_soap_basis``, importable from this module, not exported), are plain
functions of one matrix each, so that a caller can place each one where it likes (an
owner device for a sharded matrix).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _align, _numerics, _placement
from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt._validation import check, checked
from jopt.sharding import _leaves
from jopt.transforms._soap_basis import (  # noqa: F401  (the per-matrix pieces, importable here)
    _BRANCHES,
    _adam_in_basis,
    _Hyper,
    _lerp,
    _which,
    axis_statistic,
    initial_eigenbasis,
    owned_steps,
    refreshed_eigenbasis,
)

__all__ = [
    "ScaleBySoapState",
    "SoapDescentState",
    "scale_by_soap",
    "soap_descent",
]

# --- one leaf ---------------------------------------------------------------------------


def _preconditioned(shape: tuple[int, ...], max_precond_dim: int, precondition_1d: bool):
    """For each axis, whether it gets a preconditioner.

    Axes longer than ``max_precond_dim`` do not (identity); neither does a 1-D leaf
    without ``precondition_1d``, a 0-d leaf, or a leaf with no entries.
    """
    if not shape or 0 in shape or (len(shape) == 1 and not precondition_1d):
        return (False,) * len(shape)
    return tuple(d <= max_precond_dim for d in shape)


class ScaleBySoapState(NamedTuple):
    """SOAP's state (Vyas et al., 2025); the authors' names in parentheses.

    Attributes:
      count: the number of updates so far (int32, saturating); the first one only
        gathers the statistics, so Adam's step number is ``count − 1`` (``step``).
      mu: the first moment, in the eigenbasis (``exp_avg``).
      nu: the second moment, in the eigenbasis, real (``exp_avg_sq``).
      stats: per parameter, a tuple over its axes of the ``(dᵢ, dᵢ)`` statistic
        ``Lᵢ``, ``None`` for an axis without a preconditioner (``GG``).
      bases: per parameter, the same tuple of eigenbases ``Qᵢ`` (``Q``).
    """

    count: jax.Array
    mu: Any
    nu: Any
    stats: Any
    bases: Any


def _matrix_like(param: Any, d: int, dtype) -> jax.Array:
    """A ``(d, d)`` zero matrix, replicated on the mesh ``param`` is laid out on."""
    zeros = np.zeros((d, d), dtype)
    sharding = getattr(param, "sharding", None)
    if (
        isinstance(param, jax.Array)
        and not isinstance(param, jax.core.Tracer)
        and isinstance(sharding, jax.sharding.NamedSharding)
        and len(sharding.device_set) > 1
    ):
        replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        return jax.make_array_from_callback((d, d), replicated, lambda index: zeros[index])
    return jnp.asarray(zeros)


def _matrices(param: Any, axes: tuple[bool, ...]) -> tuple:
    dtype = _placement.leaf_dtype(param, _numerics.compute_dtype(_numerics.dtype_of(param)))
    shape = np.shape(param)
    return tuple(_matrix_like(param, shape[i], dtype) if on else None for i, on in enumerate(axes))


def scale_by_soap(
    b1: float = 0.95,
    *,
    b2: float = 0.95,
    eps: float = 1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    precondition_1d: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    mesh: Any = None,
    axis: str = "data",
) -> GradientTransformation:
    """SOAP's direction (Vyas et al., 2025): Adam in the eigenbasis of Shampoo's preconditioner.

    Per parameter ``G`` with preconditioned axes ``i`` (see the module docstring), at
    update ``k`` (``t = k − 1``):

    ```text
    G' = G ×ᵢ Qᵢᴴ                                   rotate (old basis)
    m ← β₁·m + (1 − β₁)·G',   v ← β₂·v + (1 − β₂)·|G'|²
    u = √(1 − β₂ᵗ)/(1 − β₁ᵗ) · (m / (√v + ε)) ×ᵢ Qᵢ     rotate back
    Lᵢ ← Lᵢ + (1 − β₂)·(Σ_{axes ≠ i} G ⊗ Ḡ − Lᵢ)
    every `precondition_frequency` steps (t mod f = 0):
        Qᵢ ← qr(Lᵢ·Qᵢ·Pᵢ), Pᵢ sorting qⱼᴴ·Lᵢ·qⱼ decreasingly; v permuted by Pᵢ;
        m re-expressed in the new basis: m ← (m ×ᵢ Qᵢ_old) ×ᵢ Qᵢᴴ
    ```

    The first update (``k = 1``) only sets ``Lᵢ = (1 − β₂)·Σ G ⊗ Ḡ`` and
    ``Qᵢ = eigh(Lᵢ)`` (eigenvalues decreasing) and returns 0, so that no step uses a
    basis built from its own gradient.  The refresh and the eigendecomposition run
    under one ``lax.switch``: an update that does neither costs none of their work,
    and nothing is retraced.  Axes longer than ``max_precond_dim`` are not rotated
    (identity); 1-D parameters are plain Adam (with this bias correction and first
    update) unless ``precondition_1d``.  Complex parameters use Hermitian statistics
    and unitary bases.

    Args:
      b1: β₁, the first moment's decay (default 0.95).
      b2: β₂, the second moment's and the statistics' decay (default 0.95).
      eps: ε, added to √v (default 1e-8).
      precondition_frequency: f, steps between basis refreshes (default 10).
      max_precond_dim: the longest axis that gets a preconditioner (default 10000).
      precondition_1d: precondition 1-D parameters too (default False).
      mu_dtype: storage dtype of ``m`` (default: the parameter's).
      nu_dtype: storage dtype of ``v`` (default: the parameter's).  The statistics and
        bases are kept in the compute dtype (at least float32).
      mesh: the ``jax.sharding.Mesh`` the params and state are split on (for
        instance by [`jopt.sharding.fsdp_shardings`][jopt.sharding.fsdp_shardings]), or
        ``None``.  Given, each preconditioned parameter's whole update (rotations,
        moments, statistics, eigendecomposition or refresh) runs once, on one device
        of ``axis``, with its state moved there and split again
        ([`jopt.sharding.owner_map`][jopt.sharding.owner_map]); the statistics and
        bases keep the layout the state is given, instead of being replicated.
        Without it, every device gathers the matrices and eigendecomposes every
        statistic.  Same values.
      axis: the mesh axis whose devices own the matrices (default ``"data"``).

    Returns:
      The transformation; its state is a [`ScaleBySoapState`][jopt.ScaleBySoapState].
    """
    check(b1=b1, b2=b2, eps=eps, precondition_1d=precondition_1d)
    frequency = checked("precondition_frequency", precondition_frequency)
    max_dim = checked("max_precond_dim", max_precond_dim)
    mu_dtype, nu_dtype = checked("mu_dtype", mu_dtype), checked("nu_dtype", nu_dtype)
    hp = _Hyper(b1, b2, eps)
    check(axis=axis)
    check("scale_by_soap", mesh=mesh)
    if mesh is not None:
        _leaves.check_axis(axis, mesh, "scale_by_soap")
    owner = None if mesh is None else (mesh, axis)

    def init(params):
        def matrices(p):
            if not _numerics.is_trainable(p):
                return None
            return _matrices(p, _preconditioned(np.shape(p), max_dim, precondition_1d))

        return ScaleBySoapState(
            count=_placement.scalar_like(params, 0, jnp.int32),
            mu=_placement.zeros_like(params, mu_dtype),
            nu=_placement.zeros_like(params, nu_dtype, real=True),
            # Two calls: distinct buffers, so that the state can be donated.
            stats=jax.tree.map(matrices, params, is_leaf=_numerics.is_none),
            bases=jax.tree.map(matrices, params, is_leaf=_numerics.is_none),
        )

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        if not isinstance(state, ScaleBySoapState):
            raise ValueError(
                "scale_by_soap: state must be the ScaleBySoapState that init returned, "
                f"got {type(state).__name__}"
            )
        return _update(updates, state, frequency, hp, owner)

    return GradientTransformation(init, update)


def _columns(updates, state):
    """Leaves, treedef, and per leaf (mu, nu, stats tuple, bases tuple), aligned."""
    leaves, treedef, (mu, nu) = _align.align(
        updates, [("state.mu", state.mu), ("state.nu", state.nu)]
    )
    columns = []
    for name in ("stats", "bases"):
        try:
            columns.append(treedef.flatten_up_to(getattr(state, name)))
        except (ValueError, TypeError):
            _align.check_matches(updates, f"state.{name}", getattr(state, name))
            raise
    return leaves, treedef, mu, nu, *columns


def _update(updates, state: ScaleBySoapState, frequency: int, hp: _Hyper, owner):
    leaves, treedef, mus, nus, stats, bases = _columns(updates, state)
    trained = [i for i, g in enumerate(leaves) if _numerics.is_trainable(g) and mus[i] is not None]
    # Python and NumPy scalars become arrays (of the default dtypes, as jnp makes them).
    gs = [jnp.asarray(leaves[i]) for i in trained]
    columns = [gs, *([column[i] for i in trained] for column in (mus, nus, stats, bases))]
    count = _numerics.safe_increment(state.count)
    # Called eagerly, the branch is known and only its operations run.
    branch = None if isinstance(count, jax.core.Tracer) else int(_which(count, frequency))
    if owner is None:
        results = _step_leaves(*columns, count, hp, frequency=frequency, branch=branch)
    else:
        results = _step_owned(*columns, count, hp, frequency=frequency, branch=branch, owner=owner)
    outputs, new = list(leaves), [list(c) for c in (mus, nus, stats, bases)]
    for j, i in enumerate(trained):
        outputs[i] = results[0][j]
        for column, result in zip(new, results[1:], strict=True):
            column[i] = result[j]
    new_state = ScaleBySoapState(count, *(treedef.unflatten(c) for c in new))
    return treedef.unflatten(outputs), new_state


def _step_owned(gs, mus, nus, stats, bases, count, hp: _Hyper, *, frequency, branch, owner):
    """``_step_leaves`` with each preconditioned leaf updated whole, on its owner device."""
    mesh, axis = owner
    found = owned_steps(
        gs,
        mus,
        nus,
        stats,
        bases,
        count,
        hp,
        frequency=frequency,
        branch=branch,
        mesh=mesh,
        axis=axis,
    )
    columns = ([], [], [], [], [])
    for (u, mu, nu, s, b), g, *olds in zip(found, gs, mus, nus, stats, bases, strict=True):
        columns[0].append(_store(u, g))
        columns[1].append(_store(mu, olds[0]))
        columns[2].append(_store(nu, olds[1]))
        for column, new, old in ((columns[3], s, olds[2]), (columns[4], b, olds[3])):
            column.append(tuple(_store_matrix(x, o, True) for x, o in zip(new, old, strict=True)))
    return columns


def _step_leaves(gs, mus, nus, stats, bases, count, hp: _Hyper, *, frequency: int, branch):
    """The update of the trained leaves (lists); ``branch`` None: chosen by ``lax.switch``."""
    first = count == 1
    outputs, new_mu, new_nu = [], list(mus), list(nus)
    new_stats, new_bases = list(stats), list(bases)
    pending = []  # (index, statistics, bases, mu, nu) of the preconditioned leaves
    for i, g in enumerate(gs):
        compute = _numerics.compute_dtype(g.dtype)
        real = _numerics.real_dtype(compute)
        g = _gathered(_numerics.cast(g, compute))
        view = tuple(None if b is None else _numerics.cast(b, compute) for b in bases[i])
        t = jnp.maximum(count - 1, 1).astype(real)
        mu = _gathered(_numerics.cast(mus[i], compute))
        nu = _gathered(_numerics.cast(nus[i], real))
        u, mu, nu = _adam_in_basis(g, mu, nu, view, t, first, hp)
        outputs.append(_store(u, gs[i]))
        statistics = tuple(
            None if s is None else _lerp(_numerics.cast(s, compute), axis_statistic(g, axis), hp.b2)
            for axis, s in enumerate(stats[i])
        )
        if all(s is None for s in statistics):
            new_mu[i], new_nu[i] = _store(mu, mus[i]), _store(nu, nus[i])
        else:
            pending.append((i, statistics, view, mu, nu))
    if pending:
        operands = [p[1:] for p in pending]
        if branch is None:
            results = jax.lax.switch(_which(count, frequency), _BRANCHES, operands)
        else:
            results = _BRANCHES[branch](operands)
        for (i, *_), (s, b, mu, nu) in zip(pending, results, strict=True):
            new_stats[i] = tuple(_store_matrix(x, old) for x, old in zip(s, stats[i], strict=True))
            new_bases[i] = tuple(_store_matrix(x, old) for x, old in zip(b, bases[i], strict=True))
            new_mu[i], new_nu[i] = _store(mu, mus[i]), _store(nu, nus[i])
    return outputs, new_mu, new_nu, new_stats, new_bases


# --- placement on a mesh --------------------------------------------------------------------
# On an explicitly sharded mesh a leaf is gathered whole before its matrices touch it,
# and its results are laid out again as their inputs were.  The matrices stay
# replicated on the mesh (where init put them), also when jit chooses the layouts.


def _mesh_and_spec(x):
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty:
        return None, None
    return mesh, sharding.spec


def _explicit(mesh) -> bool:
    return any(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)


def _gathered(x):
    mesh, spec = _mesh_and_spec(x)
    if mesh is None or not _explicit(mesh) or all(e is None for e in spec):
        return x
    return jax.sharding.reshard(x, jax.sharding.PartitionSpec())


def _store(x, old):
    """``x`` in ``old``'s dtype and, on an explicit mesh, ``old``'s layout."""
    if old is None:
        return None
    x = _numerics.cast(x, old.dtype)
    mesh, spec = _mesh_and_spec(old)
    if mesh is None or not _explicit(mesh):
        return x
    return jax.sharding.reshard(x, spec)


def _store_matrix(x, old, keep: bool = False):
    """``x`` in ``old``'s dtype, replicated on ``old``'s mesh (``keep``: laid out as ``old``)."""
    if old is None:
        return None
    x = _numerics.cast(x, old.dtype)
    mesh, spec = _mesh_and_spec(old)
    if mesh is None:
        return x
    if keep:
        return jax.sharding.reshard(x, spec) if _explicit(mesh) else x
    if _explicit(mesh):
        return jax.sharding.reshard(x, jax.sharding.PartitionSpec())
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.lax.with_sharding_constraint(x, replicated)


# --- the step ------------------------------------------------------------------------------


class SoapDescentState(NamedTuple):
    """``count``: the number of updates so far (int32, saturating)."""

    count: jax.Array


def soap_descent(
    learning_rate: ScalarOrSchedule = 3e-3, *, weight_decay: ScalarOrSchedule = 0.01
) -> GradientTransformation:
    """SOAP's step from a direction ``d``, with the authors' decoupled weight decay.

    ``θ ← (1 − η·λ)·(θ − η·d)``: the decay multiplies the parameters after the step,
    so the update is ``u = −η·d − η·λ·(θ − η·d)``.  The first update returns 0 (SOAP's
    first update only gathers statistics, and does not decay either).  ``η`` and
    ``λ`` may be schedules, evaluated at the number of earlier updates.  Needs params.

    Args:
      learning_rate: η ≥ 0 or a schedule (default 3e-3).
      weight_decay: λ ≥ 0 or a schedule (default 0.01).

    Returns:
      The transformation; its state is a [`SoapDescentState`][jopt.transforms.SoapDescentState].
    """
    check(learning_rate=learning_rate, weight_decay=weight_decay)

    def init(params):
        return SoapDescentState(_placement.scalar_like(params, 0, jnp.int32))

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("soap_descent needs params: call update(updates, state, params)")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        wd = weight_decay(state.count) if callable(weight_decay) else weight_decay
        first = state.count == 0

        def step(d, p):
            d, p = jnp.asarray(d), jnp.asarray(p)
            compute = _numerics.compute_dtype(d.dtype)
            d, p = _numerics.cast(d, compute), _numerics.cast(p, compute)
            u = -lr * d - lr * wd * (p - lr * d)
            return _numerics.cast(jnp.where(first, 0, u), compute)

        leaves, treedef, (column,) = _align.align(updates, [("params", params)])
        outputs = [
            _numerics.cast(step(g, p), _numerics.dtype_of(g))
            if _numerics.is_trainable(g) and _numerics.is_trainable(p)
            else g
            for g, p in zip(leaves, column, strict=True)
        ]
        return treedef.unflatten(outputs), SoapDescentState(_numerics.safe_increment(state.count))

    return GradientTransformation(init, update)
