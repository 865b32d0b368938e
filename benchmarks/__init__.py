"""jopt's benchmark harness: jopt against optax and torch.optim, on the same work.

Run ``python -m benchmarks`` from the repository root (``--help`` for the flags,
``--quick`` for a smoke run of a few seconds on tiny shapes).  See
:mod:`benchmarks.harness` for what is measured and how, :mod:`benchmarks.shapes`
for the parameter trees, :mod:`benchmarks.floor` for the bandwidth floor and
:mod:`benchmarks.memory` for the peak-memory probe.
"""
