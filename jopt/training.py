"""The lecture's training process as a library: batches, a compiled step, a loop.

The common training process is (1) initialize the parameters, (2) choose an optimizer,
(3) repeat: forward, cost, gradients by backpropagation, update.  Here that is::

    params, opt_state, history = fit(loss_fn, params, optimizer, data, key=key)

with ``loss_fn(params, batch) -> scalar`` and ``optimizer`` any
:class:`~jopt.GradientTransformation` (jopt's or optax's).  The three flavours of
gradient descent differ only in the data each gradient is taken on, ``batch_size``:

* ``None``: batch gradient descent, ``θ ← θ − η·∇θ J(θ; X⁽¹:ᴺ⁾)``;
* ``1``: stochastic gradient descent, ``θ ← θ − η·∇θ J(θ; X⁽ⁱ⁾)``;
* ``n``: mini-batch gradient descent, ``θ ← θ − η·∇θ J(θ; X⁽ⁱ:ⁱ⁺ⁿ⁾)``.

:func:`lr_range_test` measures the lecture's first challenge, a learning rate that is
neither painfully slow nor divergent, instead of guessing it.

Everything is pure JAX apart from the Python loop in :func:`fit`: one jitted step per
batch shape, compiled once, with parameters and optimizer state donated so that an
update needs no second copy of them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import _core
from jopt._core import GradientTransformation, apply_updates
from jopt._validation import checked

PyTree = Any
LossFn = Callable[[PyTree, PyTree], Any]

__all__ = [
    "History",
    "LRRangeTest",
    "batches",
    "fit",
    "lr_range_test",
    "make_step",
]


# --- validation ----------------------------------------------------------------------


def _check_optimizer(optimizer: Any, name: str = "optimizer") -> None:
    _core._as_transformation(optimizer, name)


def _num_examples(data: PyTree) -> int:
    """The common leading dimension of every leaf of ``data``, or a ValueError."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(data)
    if not leaves:
        raise ValueError(f"data must be a pytree with at least one array, got {data!r}")
    sizes = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"data{jax.tree_util.keystr(path)}: every leaf needs a leading example axis, "
                "got a scalar"
            )
        sizes.setdefault(shape[0], jax.tree_util.keystr(path))
    if len(sizes) > 1:
        described = ", ".join(f"data{path} has {n}" for n, path in sizes.items())
        raise ValueError(f"data leaves disagree on the number of examples: {described}")
    (n,) = sizes
    if n == 0:
        raise ValueError("data has no examples (leading dimension 0)")
    return n


def _check_batch_size(batch_size: Any, n: int) -> int | None:
    if batch_size is None:
        return None
    batch_size = checked("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}), got {batch_size}")
    return batch_size


def _check_key(key: Any, needed: bool) -> None:
    if key is None:
        if needed:
            raise ValueError(
                "key is None, but shuffling mini-batches needs a PRNG key "
                "(e.g. key=jax.random.key(0)); pass batch_size=None for full-batch training"
            )
        return
    dtype = getattr(key, "dtype", None)
    if dtype is None or not (
        jnp.issubdtype(dtype, jax.dtypes.prng_key)
        or (np.dtype(dtype) == np.uint32 and np.shape(key)[-1:] == (2,))
    ):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")


# --- the compiled step ---------------------------------------------------------------


