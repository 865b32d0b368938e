"""Adafactor: second moments factored into row and column statistics
(Shazeer & Stern, 2018), in the form of ``torch.optim.Adafactor``.

optax's ``scale_by_factored_rms`` is another algorithm (its own decay schedule, ε
placement and which axes it factors), so this block does not share its name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jopt import _align, _numerics, _placement
from jopt._block import Field, block
from jopt._core import GradientTransformation
from jopt._validation import check, checked

__all__ = ["ScaleByAdafactorState", "scale_by_adafactor"]


class ScaleByAdafactorState(NamedTuple):
    """Adafactor's state; for each parameter either the two factors or ``nu``.

    ``count``: t (torch ``step``).  For a parameter of shape ``(…, n, m)`` (2 dims or
    more): ``nu_row`` of shape ``(…, n, 1)``, the mean of g² over the last axis (torch
    ``row_var``), and ``nu_col`` of shape ``(…, 1, m)``, over the second-to-last
    (torch ``col_var``), both averaged over time; ``nu`` is ``None`` there.  For a
    vector or a scalar: ``nu``, the average of g² itself (torch ``variance``), and
    ``None`` in the two factors.  So an n×m matrix keeps n + m numbers.
    """

    count: jax.Array
    nu_row: Any
    nu_col: Any
    nu: Any


def _zeros(p, shape):
    """Zeros of ``shape`` for ``p``, laid out like it on the axes they keep."""
    if jnp.iscomplexobj(p):
        raise TypeError("scale_by_adafactor: complex parameters are not supported (as in torch)")
    dtype = _placement.leaf_dtype(p)
    if tuple(shape) == jnp.shape(p):
        return _placement.full_like(p, 0, dtype)
    if isinstance(p, jax.core.Tracer):  # under jit: the layout follows p, the sum folds away
        axes = tuple(i for i, (n, m) in enumerate(zip(shape, jnp.shape(p), strict=True)) if n != m)
        return jnp.sum(jnp.zeros_like(p, dtype), axis=axes, keepdims=True)
    sharding = getattr(p, "sharding", None)
    zeros = jnp.zeros(shape, dtype)
    if isinstance(sharding, jax.sharding.NamedSharding):
        return jax.device_put(zeros, _placement.reduced_sharding(sharding, shape, jnp.shape(p)))
    return zeros


# The shape of each field for a parameter of a given shape (None: no such field).
_SHAPES = {
    "nu_row": lambda shape: (*shape[:-1], 1) if len(shape) >= 2 else None,
    "nu_col": lambda shape: (*shape[:-2], 1, shape[-1]) if len(shape) >= 2 else None,
    "nu": lambda shape: shape if len(shape) < 2 else None,
}


def _field(name):
    def init(p):
        shape = _SHAPES[name](jnp.shape(p))
        return None if shape is None else _zeros(p, shape)

    return Field.custom(init)


def _check_shapes(updates, state) -> None:
    """A ``ValueError`` naming the path where a factor does not fit its update's shape
    (the block checks the tree structure; these fields are not shaped like params)."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(updates, is_leaf=_numerics.is_none)
    try:
        columns = {name: treedef.flatten_up_to(getattr(state, name)) for name in _SHAPES}
    except (ValueError, TypeError):
        return  # a structure error, which the block reports by path
    for i, (path, g) in enumerate(with_paths):
        fields = {name: column[i] for name, column in columns.items()}
        if not _numerics.is_trainable(g) or all(x is None for x in fields.values()):
            continue
        for name, x in fields.items():
            expected = _SHAPES[name](jnp.shape(g))
            if (x is None) != (expected is None) or (x is not None and jnp.shape(x) != expected):
                found = None if x is None else jnp.shape(x)
                raise ValueError(
                    f"updates{_align.path_str(path)}: shape {jnp.shape(g)} needs state.{name} "
                    f"of shape {expected}, got {found}"
                )


