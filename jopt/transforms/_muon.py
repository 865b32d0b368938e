"""Muon's blocks: an averaged momentum, orthogonalized matrix by matrix.

Muon (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural networks")
replaces each weight matrix's update by the nearest semi-orthogonal matrix, computed
approximately by a Newton–Schulz iteration; Liu et al. (2025, "Muon is Scalable for
LLM Training") add weight decay and an update scale matched to AdamW's.  Two blocks:

* [`ema_momentum`][jopt.transforms.ema_momentum]: ``m ← μ·m + (1 − μ)·g``, with
  Nesterov's look-ahead;
* [`scale_by_newton_schulz`][jopt.transforms.scale_by_newton_schulz]: each leaf viewed
  as matrices (or a stack of them), orthogonalized by
  [`newton_schulz`][jopt.transforms.newton_schulz] and scaled for its shape.

[`newton_schulz`][jopt.transforms.newton_schulz] works on one matrix (or a batch of them) and knows
nothing of trees, so it can run wherever a whole matrix is gathered.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _align, _numerics
from jopt._block import Field, block
from jopt._core import GradientTransformation, init_empty_state
from jopt._validation import check, checked, is_concrete
from jopt.sharding import _leaves
from jopt.sharding._owners import owner_map
from jopt.wrappers._groups import _per_leaf

__all__ = [
    "EmaMomentumState",
    "ema_momentum",
    "muon_labels",
    "newton_schulz",
    "scale_by_newton_schulz",
]

NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
"""Jordan et al.'s quintic (a, b, c), chosen for a steep slope at 0: 5 steps bring the
singular values of a normalized matrix near 1 (about 0.7 to 1.2), not to 1."""


class EmaMomentumState(NamedTuple):
    """``mu``: the momentum buffer m (torch ``Muon``'s ``momentum_buffer``)."""

    mu: Any


def ema_momentum(
    momentum: float = 0.95, *, nesterov: bool = True, mu_dtype: Any = None
) -> GradientTransformation:
    """Momentum as an exponential moving average, Muon's (torch's ``lerp``).

    ``m ← μ·m + (1 − μ)·g``; the update is ``m``, or with ``nesterov`` the look-ahead
    ``(1 − μ)·g + μ·m``.  Unlike [`jopt.trace`][jopt.trace] (``m ← μ·m + g``), the buffer is an
    average, so its scale is the gradient's.  ``mu_dtype`` is the buffer's storage
    dtype (default: the parameter's).
    """
    check(momentum=momentum, nesterov=nesterov, mu_dtype=mu_dtype)

    def rule(g, s):
        mu = momentum * s.mu + (1 - momentum) * g
        u = (1 - momentum) * g + momentum * mu if nesterov else mu
        return u, s._replace(mu=mu)

    return block(EmaMomentumState, rule, mu=Field.zeros(mu_dtype))


# --- one matrix -----------------------------------------------------------------------


def _matmul(x, y, accumulate):
    # float32 and wider: full precision (no TF32 or bfloat16 passes on accelerators);
    # narrower inputs: products accumulated in float32, as torch's bfloat16 addmm.
    precision = jax.lax.Precision.HIGHEST if x.dtype == accumulate else None
    return jnp.matmul(x, y, precision=precision, preferred_element_type=accumulate)


def newton_schulz(
    x: jax.Array,
    *,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    ns_steps: int = 5,
    eps: float = 1e-7,
    ns_dtype: Any = None,
) -> jax.Array:
    """The orthogonal factor of each matrix ``x[..., :, :]``, by a Newton–Schulz iteration.

    For ``G = U·S·Vᵀ`` the target is ``U·Vᵀ``.  With ``X₀ = G / max(‖G‖_F, eps)`` (so
    every singular value is at most 1) and the matrices made wide (``X`` is
    transposed while it has more rows than columns, so ``X·Xᵀ`` is the smaller Gram
    matrix), each step is the odd polynomial

        ``A = X·Xᵀ``,  ``X ← a·X + (b·A + c·A²)·X``

    which maps each singular value σ to ``aσ + bσ³ + cσ⁵``.  Jordan et al.'s (a, b, c)
    (the default) bring them into about [0.7, 1.2] in 5 steps rather than to 1
    exactly; ``(1.5, -0.5, 0.0)`` is the classical cubic, which converges to ``U·Vᵀ``.
    Leading axes are a batch: each matrix is orthogonalized on its own.

    Args:
      x: ``(..., m, n)``, real.
      ns_coefficients: (a, b, c).
      ns_steps: the number of steps.
      eps: the smallest norm divided by (a zero matrix stays zero).
      ns_dtype: the dtype the iteration runs in; ``None`` is ``x``'s dtype promoted to
        at least float32.  In a narrower dtype (``bfloat16``, as torch's ``Muon``)
        products are accumulated in float32 and each of ``A``, ``b·A + c·A²`` and ``X``
        is rounded once.

    Returns:
      ``(..., m, n)`` in the iteration's dtype.
    """
    a, b, c = ns_coefficients
    dtype = _numerics.compute_dtype(x.dtype) if ns_dtype is None else jnp.dtype(ns_dtype)
    accumulate = _numerics.compute_dtype(dtype)
    tall = x.shape[-2] > x.shape[-1]
    y = jnp.swapaxes(x, -1, -2) if tall else x
    y = y.astype(dtype).astype(accumulate)
    # The norm and its floor are rounded to the iteration's dtype, as torch's are.
    norm = jnp.sqrt(jnp.sum(y * y, axis=(-2, -1), keepdims=True)).astype(dtype)
    floor = jnp.maximum(norm, jnp.asarray(eps).astype(dtype)).astype(accumulate)
    y = (y / floor).astype(dtype)
    for _ in range(ns_steps):
        gram = _matmul(y, jnp.swapaxes(y, -1, -2), accumulate).astype(dtype)
        poly = (b * gram.astype(accumulate) + c * _matmul(gram, gram, accumulate)).astype(dtype)
        y = (a * y.astype(accumulate) + _matmul(poly, y, accumulate)).astype(dtype)
    return jnp.swapaxes(y, -1, -2) if tall else y


# --- leaves as matrices -----------------------------------------------------------------


class MatrixView(NamedTuple):
    """How one leaf is read as matrices: ``leaf.reshape(stack + (rows, cols))``.

    ``layout="in_out"`` (flax, jopt): the last axis is the output, the axes between
    the stack axes and it are flattened into the input (an HWIO kernel is an
    ``(H·W·I, O)`` matrix).  ``"out_in"`` (torch, equinox): the first axis after the
    stack axes is the output, the rest the input (OIHW is ``(O, I·H·W)``).
    """

    stack: tuple[int, ...]
    rows: int
    cols: int
    fan_in: int
    fan_out: int

    @staticmethod
    def of(shape: tuple[int, ...], stack_axes: int, layout: str) -> MatrixView | None:
        """The view of a leaf of ``shape``, or ``None`` when fewer than two axes remain."""
        stack, rest = tuple(shape[:stack_axes]), tuple(shape[stack_axes:])
        if len(rest) < 2:
            return None
        if layout == "in_out":
            fan_in, fan_out = math.prod(rest[:-1]), rest[-1]
            return MatrixView(stack, fan_in, fan_out, fan_in, fan_out)
        fan_out, fan_in = rest[0], math.prod(rest[1:])
        return MatrixView(stack, fan_out, fan_in, fan_in, fan_out)

    def scale(self, adjust_lr_fn: str | None) -> float:
        """The learning-rate factor for the shape.

        ``"original"`` (and ``None``, as torch): ``√max(1, fan_out / fan_in)`` (Jordan
        et al.); ``"match_rms_adamw"``: ``0.2·√max(fan_in, fan_out)``, which gives the
        update AdamW's typical RMS of about 0.2 (Liu et al., 2025).
        """
        if self.fan_in == 0 or self.fan_out == 0:
            return 1.0  # an empty matrix: nothing to scale
        if adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(self.fan_in, self.fan_out))
        return math.sqrt(max(1.0, self.fan_out / self.fan_in))


