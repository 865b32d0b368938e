"""Wall time of ``jopt.minimize`` against ``scipy.optimize.minimize(method="L-BFGS-B")``.

Run as ``python -m benchmarks.minimize`` (``--repeats``, ``--json PATH``, ``--threads``).

Problems, in float64: the chained Rosenbrock function in 100 dimensions from
``(−1.2, 1, −1.2, 1, …)``, and multinomial logistic regression on scikit-learn's
digits (1797 × 64, 10 classes, 650 weights, mean cross-entropy + ``½·1e-4·‖W‖²``) from
zero.  Every solver stops at the first iterate with ``‖∇f‖₂ ≤ 1e-5``: jopt through
``tol``, scipy through a callback on its last gradient (with ``gtol`` and ``ftol`` out
of the way), so both do the work of reaching the same accuracy.

Systems:

* ``jopt``: ``jopt.minimize(fun, x0, tol=1e-5)``, compiled once before timing (the
  whole solve is one XLA program; a call returns when the solve is done).
* ``jopt#2``: the same, timed separately: the A/A control, the resolution of a ratio.
* ``scipy+jax``: scipy driving a ``jax.jit``-ed ``value_and_grad``, the usual way to
  solve a JAX function with scipy (each evaluation crosses from NumPy to XLA and back).
* ``scipy+numpy``: scipy with a hand-written NumPy f and ∇f, scipy at its fastest.

scipy's BLAS runs on one thread (see :func:`_scipy_solver`); ``--threads`` pins the
whole process, XLA included.

Timing: each round runs every system once, in a fresh random order; a round's ratio
is ``jopt / other`` of the two wall times, and the report gives the median of the
per-round ratios with its quartiles (ratios of runs made milliseconds apart cancel
most of the drift of a shared machine), as ``benchmarks.harness`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

TARGET = 1e-5


def _setup(threads: int | None) -> None:
    if threads is not None:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        ).strip()
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))


def problems():
    """name -> (jax fun, numpy value-and-grad, x0)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from sklearn.datasets import load_digits

    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    def rosenbrock_np(x):
        r = x[1:] - x[:-1] ** 2
        grad = np.zeros_like(x)
        grad[:-1] = -400.0 * x[:-1] * r - 2.0 * (1 - x[:-1])
        grad[1:] += 200.0 * r
        return float(np.sum(100.0 * r**2 + (1 - x[:-1]) ** 2)), grad

    digits = load_digits()
    features, labels = digits.data / 16.0, digits.target
    onehot = np.eye(10)[labels]
    x_jax, y_jax = jnp.asarray(features), jnp.asarray(onehot)
    l2, n = 1e-4, features.shape[0]

    def logistic(w):
        weights, bias = w[:640].reshape(64, 10), w[640:]
        log_p = jax.nn.log_softmax(x_jax @ weights + bias)
        return -jnp.mean(jnp.sum(y_jax * log_p, axis=-1)) + 0.5 * l2 * jnp.sum(weights**2)

    def logistic_np(w):
        weights, bias = w[:640].reshape(64, 10), w[640:]
        logits = features @ weights + bias
        logits = logits - logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        value = -np.sum(onehot * log_p) / n + 0.5 * l2 * np.sum(weights**2)
        residual = (np.exp(log_p) - onehot) / n
        grad = np.concatenate([(features.T @ residual + l2 * weights).ravel(), residual.sum(0)])
        return float(value), grad

    return {
        "rosenbrock_100": (rosenbrock, rosenbrock_np, np.tile([-1.2, 1.0], 50)),
        "digits_logistic": (logistic, logistic_np, np.zeros(650)),
    }