def _train_step(loss_fn, optimizer, has_aux, params, opt_state, batch):
    """One step of the lecture's loop: forward, cost, backprop, update."""
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
    donate: bool = True,
) -> Callable[..., tuple]:
    """The jitted training step ``step(params, opt_state, batch)``.

    One call computes ``J = loss_fn(params, batch)`` and ``g = ∇θ J`` by reverse-mode
    differentiation, then ``u, opt_state = optimizer.update(g, opt_state, params)`` and
    ``θ ← θ + u`` (:func:`jopt.apply_updates`).

    **Arguments:**

    - `loss_fn`: ``loss_fn(params, batch) -> J`` with ``J`` a scalar, or
      ``-> (J, aux)`` when `has_aux` is true.
    - `optimizer`: any ``(init, update)`` pair, jopt's or optax's.
    - `has_aux`: whether `loss_fn` also returns auxiliary data.
    - `donate`: donate ``params`` and ``opt_state`` to the step, so XLA writes the new
      values into their buffers instead of keeping two copies.  The arrays passed in
      are deleted by the call (``is_deleted()`` is true afterwards, also on CPU); keep
      only the returned ones.  Pass ``False`` to keep the inputs alive.

    **Returns:**

    ``step(params, opt_state, batch) -> (params, opt_state, loss)``, or
    ``(params, opt_state, loss, aux)`` with `has_aux`.  ``loss`` is ``J`` at the
    parameters *before* the update.  The step is traced and compiled once per distinct
    batch shape (and dtype); every later call with the same shapes reuses it.
    """
    checked("loss_fn", loss_fn)
    _check_optimizer(optimizer)
    if not isinstance(has_aux, bool):
        raise TypeError(f"has_aux must be a bool, got {has_aux!r}")
    if not isinstance(donate, bool):
        raise TypeError(f"donate must be a bool, got {donate!r}")

    def step(params, opt_state, batch):
        return _train_step(loss_fn, optimizer, has_aux, params, opt_state, batch)

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def _fresh_arrays(tree: PyTree) -> PyTree:
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


def _as_arrays(data: PyTree, device: bool) -> PyTree:
    """Every leaf an array: on the device for full-batch training (one transfer in
    all), else JAX arrays as given and anything else as NumPy (batched on the host)."""
    if device:
        return jax.tree.map(jnp.asarray, data)
    return jax.tree.map(lambda x: x if isinstance(x, jax.Array) else np.asarray(x), data)


# --- batches -------------------------------------------------------------------------


def batches(
    key: jax.Array | None,
    data: PyTree,
    batch_size: int | None,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[PyTree]:
    """One epoch of batches from ``data``, a pytree of arrays with a leading example axis.

    - ``batch_size=None``: one batch, ``data`` itself (batch gradient descent).  It
      is not shuffled: the order of the examples does not change their mean loss.
    - ``batch_size=1``: every example on its own (stochastic gradient descent).
    - ``batch_size=n``: batches of ``n`` examples (mini-batch gradient descent).

    With `shuffle`, the examples are visited in the order of
    ``jax.random.permutation(key, N)``; pass a new key for every epoch (:func:`fit`
    uses ``jax.random.fold_in(key, epoch)``) to reshuffle.  Without it, in order.

    **The ragged last batch.**  When ``N`` is not a multiple of ``n`` the last batch
    holds the ``N mod n`` remaining examples.  Its shape is the same every epoch, so a
    jitted step compiles it once, on the first epoch, as a second shape, and reuses it
    from then on: two compilations in all, never one per epoch, and every example is
    used, with each batch's loss a mean over the examples it really holds.
    ``drop_last=True`` drops those examples instead (one compiled shape).

    Every leaf of each batch has shape ``(batch, *leaf.shape[1:])``.  JAX arrays stay on
    their device; NumPy arrays are indexed on the host.

    Raises ValueError for leaves that disagree on ``N``, a `batch_size` outside
    ``[1, N]``, or a missing `key` when shuffling mini-batches.
    """
    n = _num_examples(data)
    batch_size = _check_batch_size(batch_size, n)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
    if not isinstance(drop_last, bool):
        raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
    shuffle = shuffle and batch_size is not None
    _check_key(key, needed=shuffle)
    return _batch_iterator(key, data, n, batch_size, shuffle, drop_last)


def _batch_iterator(key, data, n, batch_size, shuffle, drop_last):
    if batch_size is None:
        yield data
        return
    on_host = all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(data))
    if not on_host:
        data = jax.tree.map(jnp.asarray, data)
    # The permutation is drawn on the device and read back once per epoch, so that
    # host leaves are indexed by NumPy (microseconds) and device leaves by one compiled
    # gather per batch (eager indexing of a device array costs far more than a step).
    order = np.asarray(jax.random.permutation(key, n)) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        index = np.arange(start, end) if order is None else order[start:end]
        if not on_host:
            yield _take_rows(data, index)
        elif order is None:
            yield jax.tree.map(lambda x, s=start, e=end: x[s:e], data)
        else:
            yield jax.tree.map(lambda x, i=index: x[i], data)


