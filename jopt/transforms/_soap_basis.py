"""SOAP's eigenbases: the per-matrix pieces, the three kinds of basis update, and the
update of one leaf on its owner device.

``axis_statistic``, ``initial_eigenbasis`` and ``refreshed_eigenbasis`` are plain
functions of one matrix each, and ``_leaf_step`` the whole update of one leaf, so that
a caller can place them where it likes: given a mesh,
[`jopt.scale_by_soap`][jopt.scale_by_soap] runs each preconditioned leaf's update once,
whole, on an owner device ([`jopt.sharding.owner_map`][jopt.sharding.owner_map]).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _numerics
from jopt.sharding._owners import owner_map

# Added to the statistic before the first eigendecomposition, as the authors' code
# does: it only matters for an all-zero statistic.
_EIGH_SHIFT = 1e-30


# --- one matrix at a time -------------------------------------------------------------


def axis_statistic(g: jax.Array, axis: int) -> jax.Array:
    """``S[a, b] = Σ g[…a…]·conj(g[…b…])``, summed over every axis but ``axis``: ``(d, d)``.

    For a matrix ``G``: ``G·Gᴴ`` for axis 0 and ``Gᵀ·Ḡ`` for axis 1; for a vector, the
    outer product ``g·gᴴ``.  Hermitian and positive semi-definite.
    """
    others = [i for i in range(g.ndim) if i != axis]
    return jnp.tensordot(g, jnp.conj(g), axes=(others, others))


def initial_eigenbasis(statistic: jax.Array) -> jax.Array:
    """The eigenvectors of a Hermitian ``statistic``, by decreasing eigenvalue (columns).

    Computed with ``eigh`` on ``statistic + 1e-30·I``.  Each column is defined up to a
    sign (a phase, for complex matrices); SOAP's trajectory does not depend on it.
    """
    d = statistic.shape[0]
    shifted = statistic + _EIGH_SHIFT * jnp.eye(d, dtype=statistic.dtype)
    _, vectors = jnp.linalg.eigh(shifted)
    return vectors[:, ::-1]


def refreshed_eigenbasis(statistic: jax.Array, basis: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One power iteration from ``basis`` towards the eigenvectors of ``statistic``.

    The columns of ``basis`` are put in the order of decreasing estimated eigenvalue
    ``λ̂ⱼ = qⱼᴴ·S·qⱼ``, multiplied by ``S`` and re-orthonormalized by a QR
    decomposition: ``Q' = qr(S·Q·P)``, with ``P`` that permutation.

    Returns:
      ``(Q', order)``: the new basis and the permutation as indices (the rotated
      second moment is permuted along the same axis).
    """
    power = statistic @ basis
    estimates = jnp.real(jnp.sum(jnp.conj(basis) * power, axis=0))
    order = jnp.argsort(estimates, descending=True, stable=True)
    q, _ = jnp.linalg.qr(jnp.take(power, order, axis=1))
    return q, order


def _rotate(x: jax.Array, bases: tuple, *, back: bool = False) -> jax.Array:
    """``x ×ᵢ Qᵢᴴ`` over every axis with a basis (``x ×ᵢ Qᵢ`` with ``back``)."""
    for axis, q in enumerate(bases):
        if q is None:
            continue
        if back:
            y = jnp.tensordot(x, q, axes=([axis], [1]))
        else:
            y = jnp.tensordot(x, jnp.conj(q), axes=([axis], [0]))
        x = jnp.moveaxis(y, -1, axis)
    return x


class _Hyper(NamedTuple):
    b1: Any
    b2: Any
    eps: Any


def _adam_in_basis(g, mu, nu, bases, t, first, hp: _Hyper):
    """Adam's moments on the rotated gradient and the bias-corrected step, rotated back.

    ``u = √(1 − β₂ᵗ)/(1 − β₁ᵗ) · (m / (√v + ε)) ×ᵢ Qᵢ`` with ``t`` the update count
    minus one; the first update (``first``) leaves the moments and returns 0.
    """
    rotated = _rotate(g, bases)
    new_mu = hp.b1 * mu + (1 - hp.b1) * rotated
    new_nu = hp.b2 * nu + (1 - hp.b2) * _numerics.abs_sq(rotated)
    new_mu, new_nu = jnp.where(first, mu, new_mu), jnp.where(first, nu, new_nu)
    denominator = jnp.where(first, 1, jnp.sqrt(new_nu) + hp.eps)
    correction = jnp.sqrt(1 - hp.b2**t) / (1 - hp.b1**t)
    u = correction * _rotate(new_mu / denominator, bases, back=True)
    return jnp.where(first, 0, u), new_mu, new_nu