def _mean(x, axis=None):
    """The mean, 0 over an empty axis (a 0-size leaf keeps a finite state)."""
    count = x.size if axis is None else x.shape[axis]
    return jnp.sum(x, axis=axis, keepdims=axis is not None) / max(count, 1)


def _rms(x):
    """``√mean(x²)`` over the whole leaf; 0, with a finite gradient, for x = 0."""
    total = _mean(x * x)
    positive = total > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, total, 1)), 0)


def scale_by_adafactor(
    beta2_decay: float = -0.8,
    *,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
) -> GradientTransformation:
    """Adafactor's update before its relative step size (Shazeer & Stern, 2018).

    With ``w = t^τ`` (τ = ``beta2_decay``; ``1 − w`` is the paper's β̂₂ₜ) and
    ``(ε₁, ε₂) = eps``, for a parameter θ of shape ``(…, n, m)``:

    ```text
    R ← R + w·(mean(g², last axis) − R)                        (…, n, 1)
    C ← C + w·(mean(g², second-to-last axis) − C)              (…, 1, m)
    v̂ = R·C / max(mean(R, over n), ε₁)                         (…, n, m)
    ```

    leading axes batched (one factorization per leading index); for a vector or a
    scalar ``v̂ ← v̂ + w·(g² − v̂)`` unfactored.  Then:

    ```text
    û = g / √max(v̂, ε₁²),   u = max(ε₂, RMS(θ)) · û / max(1, RMS(û) / d)
    ```

    where RMS is the root mean square over the whole leaf.  ``u`` times the relative
    step size ``ρₜ = min(η, 1/√t)`` is torch's step (see [`jopt.adafactor`][jopt.adafactor]).
    Where the estimate is 0 (with ε₁ = 0, only where g = 0) ``û = 0``, where torch
    gives 0/0; means over an empty axis are 0.
    ``ε₁ = None`` is the machine epsilon of the dtype the rule computes in (the
    parameter's for float32 and float64; float32's for 16-bit parameters).  Complex
    parameters are refused.

    Args:
      beta2_decay: τ ≤ 0 (torch's default −0.8).
      eps: ``(ε₁, ε₂)``: ε₁ ≥ 0 or ``None``, the floor of the second moment's
        estimate; ε₂ ≥ 0, the floor of the parameter scale.
      d: the clipping threshold, ≥ 1.

    Returns:
      The transformation; its state is a
      [`ScaleByAdafactorState`][jopt.transforms.ScaleByAdafactorState].  It needs params.
    """
    check(beta2_decay=beta2_decay, d=d)
    eps1, eps2 = checked("eps", eps, owner="scale_by_adafactor")

    def rule(g, s, p):
        w = s.count**beta2_decay
        floor = jnp.finfo(g.dtype).eps if eps1 is None else eps1
        square = g * g
        if s.nu is None:
            row = s.nu_row + w * (_mean(square, -1) - s.nu_row)
            col = s.nu_col + w * (_mean(square, -2) - s.nu_col)
            norm = jnp.maximum(_mean(row, -2), floor)
            estimate, s = row * col / norm, s._replace(nu_row=row, nu_col=col)
        else:
            estimate = s.nu + w * (square - s.nu)
            s = s._replace(nu=estimate)
        # The estimate is 0 only where g is 0 (with ε₁ = 0): the update is 0 there.
        estimate = jnp.maximum(estimate, floor * floor)
        positive = estimate > 0
        scaled = jnp.where(positive, g * jax.lax.rsqrt(jnp.where(positive, estimate, 1)), 0)
        clipped = scaled / jnp.maximum(1, _rms(scaled) / d)
        return jnp.maximum(eps2, _rms(p)) * clipped, s

    inner = block(
        ScaleByAdafactorState,
        rule,
        needs_params=True,
        **{name: _field(name) for name in _SHAPES},
    )

    def update(updates, state, params=None, **extra_args):
        if isinstance(state, ScaleByAdafactorState):
            _check_shapes(updates, state)
        return inner.update(updates, state, params, **extra_args)

    return GradientTransformation(inner.init, update)
