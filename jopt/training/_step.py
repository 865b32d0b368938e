"""The compiled training step, and the per-step runner :func:`~jopt.training.fit` drives.

One step is forward, cost, gradients by reverse-mode differentiation, update:
``J, g = value_and_grad(loss_fn)(θ, b)``, ``u, s = update(g, s, θ)``, ``θ ← θ + u``.
:func:`make_step` jits it; :class:`StepRunner` runs it once per call of
:func:`~jopt.training.fit`'s loop and times the compilation of each batch shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jopt._core import GradientTransformation, apply_updates
from jopt._validation import Transformation, check, checked

PyTree = Any
LossFn = Callable[[PyTree, PyTree], Any]


def check_optimizer(optimizer: Any, name: str = "optimizer") -> None:
    """A TypeError naming ``name`` unless ``optimizer`` has callable init and update."""
    Transformation()(name, optimizer)


def train_step(loss_fn, optimizer, has_aux, params, opt_state, batch):
    """One step of the training process: forward, cost, backprop, update."""
    # allow_int: integer leaves (counters, masks) get float0 gradients, which every
    # jopt transformation and apply_updates pass through untouched.
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux, allow_int=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = apply_updates(params, updates)
    if has_aux:
        loss, aux = value
        return params, opt_state, loss, aux
    return params, opt_state, value


def make_step(
    loss_fn: LossFn,
    optimizer: GradientTransformation,
    *,
    has_aux: bool = False,
    donate: bool = False,
) -> Callable[..., tuple]:
    """The jitted training step ``step(params, opt_state, batch)``.

    One call computes ``J = loss_fn(params, batch)`` and ``g = ∇θ J`` by reverse-mode
    differentiation, then ``u, opt_state = optimizer.update(g, opt_state, params)`` and
    ``θ ← θ + u`` (:func:`jopt.apply_updates`).

    Args:
        loss_fn: ``loss_fn(params, batch) -> J`` with ``J`` a scalar, or
            ``-> (J, aux)`` when `has_aux` is true.
        optimizer: any ``(init, update)`` pair, jopt's or optax's.
        has_aux: whether `loss_fn` also returns auxiliary data.
        donate: donate ``params`` and ``opt_state`` to the step, so XLA writes the new
            values into their buffers instead of keeping two copies.  The arrays
            passed in are then deleted by the call (``is_deleted()`` is true
            afterwards, also on CPU): keep only the returned ones.  Off by default, as
            in flax and optax, so that the caller's arrays stay valid;
            :func:`~jopt.training.fit` donates the copies it trains.

    Returns:
        ``step(params, opt_state, batch) -> (params, opt_state, loss)``, or
        ``(params, opt_state, loss, aux)`` with `has_aux`.  ``loss`` is ``J`` at the
        parameters *before* the update.  The step is traced and compiled once per
        distinct batch shape (and dtype); every later call with the same shapes
        reuses it.

    Raises:
        TypeError: a `loss_fn` that is not callable, an `optimizer` without callable
            ``init`` and ``update``, or flags that are not bools.
    """
    checked("loss_fn", loss_fn)
    check_optimizer(optimizer)
    has_aux, donate = check(has_aux=has_aux, donate=donate).values()

    def step(params, opt_state, batch):
        return train_step(loss_fn, optimizer, has_aux, params, opt_state, batch)

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def fresh_arrays(tree: PyTree) -> PyTree:
    """A copy of ``tree`` with every leaf a new, strongly typed device array.

    The copy protects the caller's arrays from donation (and gives every leaf its own
    buffer, since XLA refuses to donate one buffer twice).  Dropping weak types makes
    the step's outputs have exactly the types of its inputs, so the second step hits
    the compiled executable of the first instead of tracing again.
    """

    def copy(leaf):
        dtype = jnp.asarray(leaf).dtype
        return jnp.array(leaf, dtype=dtype, copy=True)

    return jax.tree.map(copy, tree)


def batch_size_of(batch: PyTree) -> int:
    """The number of examples in ``batch``: the leading dimension of its leaves."""
    return jax.tree.leaves(batch)[0].shape[0]


class StepRunner:
    """One donating compiled step per call, compiled ahead of its first use per shape.

    ``runner(params, opt_state, batch) -> (params, opt_state, loss)``.  The first batch
    of each size is compiled before it runs, so that ``compile_time`` holds the
    seconds spent tracing and compiling (once per batch shape) apart from the steps.
    """

    def __init__(self, loss_fn: LossFn, optimizer: GradientTransformation):
        self._step = make_step(loss_fn, optimizer, donate=True)
        self._compiled: set[int] = set()
        self.compile_time = 0.0

    def __call__(self, params: PyTree, opt_state: PyTree, batch: PyTree) -> tuple:
        size = batch_size_of(batch)
        if size not in self._compiled:
            # Compiled ahead of the call to be timed; the call reuses the executable.
            start = time.perf_counter()
            self._step.lower(params, opt_state, batch).compile()
            self.compile_time += time.perf_counter() - start
            self._compiled.add(size)
        return self._step(params, opt_state, batch)
