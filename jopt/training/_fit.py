"""The training loop: [`fit`][jopt.training.fit]."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax

from jopt._core import GradientTransformation
from jopt._validation import check, checked
from jopt.training._batches import as_arrays, batches, check_batch_size, check_key, num_examples
from jopt.training._history import History, Recorder
from jopt.training._scan import Plan, ScanRunner
from jopt.training._step import LossFn, PyTree, StepRunner, check_optimizer, fresh_arrays
from jopt.training._ui import DeferredInterrupt, Progress


def fit(
    loss_fn: LossFn,
    params: PyTree,
    optimizer: GradientTransformation,
    data: PyTree,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    key: jax.Array | None = None,
    shuffle: bool = True,
    steps_per_call: int | str = "epoch",
    progress: bool = True,
    eval_fn: Callable[[PyTree], Any] | None = None,
    callback: Callable[[int, PyTree, PyTree, jax.Array], Any] | None = None,
) -> tuple[PyTree, PyTree, History]:
    """Train ``params`` on ``data`` for ``epochs`` passes.

    ``opt_state = optimizer.init(params)``, then for every epoch ``e`` and every batch
    ``b`` of ``batches(data, batch_size=batch_size, key=fold_in(key, e))``:

    ```text
    J, g = value_and_grad(loss_fn)(θ, b);  u, opt_state = update(g, opt_state, θ);
    θ ← θ + u
    ```

    (``update`` also receives ``value=J``, ``grad=g`` and ``value_fn``, for
    optimizers that need the loss or a line search; see
    [`make_step`][jopt.training.make_step]).

    **Steps per call.**  With ``steps_per_call=k`` (or ``"epoch"``, all the steps of
    an epoch) the dataset is copied to the device once and each compiled call runs
    ``k`` steps under ``lax.scan``, gathering its batches there; with ``1`` each step
    is a call and batches are cut on the host.  The batches, their order and the
    arithmetic are the same, so both give the same history (to float32 rounding: XLA
    may fuse a step inside a loop differently).  A call never crosses the end of an
    epoch, and the ragged last batch is a branch of the same program, compiled once.
    The default, ``"epoch"``, is the fastest: the host waits for the device once per
    epoch instead of once per step, which on a small model is most of a step's time
    (the digits MLP: 5-6× faster per step).  ``eval_fn`` runs after every epoch
    either way.  Choose a smaller ``k`` when an epoch is long and the progress bar,
    `callback` or Ctrl-C should answer sooner, and ``1`` when the dataset does not
    fit in the device's memory.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss of a batch.
        params: the initial parameters (not modified: [`fit`][jopt.training.fit] trains a copy,
            which it donates to each call).
        optimizer: any ``(init, update)`` pair, jopt's or optax's.
        data: a pytree of arrays sharing a leading example axis of length ``N``.
        batch_size: ``None`` (batch gradient descent, one step per epoch), ``1``
            (stochastic) or ``n`` (mini-batch); see [`batches`][jopt.training.batches] for
            the ragged last batch.
        epochs: the number of passes over `data`, ``>= 0``.
        key: the PRNG key mini-batches are shuffled with (``jax.random.key(seed)``);
            needed only to shuffle mini-batches.
        shuffle: visit the examples in a new random order every epoch (mini-batches
            only); ``False`` visits them in order and needs no `key`.
        steps_per_call: ``k >= 1`` steps per compiled call (at most an epoch's), or
            ``"epoch"``.
        progress: show a progress bar (tqdm if installed, a plain status line on
            stderr otherwise) with the running loss and steps/s; ``False`` is silent.
        eval_fn: ``eval_fn(params) -> scalar or {name: scalar}``, called after each
            epoch; its values become ``history.metrics``.
        callback: ``callback(step, params, opt_state, loss)``, called after every
            call (every step with ``steps_per_call=1``) with the number of steps done
            and the loss of the last one.  Returning ``True`` stops training.  The
            arrays it sees are donated to the next call, so copy any it keeps.

    Returns:
        ``(params, opt_state, history)`` with a [`History`][jopt.training.History].  On
        ``KeyboardInterrupt`` (Ctrl-C, or raised by `callback` or `eval_fn`) the loop
        stops and returns what was trained so far, with ``history.interrupted`` set.
        A first Ctrl-C lets the running call finish (its inputs are donated, so
        stopping half-way would lose both the old and the new parameters); a second
        one interrupts at once, and re-raises if that left nothing to return.

    Raises:
        TypeError: an argument of the wrong type (each error names it).
        ValueError: an argument out of range, data whose leaves disagree on ``N``, or
            ``key=None`` when shuffling mini-batches.

    Compilation: one program for the run (with ``steps_per_call=1``, one per batch
    shape), compiled on first use and kept: a later [`fit`][jopt.training.fit] with the same
    shapes, the same `loss_fn` and an optimizer built the same way (e.g.
    ``jopt.adam(1e-3)`` again) compiles nothing.
    """
    checked("loss_fn", loss_fn)
    check_optimizer(optimizer)
    options = check(
        epochs=epochs, shuffle=shuffle, progress=progress, steps_per_call=steps_per_call
    )
    check(eval_fn=eval_fn, callback=callback)
    n = num_examples(data)
    batch_size = check_batch_size(batch_size, n)
    shuffle = options["shuffle"] and batch_size is not None
    check_key(key, needed=shuffle)

    epochs, steps_per_call = options["epochs"], options["steps_per_call"]
    params = fresh_arrays(params)
    opt_state = fresh_arrays(optimizer.init(params))
    if steps_per_call == 1:
        data = as_arrays(data, device=batch_size is None)
        runner = StepRunner(loss_fn, optimizer)

        def start_epoch(epoch):
            epoch_key = jax.random.fold_in(key, epoch) if shuffle else None
            runner.start_epoch(batches(data, batch_size=batch_size, key=epoch_key, shuffle=shuffle))

    else:
        plan = Plan.make(n, batch_size, steps_per_call, shuffle)
        runner = ScanRunner(loss_fn, optimizer, plan, data, key)
        start_epoch = runner.start_epoch
    steps_per_epoch = 1 if batch_size is None else -(-n // batch_size)

    record = Recorder(eval_fn)
    display = Progress(options["progress"], total=epochs * steps_per_epoch, epochs=epochs)
    loop = _Loop(runner, record, display, callback)
    start = time.perf_counter()
    try:
        params, opt_state = loop.run(params, opt_state, start_epoch, epochs)
    finally:
        loop.finish()  # reads every loss back: the steps are done
        wall_time = time.perf_counter() - start
    history = record.history(
        interrupted=loop.interrupted,
        stopped=loop.stopped,
        wall_time=wall_time,
        compile_time=runner.compile_time,
    )
    return params, opt_state, history


class _Loop:
    """The epochs of [`fit`][jopt.training.fit]: calls, callback, progress, records and Ctrl-C."""

    def __init__(self, runner, record: Recorder, display: Progress, callback):
        self.runner, self.record, self.display, self.callback = runner, record, display, callback
        self.interrupted = self.stopped = False
        self.epoch = 0

    def run(self, params, opt_state, start_epoch, epochs):
        """Train for ``epochs``; returns the last live ``(params, opt_state)``."""
        try:
            with DeferredInterrupt() as interrupt:
                for epoch in range(epochs):
                    self.epoch = epoch
                    self.record.start_epoch()
                    start_epoch(epoch)
                    while True:
                        result = self.runner(params, opt_state)
                        if result is None:
                            break
                        # Assigned here, at once: a Ctrl-C or an error in the callback
                        # must find the live result of the call, not its donated inputs.
                        params, opt_state, losses, count, last = result
                        self._after_call(params, opt_state, losses, count, last)
                        if self.stopped or interrupt.requested:
                            break
                    if self.stopped or interrupt.requested:
                        self.interrupted = interrupt.requested
                        break
                    self.record.end_epoch(params)
        except KeyboardInterrupt:
            # A second Ctrl-C can land inside a call, after its inputs were donated
            # and before its outputs were kept: then there is nothing left to return.
            leaves = jax.tree.leaves((params, opt_state))
            if any(isinstance(leaf, jax.Array) and leaf.is_deleted() for leaf in leaves):
                raise
            self.interrupted = True
        return params, opt_state

    def _after_call(self, params, opt_state, losses, count, last):
        self.record.append(losses, count)
        self.display.advance(count)
        if self.callback is not None:
            self.stopped = self.callback(self.record.steps, params, opt_state, last) is True
        if self.display.due():
            self._show()

    def _show(self):
        record = self.record
        self.display.show(record.steps, self.epoch, record.running_loss(), record.last_metrics)

    def finish(self):
        """Read back every loss and close the display (also after an error)."""
        self.record.sync()
        if self.display.due(final=True) and self.record.steps:
            self._show()
        self.display.close()
