"""Peak memory of a donated step, one system per process.

Run as ``python -m benchmarks.memory --system jopt --shape big --optimizer adam``; it
prints one JSON object.  The harness starts one such process per system so that no
system's buffers, allocator caches or compiled code count against another's.

On CPU the measure is the resident set size (RSS).  The process compiles the step (or
loads the executable the harness serialized, to skip a second long compile), then
notes its RSS ``r₀``, allocates the parameters, gradients and optimizer state, runs one
step, resets the kernel's RSS high-water mark (``/proc/self/clear_refs``), runs
``steps`` more and reads the high-water mark ``h``.  The reported peak is ``h − r₀``:
the data plus whatever a step allocates on top of it.  Where the high-water mark
cannot be reset, ``ru_maxrss`` is used and the method says so (it may then include
earlier peaks).  On a GPU the measure is the device allocator's peak
(``memory_stats()['peak_bytes_in_use']``, torch's ``max_memory_allocated``), which
counts the data too.

``ratio = peak / (params + grads + state)``; 1.0 means a step needs no memory beyond
its operands.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import resource
import sys
import warnings


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _status_bytes("VmHWM") is not None


class _Rss:
    """RSS now, and the high-water mark since :meth:`reset` (or since the start)."""

    def __init__(self):
        self.resettable = False

    def now(self) -> int:
        rss = _status_bytes("VmRSS")
        return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def reset(self) -> None:
        self.resettable = _reset_peak()

    def peak(self) -> int:
        if self.resettable:
            return _status_bytes("VmHWM")
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @property
    def method(self) -> str:
        return "rss-highwater-reset" if self.resettable else "rss-ru_maxrss"


def probe_jax(args) -> dict:
    import jax
    import jax.numpy as jnp

    from benchmarks import systems
    from benchmarks.shapes import SHAPES

    shapes = SHAPES[args.shape](args.tiny)
    step, opt = systems.jax_step(args.system, args.optimizer)
    if args.executable:
        from jax.experimental import serialize_executable

        with open(args.executable, "rb") as f:
            payload, in_tree, out_tree = pickle.load(f)
        executable = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    else:
        params = systems.abstract_params(shapes)
        executable = step.lower(params, jax.eval_shape(opt.init, params), params).compile()
    device = jax.devices()[0]
    on_cpu = device.platform == "cpu"
    jnp.zeros(8).block_until_ready()  # start the runtime before the baseline
    gc.collect()
    rss = _Rss()
    rss0 = rss.now()
    params = shapes.nested(lambda path, shape: jnp.full(shape, 0.5, jnp.float32))
    grads = shapes.nested(lambda path, shape: jnp.full(shape, 1e-3, jnp.float32))
    state = opt.init(params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params, state = executable(params, state, grads)
        jax.block_until_ready((params, state))
        data = rss.now() - rss0
        rss.reset()
        for _ in range(args.steps):
            params, state = executable(params, state, grads)
        jax.block_until_ready((params, state))
    result = {"warnings": sorted({str(w.message)[:200] for w in caught})}
    if on_cpu:
        result.update(method=rss.method, data_bytes=data, peak_bytes=rss.peak() - rss0)
    else:
        stats = device.memory_stats() or {}
        result.update(
            method="device-peak",
            data_bytes=stats.get("bytes_in_use"),
            peak_bytes=stats.get("peak_bytes_in_use"),
        )
    return result


def probe_torch(args) -> dict:
    import torch

    from benchmarks import systems
    from benchmarks.shapes import SHAPES

    torch.set_num_threads(args.threads)
    shapes = SHAPES[args.shape](args.tiny)
    device = args.torch_device
    # A step on a tiny tensor first: it loads the kernels' code pages and starts the
    # thread pool, which must not be counted as the step's memory.
    warm = torch.nn.Parameter(torch.zeros(1024, device=device))
    warm.grad = torch.ones(1024, device=device)
    with torch.no_grad():
        systems.torch_optimizer(args.system, args.optimizer, [warm]).step()
    del warm
    gc.collect()
    rss = _Rss()
    rss0 = rss.now()
    params = []
    for shape in shapes.leaves.values():
        param = torch.nn.Parameter(torch.full(shape, 0.5, device=device))
        param.grad = torch.full(shape, 1e-3, device=device)
        params.append(param)
    optimizer = systems.torch_optimizer(args.system, args.optimizer, params)
    with torch.no_grad():
        optimizer.step()  # creates the state
        data = rss.now() - rss0
        rss.reset()
        for _ in range(args.steps):
            optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return {
            "method": "device-peak",
            "data_bytes": torch.cuda.memory_allocated(),
            "peak_bytes": torch.cuda.max_memory_allocated(),
            "warnings": [],
        }
    return {
        "method": rss.method,
        "data_bytes": data,
        "peak_bytes": rss.peak() - rss0,
        "warnings": [],
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks import systems
    from benchmarks.shapes import SHAPES

    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--system", required=True, choices=systems.SYSTEMS)
    parser.add_argument("--shape", required=True, choices=sorted(SHAPES))
    parser.add_argument("--optimizer", required=True, choices=systems.registry())
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--torch-device", default="cpu")
    parser.add_argument("--executable", help="a pickled serialized JAX executable")
    args = parser.parse_args(argv)
    if args.system in systems.JAX_SYSTEMS:
        result = probe_jax(args)
    else:
        result = probe_torch(args)
    n_params = SHAPES[args.shape](args.tiny).n_params
    expected = systems.expected_bytes(args.optimizer, n_params)
    result.update(
        system=args.system,
        shape=args.shape,
        optimizer=args.optimizer,
        expected_bytes=expected,
        ratio=None if result["peak_bytes"] is None else result["peak_bytes"] / expected,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