def _lerp(old, new, beta):
    """``old + (1 − β)·(new − old)``: the moving average in the authors' form."""
    return old + (1 - beta) * (new - old)


# --- the basis at the three kinds of update ---------------------------------------------
# Each takes and returns a list with one (statistics, bases, mu, nu) per preconditioned
# leaf; statistics and bases are tuples over the leaf's axes, None where not preconditioned.


def _keep(leaves):
    return leaves


def _start(leaves):
    return [
        (stats, tuple(None if s is None else initial_eigenbasis(s) for s in stats), mu, nu)
        for stats, _, mu, nu in leaves
    ]


def _refresh(leaves):
    out = []
    for stats, bases, mu, nu in leaves:
        mu = _rotate(mu, bases, back=True)
        new = []
        for axis, (s, q) in enumerate(zip(stats, bases, strict=True)):
            if s is None:
                new.append(None)
                continue
            q, order = refreshed_eigenbasis(s, q)
            nu = jnp.take(nu, order, axis=axis)
            new.append(q)
        new = tuple(new)
        out.append((stats, new, _rotate(mu, new), nu))
    return out


_BRANCHES = (_keep, _start, _refresh)


def _which(count: jax.Array, frequency: int) -> jax.Array:
    """0: keep the basis; 1: first update, eigendecomposition; 2: power-iteration refresh."""
    t = count - 1
    refresh = (t > 0) & (t % frequency == 0)
    return jnp.where(count == 1, 1, jnp.where(refresh, 2, 0))


# --- each leaf on its owner device ------------------------------------------------------


def _leaf_step(item, count, *, hp: _Hyper, branch: int):
    """One preconditioned leaf's whole update: ``item = (g, mu, nu, stats, bases)``."""
    g, mu, nu, stats, bases = item
    t = jnp.maximum(count - 1, 1).astype(_numerics.real_dtype(g.dtype))
    u, mu, nu = _adam_in_basis(g, mu, nu, bases, t, count == 1, hp)
    statistics = tuple(
        None if s is None else _lerp(s, axis_statistic(g, axis), hp.b2)
        for axis, s in enumerate(stats)
    )
    ((stats, bases, mu, nu),) = _BRANCHES[branch]([(statistics, bases, mu, nu)])
    return u, mu, nu, stats, bases


def owned_steps(gs, mus, nus, stats, bases, count, hp, *, frequency, branch, mesh, axis):
    """SOAP's update of each leaf, ``(u, mu, nu, stats, bases)`` in the compute dtypes.

    A preconditioned leaf is moved whole to one device of ``axis`` with its moments,
    statistics and bases, updated there, and split again
    ([`owner_map`][jopt.sharding.owner_map]); the others are plain Adam, elementwise,
    where they lie.  ``branch`` ``None``: chosen by ``lax.switch`` on ``count``.
    """
    results, items = [None] * len(gs), []
    for i, g in enumerate(gs):
        compute = _numerics.compute_dtype(g.dtype)
        item = (
            _numerics.cast(g, compute),
            _numerics.cast(mus[i], compute),
            _numerics.cast(nus[i], _numerics.real_dtype(compute)),
            tuple(None if s is None else _numerics.cast(s, compute) for s in stats[i]),
            tuple(None if b is None else _numerics.cast(b, compute) for b in bases[i]),
        )
        if any(s is not None for s in stats[i]):
            items.append((i, item))
            continue
        g, mu, nu, no_stats, no_bases = item
        t = jnp.maximum(count - 1, 1).astype(_numerics.real_dtype(compute))
        results[i] = (*_adam_in_basis(g, mu, nu, no_bases, t, count == 1, hp), no_stats, no_bases)
    if items:

        def run(k):
            step = partial(_leaf_step, hp=hp, branch=k)
            return lambda operands: owner_map(step, operands, mesh, axis=axis, shared=count)

        operands = [item for _, item in items]
        if branch is None:
            found = jax.lax.switch(_which(count, frequency), [run(k) for k in range(3)], operands)
        else:
            found = run(branch)(operands)
        for (i, _), result in zip(items, found, strict=True):
            results[i] = result
    return results