def _whole(g: jax.Array) -> tuple[jax.Array, Any]:
    """``g`` unsplit, and the sharding it was split by where its type carries one.

    Under explicit sharding a product over a split axis has no implied layout, so
    each leaf is gathered, orthogonalized whole, and split back as it came.  (Under
    automatic sharding the compiler places the products itself.)
    """
    sharding = getattr(jax.typeof(g), "sharding", None)
    spec = getattr(sharding, "spec", None)
    if spec is None or all(axis is None for axis in spec):
        return g, None
    return jax.sharding.reshard(g, sharding.update(spec=jax.sharding.PartitionSpec())), sharding


def _orthogonalized(g, view: MatrixView, adjust_lr_fn, coefficients, ns_steps, eps, ns_dtype):
    compute = _numerics.compute_dtype(g.dtype)
    g, sharding = _whole(g)
    matrices = g.reshape(view.stack + (view.rows, view.cols))
    o = newton_schulz(
        matrices.astype(compute),
        ns_coefficients=coefficients,
        ns_steps=ns_steps,
        eps=eps,
        ns_dtype=ns_dtype,
    )
    u = (o.astype(compute) * view.scale(adjust_lr_fn)).reshape(g.shape).astype(g.dtype)
    return u if sharding is None else jax.sharding.reshard(u, sharding)


