"""The multi-process runs that test_multiprocess and test_sharded_checkpoint check.

``examples/data_parallel.py`` trains the digits MLP with ZeRO-1 Adam on an 8-device
mesh, run four ways (10 steps of the global-view ``jit`` step each):

* ``two``: 2 processes x 4 CPU devices (``--processes 2``, gloo collectives between
  the processes), saving an orbax checkpoint after step 5 and training on to step 10:
  the unbroken run;
* ``one``: 1 process x 8 CPU devices, started alone (XLA's in-process collectives);
* ``resumed_one``: 1 process x 8 devices through the distributed runtime
  (``--processes 1``: gloo collectives, like ``two``), resuming from ``two``'s
  checkpoint;
* ``resumed_two``: 2 processes x 4 devices resuming from it.

The runs are made once per test session (:func:`example_runs`), two at a time: each
waits on its collectives and its imports as much as it computes, so on two cores two
runs side by side take little longer than one.  Every subprocess has a timeout; a
run that fails raises with the end of its output.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "data_parallel.py"
STEPS = 10
CHECKPOINT_AT = 5
RUN_TIMEOUT_S = 240

_PROCESS_LINE = re.compile(r"^\[process (\d+)\] (.*)$")


def child_env() -> dict[str, str]:
    """The environment for a child: this checkout's jopt first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("XLA_FLAGS", None)
    return env


def run_example(*args: str, timeout: float = RUN_TIMEOUT_S) -> dict:
    """Run the example with ``--json``; its summaries by process and its last line."""
    command = [sys.executable, str(EXAMPLE), "--json", *args]
    proc = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(command[1:])} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    lines = proc.stdout.strip().splitlines()
    summaries = {}
    for line in lines:
        match = _PROCESS_LINE.match(line)
        text = match.group(2) if match else line
        if text.startswith("{"):
            summary = json.loads(text)
            summaries[summary["process_index"]] = summary
    return {"summaries": summaries, "last_line": lines[-1], "stdout": proc.stdout}


def _common() -> list[str]:
    return ["--steps", str(STEPS), "--variant", "jit", "--batch-size", "128"]


@functools.cache
def example_runs() -> dict:
    """The four runs of the module docstring, and the checkpoint's directory."""
    directory = Path(tempfile.mkdtemp(prefix="jopt-multiprocess-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    checkpoint = directory / "checkpoint"
    two_processes = ["--processes", "2", "--cpu-devices", "4"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        two = pool.submit(
            run_example,
            *two_processes,
            *_common(),
            "--checkpoint",
            str(checkpoint),
            "--checkpoint-at",
            str(CHECKPOINT_AT),
        )
        one = pool.submit(run_example, "--cpu-devices", "8", *_common())
        runs = {"two": two.result(), "one": one.result()}
        resumed = {
            "resumed_one": pool.submit(
                run_example,
                *["--processes", "1", "--cpu-devices", "8"],
                *_common(),
                *["--resume", str(checkpoint)],
            ),
            "resumed_two": pool.submit(
                run_example, *two_processes, *_common(), "--resume", str(checkpoint)
            ),
        }
        runs.update({name: future.result() for name, future in resumed.items()})
    runs["checkpoint"] = checkpoint
    return runs
