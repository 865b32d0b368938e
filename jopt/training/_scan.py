"""Several steps per compiled call: the epoch's batches gathered on the device.

[`fit`][jopt.training.fit] with ``steps_per_call=k`` keeps the dataset on the
device and runs ``k`` steps in one compiled call, a ``lax.scan`` whose body gathers
its batch from the dataset by the epoch's permutation.  The host sees one call per
``k`` steps instead of one per step, which on a small model is most of a step's
time.

The batch order is the per-step loop's exactly: epoch ``e`` visits
``jax.random.permutation(fold_in(key, e), N)`` (or ``0 … N−1`` unshuffled) in
consecutive batches of ``n``.  A call never crosses the end of an epoch, so the
evaluation after each epoch sees the same parameters as in the per-step loop; when
``k`` does not divide the epoch's steps, the epoch's last call skips its surplus
steps (``lax.cond``: nothing is computed for them).

**The ragged last batch** (``N mod n = r ≠ 0``) is a step of its own shape inside
the same program: the step that reaches the end of the epoch takes the last ``r``
entries of the permutation, a batch of ``r`` examples, exactly as the per-step
loop's last batch.  Both shapes are traced into the one program, which is compiled
once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jopt._core import GradientTransformation
from jopt.training import _cache
from jopt.training._step import LossFn, PyTree, train_step, with_extra_args


@dataclasses.dataclass(frozen=True)
class Plan:
    """The static shape of one pass over the data.

    Attributes:
        examples: ``N``.
        batch: ``n``, the batch size (``N`` for full batches).
        steps_per_epoch: ``⌈N/n⌉``.
        ragged: ``N mod n``, the size of the last batch when it is smaller (else 0).
        steps_per_call: ``k``, at most ``steps_per_epoch``.
        shuffle: whether each epoch draws a new permutation.
        full_batch: every step takes the whole dataset as it is (no gather).
    """

    examples: int
    batch: int
    steps_per_epoch: int
    ragged: int
    steps_per_call: int
    shuffle: bool
    full_batch: bool

    @classmethod
    def make(cls, examples: int, batch_size: int | None, steps_per_call, shuffle: bool) -> Plan:
        batch = examples if batch_size is None else batch_size
        steps = -(-examples // batch)
        k = steps if steps_per_call == "epoch" else min(steps_per_call, steps)
        return cls(
            examples=examples,
            batch=batch,
            steps_per_epoch=steps,
            ragged=examples % batch,
            steps_per_call=k,
            shuffle=shuffle,
            full_batch=batch_size is None,
        )

    def calls_per_epoch(self) -> int:
        return -(-self.steps_per_epoch // self.steps_per_call)

    def steps_in_call(self, first: int) -> int:
        return min(self.steps_per_call, self.steps_per_epoch - first)


def epoch_order(plan: Plan, key: jax.Array | None, epoch: jax.Array) -> jax.Array:
    """The order in which epoch ``epoch`` visits the examples: shape ``(N,)`` int32."""
    if not plan.shuffle:
        return jnp.arange(plan.examples, dtype=jnp.int32)
    order = jax.random.permutation(jax.random.fold_in(key, epoch), plan.examples)
    return order.astype(jnp.int32)


def orders(plan: Plan, key: jax.Array | None, epochs: range) -> np.ndarray:
    """The orders of epochs ``epochs`` for ``key``: shape ``(len(epochs), N)`` int32,
    on the host (read back one by one: no program to compile for the stacking)."""
    if not plan.shuffle:
        return np.broadcast_to(
            np.arange(plan.examples, dtype=np.int32), (len(epochs), plan.examples)
        )
    drawn = [np.asarray(order_of(plan, key, epoch)) for epoch in epochs]
    return np.stack(drawn) if drawn else np.zeros((0, plan.examples), np.int32)


def order_of(plan: Plan, key: jax.Array, epoch: int) -> jax.Array:
    """The order of epoch ``epoch`` (shuffled plans): shape ``(N,)`` int32.

    Drawn by one small program, compiled once per ``N`` and shared by every training
    program: drawing random bits is slow to compile on some backends, and the orders
    do not depend on the model.
    """
    program = _cache.program(
        lambda: jax.jit(lambda key, epoch: epoch_order(plan, key, epoch)), "order", plan.examples
    )
    args = (key, np.int32(epoch))
    executable, _ = program.executable(_cache.signature(*args), *args)
    return executable(*args)


def gather(data: PyTree, index: jax.Array) -> PyTree:
    """The rows ``index`` of every leaf of ``data``."""
    return jax.tree.map(lambda leaf: jnp.take(leaf, index, axis=0), data)


def batch_at(plan: Plan, data: PyTree, order: jax.Array, step: jax.Array) -> PyTree:
    """The full-size batch of step ``step`` of an epoch."""
    if plan.full_batch:
        return data
    index = lax.dynamic_slice_in_dim(order, step * plan.batch, plan.batch)
    return gather(data, index)


def ragged_batch(plan: Plan, data: PyTree, order: jax.Array) -> PyTree:
    """The epoch's last batch: its last ``N mod n`` examples."""
    return gather(data, order[plan.examples - plan.ragged :])


