"""A checkpoint saved by two processes resumes in one process and in two, bit for bit.

``examples/data_parallel.py`` trains the digits MLP with ZeRO-1 Adam over 8 devices
in 2 processes and saves params, state and step with orbax after step 5 (each
process writes the shards on its own devices), then trains on to step 10: the
unbroken run.  Resuming from that checkpoint in 1 process of 8 devices and in 2
processes of 4, and training to step 10, gives the unbroken run's params and state
bit for bit (SHA-256 of every leaf, gathered from all processes) and its losses.

The one-process run joins JAX's distributed runtime alone (``--processes 1``), so
its collectives are gloo's, as in the two-process run: XLA's in-process
collectives, used when a process starts without it, sum the devices' gradients in
another order, which test_multiprocess checks to 1e-6 instead.  The runs are made
once by ``distributed_runs.example_runs`` and shared with test_multiprocess.
"""

from __future__ import annotations

import pytest
from distributed_runs import CHECKPOINT_AT, STEPS, example_runs

pytestmark = pytest.mark.slow


def _summary(name: str, process: int = 0) -> dict:
    return example_runs()[name]["summaries"][process]


def test_each_process_wrote_its_own_shards():
    checkpoint = example_runs()["checkpoint"]
    # orbax's OCDBT layout: one folder of data per process that wrote shards.
    written = sorted(p.name for p in checkpoint.iterdir() if p.name.startswith("ocdbt.process_"))
    assert written == ["ocdbt.process_0", "ocdbt.process_1"], sorted(
        p.name for p in checkpoint.iterdir()
    )


@pytest.mark.parametrize("resumed, processes", [("resumed_one", 1), ("resumed_two", 2)])
def test_resumed_run_equals_the_unbroken_run_bit_for_bit(resumed, processes):
    unbroken = _summary("two")["variants"]["jit"]
    runs = example_runs()[resumed]["summaries"]
    assert sorted(runs) == list(range(processes))
    for process, summary in runs.items():
        assert summary["process_count"] == processes and summary["devices"] == 8, summary
        result = summary["variants"]["jit"]
        assert result["start_step"] == CHECKPOINT_AT, (process, result["start_step"])
        assert result["losses"] == unbroken["losses"][CHECKPOINT_AT:STEPS], process
        assert result["digest"] == unbroken["digest"], (process, "params and state differ")
        assert result["final_loss"] == unbroken["final_loss"]


def test_the_unbroken_run_is_the_same_on_both_processes():
    # Both processes gathered the same params and state: their digests agree.
    digests = {s["variants"]["jit"]["digest"] for s in example_runs()["two"]["summaries"].values()}
    assert len(digests) == 1, digests
