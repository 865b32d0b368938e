"""Placement, digests, checkpoints and the printed summary of ``data_parallel.py``.

The plumbing of the data-parallel example, apart from its steps and training loop:
host values laid out on the mesh by every process, a digest that compares runs bit for
bit across processes, orbax checkpoints of the sharded params and state, the bytes of
Adam's moments on each device, and the summary printed (or written as JSON) at the end.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jopt

# --- placement, digests, checkpoints -----------------------------------------------


def global_array(value: np.ndarray, sharding) -> jax.Array:
    # Every process holds the same host value; each fills its own devices' shards, so
    # this works unchanged across processes after jax.distributed.initialize().
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def digest(tree, replicated) -> str:
    """SHA-256 of the leaves' bytes, gathered from every process: equal means bitwise equal."""
    # One compiled copy to a replicated layout: every process then holds every value.
    gathered = jax.jit(lambda t: t, out_shardings=replicated)(tree)
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(gathered):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def _orbax():
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        sys.exit("--checkpoint and --resume need orbax-checkpoint: pip install orbax-checkpoint")
    return ocp


def save_checkpoint(path: Path, params, state, step: int, replicated) -> None:
    """Params, state and step with orbax; each process writes its devices' shards."""
    ocp = _orbax()
    tree = {"params": params, "opt_state": state, "step": global_array(np.int32(step), replicated)}
    with ocp.StandardCheckpointer() as checkpointer:  # leaving waits for the writes
        checkpointer.save(path.resolve(), tree)


def restore_checkpoint(path: Path, params_sh, state_sh, host_params, optimizer, replicated):
    """``(params, state, step)`` from a checkpoint, laid out on this run's mesh."""
    ocp = _orbax()
    shapes = jax.eval_shape(optimizer.init, host_params)
    target = {
        "params": jax.tree.map(
            lambda p, s: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=s), host_params, params_sh
        ),
        "opt_state": jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, state_sh
        ),
        "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
    }
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(path.resolve(), target)
    return restored["params"], restored["opt_state"], int(restored["step"])


def moment_bytes(state) -> dict[int, int]:
    """Bytes of Adam's two moments on each of this process's devices, by device id."""
    moments = [jopt.tree_get(state, "mu"), jopt.tree_get(state, "nu")]
    held = {device.id: 0 for device in jax.local_devices()}
    for leaf in jax.tree.leaves(moments):
        for shard in leaf.addressable_shards:
            held[shard.device.id] += shard.data.nbytes
    return held


# --- output ----------------------------------------------------------------------------


def _max_difference(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


def _moment(leaf) -> bool:
    return ".mu[" in leaf.path or ".nu[" in leaf.path


def summarize(setup, results: dict) -> dict:
    """The run's figures: ``setup`` is the example's ``Setup``, ``results`` its variants."""
    first = next(iter(results.values()))
    moments = [jopt.tree_get(first["state"], name) for name in ("mu", "nu")]
    summary = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "steps": setup.args.steps,
        "batch_size": setup.batch_size,
        "state_split": [leaf.path for leaf in setup.report.split],
        "state_replicated": [leaf.path for leaf in setup.report.replicated],
        "state_bytes_per_device": setup.report.device_nbytes,
        "state_bytes_total": setup.report.nbytes,
        "moment_bytes": moment_bytes(first["state"]),
        "moment_bytes_total": sum(leaf.nbytes for leaf in jax.tree.leaves(moments)),
        # What the report expects each device to hold: 1/n of the split moments plus
        # the moments it had to replicate.
        "moment_bytes_split": sum(leaf.nbytes for leaf in setup.report.split if _moment(leaf)),
        "moment_bytes_replicated": sum(
            leaf.nbytes for leaf in setup.report.replicated if _moment(leaf)
        ),
        "variants": {
            name: {k: v for k, v in result.items() if k not in ("params", "state")}
            for name, result in results.items()
        },
        "final_loss": first["final_loss"],
    }
    if len(results) == 2:
        params = [result["params"] for result in results.values()]
        summary["max_param_difference"] = _max_difference(*params)
    return summary


def print_summary(summary: dict, report) -> None:
    if summary["process_index"] == 0:
        print(
            f"{summary['devices']} {summary['platform']} device(s) in "
            f"{summary['process_count']} process(es), global batch {summary['batch_size']}, "
            f"{summary['steps']} steps"
        )
        print(report)
        for name, result in summary["variants"].items():
            losses, rate = result["losses"], result["steps_per_s"]
            print(
                f"{name:>9}: batch loss {losses[0]:.3f} -> {losses[-1]:.3f} from step "
                f"{result['start_step']}, test accuracy {result['test_accuracy']:.3f}"
                + (f", {rate:.0f} steps/s" if rate is not None else "")
            )
        if "max_param_difference" in summary:
            difference = summary["max_param_difference"]
            print(f"max |params(jit) - params(shard_map)| = {difference:.2e}")
    held = summary["moment_bytes"]
    n = summary["devices"]
    print(
        f"process {summary['process_index']}: Adam's moments on its devices "
        + ", ".join(f"{device}: {nbytes} B" for device, nbytes in held.items())
        + f"; 1/{n} of the {summary['moment_bytes_split']} B split is "
        f"{summary['moment_bytes_split'] // n} B, plus {summary['moment_bytes_replicated']} B "
        "replicated"
    )
