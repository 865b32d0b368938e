"""SOAP's benchmark rows: step time and state bytes, with the refresh step apart.

``python -m benchmarks.soap`` (from the repository root) times ``jopt.soap`` at its
defaults on the ``transformer`` tree of :mod:`benchmarks.shapes` (float32, gradients
~ N(0, 0.01²)), against pytorch-optimizer's ``SOAP`` and, when ``SOAP_REFERENCE``
names the authors' ``soap.py`` (github.com/nikhilvyas/SOAP), their code, on the same
numbers and threads.  It prints a markdown table and saves
``benchmarks/results/soap-<platform>.json`` and ``.md``::

    python -m benchmarks.soap                  # transformer, about half an hour on 2 CPUs
    python -m benchmarks.soap --quick          # the tiny transformer, seconds
    python -m benchmarks.soap --repeats 5 --threads 2

On CPU, run it with ``OPENBLAS_NUM_THREADS=1``: the eigendecompositions and QR
decompositions of JAX, NumPy and SciPy go through OpenBLAS's LAPACK, whose own
threads, on a loaded machine, made a 1024 × 1024 QR 30 times slower here (10 s
instead of 0.34 s).

What is timed, every system on its own copy of the parameters and gradients:

* **plain** and **refresh** steps.  jopt's step is one compiled program (no
  donation, so that every call starts from the same inputs); its two inputs differ in
  the step count alone, set so that the update is a plain one or one that refreshes
  the bases (``lax.switch`` picks the branch at run time).  The torch codes get their
  step counters set before each call likewise.  All start from the state after the
  first update, whose eigendecompositions are timed once (**first**).
* **branch**: the refresh branch's work alone (one power iteration and QR per matrix,
  the second moment permuted, the first re-expressed), compiled by itself.  A refresh
  step should cost a plain step plus that: ``(refresh − plain) / branch`` ≈ 1.
* ``jopt#2``: a second executable of the plain step, the A/A control: ``jopt/jopt#2``
  is the resolution of the other ratios.

Each round times one call of every system in a fresh random order; ratios are the
median over rounds of the per-round ratio, with quartiles.  State bytes are summed
over the state's arrays, and jopt's are checked against the count from the shapes:
two moments per parameter and two ``d × d`` float32 matrices per axis of length at
most ``max_precond_dim`` of every leaf of rank 2 or more.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import shapes as shape_sets
from benchmarks import systems
from benchmarks.harness import _pin_threads, _quantiles
from benchmarks.machine import load, machine_info

ROOT = Path(__file__).resolve().parent.parent
ITEMSIZE = 4
PLAIN_COUNT, REFRESH_COUNT = 1, 10  # the next update is t = 1 (plain), t = 10 (refresh)


# --- jopt ------------------------------------------------------------------------------


def expected_state_bytes(leaves: dict, max_precond_dim: int = 10000) -> dict[str, int]:
    """jopt's state bytes from the shapes: moments, matrices, and two int32 counts."""
    moments = sum(2 * ITEMSIZE * int(np.prod(s)) for s in leaves.values())
    matrices = sum(
        2 * ITEMSIZE * d * d
        for s in leaves.values()
        if len(s) >= 2
        for d in s
        if d <= max_precond_dim
    )
    return {"moments": moments, "matrices": matrices, "total": moments + matrices + 8}


def _state_bytes(state) -> int:
    import jax

    return sum(leaf.nbytes for leaf in jax.tree.leaves(state))


def _with_count(state, count: int):
    """The state with both step counts set to ``count`` (the last update's number)."""
    import jax.numpy as jnp

    soap_state, descent_state = state
    value = jnp.asarray(count, jnp.int32)
    return (soap_state._replace(count=value), descent_state._replace(count=value))


class JoptSystem:
    """Compiled SOAP steps on the tree, from the state after the first update."""

    def __init__(self, leaves: dict, params: dict, grads: dict, timings: dict) -> None:
        import jax
        import jax.numpy as jnp

        import jopt

        self.optimizer = jopt.soap()
        self.params = {k: jnp.asarray(v) for k, v in params.items()}
        self.grads = {k: jnp.asarray(v) for k, v in grads.items()}
        state = self.optimizer.init(self.params)
        self.nbytes = _state_bytes(state)
        self.expected = expected_state_bytes(leaves)
        matrices = jax.tree.leaves((state[0].stats, state[0].bases))
        self.matrix_bytes = sum(m.nbytes for m in matrices)

        def step(params, state, grads):
            updates, state = self.optimizer.update(grads, state, params)
            return jopt.apply_updates(params, updates), state

        t0 = time.perf_counter()
        self.step = jax.jit(step).lower(self.params, state, self.grads).compile()
        self.step_copy = jax.jit(step).lower(self.params, state, self.grads).compile()
        timings["jopt_compile_s"] = time.perf_counter() - t0
        _log(f"jopt: compiled in {timings['jopt_compile_s']:.1f} s")
        t0 = time.perf_counter()
        _, state = jax.block_until_ready(self.step(self.params, state, self.grads))
        timings["jopt_first_s"] = time.perf_counter() - t0
        _log(f"jopt: first update in {timings['jopt_first_s']:.1f} s")
        self.plain = _with_count(state, PLAIN_COUNT)
        self.refresh = _with_count(state, REFRESH_COUNT)
        self.branch, self.operands = _compiled_branch(state[0])

    def runs(self) -> dict:
        import jax

        def call(executable, state):
            return lambda: jax.block_until_ready(executable(self.params, state, self.grads))

        return {
            "jopt plain": call(self.step, self.plain),
            "jopt#2 plain": call(self.step_copy, self.plain),
            "jopt refresh": call(self.step, self.refresh),
            "jopt branch": lambda: jax.block_until_ready(self.branch(self.operands)),
        }