# Traced once per distinct leaf shape and settings under jit (as jopt.block's rules).
_traced_orthogonalized = jax.jit(_orthogonalized, static_argnums=(1, 2, 3, 4, 6))


def _owned(leaves: list, views: list, settings: tuple, mesh, axis: str) -> list:
    """Every matrix of every leaf orthogonalized once, on its owner device of ``axis``."""
    adjust_lr_fn, coefficients, ns_steps, eps, ns_dtype = settings
    items, spans = [], []
    for g, view in zip(leaves, views, strict=True):
        if view is None:
            spans.append(None)
            continue
        compute = _numerics.compute_dtype(g.dtype)
        matrices = jnp.asarray(g).astype(compute).reshape((-1, view.rows, view.cols))
        spans.append((len(items), len(items) + matrices.shape[0]))
        items.extend(matrices[i] for i in range(matrices.shape[0]))

    def orthogonalize(x):
        return newton_schulz(
            x, ns_coefficients=coefficients, ns_steps=ns_steps, eps=eps, ns_dtype=ns_dtype
        )

    results = owner_map(orthogonalize, items, mesh, axis=axis) if items else []
    out = []
    for g, view, span in zip(leaves, views, spans, strict=True):
        if view is None:
            out.append(g)
            continue
        compute = _numerics.compute_dtype(g.dtype)
        if span[0] == span[1]:  # a stack of no matrices
            out.append(jnp.zeros_like(g))
            continue
        o = jnp.stack(results[span[0] : span[1]]).astype(compute) * view.scale(adjust_lr_fn)
        out.append(o.reshape(jnp.shape(g)).astype(g.dtype))
    return out


def stack_axes_per_leaf(stack_axes: Any, tree: Any) -> list[Any]:
    """The number of stack axes of each leaf of ``tree`` (``None`` for ``None`` leaves).

    ``stack_axes`` is an integer, a tree of integers (the structure of ``tree`` or of a
    prefix of it), or a function ``tree -> such a tree``; each value is checked, and
    an error names its path.
    """
    if isinstance(stack_axes, int):
        return [stack_axes] * len(_align.paths(tree))
    values = _per_leaf(stack_axes, tree, "stack_axes")
    for path, value, leaf in zip(
        _align.paths(tree), values, jax.tree.leaves(tree, is_leaf=_numerics.is_none), strict=True
    ):
        if leaf is not None:
            checked(f"stack_axes{path}", value)
    return values


