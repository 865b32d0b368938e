"""``jopt.minimize``: a whole deterministic solve as one compiled ``lax.while_loop``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jopt import _core, _numerics
from jopt._validation import checked
from jopt.transforms._lbfgs import LbfgsState, scale_by_lbfgs_step

__all__ = ["MinimizeResult", "minimize"]


class MinimizeResult(NamedTuple):
    """What [`minimize`][jopt.minimize] returns.

    Attributes:
      params: the last iterate, with the structure and dtypes of ``x0``.
      value: ``fun(params)``.
      grad_norm: ``‖∇fun(params)‖₂`` over the trainable leaves.
      steps: int32, the optimizer updates that moved the parameters.
      evaluations: int32, evaluations of ``fun`` and its gradient, the line
        search's included.
      converged: ``grad_norm ≤ tol``.
    """

    params: Any
    value: jax.Array
    grad_norm: jax.Array
    steps: jax.Array
    evaluations: jax.Array
    converged: jax.Array


class _Carry(NamedTuple):
    params: Any
    state: Any
    value: jax.Array
    grad: Any
    steps: jax.Array
    evaluations: jax.Array
    moving: jax.Array


@functools.cache
def _default_optimizer() -> _core.GradientTransformation:
    # jopt.lbfgs() with torch's absolute tolerances left out: tol alone ends the solve.
    return scale_by_lbfgs_step(tolerance_grad=0.0, tolerance_change=0.0, curvature_test="relative")


def _norm(tree: Any) -> jax.Array:
    squares = [
        jnp.sum(jnp.square(x.astype(_numerics.compute_dtype(x.dtype))))
        for x in jax.tree.leaves(tree)
        if _numerics.is_trainable(x)
    ]
    return jnp.sqrt(sum(squares))


def _changed(old: Any, new: Any) -> jax.Array:
    """Whether any trainable entry differs: a step that moves nothing repeats itself."""
    flags = [
        jnp.any(a != b)
        for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new), strict=True)
        if _numerics.is_trainable(a)
    ]
    return jnp.any(jnp.stack(flags))


def _value_and_grad(fun: Callable, params: Any):
    """``fun`` and its gradient, ``None`` for the leaves that are not trained."""
    value, grad = jax.value_and_grad(fun, allow_int=True)(params)
    grad = jax.tree.map(lambda g, p: g if _numerics.is_trainable(p) else None, grad, params)
    return value, grad


def _solve(fun, optimizer, x0, max_steps, tol) -> MinimizeResult:
    out = jax.eval_shape(fun, x0)
    if getattr(out, "shape", None) != ():
        raise ValueError(f"fun must return a scalar, got shape {getattr(out, 'shape', out)}")
    value, grad = _value_and_grad(fun, x0)
    state = optimizer.init(x0)
    # The L-BFGS line search leaves f and ∇f at the new point in the state.
    reuse = isinstance(state, LbfgsState) and state.value is not None

    def body(c: _Carry) -> _Carry:
        updates, state = optimizer.update(
            c.grad, c.state, c.params, value=c.value, grad=c.grad, value_fn=fun
        )
        params = _core.apply_updates(c.params, updates)
        if reuse:
            value, grad = state.value, state.grad
            evaluations = c.evaluations + state.evaluations - c.state.evaluations
        else:
            value, grad = _value_and_grad(fun, params)
            evaluations = c.evaluations + 1
        moving = _changed(c.params, params)
        return _Carry(
            params,
            state,
            value.astype(c.value.dtype),
            grad,
            c.steps + moving.astype(jnp.int32),
            evaluations,
            moving,
        )

    def cond(c: _Carry) -> jax.Array:
        return c.moving & (c.steps < max_steps) & (_norm(c.grad) > tol)

    one = jnp.ones([], jnp.int32)
    init = _Carry(x0, state, value, grad, 0 * one, one, jnp.asarray(True))
    c = lax.while_loop(cond, body, init)
    grad_norm = _norm(c.grad)
    return MinimizeResult(c.params, c.value, grad_norm, c.steps, c.evaluations, grad_norm <= tol)


_solve_jit = jax.jit(_solve, static_argnums=(0, 1))


def _check_x0(x0: Any) -> Any:
    try:
        x0 = jax.tree.map(jnp.asarray, x0)
    except TypeError as error:
        raise TypeError(
            f"x0 must be a pytree of arrays, got {type(x0).__name__}: {error}"
        ) from None
    leaves = jax.tree.leaves(x0)
    if not any(_numerics.is_trainable(x) for x in leaves):
        dtypes = sorted({str(x.dtype) for x in leaves}) or ["no leaves"]
        raise TypeError(f"x0 must hold at least one floating-point array, got {dtypes}")
    if any(jnp.iscomplexobj(x) for x in leaves):
        raise TypeError("x0: complex parameters are not supported")
    return x0


def minimize(
    fun: Callable[[Any], jax.Array],
    x0: Any,
    *,
    optimizer: _core.GradientTransformation | None = None,
    max_steps: int = 1000,
    tol: float = 1e-5,
) -> MinimizeResult:
    """Minimize ``fun`` from ``x0``: the whole solve is one jitted ``lax.while_loop``.

    Each step calls ``optimizer.update(g, state, params, value=f, grad=g,
    value_fn=fun)`` and applies the update.  With L-BFGS the line search's last
    evaluation supplies ``f`` and ``∇f`` at the new point, so a step costs only the
    line search's evaluations (usually one); other optimizers cost one evaluation per
    step.  The loop stops when ``‖∇f‖₂ ≤ tol`` (``converged``), after ``max_steps``
    steps, or when a step leaves the parameters where they were (a zero update:
    L-BFGS's own tolerances, or a line search that found no decrease; a step that
    moves nothing would repeat itself).

    The solver is compiled once per ``(fun, optimizer)`` and shapes and dtypes of
    ``x0``; ``max_steps`` and ``tol`` are run-time values.  Pass the same ``fun`` object
    (not a new ``lambda``) and build a non-default optimizer once, outside the loop
    that calls ``minimize``, so that calls reuse the compiled solver.

    scipy's ``minimize(method="L-BFGS-B")`` stops on ``max|∇f| ≤ gtol`` (1e-5) or a
    relative decrease below ``ftol``; here ``tol`` bounds the 2-norm.

    Args:
      fun: ``params -> scalar loss``, differentiable with ``jax.grad``.
      x0: the starting point, a pytree of floating-point arrays (integer leaves are
        carried along, not optimized).
      optimizer: a gradient transformation.  ``None`` is L-BFGS as [`jopt.lbfgs`][jopt.lbfgs]
        (100 pairs, strong-Wolfe line search) without torch's absolute thresholds,
        ``scale_by_lbfgs_step(tolerance_grad=0.0, tolerance_change=0.0,
        curvature_test="relative")``, built once: torch's would end the solve before
        ``tol`` on badly scaled problems such as Rosenbrock's, and stop storing pairs
        once steps are small.
      max_steps: the most updates, ≥ 1 (default 1000).
      tol: the gradient 2-norm that counts as converged, ≥ 0 (default 1e-5).

    Returns:
      A [`MinimizeResult`][jopt.MinimizeResult] (``params``, ``value``, ``grad_norm``, ``steps``,
      ``evaluations``, ``converged``).

    Raises:
      TypeError: ``fun`` is not callable, ``x0`` holds no floating-point array, or
        ``optimizer`` is not a gradient transformation.
      ValueError: ``max_steps`` < 1, ``tol`` < 0, or ``fun`` does not return a scalar.
    """
    checked("fun", fun)
    max_steps = checked("max_steps", max_steps)
    tol = checked("tol", tol)
    if optimizer is None:
        optimizer = _default_optimizer()
    optimizer = _core._as_transformation(optimizer, "optimizer")
    x0 = _check_x0(x0)
    return _solve_jit(fun, optimizer, x0, max_steps, tol)