def _compiled_branch(inner):
    """The refresh branch of ``lax.switch`` alone, compiled, and its operands."""
    import jax

    soap = sys.modules["jopt.transforms._soap"]
    operands = [
        (inner.stats[k], inner.bases[k], inner.mu[k], inner.nu[k])
        for k in inner.stats
        if any(m is not None for m in inner.stats[k])
    ]
    return jax.jit(soap._refresh).lower(operands).compile(), operands


# --- torch ------------------------------------------------------------------------------


def _authors_class(path: str):
    spec = importlib.util.spec_from_file_location("soap_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOAP


class TorchSystem:
    """A torch SOAP (``"port"``: pytorch-optimizer's, ``"authors"``) at its defaults."""

    def __init__(self, kind: str, params: dict, grads: dict, timings: dict, reference=None):
        import torch

        self.kind, self.torch = kind, torch
        self.tensors = []
        for path, value in params.items():
            tensor = torch.nn.Parameter(torch.tensor(value))
            tensor.grad = torch.tensor(grads[path])
            self.tensors.append(tensor)
        if kind == "port":
            from pytorch_optimizer import SOAP

            self.optimizer = SOAP(self.tensors)
        else:
            self.optimizer = _authors_class(reference)(self.tensors)
        t0 = time.perf_counter()
        self._step()  # the first step: statistics and eigendecompositions only
        timings[f"{kind}_first_s"] = time.perf_counter() - t0
        _log(f"{kind}: first step in {timings[f'{kind}_first_s']:.1f} s")
        self.nbytes = sum(
            value.numel() * value.element_size()
            for entry in self.optimizer.state.values()
            for value in _tensors(entry)
        )

    def _step(self) -> None:
        with self.torch.no_grad():
            self.optimizer.step()

    def _set_count(self, count: int) -> None:
        # The next step is number `count` + 1 of Adam's, as jopt's count says.
        if self.kind == "port":
            for group in self.optimizer.param_groups:
                group["step"] = count
        else:
            for entry in self.optimizer.state.values():
                entry["step"] = count - 1

    def runs(self) -> dict:
        def call(count):
            def run():
                self._set_count(count)
                self._step()

            return run

        name = self.kind
        return {f"{name} plain": call(PLAIN_COUNT), f"{name} refresh": call(REFRESH_COUNT)}


def _tensors(entry):
    for value in entry.values():
        if hasattr(value, "numel"):
            yield value
        elif isinstance(value, list):
            for item in value:
                if hasattr(item, "numel"):
                    yield item
                elif isinstance(item, list):
                    yield from (x for x in item if hasattr(x, "numel"))


# --- rounds -----------------------------------------------------------------------------


def time_rounds(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of every run, one call each per round, in a fresh random order."""
    for name, run in runs.items():
        t0 = time.perf_counter()
        run()  # warm up
        _log(f"{name}: warm-up call {time.perf_counter() - t0:.2f} s")
    times = {name: [] for name in runs}
    shuffle = np.random.default_rng(0)
    for round_ in range(repeats):
        for name in shuffle.permutation(list(runs)):
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
        _log(f"round {round_ + 1} of {repeats} done")
    return times


def _log(text: str) -> None:
    """Progress on stderr (a full CPU run takes long)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


RATIOS = (
    ("jopt plain", "jopt#2 plain"),
    ("jopt refresh", "jopt plain"),
    ("jopt plain", "port plain"),
    ("jopt refresh", "port refresh"),
    ("port refresh", "port plain"),
    ("jopt plain", "authors plain"),
    ("jopt refresh", "authors refresh"),
    ("authors refresh", "authors plain"),
)


def ratios(times: dict[str, list[float]]) -> dict[str, dict]:
    """Per-round ratios of the pairs present, and the refresh's extra time over the branch."""
    out = {}
    for a, b in RATIOS:
        if a in times and b in times:
            out[f"{a} / {b}"] = _quantiles(list(np.divide(times[a], times[b])))
    if "jopt branch" in times:
        extra = np.subtract(times["jopt refresh"], times["jopt plain"])
        out["(jopt refresh − jopt plain) / jopt branch"] = _quantiles(
            list(extra / np.asarray(times["jopt branch"]))
        )
    return out


# --- the report -------------------------------------------------------------------------


def render(results: dict) -> str:
    """The results as markdown."""
    lines = [
        f"# SOAP on `{results['shape']}` ({results['description']})",
        "",
        f"{results['date']}, {results['machine']['device']} ({results['machine']['cpu']}), "
        f"{results['machine']['cpus_available']} CPUs, {results['repeats']} rounds, "
        f"load {results['load_before']} → {results['load_after']}; jopt.soap() defaults.",
        "",
        "| system | step | median ms | quartiles ms |",
        "|---|---|---|---|",
    ]
    for name, entry in results["step_s"].items():
        system, _, kind = name.rpartition(" ")
        lines.append(
            f"| {system} | {kind} | {1e3 * entry['median']:.1f} | "
            f"{1e3 * entry['q25']:.1f}–{1e3 * entry['q75']:.1f} |"
        )
    for name, seconds in results["first_s"].items():
        lines.append(f"| {name} | first (once) | {1e3 * seconds:.1f} | |")
    lines += ["", "| ratio (median of per-round ratios) | median | quartiles |", "|---|---|---|"]
    for name, entry in results["ratios"].items():
        lines.append(f"| {name} | {entry['median']:.3f} | {entry['q25']:.3f}–{entry['q75']:.3f} |")
    state = results["state_bytes"]
    lines += [
        "",
        "| state | bytes | MiB |",
        "|---|---|---|",
        *(f"| {name} | {n:,} | {n / 2**20:.1f} |" for name, n in state.items()),
        "",
        f"jopt compile: {results['jopt_compile_s']:.1f} s for two executables of the step.",
    ]
    return "\n".join(lines) + "\n"


def run(args) -> dict:
    shapes = shape_sets.transformer(args.quick)
    params, grads = systems.host_arrays(shapes)
    timings: dict = {}
    jopt_system = JoptSystem(shapes.leaves, params, grads, timings)
    state_bytes = {
        "jopt": jopt_system.nbytes,
        "jopt matrices": jopt_system.matrix_bytes,
        "jopt expected from shapes": jopt_system.expected["total"],
    }
    if jopt_system.nbytes != jopt_system.expected["total"]:
        raise SystemExit(f"jopt's state bytes {state_bytes} differ from the count from shapes")
    runs = jopt_system.runs()
    first = {"jopt": timings["jopt_first_s"]}
    kinds = [k for k in args.systems if k != "jopt"]
    if "authors" in kinds and not os.environ.get("SOAP_REFERENCE"):
        raise SystemExit("the authors' code needs SOAP_REFERENCE=path/to/soap.py")
    for kind in kinds:
        system = TorchSystem(kind, params, grads, timings, os.environ.get("SOAP_REFERENCE"))
        state_bytes[kind] = system.nbytes
        first[kind] = timings[f"{kind}_first_s"]
        runs.update(system.runs())
    times = time_rounds(runs, args.repeats)
    return {
        "shape": shapes.name,
        "description": shapes.description,
        "n_params": shapes.n_params,
        "state_bytes": state_bytes,
        "first_s": first,
        "jopt_compile_s": timings["jopt_compile_s"],
        "step_s": {name: _quantiles(t) for name, t in times.items()},
        "all_step_s": times,
        "ratios": ratios(times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny transformer")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--threads", type=int, default=None, help="CPUs to use (all)")
    parser.add_argument(
        "--systems",
        type=lambda text: text.split(","),
        default=None,
        help="comma-separated from jopt, port, authors (default: jopt and port, and "
        "authors when SOAP_REFERENCE is set)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.systems is None:
        args.systems = ["jopt", "port"] + (["authors"] if os.environ.get("SOAP_REFERENCE") else [])
    unknown = sorted(set(args.systems) - {"jopt", "port", "authors"})
    if unknown or "jopt" not in args.systems:
        parser.error(f"--systems: jopt and any of port, authors; got {args.systems}")
    threads = _pin_threads(args.threads)
    if systems.torch_available():
        import torch

        torch.set_num_threads(threads)
    import jax

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(threads, "cpu" if systems.torch_available() else None),
        "repeats": args.repeats,
        "quick": args.quick,
        "systems": args.systems,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "load_before": load(),
    }
    results.update(run(args))
    results["load_after"] = load()
    text = render(results)
    print(text)
    if not args.no_save:
        stem = f"soap-{jax.devices()[0].platform}" + ("-quick" if args.quick else "")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / f"{stem}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
