"""The bandwidth floor: STREAM-like kernels (McCalpin, 1995) sized like the step.

Three kernels over float32 arrays:

* ``copy``: ``a = s·b`` (one read, one write; the scalar is a run-time value so that no
  compiler turns the kernel into an alias);
* ``triad``: ``a = b + s·c`` (two reads, one write);
* ``axpy``: ``a ← a + s·b`` in place (two reads, one write).  An optimizer step updates
  its buffers in place too: writing over a line just read costs no extra read, where
  copy and triad write an array whose lines the cache must first fetch.

Bytes are counted as STREAM does (``words × 4 × length``, no write-allocate traffic),
and the optimizer steps are counted the same way, so the two are comparable.

Each kernel's arrays together hold as many elements as the step's working set
(params + grads + state): on a machine whose last-level cache holds a good part of that
set, a floor measured on smaller arrays would be a cache bandwidth and a larger one a
DRAM bandwidth the step never sees.

Two implementations run with the same number of threads as the systems under test:

* ``xla``: the kernel jitted by XLA with the output buffer donated, on the device the
  JAX systems use (XLA:CPU splits a large loop over its intra-op threads).
* ``numpy`` (CPU only): ``threads`` Python threads, each streaming over its own
  contiguous slice in cache-sized blocks (NumPy releases the GIL inside ufuncs).  Where
  a kernel takes two ufunc calls per block, the intermediate stays in cache, so memory
  sees one pass.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import numpy as np

KERNELS = ("copy", "triad", "axpy")
ARRAYS = {"copy": 2, "triad": 3, "axpy": 2}
WORDS = {"copy": 2, "triad": 3, "axpy": 3}
_BLOCK = 1 << 16  # elements per block: 256 KiB per array, well inside L2


def kernel_length(kernel: str, working_set: int) -> int:
    """Elements per array so that ``kernel``'s arrays hold ``working_set`` elements."""
    return max(1, working_set // ARRAYS[kernel])


def kernel_bytes(kernel: str, working_set: int) -> int:
    """Bytes one call of ``kernel`` moves, counted as STREAM does."""
    return WORDS[kernel] * 4 * kernel_length(kernel, working_set)


class XlaKernels:
    """The kernels on the default JAX device, for a working set of ``working_set`` floats."""

    def __init__(self, working_set: int):
        import jax
        import jax.numpy as jnp

        self.s = jnp.asarray(0.5, jnp.float32)
        self.arrays = {}
        for kernel in KERNELS:
            n = kernel_length(kernel, working_set)
            self.arrays[kernel] = [
                jnp.full(n, float(i), jnp.float32) for i in range(ARRAYS[kernel])
            ]
        # Copy and triad do not read ``a``, they only donate it: kept as a parameter, its
        # buffer takes the result, as a step's donated buffers do (a fresh output would
        # pay page faults on every call).
        self._kernels = {
            "copy": jax.jit(lambda a, b, s: s * b, donate_argnums=0, keep_unused=True),
            "triad": jax.jit(lambda a, b, c, s: b + s * c, donate_argnums=0, keep_unused=True),
            "axpy": jax.jit(lambda a, b, s: a + s * b, donate_argnums=0),
        }
        for kernel in KERNELS:
            self.run(kernel, 1)

    def run(self, kernel: str, k: int) -> None:
        import jax

        arrays, fn = self.arrays[kernel], self._kernels[kernel]
        for _ in range(k):
            arrays[0] = fn(*arrays, self.s)
        jax.block_until_ready(arrays[0])


class NumpyKernels:
    """The kernels on ``threads`` threads over NumPy arrays (CPU)."""

    def __init__(self, working_set: int, threads: int):
        self.s = np.float32(0.5)
        self.arrays, self.slices = {}, {}
        for kernel in KERNELS:
            n = kernel_length(kernel, working_set)
            self.arrays[kernel] = [np.full(n, float(i), np.float32) for i in range(ARRAYS[kernel])]
            bounds = np.linspace(0, n, threads + 1).astype(int)
            self.slices[kernel] = [
                (int(lo), int(hi))
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
                if hi > lo
            ]
        # One block-sized scratch buffer per thread's slice: it stays in cache.
        self.scratch = {lo: np.empty(_BLOCK, np.float32) for lo, _ in self.slices["axpy"]}
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)

    def _copy(self, lo: int, hi: int) -> None:
        a, b = self.arrays["copy"]
        np.multiply(b[lo:hi], self.s, out=a[lo:hi])

    def _triad(self, lo: int, hi: int) -> None:
        a, b, c = self.arrays["triad"]
        for start in range(lo, hi, _BLOCK):
            stop = min(start + _BLOCK, hi)
            np.multiply(c[start:stop], self.s, out=a[start:stop])
            np.add(a[start:stop], b[start:stop], out=a[start:stop])

    def _axpy(self, lo: int, hi: int) -> None:
        a, b = self.arrays["axpy"]
        scratch = self.scratch[lo]
        for start in range(lo, hi, _BLOCK):
            stop = min(start + _BLOCK, hi)
            t = scratch[: stop - start]
            np.multiply(b[start:stop], self.s, out=t)
            np.add(a[start:stop], t, out=a[start:stop])

    def run(self, kernel: str, k: int) -> None:
        work: Callable[[int, int], None] = {
            "copy": self._copy,
            "triad": self._triad,
            "axpy": self._axpy,
        }[kernel]
        for _ in range(k):
            futures = [self.pool.submit(work, lo, hi) for lo, hi in self.slices[kernel]]
            for future in futures:
                future.result()

    def close(self) -> None:
        self.pool.shutdown()
