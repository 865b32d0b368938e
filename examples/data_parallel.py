"""Data-parallel training of the digits MLP over every visible device, with ZeRO-1 state.

The model, data and loss are the lecture's digits task, :mod:`jopt.lecture.digits`
(a 64-hidden-10 tanh MLP on scikit-learn's digits).

The batch is split over a one-axis device mesh called ``data``; the params are
replicated; Adam's moments are split over the devices by
:func:`jopt.sharding.zero_shardings`, so each device stores 1/n of them.  The same
training runs twice from the same start:

* **global view** (``jax.jit`` with shardings): the step is written as if for one
  device, and XLA's SPMD partitioner inserts the collectives (gradient all-reduce,
  per-device state update, gather of the new params);
* **per device** (``jax.shard_map``): each device computes the gradient of its part
  of the batch, ``lax.pmean`` averages it, each device updates its own block of the
  state from its block of the gradient, and ``lax.all_gather`` reassembles the update.

Both give the same params to float32 rounding.

Run on 8 simulated CPU devices::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \\
        python examples/data_parallel.py
    python examples/data_parallel.py --cpu-devices 8        # the same, set in-process

and unchanged on a host with several GPUs: ``python examples/data_parallel.py``.
Needs scikit-learn (``pip install "jopt[examples]"``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jopt
from jopt.lecture import digits
from jopt.sharding import zero_shardings

AXIS = "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="global batch, rounded up to a multiple of the device count (default 256)",
    )
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        metavar="N",
        help="run on N simulated CPU devices instead of the default backend",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "hidden"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.cpu_devices is not None and args.cpu_devices < 1:
        parser.error(f"--cpu-devices must be >= 1, got {args.cpu_devices}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be > 0, got {args.learning_rate}")
    return args


# --- the two data-parallel steps -----------------------------------------------------


def make_global_step(optimizer, params_sh, state_sh, batch_sh, replicated):
    """One jitted step on global arrays; the shardings make XLA partition it."""

    @partial(
        jax.jit,
        in_shardings=(params_sh, state_sh, batch_sh, batch_sh),
        out_shardings=(params_sh, state_sh, replicated),
        donate_argnums=(0, 1),
    )
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(digits.loss)(params, (x, y))
        updates, state = optimizer.update(grads, state, params)
        return jopt.apply_updates(params, updates), state, loss

    return step


def _split_dim(sharding) -> int | None:
    """The dimension a ZeRO layout splits over the data axis, None if it is not split."""
    if sharding is None:
        return None
    for d, entry in enumerate(sharding.spec):
        if entry == AXIS or (isinstance(entry, tuple) and AXIS in entry):
            return d
    return None


def make_shard_map_step(optimizer, mesh, state_sh, param_zero_sh):
    """The same step written per device with ``shard_map`` and explicit collectives."""
    n = mesh.shape[AXIS]
    dims = jax.tree.map(_split_dim, param_zero_sh, is_leaf=lambda s: s is None)

    def own_block(x, dim):
        # This device's block of a replicated array, the block its state leaves hold.
        if dim is None:
            return x
        size = x.shape[dim] // n
        return lax.dynamic_slice_in_dim(x, lax.axis_index(AXIS) * size, size, axis=dim)

    def gather_blocks(blocks: list[jax.Array], split_dims: list[int]) -> list[jax.Array]:
        # One all-gather for all split leaves: each device contributes its blocks as one
        # flat vector; row i of the result holds device i's blocks, which are reshaped
        # and laid side by side along each leaf's split dimension.
        flat = jnp.concatenate([b.reshape(-1) for b in blocks])
        rows = lax.all_gather(flat, AXIS, to="invarying")  # (n, flat.size), on every device
        out, offset = [], 0
        for block, dim in zip(blocks, split_dims, strict=True):
            pieces = rows[:, offset : offset + block.size].reshape((n, *block.shape))
            offset += block.size
            full = list(block.shape)
            full[dim] *= n
            out.append(jnp.moveaxis(pieces, 0, dim).reshape(full))
        return out

    def local_step(params, state, x, y):
        # The params enter replicated.  Differentiating with respect to them as they
        # are would make JAX sum the gradient over the devices by itself; marking this
        # device's copy as its own ("varying") keeps the gradient local, so that the
        # averaging below is the one collective that does it.
        own_params = lax.pcast(params, AXIS, to="varying")
        loss, grads = jax.value_and_grad(digits.loss)(own_params, (x, y))  # this device's rows
        # The global-batch mean, as one all-reduce of the whole gradient.  One
        # collective each way (here and in gather_blocks) sends fewer, larger messages,
        # as DDP's gradient buckets do, and fixes the order of the collectives, which
        # must be the same on every device.
        flat, unravel = ravel_pytree((loss, grads))
        loss, grads = unravel(lax.pmean(flat, AXIS))
        grad_blocks = jax.tree.map(own_block, grads, dims)
        param_blocks = jax.tree.map(own_block, params, dims)
        update_blocks, state = optimizer.update(grad_blocks, state, param_blocks)
        leaves, treedef = jax.tree.flatten(update_blocks)
        leaf_dims = treedef.flatten_up_to(dims)
        split = [i for i, d in enumerate(leaf_dims) if d is not None]
        gathered = gather_blocks([leaves[i] for i in split], [leaf_dims[i] for i in split])
        for i, full in zip(split, gathered, strict=True):
            leaves[i] = full
        updates = treedef.unflatten(leaves)
        return jopt.apply_updates(params, updates), state, loss

    state_specs = jax.tree.map(lambda s: s.spec, state_sh)
    sharded = jax.shard_map(
        local_step,
        mesh=mesh,
        in_specs=(P(), state_specs, P(AXIS), P(AXIS)),
        out_specs=(P(), state_specs, P()),
    )
    return jax.jit(sharded, donate_argnums=(0, 1))


# --- driver --------------------------------------------------------------------------


def _global_array(value: np.ndarray, sharding) -> jax.Array:
    # Every process holds the same host value; each fills its own devices' shards, so
    # this works unchanged across hosts after jax.distributed.initialize().
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _device_bytes(state, device) -> int:
    return sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(state)
        for shard in leaf.addressable_shards
        if shard.device == device
    )


def train(step, params, state, batches) -> tuple[dict, object, list[float], float]:
    losses, start = [], None
    for i, (x, y) in enumerate(batches):
        params, state, loss = step(params, state, x, y)
        losses.append(loss)
        if i == 0:  # leave compilation out of the timing
            jax.block_until_ready(params)
            start = time.perf_counter()
    jax.block_until_ready((params, state))
    elapsed = time.perf_counter() - start if len(losses) > 1 else float("nan")
    return params, state, [float(v) for v in losses], elapsed


def _configure_cpu_devices(count: int | None) -> None:
    """Set up simulated CPU devices; must run before JAX starts its backends."""
    if count is not None:
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", count)
    else:
        flag = re.search(
            r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", "")
        )
        count = int(flag.group(1)) if flag else 1
    if count > 1:
        # XLA's CPU client runs max(cores, devices) threads, and a collective holds one
        # thread per device until every device has arrived; on a machine with fewer
        # cores than simulated devices, a thread busy elsewhere can then stall the
        # collective for good.  Spare threads avoid that.
        os.environ.setdefault("PJRT_NPROC", str(max(4 * count, os.cpu_count() or 1)))


def _train_both(args, mesh, split, host_params, optimizer, state_sh, report, batch_size):
    """Train from the same start with each step; per variant, what it reached."""
    replicated = NamedSharding(mesh, P())
    batch_sh = NamedSharding(mesh, P(AXIS))
    params_sh = jax.tree.map(lambda _: replicated, host_params)
    x_train, y_train = split.train

    # The same batches for both runs, drawn on the host and placed split over "data".
    rng = np.random.default_rng(args.seed)
    picks = [rng.choice(len(x_train), batch_size, replace=False) for _ in range(args.steps)]

    def batches():
        for idx in picks:
            yield _global_array(x_train[idx], batch_sh), _global_array(y_train[idx], batch_sh)

    def fresh_start():
        params = jax.tree.map(_global_array, host_params, params_sh)
        # A jitted init with out_shardings allocates each device's block only.
        state = jax.jit(optimizer.init, out_shardings=state_sh)(params)
        return params, state

    global_step = make_global_step(optimizer, params_sh, state_sh, batch_sh, replicated)
    shard_map_step = make_shard_map_step(optimizer, mesh, state_sh, report.param_shardings)
    evaluate = jax.jit(lambda params: digits.accuracy(params, split.test))

    results = {}
    for name, step in (("jit", global_step), ("shard_map", shard_map_step)):
        params, state = fresh_start()
        params, state, losses, elapsed = train(step, params, state, batches())
        mu = jopt.tree_get(state, "mu")
        results[name] = {
            "params": params,
            "first_loss": losses[0],
            "final_loss": float(np.mean(losses[-10:])),
            "test_accuracy": float(evaluate(params)),
            "steps_per_s": (len(losses) - 1) / elapsed if elapsed == elapsed else None,
            # What this process's first device holds (device 0 on a single host).
            "moment_bytes_device0": _device_bytes(mu, jax.local_devices()[0]),
            "moment_bytes_total": sum(leaf.nbytes for leaf in jax.tree.leaves(mu)),
        }
    return results


def _max_difference(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


def _print_summary(summary: dict, report, results: dict) -> None:
    print(
        f"{summary['devices']} {summary['platform']} device(s), global batch "
        f"{summary['batch_size']}, {summary['steps']} steps"
    )
    print(report)
    for name, result in results.items():
        rate = result["steps_per_s"]
        print(
            f"{name:>9}: loss {result['first_loss']:.3f} -> {result['final_loss']:.3f}, "
            f"test accuracy {result['test_accuracy']:.3f}, "
            f"Adam first moment {result['moment_bytes_device0']} B on one device of "
            f"{result['moment_bytes_total']} B"
            + (f", {rate:.0f} steps/s" if rate is not None else "")
        )
    print(f"max |params(jit) - params(shard_map)| = {summary['max_param_difference']:.2e}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    _configure_cpu_devices(args.cpu_devices)

    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
    batch_size = len(devices) * math.ceil(args.batch_size / len(devices))
    split = digits.load(args.seed)
    # On the host: every process fills its own devices' shards from the same values.
    host_params = jax.tree.map(
        np.asarray, digits.init_params(jax.random.key(args.seed), hidden=args.hidden)
    )
    optimizer = jopt.adam(args.learning_rate)
    state_sh, report = zero_shardings(optimizer, host_params, mesh, axis=AXIS)
    results = _train_both(args, mesh, split, host_params, optimizer, state_sh, report, batch_size)

    summary = {
        "devices": len(devices),
        "platform": devices[0].platform,
        "steps": args.steps,
        "batch_size": batch_size,
        "state_split": [leaf.path for leaf in report.split],
        "state_replicated": [leaf.path for leaf in report.replicated],
        "state_bytes_per_device": report.device_nbytes,
        "state_bytes_total": report.nbytes,
        "max_param_difference": _max_difference(
            results["jit"]["params"], results["shard_map"]["params"]
        ),
        **{
            f"{name}_{key}": value
            for name, result in results.items()
            for key, value in result.items()
            if key != "params"
        },
    }
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, report, results)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
