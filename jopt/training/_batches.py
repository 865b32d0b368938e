"""Batches of a dataset: the data each gradient is taken on.

A dataset is any pytree of arrays that share a leading example axis of length ``N``.
[`batches`][jopt.training.batches] cuts one epoch of it into batches; the helpers here check a
dataset, a batch size and a PRNG key for [`batches`][jopt.training.batches],
[`fit`][jopt.training.fit] and [`lr_range_test`][jopt.training.lr_range_test] alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jopt._validation import check, checked

PyTree = Any


def num_examples(data: PyTree) -> int:
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


def check_batch_size(batch_size: Any, n: int) -> int | None:
    """``batch_size`` checked by the vocabulary and against the ``n`` examples."""
    batch_size = checked("batch_size", batch_size)
    if batch_size is not None and batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples ({n}), got {batch_size}")
    return batch_size


def check_key(key: Any, *, needed: bool) -> None:
    """A JAX PRNG key (new-style or raw ``uint32[2]``), or ``None`` where none is needed."""
    if key is None:
        if needed:
            raise ValueError(
                "key is None, but shuffling mini-batches needs a PRNG key: pass "
                "key=jax.random.key(seed), or shuffle=False to visit the examples in order "
                "(batch_size=None, full batches, needs no key)"
            )
        return
    checked("key", key)


def as_arrays(data: PyTree, *, device: bool) -> PyTree:
    """Every leaf an array: on the device for full-batch training (one transfer in
    all), else JAX arrays as given and anything else as NumPy (batched on the host)."""
    if device:
        return jax.tree.map(jnp.asarray, data)
    return jax.tree.map(lambda x: x if isinstance(x, jax.Array) else np.asarray(x), data)


def batches(
    data: PyTree,
    *,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[PyTree]:
    """One epoch of batches from ``data``, a pytree of arrays with a leading example axis.

    - ``batch_size=None``: one batch, ``data`` itself (batch gradient descent).  It
      is not shuffled: the order of the examples does not change their mean loss.
    - ``batch_size=1``: every example on its own (stochastic gradient descent).
    - ``batch_size=n``: batches of ``n`` examples (mini-batch gradient descent).

    With `shuffle`, the examples are visited in the order of
    ``jax.random.permutation(key, N)``; pass a new key for every epoch
    ([`fit`][jopt.training.fit] uses ``jax.random.fold_in(key, epoch)``) to reshuffle.
    Without it, in order, and no key is needed.

    **The ragged last batch.**  When ``N`` is not a multiple of ``n`` the last batch
    holds the ``N mod n`` remaining examples.  Its shape is the same every epoch, so a
    jitted step compiles it once, on the first epoch, as a second shape, and reuses it
    from then on: two compilations in all, never one per epoch, and every example is
    used, with each batch's loss a mean over the examples it really holds.
    ``drop_last=True`` drops those examples instead (one compiled shape).

    Args:
        data: a pytree of arrays sharing a leading example axis of length ``N``.
        batch_size: ``None``, or an integer in ``[1, N]``.
        key: the PRNG key of the shuffle (``jax.random.key(seed)``); needed only to
            shuffle mini-batches.
        shuffle: visit the examples in a random order.
        drop_last: leave out the ragged last batch.

    Returns:
        An iterator over the batches; every leaf of a batch has shape
        ``(batch, *leaf.shape[1:])``.  JAX arrays stay on their device; NumPy arrays
        are indexed on the host.

    Raises:
        ValueError: leaves that disagree on ``N``, a `batch_size` outside ``[1, N]``,
            or ``key=None`` when shuffling mini-batches.
        TypeError: a `batch_size`, `shuffle` or `drop_last` of the wrong type, or a
            `key` that is not a PRNG key.
    """
    n = num_examples(data)
    batch_size = check_batch_size(batch_size, n)
    shuffle, drop_last = check(shuffle=shuffle, drop_last=drop_last).values()
    shuffle = shuffle and batch_size is not None
    check_key(key, needed=shuffle)
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