@jax.jit
def _take_rows(data: PyTree, index: jax.Array) -> PyTree:
    return jax.tree.map(lambda x: x[index], data)


# --- fit -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class History:
    """What :func:`fit` recorded, as NumPy arrays ready to plot.

    **Fields:**

    - `loss`: shape ``(steps,)``, the loss of every step on its own batch, taken
      before that step's update.
    - `epoch_loss`: shape ``(epochs,)``, the mean of `loss` over each completed epoch.
    - `epoch_step`: shape ``(epochs,)``, the number of steps done when each epoch ended
      (the x coordinate to plot per-epoch values against `loss`).
    - `metrics`: name → shape ``(epochs,)``, what ``eval_fn(params)`` returned after
      each completed epoch.
    - `interrupted`: training stopped on a ``KeyboardInterrupt``.
    - `stopped`: training stopped because the callback returned ``True``.
    - `wall_time`: seconds in :func:`fit`'s loop, compilation included.
    - `compile_time`: seconds spent tracing and compiling the step (once per batch shape).
    """

    loss: np.ndarray
    epoch_loss: np.ndarray
    epoch_step: np.ndarray
    metrics: dict[str, np.ndarray]
    interrupted: bool = False
    stopped: bool = False
    wall_time: float = 0.0
    compile_time: float = 0.0

    @property
    def steps(self) -> int:
        """The number of steps taken."""
        return int(self.loss.shape[0])

    @property
    def epochs(self) -> int:
        """The number of epochs completed."""
        return int(self.epoch_loss.shape[0])


class _LossLog:
    """Step losses kept on the device and read back in bulk.

    Reading each loss as it comes would make the host wait for every step; instead
    they are fetched only when the progress display or the caller needs them.
    """

    def __init__(self):
        self._pending: list[jax.Array] = []
        self.values: list[float] = []

    def append(self, loss: jax.Array) -> None:
        self._pending.append(loss)

    def sync(self) -> list[float]:
        if self._pending:
            fetched = jax.device_get(self._pending)
            self.values.extend(float(v) for v in fetched)
            self._pending = []
        return self.values

    def __len__(self) -> int:
        return len(self.values) + len(self._pending)


