"""The compiled training step, and the per-step runner of [`fit`][jopt.training.fit].

One step is forward, cost, gradients by reverse-mode differentiation, update:
``J, g = value_and_grad(loss_fn)(θ, b)``, ``u, s = update(g, s, θ)``, ``θ ← θ + u``.
[`make_step`][jopt.training.make_step] jits it; ``StepRunner`` runs it once per call of
[`fit`][jopt.training.fit]'s loop, with batches cut on the host.

Every update is also given the extra arguments optax's convention names,
``value=J``, ``grad=g`` and ``value_fn=θ ↦ loss_fn(θ, b)``: an optimizer that needs
the loss (``reduce_on_plateau``) or a line search (``lbfgs``) gets them, and every
other one ignores them at no cost (an unused ``value_fn`` adds nothing to the
compiled program).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jopt import _core
from jopt._core import GradientTransformation, apply_updates
from jopt._validation import Transformation, check, checked
from jopt.training import _cache

PyTree = Any
LossFn = Callable[[PyTree, PyTree], Any]


def check_optimizer(optimizer: Any, name: str = "optimizer") -> None:
    """A TypeError naming ``name`` unless ``optimizer`` has callable init and update."""
    Transformation()(name, optimizer)


def with_extra_args(optimizer: GradientTransformation) -> GradientTransformation:
    """``optimizer`` with an update that accepts (and may ignore) extra arguments."""
    return _core._as_transformation(optimizer, "optimizer")


def train_step(loss_fn, optimizer, has_aux, params, opt_state, batch):
    """One step of the training process: forward, cost, backprop, update.

    ``optimizer`` must accept extra arguments (see ``with_extra_args``).
    """
    # allow_int: integer leaves (counters, masks) get float0 gradients, which every
    # jopt transformation and apply_updates pass through untouched.
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux, allow_int=True)(params, batch)
    loss = value[0] if has_aux else value

    def value_fn(trial_params):
        result = loss_fn(trial_params, batch)
        return result[0] if has_aux else result

    updates, opt_state = optimizer.update(
        grads, opt_state, params, value=loss, grad=grads, value_fn=value_fn
    )
    params = apply_updates(params, updates)
    if has_aux:
        return params, opt_state, loss, value[1]
    return params, opt_state, loss


def make_step(
    loss_fn: LossFn,
    optimizer: GradientTransformation,
    *,
    has_aux: bool = False,
    donate: bool = False,
) -> Callable[..., tuple]:
    """The jitted training step ``step(params, opt_state, batch)``.

    One call computes ``J = loss_fn(params, batch)`` and ``g = ∇θ J`` by reverse-mode
    differentiation, then ``u, opt_state = optimizer.update(g, opt_state, params, value=J, grad=g,
    value_fn=θ ↦ J(θ, batch))`` and ``θ ← θ + u`` ([`jopt.apply_updates`][jopt.apply_updates]).  The
    extra arguments serve optimizers that need the loss or a line search; the others ignore them.

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
            [`fit`][jopt.training.fit] donates the copies it trains.

    Returns:
        ``step(params, opt_state, batch) -> (params, opt_state, loss)``, or ``(params, opt_state,
        loss, aux)`` with `has_aux`.  ``loss`` is ``J`` at the parameters *before* the update.  The
        step is traced and compiled once per distinct batch shape (and dtype); every later call with
        the same shapes reuses it, and so does the step of a later
        [`make_step`][jopt.training.make_step] for the same `loss_fn` and an optimizer built the
        same way.

    Raises:
        TypeError: a `loss_fn` that is not callable, an `optimizer` without callable
            ``init`` and ``update``, or flags that are not bools.
    """
    checked("loss_fn", loss_fn)
    check_optimizer(optimizer)
    has_aux, donate = check(has_aux=has_aux, donate=donate).values()
    return _jitted_step(loss_fn, optimizer, has_aux, donate).jitted


def _jitted_step(loss_fn, optimizer, has_aux: bool, donate: bool) -> _cache.Program:
    def make():
        extra = with_extra_args(optimizer)

        def step(params, opt_state, batch):
            return train_step(loss_fn, extra, has_aux, params, opt_state, batch)

        return jax.jit(step, donate_argnums=(0, 1) if donate else ())

    return _cache.program(make, "step", loss_fn, optimizer, has_aux, donate)


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
    """One donating compiled step per batch, the batches cut on the host.

    ``runner.start_epoch(batches)`` takes the epoch's batches; then each
    ``runner(params, opt_state) -> (params, opt_state, losses, count, last_loss)``
    runs the next one (``count`` 1).  Each batch shape is compiled ahead of its first
    use, so that ``compile_time`` holds the seconds spent compiling apart from the
    steps; a later fit with the same shapes and recipe compiles nothing.
    """

    def __init__(self, loss_fn: LossFn, optimizer: GradientTransformation):
        self._program = _jitted_step(loss_fn, optimizer, False, True)
        self._executables: dict[int, Any] = {}
        self._batches: Any = iter(())
        self.compile_time = 0.0

    def start_epoch(self, epoch_batches) -> int | None:
        """Take the epoch's batches; the number of calls is not known ahead."""
        self._batches = iter(epoch_batches)
        return None

    def __call__(self, params: PyTree, opt_state: PyTree):
        """The next step, or ``None`` when the epoch's batches are done."""
        batch = next(self._batches, None)
        if batch is None:
            return None
        size = batch_size_of(batch)
        executable = self._executables.get(size)
        if executable is None:
            signature = _cache.signature(params, opt_state, batch)
            executable, seconds = self._program.executable(signature, params, opt_state, batch)
            self.compile_time += seconds
            self._executables[size] = executable
        params, opt_state, loss = executable(params, opt_state, batch)
        return params, opt_state, loss, 1, loss
