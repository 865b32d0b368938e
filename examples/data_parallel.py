"""Data-parallel training of the digits MLP over every device of one or several processes.

The model, data and loss are the lecture's digits task, :mod:`jopt.lecture.digits`
(a 64-hidden-10 tanh MLP on scikit-learn's digits).

The batch is split over a one-axis device mesh called ``data``; the params are
replicated; Adam's moments are split over the devices by
:func:`jopt.sharding.zero_shardings` (ZeRO-1), so each device stores 1/n of them.  Two
ways to write the step, which give the same params to float32 rounding:

* **global view** (``jax.jit`` with shardings, ``--variant jit``): the step is written
  as if for one device, and XLA's SPMD partitioner inserts the collectives (gradient
  all-reduce, per-device state update, gather of the new params);
* **per device** (``jax.shard_map``, ``--variant shard_map``): each device computes
  the gradient of its part of the batch, ``lax.pmean`` averages it, each device
  updates its own block of the state from its block of the gradient, and
  ``lax.all_gather`` reassembles the update.

By default both run from the same start and the example compares them.  The last
line printed is ``final loss: <float>``, the training-set loss of the first variant's
final params.

One process, 8 simulated CPU devices (or unchanged on a host with several GPUs,
without ``--cpu-devices``)::

    python examples/data_parallel.py --cpu-devices 8

Two processes of 4 CPU devices each, joined by :func:`jax.distributed.initialize`
into one mesh of 8 (:mod:`jopt.sharding.launch` starts them on a free local port;
each process reports the moment bytes on its own devices)::

    python examples/data_parallel.py --processes 2 --cpu-devices 4

Checkpoints (needs ``orbax-checkpoint``): ``--checkpoint DIR --checkpoint-at K`` saves
params, state and step after step K, each process writing its own shards;
``--resume DIR`` continues from there, with any number of processes::

    python examples/data_parallel.py --processes 2 --cpu-devices 4 --variant jit \\
        --steps 40 --checkpoint /tmp/ckpt --checkpoint-at 20
    python examples/data_parallel.py --processes 1 --cpu-devices 8 --variant jit \\
        --steps 40 --resume /tmp/ckpt

On a cluster, start one copy per host with ``--cluster`` (``srun python
examples/data_parallel.py --cluster`` under Slurm, every worker of a Cloud TPU VM),
or set ``JOPT_COORDINATOR_ADDRESS``, ``JOPT_NUM_PROCESSES`` and ``JOPT_PROCESS_ID``
for each copy (Kubernetes): see ``docs/sharding.md``.

``--processes 1`` runs one process through the same distributed runtime and gloo
collectives as ``--processes 2``: the two give the same bits.  Without
``--processes`` the one process uses XLA's in-process collectives, which sum the
devices' gradients in another order: the same run to float32 rounding.
Placement, digests, checkpoints and the printed summary live next to this file, in
``data_parallel_io.py``.  Needs scikit-learn (``pip install "jopt[examples]"``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jopt
from jopt.lecture import digits
from jopt.sharding import launch, zero_shardings

# The placement, checkpoint and summary helpers live next to this file; put its folder on
# the path however this file is run (as a script, or loaded from its path by a test).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_parallel_io import (  # noqa: E402
    digest,
    global_array,
    print_summary,
    restore_checkpoint,
    save_checkpoint,
    summarize,
)

AXIS = "data"
VARIANTS = ("jit", "shard_map")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--steps", type=int, default=300, help="training steps (default 300)")
    add(
        "--batch-size",
        type=int,
        default=256,
        help="global batch, rounded up to a multiple of the device count (default 256)",
    )
    add("--learning-rate", type=float, default=3e-3)
    add("--hidden", type=int, default=128, help="hidden units (default 128)")
    add("--seed", type=int, default=0)
    add("--variant", choices=(*VARIANTS, "both"), default="both", help="the step (default both)")
    add("--cpu-devices", type=int, default=None, metavar="N", help="simulate N CPU devices")
    add("--processes", type=int, default=None, metavar="P", help="start P JAX processes")
    add("--timeout", type=float, default=600.0, help="seconds for --processes (default 600)")
    add(
        "--cluster",
        action="store_true",
        help="join a cluster's processes with jax.distributed.initialize() (Slurm, Cloud TPU)",
    )
    add("--checkpoint", type=Path, default=None, metavar="DIR", help="save a checkpoint here")
    add("--checkpoint-at", type=int, default=None, metavar="K", help="after step K (default: last)")
    add("--resume", type=Path, default=None, metavar="DIR", help="continue from a checkpoint")
    add("--json", action="store_true", help="print a JSON summary instead of text")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "hidden", "cpu_devices", "processes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be > 0, got {args.learning_rate}")
    if (args.checkpoint or args.resume) and args.variant == "both":
        parser.error("--checkpoint and --resume need one --variant (jit or shard_map)")
    if args.checkpoint_at is not None and not 1 <= args.checkpoint_at <= args.steps:
        parser.error(f"--checkpoint-at must be in [1, --steps], got {args.checkpoint_at}")
    if args.cluster and (args.processes or args.cpu_devices):
        parser.error("--cluster takes the processes and devices the cluster gives")
    if args.checkpoint_at is not None and args.checkpoint is None:
        parser.error("--checkpoint-at needs --checkpoint DIR")
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


# --- one training run ----------------------------------------------------------------


class Setup:
    """The mesh, data, start and shardings shared by the variants."""

    def __init__(self, args):
        self.args = args
        devices = jax.devices()
        self.mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
        self.batch_size = len(devices) * math.ceil(args.batch_size / len(devices))
        self.split = digits.load(args.seed)
        # On the host: every process fills its own devices' shards from the same values.
        self.host_params = jax.tree.map(
            np.asarray, digits.init_params(jax.random.key(args.seed), hidden=args.hidden)
        )
        self.optimizer = jopt.adam(args.learning_rate)
        self.state_sh, self.report = zero_shardings(
            self.optimizer, self.host_params, self.mesh, axis=AXIS
        )
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sh = NamedSharding(self.mesh, P(AXIS))
        self.params_sh = jax.tree.map(lambda _: self.replicated, self.host_params)
        # The same batches for every variant and every run with this seed.
        rng = np.random.default_rng(args.seed)
        n = len(self.split.x_train)
        self.picks = [rng.choice(n, self.batch_size, replace=False) for _ in range(args.steps)]
        self.evaluate = jax.jit(
            lambda params, train, test: (digits.loss(params, train), digits.accuracy(params, test)),
            out_shardings=self.replicated,
        )

    def batch(self, t: int):
        x, y = self.split.train
        idx = self.picks[t]
        return global_array(x[idx], self.batch_sh), global_array(y[idx], self.batch_sh)

    def on_mesh(self, batch):
        return tuple(global_array(part, self.replicated) for part in batch)

    def start(self):
        """``(params, state, step)``: fresh, or from ``--resume``."""
        if self.args.resume is not None:
            return restore_checkpoint(
                self.args.resume,
                self.params_sh,
                self.state_sh,
                self.host_params,
                self.optimizer,
                self.replicated,
            )
        params = jax.tree.map(global_array, self.host_params, self.params_sh)
        # A jitted init with out_shardings allocates each device's block only.
        state = jax.jit(self.optimizer.init, out_shardings=self.state_sh)(params)
        return params, state, 0

    def step_fn(self, variant: str):
        if variant == "jit":
            return make_global_step(
                self.optimizer, self.params_sh, self.state_sh, self.batch_sh, self.replicated
            )
        return make_shard_map_step(
            self.optimizer, self.mesh, self.state_sh, self.report.param_shardings
        )


def train(setup: Setup, variant: str) -> dict:
    """Train one variant from the start (or the checkpoint) to ``--steps``."""
    args = setup.args
    params, state, first = setup.start()
    if first >= args.steps:
        sys.exit(f"data_parallel: the checkpoint is at step {first}; raise --steps past it")
    step = setup.step_fn(variant)
    save_at = args.checkpoint_at or args.steps
    losses, start = [], None
    for t in range(first, args.steps):
        params, state, loss = step(params, state, *setup.batch(t))
        losses.append(loss)
        if start is None:  # leave compilation out of the timing
            jax.block_until_ready(params)
            start = time.perf_counter()
        if args.checkpoint is not None and t + 1 == save_at:
            save_checkpoint(args.checkpoint, params, state, t + 1, setup.replicated)
    jax.block_until_ready((params, state))
    elapsed = time.perf_counter() - start if len(losses) > 1 else float("nan")
    final_loss, accuracy = setup.evaluate(
        params, setup.on_mesh(setup.split.train), setup.on_mesh(setup.split.test)
    )
    return {
        "params": params,
        "state": state,
        "start_step": first,
        "losses": [float(v) for v in losses],
        "final_loss": float(final_loss),
        "test_accuracy": float(accuracy),
        "steps_per_s": (len(losses) - 1) / elapsed if elapsed == elapsed else None,
        "digest": digest((params, state), setup.replicated),
    }


# --- entry points ----------------------------------------------------------------------


def launch_processes(args, argv: list[str]) -> float:
    """Run this script as ``--processes`` JAX processes; their common final loss."""
    try:
        results = launch.run(
            [sys.executable, str(Path(__file__).resolve()), *argv],
            processes=args.processes,
            cpu_devices=args.cpu_devices,
            timeout=args.timeout,
            echo=True,
        )
    except launch.LaunchError as error:
        print(f"data_parallel: {error}", file=sys.stderr)
        sys.exit(error.returncode)
    finals = {r.stdout.strip().splitlines()[-1] for r in results}
    if len(finals) != 1 or not next(iter(finals)).startswith("final loss: "):
        sys.exit(f"data_parallel: the processes disagree on the final loss: {sorted(finals)}")
    return float(next(iter(finals)).removeprefix("final loss: "))


def main(argv: list[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.processes is not None and not launch.is_launched():
        print(f"final loss: {launch_processes(args, argv)!r}")
        return None
    if args.cluster:  # the cluster tells each process the coordinator and its id
        jax.distributed.initialize()
    else:
        launch.initialize(cpu_devices=args.cpu_devices)
    setup = Setup(args)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    results = {name: train(setup, name) for name in variants}
    summary = summarize(setup, results)
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary, setup.report)
    print(f"final loss: {summary['final_loss']!r}")
    return summary


if __name__ == "__main__":
    main()