class _Progress:
    """A progress display: tqdm's bar if installed, else a plain status line, else nothing.

    ``tqdm.auto`` picks the notebook widget under Jupyter and Colab and the text bar in
    a terminal.  The plain fallback writes one line to stderr at most once a second.
    Both show the running mean loss of the current epoch and the step rate.
    """

    REFRESH_S = 0.2
    PLAIN_REFRESH_S = 1.0

    def __init__(self, enabled: bool, total: int, epochs: int):
        self.total, self.epochs = total, epochs
        self.bar = None
        self.plain = False
        self.start = time.perf_counter()
        self.last = -math.inf
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.plain = True
        else:
            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)

    def due(self, final: bool = False) -> bool:
        if self.bar is None and not self.plain:
            return False
        now = time.perf_counter()
        interval = self.PLAIN_REFRESH_S if self.plain else self.REFRESH_S
        if final or now - self.last >= interval:
            self.last = now
            return True
        return False

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show(self, step: int, epoch: int, loss: float, metrics: Mapping[str, float]) -> None:
        fields = {"epoch": f"{min(epoch + 1, self.epochs)}/{self.epochs}", "loss": f"{loss:.4g}"}
        fields.update({name: f"{value:.4g}" for name, value in metrics.items()})
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
        elif self.plain:
            rate = step / max(time.perf_counter() - self.start, 1e-9)
            described = " | ".join(f"{k} {v}" for k, v in fields.items())
            print(
                f"step {step}/{self.total} | {described} | {rate:.1f} steps/s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _DeferredInterrupt:
    """Turn the first Ctrl-C into a request to stop after the current step.

    A ``KeyboardInterrupt`` raised between a donating step's return and the assignment
    of its result would lose both the old parameters (donated, deleted) and the new
    ones.  While active in the main thread, the first SIGINT only sets ``requested``;
    a second one raises at once, as usual.  Elsewhere (other threads, a custom
    handler already installed) it does nothing.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _metrics_dict(value: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        items = value.items()
    else:
        items = [("eval", value)]
    out = {}
    for name, metric in items:
        array = np.asarray(jax.device_get(metric))
        if array.shape != ():
            raise ValueError(f"eval_fn must return scalars, got {name!r} of shape {array.shape}")
        out[str(name)] = float(array)
    return out


def fit(
    loss_fn: LossFn,
    params: PyTree,
    optimizer: GradientTransformation,
    data: PyTree,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    key: jax.Array | None,
    progress: bool = True,
    eval_fn: Callable[[PyTree], Any] | None = None,
    callback: Callable[[int, PyTree, PyTree, jax.Array], Any] | None = None,
) -> tuple[PyTree, PyTree, History]:
    """Train ``params`` on ``data`` for ``epochs`` passes: the lecture's loop.

    ``opt_state = optimizer.init(params)``, then for every epoch ``e`` and every batch
    ``b`` of ``batches(fold_in(key, e), data, batch_size)``::

        J, g = value_and_grad(loss_fn)(θ, b);  u, opt_state = update(g, opt_state, θ);
        θ ← θ + u

    **Arguments:**

    - `loss_fn`: ``loss_fn(params, batch) -> scalar``, the mean loss of a batch.
    - `params`: the initial parameters (not modified: :func:`fit` trains a copy).
    - `optimizer`: any ``(init, update)`` pair, jopt's or optax's.
    - `data`: a pytree of arrays sharing a leading example axis of length ``N``.
    - `batch_size`: ``None`` (batch GD, one step per epoch), ``1`` (SGD) or ``n``
      (mini-batch GD); see :func:`batches` for the ragged last batch.
    - `epochs`: the number of passes over `data`, ``>= 0``.
    - `key`: PRNG key the batches are shuffled with; may be ``None`` for full-batch.
    - `progress`: show a progress bar (tqdm if installed, a plain status line on
      stderr otherwise) with the running loss and steps/s; ``False`` is silent.
    - `eval_fn`: ``eval_fn(params) -> scalar or {name: scalar}``, called after each
      epoch; its values become ``history.metrics``.
    - `callback`: ``callback(step, params, opt_state, loss)``, called after every step
      (``step`` counts from 1).  Returning ``True`` stops training.  The arrays it sees
      are donated to the next step, so copy any it keeps.

    **Returns:**

    ``(params, opt_state, history)`` with a :class:`History`.  On ``KeyboardInterrupt``
    (Ctrl-C, or raised by `callback` or `eval_fn`) the loop stops and returns what was
    trained so far, with ``history.interrupted`` set.  A first Ctrl-C lets the running
    step finish (its inputs are donated, so stopping half-way would lose both the old
    and the new parameters); a second one interrupts at once, and re-raises if that
    left nothing to return.

    One step is compiled per batch shape: one for full batches and, if ``N mod n ≠ 0``,
    one for the ragged last batch, each on first use.
    """
    checked("loss_fn", loss_fn)
    _check_optimizer(optimizer)
    epochs = checked("epochs", epochs)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {progress!r}")
    if eval_fn is not None:
        checked("eval_fn", eval_fn)
    if callback is not None:
        checked("callback", callback)
    n = _num_examples(data)
    batch_size = _check_batch_size(batch_size, n)
    _check_key(key, needed=batch_size is not None)

    data = _as_arrays(data, device=batch_size is None)
    params = _fresh_arrays(params)
    opt_state = _fresh_arrays(optimizer.init(params))
    step_fn = make_step(loss_fn, optimizer)
    steps_per_epoch = 1 if batch_size is None else -(-n // batch_size)

    log = _LossLog()
    epoch_loss: list[float] = []
    epoch_step: list[int] = []
    metrics: dict[str, list[float]] = {}
    compiled_sizes: set[int] = set()
    compile_time = 0.0
    interrupted = stopped = False
    last_metrics: dict[str, float] = {}
    display = _Progress(progress, epochs * steps_per_epoch, epochs)
    start = time.perf_counter()
    epoch = epoch_start = 0
    try:
        with _DeferredInterrupt() as interrupt:
            for epoch in range(epochs):
                epoch_key = None if batch_size is None else jax.random.fold_in(key, epoch)
                epoch_start = len(log)
                for batch in batches(epoch_key, data, batch_size):
                    size = jax.tree.leaves(batch)[0].shape[0]
                    if size not in compiled_sizes:
                        # Compile ahead of the call to time it; the call reuses it.
                        t0 = time.perf_counter()
                        step_fn.lower(params, opt_state, batch).compile()
                        compile_time += time.perf_counter() - t0
                        compiled_sizes.add(size)
                    params, opt_state, loss = step_fn(params, opt_state, batch)
                    log.append(loss)
                    display.advance()
                    if callback is not None and callback(len(log), params, opt_state, loss) is True:
                        stopped = True
                    if display.due():
                        values = log.sync()
                        display.show(len(log), epoch, _mean(values[epoch_start:]), last_metrics)
                    if stopped or interrupt.requested:
                        break
                if stopped or interrupt.requested:
                    interrupted = interrupt.requested
                    break
                values = log.sync()
                if eval_fn is not None:
                    last_metrics = _metrics_dict(eval_fn(params))
                    if epoch_loss and set(last_metrics) != set(metrics):
                        raise ValueError(
                            f"eval_fn returned metrics {sorted(last_metrics)} after epoch "
                            f"{epoch + 1}, but {sorted(metrics)} before"
                        )
                    for name, value in last_metrics.items():
                        metrics.setdefault(name, []).append(value)
                epoch_loss.append(_mean(values[epoch_start:]))
                epoch_step.append(len(values))
    except KeyboardInterrupt:
        # A second Ctrl-C can land inside a step, after its inputs were donated and
        # before its outputs were kept: then there is nothing left to return.
        leaves = jax.tree.leaves((params, opt_state))
        if any(isinstance(leaf, jax.Array) and leaf.is_deleted() for leaf in leaves):
            raise
        interrupted = True
    finally:
        wall_time = time.perf_counter() - start
        values = log.sync()
        if display.due(final=True) and values:
            display.show(len(values), epoch, _mean(values[epoch_start:]), last_metrics)
        display.close()

    history = History(
        loss=np.asarray(values, dtype=np.float64),
        epoch_loss=np.asarray(epoch_loss, dtype=np.float64),
        epoch_step=np.asarray(epoch_step, dtype=np.int64),
        metrics={
            name: np.asarray(v[: len(epoch_loss)], dtype=np.float64) for name, v in metrics.items()
        },
        interrupted=interrupted,
        stopped=stopped,
        wall_time=wall_time,
        compile_time=compile_time,
    )
    return params, opt_state, history


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


# --- the learning-rate range test ----------------------------------------------------


class LRRangeTest(NamedTuple):
    """The result of :func:`lr_range_test`; every array has shape ``(steps_taken,)``.

    - `learning_rates`: ``ηₜ`` of each step, increasing geometrically.
    - `smoothed_losses`: `losses` smoothed without lag (see :func:`lr_range_test`);
      ``nan`` where the loss was not finite.
    - `suggested_lr`: the learning rate at which the smoothed loss fell fastest,
      relative to its value, per decade of learning rate, before it diverged.
    - `losses`: the raw loss of each step, taken before its update.
    """

    learning_rates: np.ndarray
    smoothed_losses: np.ndarray
    suggested_lr: float
    losses: np.ndarray


def lr_range_test(
    loss_fn: LossFn,
    params: PyTree,
    optimizer_factory: Callable[[Any], GradientTransformation],
    data: PyTree,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int | None = None,
    key: jax.Array | None,
    smoothing: float = 0.98,
    divergence: float = 4.0,
) -> LRRangeTest:
    """Smith's learning-rate range test (Smith, 2017, "Cyclical learning rates", §3.3).

    Train from `params` for `steps` steps while the learning rate grows
    geometrically, ``ηₜ = η_min·(η_max/η_min)^(t/(steps−1))``, and record the loss
    ``Jₜ`` of each step (before its update).  The test stops early, as soon as the
    loss is not finite or its running average ``aₜ = β·aₜ₋₁ + (1 − β)·Jₜ``,
    bias-corrected to ``âₜ = aₜ/(1 − βᵗ⁺¹)``, exceeds `divergence` times its minimum
    so far.

    **Smoothing.**  A running average lags by about ``β/(1 − β)`` steps, which in a
    sweep is a shift in learning rate (at the default β = 0.98, up to 49 steps, four
    decades of the default sweep).  So the returned `smoothed_losses` are that
    bias-corrected average run forward and then backward over the recorded losses:
    the backward pass's lead offsets the forward pass's lag (exactly, for a linear
    trend, away from the ends of the sweep, where the averages cover fewer steps).
    Positive losses are averaged as logarithms, so that a loss falling by orders of
    magnitude keeps its slope.

    **The suggestion** is the learning rate of the steepest descent of the smoothed
    loss on log-log axes, ``argminₜ (log Ĵₜ₊₁ − log Ĵₜ) / (log ηₜ₊₁ − log ηₜ)``, taken
    over the steps up to the minimum of ``Ĵ``, i.e. before divergence.  For one
    quadratic mode of curvature ``h`` under SGD, ``log J`` falls by
    ``2·log|1 − ηh|`` per step, fastest at ``η = 1/h``, its best fixed learning rate;
    too small a rate barely moves the loss and too large a rate makes it fluctuate
    and diverge (the lecture's first challenge).  For a non-positive loss the slope
    of ``Ĵ`` itself is used.

    **Arguments:**

    - `loss_fn`, `params`, `data`, `batch_size`, `key`: as for :func:`fit`.  `params`
      is not modified.  Batches cycle through epochs as needed; a ragged last batch
      is dropped so that every step sees the same number of examples.
    - `optimizer_factory`: ``learning_rate -> GradientTransformation``, e.g.
      ``jopt.adam`` or ``lambda lr: jopt.sgd(lr, momentum=0.9)``.  It is called with a
      traced scalar inside the compiled step (the learning rate changes every step
      without recompiling), so it must not branch on the value in Python; jopt's and
      optax's optimizers do not.
    - `min_lr`, `max_lr`: the range swept, ``0 < min_lr < max_lr``.
    - `steps`: the number of steps (and learning rates), ``>= 3``.
    - `smoothing`: β of the running average, in ``[0, 1)``; ``0`` does not smooth.
      The default 0.98 is fast.ai's; on noisy least-squares problems (condition 4,
      full and mini-batches, 6 seeds) it kept the suggestion within a factor of 0.46
      to 2.7 of the best fixed SGD rate, where 0.9 let mini-batch noise pull it down
      to 0.22.
    - `divergence`: the factor over the best averaged loss that counts as divergence,
      ``> 1``.

    **Returns:** an :class:`LRRangeTest`.
    """
    checked("loss_fn", loss_fn)
    checked("optimizer_factory", optimizer_factory)
    for name, value in (
        ("min_lr", min_lr),
        ("max_lr", max_lr),
        ("smoothing", smoothing),
        ("divergence", divergence),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(min_lr) and min_lr > 0):
        raise ValueError(f"min_lr must be a finite number > 0, got {min_lr!r}")
    if not (math.isfinite(max_lr) and max_lr > min_lr):
        raise ValueError(f"max_lr must be finite and > min_lr={min_lr!r}, got {max_lr!r}")
    steps = checked("steps", steps)
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not divergence > 1:
        raise ValueError(f"divergence must be > 1, got {divergence!r}")
    n = _num_examples(data)
    batch_size = _check_batch_size(batch_size, n)
    _check_key(key, needed=batch_size is not None)
    _check_optimizer(optimizer_factory(min_lr), "optimizer_factory(min_lr)")

    lrs = np.geomspace(min_lr, max_lr, steps)
    lr_dtype = jnp.asarray(0.0).dtype  # float64 under x64, else float32
    data = _as_arrays(data, device=batch_size is None)
    params = _fresh_arrays(params)
    # The state is built with an array learning rate, as the step will see it, so that
    # a transformation whose state depends on the rate's type gets the step's structure.
    opt_state = _fresh_arrays(optimizer_factory(jnp.asarray(min_lr, lr_dtype)).init(params))

    def step(params, opt_state, batch, lr):
        return _train_step(loss_fn, optimizer_factory(lr), False, params, opt_state, batch)

    step = jax.jit(step, donate_argnums=(0, 1))

    def batch_stream():
        epoch = 0
        while True:
            epoch_key = None if batch_size is None else jax.random.fold_in(key, epoch)
            yield from batches(epoch_key, data, batch_size, drop_last=True)
            epoch += 1

    losses: list[float] = []
    average, best = 0.0, math.inf
    for t, (lr, batch) in enumerate(zip(lrs, batch_stream())):
        params, opt_state, loss = step(params, opt_state, batch, jnp.asarray(lr, lr_dtype))
        # Each loss is read at once: the test stops as soon as it diverges.
        loss = float(loss)
        losses.append(loss)
        if not math.isfinite(loss):
            break
        average = smoothing * average + (1 - smoothing) * loss
        corrected = average / (1 - smoothing ** (t + 1))
        best = min(best, corrected)
        if corrected > divergence * best:
            break

    losses_arr = np.asarray(losses, dtype=np.float64)
    lrs = lrs[: len(losses)]
    smoothed = _zero_phase_average(losses_arr, smoothing)
    return LRRangeTest(
        learning_rates=lrs,
        smoothed_losses=smoothed,
        suggested_lr=_steepest_descent(lrs, smoothed),
        losses=losses_arr,
    )


def _running_average(values: np.ndarray, beta: float) -> np.ndarray:
    """``âₜ = aₜ/(1 − βᵗ⁺¹)`` with ``aₜ = β·aₜ₋₁ + (1 − β)·vₜ``, ``a₋₁ = 0``."""
    out = np.empty_like(values)
    average = 0.0
    for t, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out[t] = average / (1 - beta ** (t + 1))
    return out


def _zero_phase_average(losses: np.ndarray, beta: float) -> np.ndarray:
    """The running average forward, then backward: its lag offset by an equal lead.

    Positive losses are averaged as logarithms (a geometric mean): a loss that falls by
    orders of magnitude keeps its slope, where an arithmetic average would cap its
    fall at a factor β per step.  ``nan`` from the first non-finite loss on.
    """
    smoothed = np.full(losses.shape, np.nan)
    finite = len(losses) if np.all(np.isfinite(losses)) else int(np.argmin(np.isfinite(losses)))
    if finite:
        values = losses[:finite]
        positive = bool(np.all(values > 0))
        if positive:
            values = np.log(values)
        forward = _running_average(values, beta)
        both = _running_average(forward[::-1], beta)[::-1]
        smoothed[:finite] = np.exp(both) if positive else both
    return smoothed


def _steepest_descent(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """The rate of the steepest fall of ``smoothed`` on log-log axes, before its minimum."""
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size < 2:
        return float(lrs[0])
    end = int(np.argmin(finite)) + 1  # past the minimum the loss only rises: divergence
    if end < 2:
        return float(lrs[0])
    curve = finite[:end]
    if np.all(curve > 0):
        curve = np.log(curve)
    slopes = np.diff(curve) / np.diff(np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slopes))])