def scan_steps(step_fn, plan: Plan, carry, data, order, first, length: int):
    """``length`` steps from step ``first`` of an epoch: ``(carry, losses)``.

    ``step_fn(carry, batch) -> (carry, loss)``.  Steps past the end of the epoch are
    skipped (their loss is NaN); the ragged last batch gets its own branch.
    """
    full = lambda carry, j: step_fn(carry, batch_at(plan, data, order, j))
    ragged = lambda carry, j: step_fn(carry, ragged_batch(plan, data, order))
    last = plan.steps_per_epoch - 1
    skips = plan.steps_per_epoch % plan.steps_per_call != 0
    if not skips and isinstance(first, int) and first == 0 and length == plan.steps_per_epoch:
        # A whole epoch: full batches, then the ragged one, without branches.
        regular = length - (1 if plan.ragged else 0)
        carry, losses = lax.scan(full, carry, jnp.arange(regular))
        if plan.ragged:
            carry, loss = ragged(carry, last)
            losses = jnp.concatenate([losses, loss[None]])
        return carry, losses
    branches = [full]
    if plan.ragged:
        branches.append(ragged)
    if skips:
        out = jax.eval_shape(full, carry, jnp.asarray(0))

        def skip(carry, j):
            return carry, jnp.full(out[1].shape, jnp.nan, out[1].dtype)

        branches.append(skip)

    def body(carry, j):
        index = jnp.asarray(0)
        if plan.ragged:
            index = jnp.where(j == last, 1, index)
        if skips:
            index = jnp.where(j > last, len(branches) - 1, index)
        return lax.switch(index, branches, carry, j)

    return lax.scan(body, carry, first + jnp.arange(length))


def call_program(loss_fn: LossFn, optimizer: GradientTransformation, plan: Plan) -> _cache.Program:
    """The compiled call of ``ScanRunner``, kept by recipe (see ``._cache``).

    ``call(params, opt_state, data, order, first) -> (params, opt_state, losses,
    last_loss)``: ``k`` steps from step ``first`` of an epoch whose order is
    ``order``.
    """

    def make():
        extra = with_extra_args(optimizer)

        def step_fn(carry, batch):
            params, opt_state, loss = train_step(loss_fn, extra, False, *carry, batch)
            return (params, opt_state), loss

        def call(params, opt_state, data, order, first):
            k = plan.steps_per_call
            start = 0 if k == plan.steps_per_epoch else first
            (params, opt_state), losses = scan_steps(
                step_fn, plan, (params, opt_state), data, order, start, k
            )
            count = jnp.minimum(plan.steps_per_epoch - first, k)
            return params, opt_state, losses, losses[count - 1]

        return jax.jit(call, donate_argnums=(0, 1))

    return _cache.program(make, "scan", loss_fn, optimizer, plan)


class ScanRunner:
    """``k`` steps per compiled call on a dataset kept on the device.

    ``runner.start_epoch(epoch)`` returns the number of calls of the epoch; each
    ``runner(params, opt_state) -> (params, opt_state, losses, count, last_loss)`` runs
    the next one, ``losses`` of shape ``(k,)`` of which the first ``count`` are the
    steps taken.  The program is compiled ahead of its first call (``compile_time``).
    """

    def __init__(self, loss_fn: LossFn, optimizer: GradientTransformation, plan: Plan, data, key):
        self.plan, self.data = plan, jax.tree.map(jnp.asarray, data)
        self.key = key if plan.shuffle else None
        self._program = call_program(loss_fn, optimizer, plan)
        self._executable = None
        self._order = None if plan.shuffle else jnp.arange(plan.examples, dtype=jnp.int32)
        self._firsts: dict[int, jax.Array] = {}
        self._first = 0
        self.compile_time = 0.0

    def start_epoch(self, epoch: int) -> int:
        if self.plan.shuffle:
            self._order = order_of(self.plan, self.key, epoch)
        self._first = 0
        return self.plan.calls_per_epoch()

    def __call__(self, params: PyTree, opt_state: PyTree) -> tuple[Any, ...]:
        plan, first = self.plan, self._first
        if first >= plan.steps_per_epoch:
            return None
        first_array = self._firsts.get(first)
        if first_array is None:
            first_array = self._firsts[first] = jnp.asarray(first, jnp.int32)
        args = (params, opt_state, self.data, self._order, first_array)
        if self._executable is None:
            self._executable, seconds = self._program.executable(_cache.signature(*args), *args)
            self.compile_time += seconds
        params, opt_state, losses, last = self._executable(*args)
        self._first = first + plan.steps_per_call
        return params, opt_state, losses, plan.steps_in_call(first), last