def _matrix_view(path: str, g: Any, stack_axes: int, layout: str) -> MatrixView:
    """The leaf at ``updates{path}`` as matrices, or a ``ValueError`` naming it."""
    view = MatrixView.of(np.shape(g), stack_axes, layout)
    if view is None or jnp.iscomplexobj(g):
        what = (
            "complex"
            if view is not None
            else f"{max(np.ndim(g) - stack_axes, 0)}-d after {stack_axes} stack axes"
        )
        raise ValueError(
            f"scale_by_newton_schulz: updates{path} of shape {np.shape(g)} is {what}; "
            f"it orthogonalizes real matrices only"
        )
    return view


def scale_by_newton_schulz(
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    *,
    ns_steps: int = 5,
    eps: float = 1e-7,
    adjust_lr_fn: str | None = None,
    stack_axes: Any = 0,
    layout: str = "in_out",
    ns_dtype: Any = None,
    mesh: Any = None,
    axis: str = "data",
) -> GradientTransformation:
    """Orthogonalize each leaf's update as matrices, and scale it for the shape.

    ``u = s · NS(G)``: ``G`` is the leaf read as matrices (see ``stack_axes`` and ``layout``),
    ``NS`` is [`newton_schulz`][jopt.transforms.newton_schulz] and ``s`` is the factor of
    ``adjust_lr_fn`` for the matrix's (fan_in, fan_out).  Muon's direction (Jordan et al., 2024)
    when it follows [`ema_momentum`][jopt.transforms.ema_momentum].  No state.

    Args:
      ns_coefficients: (a, b, c) of the iteration.
      ns_steps: its number of steps.
      eps: the smallest norm it divides by.
      adjust_lr_fn: ``None`` or ``"original"``: ``s = √max(1, fan_out / fan_in)``;
        ``"match_rms_adamw"``: ``s = 0.2·√max(fan_in, fan_out)`` (Liu et al., 2025).
      stack_axes: how many leading axes of a leaf are a stack of independent matrices
        (layers stacked for a ``scan``), orthogonalized one by one, never flattened:
        an integer for every leaf, a tree of them (the params' structure or a
        prefix), or a function ``params -> tree``.  Default 0.
      layout: ``"in_out"`` (flax's ``(in, out)`` kernels, HWIO convolutions: the last
        axis is the output, the others flatten into the input) or ``"out_in"``
        (torch's ``(out, in)``, OIHW: the first axis after the stack is the output).
        The two give the same update, transposed.
      ns_dtype: the iteration's dtype; ``None``: the update's, at least float32.
      mesh: a ``jax.sharding.Mesh`` the updates are split on (FSDP), or ``None``.
        Given, each matrix is orthogonalized once, whole, on one device of ``axis``
        (its owner), and its result split over ``axis`` again
        ([`jopt.sharding.owner_map`][jopt.sharding.owner_map]): two all-to-alls per
        shape instead of the all-gathers the compiler places around every product
        of the iteration on split matrices.  The values are the same.
      axis: the mesh axis whose devices own the matrices (default ``"data"``).

    Returns:
      A stateless transformation.  A leaf with fewer than two axes after its stack
      axes, or a complex one, raises a ``ValueError`` naming its path.
    """
    ns_coefficients = tuple(
        float(c) if is_concrete(c) else c for c in checked("ns_coefficients", ns_coefficients)
    )
    # Traced coefficients cannot key the per-shape cache: the leaves are traced inline.
    cacheable = all(isinstance(c, float) for c in ns_coefficients)
    ns_steps = checked("ns_steps", ns_steps)
    check(eps=eps, adjust_lr_fn=adjust_lr_fn, stack_axes=stack_axes, layout=layout)
    ns_dtype = checked("ns_dtype", ns_dtype)
    ns_dtype = None if ns_dtype is None else ns_dtype.name
    check(axis=axis)
    check("scale_by_newton_schulz", mesh=mesh)
    if mesh is not None:
        _leaves.check_axis(axis, mesh, "scale_by_newton_schulz")

    def update(updates, state, params=None, **extra_args):
        del extra_args
        leaves, treedef = jax.tree.flatten(updates, is_leaf=_numerics.is_none)
        paths = _align.paths(updates)
        if params is not None:
            _align.check_matches(updates, "params", params)
        axes = stack_axes_per_leaf(stack_axes, params if params is not None else updates)
        if mesh is not None:
            settings = (adjust_lr_fn, ns_coefficients, ns_steps, eps, ns_dtype)
            views = [
                _matrix_view(path, g, k, layout) if _numerics.is_trainable(g) else None
                for path, g, k in zip(paths, leaves, axes, strict=True)
            ]
            out = _owned(leaves, views, settings, mesh, axis)
            return treedef.unflatten(out), state
        out = []
        for path, g, k in zip(paths, leaves, axes, strict=True):
            if not _numerics.is_trainable(g):
                out.append(g)
                continue
            view = _matrix_view(path, g, k, layout)
            traced = isinstance(g, jax.core.Tracer) or isinstance(eps, jax.core.Tracer)
            fn = _traced_orthogonalized if traced and cacheable else _orthogonalized
            out.append(fn(g, view, adjust_lr_fn, ns_coefficients, ns_steps, eps, ns_dtype))
        return treedef.unflatten(out), state

    return GradientTransformation(init_empty_state, update)