def _scipy_solver(value_and_grad, x0):
    """A scipy L-BFGS-B solve that stops at ``‖∇f‖₂ ≤ TARGET``; returns a runner.

    BLAS runs on one thread: L-BFGS-B's vector operations on a few hundred entries only
    lose from threads (OpenBLAS's waiting threads made it 20 to 40 times slower on a
    busy 2-core machine).
    """
    import numpy as np
    import scipy.optimize
    from threadpoolctl import threadpool_limits

    def run():
        last = {}

        def fg(x):
            value, grad = value_and_grad(x)
            last["grad"] = grad
            return value, grad

        def callback(xk):
            if np.linalg.norm(last["grad"]) <= TARGET:
                raise StopIteration

        options = {"maxiter": 100_000, "maxfun": 100_000, "gtol": 0.0, "ftol": 0.0}
        with threadpool_limits(1):
            result = scipy.optimize.minimize(
                fg, x0, jac=True, method="L-BFGS-B", callback=callback, options=options
            )
        return {"steps": int(result.nit), "evaluations": int(result.nfev), "value": result.fun}

    return run


def make_systems(fun, numpy_value_and_grad, x0):
    """name -> a function running one whole solve and returning its summary."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jopt

    start = jnp.asarray(x0)

    def run_jopt():
        result = jax.block_until_ready(jopt.minimize(fun, start, tol=TARGET, max_steps=100_000))
        assert bool(result.converged)
        return {
            "steps": int(result.steps),
            "evaluations": int(result.evaluations),
            "value": float(result.value),
        }

    jitted = jax.jit(jax.value_and_grad(fun))

    def jax_value_and_grad(x):
        value, grad = jitted(x)
        return float(value), np.asarray(grad)

    jax_value_and_grad(x0)  # compile
    return {
        "jopt": run_jopt,
        "jopt#2": run_jopt,
        "scipy+jax": _scipy_solver(jax_value_and_grad, x0),
        "scipy+numpy": _scipy_solver(numpy_value_and_grad, x0),
    }


def _quantiles(values):
    import numpy as np

    array = np.asarray(values, float)
    return {
        "median": float(np.median(array)),
        "q25": float(np.quantile(array, 0.25)),
        "q75": float(np.quantile(array, 0.75)),
    }


def measure(name, fun, numpy_value_and_grad, x0, repeats, seed=0):
    """Compile, run each system once untimed, then ``repeats`` interleaved rounds."""
    systems = make_systems(fun, numpy_value_and_grad, x0)
    t0 = time.perf_counter()
    summaries = {system: run() for system, run in systems.items()}  # jopt compiles here
    compile_seconds = time.perf_counter() - t0
    times = {system: [] for system in systems}
    order = list(systems)
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for system in order:
            start = time.perf_counter()
            systems[system]()
            times[system].append(time.perf_counter() - start)
    ratios = {
        f"jopt/{other}": _quantiles(
            [a / b for a, b in zip(times["jopt"], times[other], strict=True)]
        )
        for other in systems
        if other != "jopt"
    }
    return {
        "problem": name,
        "first_round_seconds": compile_seconds,
        "systems": {
            system: {**summaries[system], "seconds": _quantiles(times[system])}
            for system in systems
        },
        "ratios": ratios,
    }


def render(rows) -> str:
    lines = [
        "| problem | system | steps | evaluations | f | median ms | jopt / system (q25–q75) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for system, entry in row["systems"].items():
            ratio = row["ratios"].get(f"jopt/{system}")
            text = (
                ""
                if ratio is None
                else (f"{ratio['median']:.2f} ({ratio['q25']:.2f}–{ratio['q75']:.2f})")
            )
            lines.append(
                f"| {row['problem']} | {system} | {entry['steps']} | {entry['evaluations']} | "
                f"{entry['value']:.10g} | {1e3 * entry['seconds']['median']:.1f} | {text} |"
            )
    return "\n".join(lines)


def run(repeats: int = 15, problem_names=None) -> list[dict]:
    """Measure every problem (or those named); the rows :func:`render` prints.

    64-bit types are on inside this call only, so a harness can call it between its
    float32 rows.
    """
    import jax

    rows = []
    with jax.enable_x64(True):
        for name, (fun, numpy_value_and_grad, x0) in problems().items():
            if problem_names is None or name in problem_names:
                rows.append(measure(name, fun, numpy_value_and_grad, x0, repeats))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.minimize", description=__doc__)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=None, help="pin to this many CPUs")
    parser.add_argument("--problems", default=None, help="comma-separated problem names")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    _setup(args.threads)
    names = None if args.problems is None else args.problems.split(",")
    rows = run(args.repeats, names)
    print(render(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
