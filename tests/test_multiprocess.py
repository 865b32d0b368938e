"""Two JAX processes on this machine as one 8-device mesh: the multi-host code path.

``jopt.sharding.launch`` starts the processes (``jax.distributed.initialize`` on a
free local port, 4 simulated CPU devices each, gloo collectives between them).

* ``examples/data_parallel.py --processes 2 --cpu-devices 4`` trains the digits MLP
  with ZeRO-1 Adam and equals the same run in one process of 8 devices to 1e-6
  relative (the all-reduce sums the devices' gradients in another order there: the
  two agree to float32 rounding, not bit for bit); each process holds 1/8 of the
  moments on each of its devices, plus the leaves the report lists as replicated.
  The reference is the one-process run, whose ZeRO step equals optax on one device
  in test_sharding.
* The launcher stops the run, names the process that failed and exits with its
  status when a peer dies (for real: the survivor waits in a cross-process
  collective), and exits with 124 when the run outlives its timeout.

The runs of the example are shared with test_sharded_checkpoint (``distributed_runs``).
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time

import numpy as np
import pytest
from distributed_runs import STEPS, child_env, example_runs

from jopt.sharding import launch

pytestmark = pytest.mark.slow

HIDDEN, FEATURES, CLASSES, DEVICES = 128, 64, 10, 8


def test_two_processes_form_one_mesh_and_end_with_the_final_loss():
    runs = example_runs()
    two = runs["two"]
    assert sorted(two["summaries"]) == [0, 1]
    for summary in two["summaries"].values():
        assert summary["process_count"] == 2 and summary["devices"] == DEVICES, summary
    final = two["last_line"]
    assert final.startswith("final loss: "), final
    assert float(final.removeprefix("final loss: ")) == two["summaries"][0]["final_loss"]


def test_two_processes_equal_one_process_of_eight_devices():
    runs = example_runs()
    two = runs["two"]["summaries"][0]["variants"]["jit"]
    one = runs["one"]["summaries"][0]["variants"]["jit"]
    assert runs["one"]["summaries"][0]["process_count"] == 1
    assert len(two["losses"]) == len(one["losses"]) == STEPS
    assert one["losses"][-1] < 0.7 * one["losses"][0], one["losses"]  # it trains
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-6)
    np.testing.assert_allclose(two["final_loss"], one["final_loss"], rtol=1e-6)
    final_one = float(runs["one"]["last_line"].removeprefix("final loss: "))
    final_two = float(runs["two"]["last_line"].removeprefix("final loss: "))
    assert abs(final_two - final_one) <= 1e-6 * abs(final_one), (final_two, final_one)


def test_each_process_holds_an_eighth_of_the_moments_per_device():
    # Adam's mu and nu for the 64-128-10 MLP, float32: every leaf splits over the
    # 8 devices but the 10 output biases, which every device holds whole.
    split = FEATURES * HIDDEN + HIDDEN + HIDDEN * CLASSES
    total = 2 * (split + CLASSES) * 4
    per_device = 2 * (split // DEVICES + CLASSES) * 4
    seen = []
    for index, summary in example_runs()["two"]["summaries"].items():
        held = summary["moment_bytes"]
        assert len(held) == 4, (index, held)
        assert set(held.values()) == {per_device}, (index, held, per_device)
        assert summary["moment_bytes_total"] == total
        seen += held
        replicated = sorted(summary["state_replicated"])
        assert replicated == ["[0].count", "[0].mu['layer1']['b']", "[0].nu['layer1']['b']"]
    assert len(set(seen)) == DEVICES, seen  # the two processes hold different devices


# --- failures: a peer that dies, a run that hangs, exit statuses ------------------------

_PEER_DIES = textwrap.dedent(
    """
    from jopt.sharding import launch
    launch.initialize()
    import jax
    from jax.experimental import multihost_utils
    if jax.process_index() == 1:
        raise RuntimeError("process 1 gives up")
    print("process 0 waits for process 1 in a collective", flush=True)
    multihost_utils.sync_global_devices("never reached by process 1")
    print("process 0 got past the collective")
    """
)


def test_a_dead_peer_stops_the_run_and_is_named(tmp_path):
    script = tmp_path / "peer.py"
    script.write_text(_PEER_DIES)
    start = time.monotonic()
    with pytest.raises(launch.LaunchError) as info:
        launch.run(
            [sys.executable, str(script)], processes=2, cpu_devices=2, timeout=120,
            env={"PYTHONPATH": child_env()["PYTHONPATH"]},
        )  # fmt: skip
    elapsed = time.monotonic() - start
    error = info.value
    assert error.process_id == 1 and error.returncode == 1, str(error)
    message = str(error)
    assert "process 1 of 2 failed with exit status 1" in message
    assert "stopped process(es) 0" in message and "RuntimeError: process 1 gives up" in message
    survivor = error.results[0]
    assert survivor.returncode is None, survivor  # stopped by the launcher, not finished
    assert "waits for process 1" in survivor.stdout
    assert "got past" not in survivor.stdout
    # JAX's own timeouts (30 s for the collective, 100 s heartbeat) were not waited for.
    assert elapsed < 60, elapsed


def _cli(capsys, *args) -> tuple[int, str, str]:
    status = launch.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


_BY_ID = "import os, sys, time; i = int(os.environ['JOPT_PROCESS_ID']); "


def test_cli_success_echoes_each_process(capsys):
    status, out, _ = _cli(
        capsys, "--processes", "2", "--", sys.executable, "-c", _BY_ID + "print('hello', i)"
    )
    assert status == 0
    assert "[process 0] hello 0" in out and "[process 1] hello 1" in out


def test_cli_exit_status_is_the_failed_process_status(capsys):
    body = "sys.exit(5) if i == 1 else time.sleep(60)"
    start = time.monotonic()
    status, _, err = _cli(capsys, "--processes", "2", "--", sys.executable, "-c", _BY_ID + body)
    assert status == 5, err
    assert "process 1 of 2 failed with exit status 5; stopped process(es) 0" in err
    assert time.monotonic() - start < 30  # process 0 was stopped, not waited for


def test_cli_killed_process_exits_with_128_plus_signal(capsys):
    body = "os.kill(os.getpid(), 9) if i == 0 else time.sleep(60)"
    status, _, err = _cli(capsys, "--processes", "2", "--", sys.executable, "-c", _BY_ID + body)
    assert status == 128 + signal.SIGKILL, err
    assert "process 0 of 2 was killed by SIGKILL; stopped process(es) 1" in err


def test_cli_timeout_exits_124_and_names_the_processes(capsys):
    body = "print('started', flush=True); time.sleep(60)"
    start = time.monotonic()
    status, _, err = _cli(
        capsys, "--processes", "2", "--timeout", "3", "--", sys.executable, "-c", _BY_ID + body
    )
    assert status == launch.TIMEOUT_STATUS == 124, err
    assert "timed out after 3 s with process(es) 0, 1 of 2 still running" in err
    assert "started" in err  # the end of the output of the first one still running
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"processes": 0}, ValueError, r"processes must be an integer >= 1, got 0"),
        ({"processes": 2.0}, TypeError, r"processes must be an integer"),
        ({"processes": 2, "timeout": 0}, ValueError, r"timeout must be a number > 0"),
        ({"processes": 2, "cpu_devices": 0}, ValueError, r"cpu_devices must be"),
        ({"processes": 2, "env": ["A=1"]}, TypeError, r"env must be a mapping"),
        ({"processes": 2, "echo": 1}, TypeError, r"echo must be a bool"),
    ],
)
def test_run_checks_its_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        launch.run([sys.executable, "-c", "pass"], **kwargs)


@pytest.mark.parametrize("command", ["python -c pass", [], [sys.executable, 3]])
def test_run_checks_the_command(command):
    with pytest.raises((TypeError, ValueError), match="command must be a non-empty list"):
        launch.run(command, processes=1)