def muon_labels(params: Any, *, labels: Any = None, stack_axes: Any = 0) -> Any:
    """The group of each leaf under [`jopt.muon`][jopt.muon]: ``"muon"``, ``"adam"``, or ``None``.

    Without ``labels``, a real leaf with at least two axes after its stack axes is
    ``"muon"``; every other trainable leaf (vectors, scalars, complex leaves) is
    ``"adam"``; so are integer and boolean leaves, which AdamW passes through without
    state; ``None`` leaves stay ``None``.
    ``labels`` (a tree of ``"muon"``/``"adam"``, or a function of the params returning
    one) decides instead, for the trainable leaves.

    Raises:
      ValueError: naming the path of a leaf labelled ``"muon"`` that is complex or has
        fewer than two axes after its stack axes, or of a label that is neither.
    """
    paths = _align.paths(params)
    leaves = jax.tree.leaves(params, is_leaf=_numerics.is_none)
    given = [None] * len(leaves) if labels is None else _per_leaf(labels, params, "labels")
    axes = stack_axes_per_leaf(stack_axes, params)
    found = []
    for path, leaf, label, k in zip(paths, leaves, given, axes, strict=True):
        if not _numerics.is_trainable(leaf):
            found.append(None if leaf is None else "adam")
            continue
        matrix = MatrixView.of(np.shape(leaf), k, "in_out") is not None
        complex_leaf = bool(jnp.issubdtype(_numerics.dtype_of(leaf), jnp.complexfloating))
        if label is None:
            label = "muon" if matrix and not complex_leaf else "adam"
        checked(f"labels{path}", label, owner="muon")
        if label == "muon" and (complex_leaf or not matrix):
            what = "complex" if complex_leaf else f"of shape {np.shape(leaf)} with {k} stack axes"
            raise ValueError(
                f"labels: params{path} is labelled 'muon' but is {what}: Muon orthogonalizes "
                f"real matrices (two or more axes after the stack axes); label it 'adam'"
            )
        found.append(label)
    return jax.tree.unflatten(jax.tree.structure(params, is_leaf=_numerics.is_none), found)
