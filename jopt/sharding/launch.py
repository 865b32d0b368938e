"""Several JAX processes on one machine: start them, join them, stop them when one fails.

JAX's multi-host runtime, ``jax.distributed.initialize``, joins processes into one
program: every process sees every process's devices in ``jax.devices()``, and a mesh
built from them spans them all.  On a cluster the processes run on different hosts
and the scheduler starts them (see the docs page on sharding).  On one machine,
[`run`][jopt.sharding.launch.run] starts them: ``processes`` copies of a command, each told its
process id and the coordinator's address (a free local port) through environment variables.
Each copy calls [`initialize`][jopt.sharding.launch.initialize] first, before any other JAX call:

```python
# train.py
from jopt.sharding import launch
launch.initialize()              # joins the run; a no-op when started alone
...                              # jax.devices() lists every process's devices

# the parent (or: python -m jopt.sharding.launch --processes 2 --cpu-devices 4 \\
#                     -- python train.py)
results = launch.run([sys.executable, "train.py"], processes=2, cpu_devices=4)
```

With ``cpu_devices=n`` every process simulates ``n`` CPU devices and the processes
exchange data through gloo collectives, so two processes of four devices form one
mesh of eight on any machine: the multi-host code path, tested without a cluster.

A process that fails brings the run down: when one exits with an error,
[`run`][jopt.sharding.launch.run] stops the others at once (they would otherwise wait in a
collective for a peer that is gone) and raises [`LaunchError`][jopt.sharding.launch.LaunchError]
naming the process that failed, with the end of its output.  A run that exceeds ``timeout`` is
stopped the same way.  The command line tool exits with the failed process's exit status, or 124 on
a timeout.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from jopt._validation import check, checked

__all__ = ["LaunchError", "ProcessResult", "free_port", "initialize", "is_launched", "run"]

COORDINATOR = "JOPT_COORDINATOR_ADDRESS"
NUM_PROCESSES = "JOPT_NUM_PROCESSES"
PROCESS_ID = "JOPT_PROCESS_ID"
CPU_DEVICES = "JOPT_CPU_DEVICES"

TIMEOUT_STATUS = 124  # the exit status of a run stopped by its timeout, as timeout(1)'s
_POLL_S = 0.02
_STOP_GRACE_S = 3.0
_TAIL_LINES = 25


@dataclasses.dataclass(frozen=True)
class ProcessResult:
    """What one launched process did.

    Attributes:
      process_id: its index in the run, ``0 .. processes - 1``.
      returncode: its exit status (negative: killed by that signal), or ``None`` if
        the launcher stopped it.
      stdout, stderr: everything it wrote.
    """

    process_id: int
    returncode: int | None
    stdout: str
    stderr: str


class LaunchError(RuntimeError):
    """A launched process failed, or the run outlived its timeout.

    Attributes:
      process_id: the process that failed first (``None`` for a timeout).
      returncode: the exit status to report: the failed process's (128 + N for a
        process killed by signal N), or 124 for a timeout.
      results: a [`ProcessResult`][jopt.sharding.launch.ProcessResult] per process.
    """

    def __init__(self, message: str, *, process_id, returncode: int, results):
        super().__init__(message)
        self.process_id = process_id
        self.returncode = returncode
        self.results = tuple(results)


def free_port() -> int:
    """A TCP port on localhost that is free now (the OS picks it).

    Returns:
      The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def is_launched() -> bool:
    """Whether this process is to join others.

    Returns:
      True when ``JOPT_COORDINATOR_ADDRESS`` is set in the environment.
    """
    return COORDINATOR in os.environ


def _configure_cpu(count: int) -> None:
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", count)
    # XLA's CPU client runs max(cores, devices) threads, and a collective holds one
    # thread per device until every device has arrived; with fewer cores than
    # simulated devices, a thread busy elsewhere can then stall the collective for
    # good.  Spare threads avoid that.
    os.environ.setdefault("PJRT_NPROC", str(max(32, 4 * count)))


def initialize(*, cpu_devices: int | None = None, timeout: float = 300.0) -> None:
    """Join the run this process was started in, and set up simulated CPU devices.

    Call it first, before any other JAX call.  In a process started by
    [`run`][jopt.sharding.launch.run] (or by any scheduler that sets ``JOPT_COORDINATOR_ADDRESS``,
    ``JOPT_NUM_PROCESSES`` and ``JOPT_PROCESS_ID``), it calls
    ``jax.distributed.initialize`` with the coordinator's address, the number of
    processes and this process's id, and selects gloo for collectives between CPU
    devices.  In a process started alone it joins nothing and only sets up
    ``cpu_devices`` CPU devices if asked, so one script serves both.

    In a process that joins, an uncaught exception ends the process at once with
    status 1, rather than waiting at JAX's shutdown barrier for peers that may be
    waiting for it in a collective.

    Args:
      cpu_devices: simulate this many CPU devices in this process (default: the
        launcher's ``cpu_devices``, else the default backend).
      timeout: seconds to wait for every process to join.

    Raises:
      TypeError, ValueError: an argument is out of its range.
    """
    check(cpu_devices=cpu_devices, timeout=timeout)
    if cpu_devices is None and os.environ.get(CPU_DEVICES):
        cpu_devices = int(os.environ[CPU_DEVICES])
    if cpu_devices is not None:
        _configure_cpu(cpu_devices)
    if not is_launched():
        return
    import jax

    sys.excepthook = _exit_at_once

    # Collectives between processes on CPU devices go through gloo (GPUs and TPUs
    # keep their own); without it they fail on the CPU backend.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ[COORDINATOR],
        num_processes=int(os.environ[NUM_PROCESSES]),
        process_id=int(os.environ[PROCESS_ID]),
        initialization_timeout=max(1, round(timeout)),
    )


def _exit_at_once(kind, value, traceback) -> None:
    """Print an uncaught exception and end the process now, with status 1.

    A normal exit would first wait at JAX's shutdown barrier for the other processes,
    which may themselves be waiting in a collective for this one: the run would stall
    until a timeout.  Ending at once lets [`run`][jopt.sharding.launch.run] see the failure and stop
    them.
    """
    sys.__excepthook__(kind, value, traceback)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


# --- the parent --------------------------------------------------------------------------


class _Process:
    """One child and the threads that read its output."""

    def __init__(self, index: int, command: list[str], env: dict, echo: bool):
        self.index = index
        self.popen = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopping it stops its children
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        prefix = f"[process {index}] " if echo else None
        self.readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.stdout, prefix)),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.stderr, None)),
        ]
        for reader in self.readers:
            reader.daemon = True
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str], prefix: str | None) -> None:
        for line in stream:
            lines.append(line)
            if prefix is not None:
                print(prefix + line, end="", flush=True)

    def stop(self) -> None:
        """SIGTERM to its process group, then SIGKILL if it is still there."""
        if self.popen.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait()

    def _signal(self, sig) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError, AttributeError):
            self.popen.send_signal(sig)

    def result(self, stopped: bool) -> ProcessResult:
        for reader in self.readers:
            reader.join(timeout=5.0)
        return ProcessResult(
            process_id=self.index,
            returncode=None if stopped else self.popen.returncode,
            stdout="".join(self.stdout),
            stderr="".join(self.stderr),
        )


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"failed with exit status {returncode}"


def _tail(result: ProcessResult) -> str:
    text = result.stderr.strip() or result.stdout.strip()
    lines = text.splitlines()[-_TAIL_LINES:]
    return "\n".join("    " + line for line in lines) if lines else "    (no output)"


def _child_env(env: Mapping | None, processes: int, cpu_devices: int | None, port: int):
    base = dict(os.environ)
    base.update({str(k): str(v) for k, v in (env or {}).items()})
    base.setdefault("PYTHONUNBUFFERED", "1")  # echo lines as they come
    base[COORDINATOR] = f"localhost:{port}"
    base[NUM_PROCESSES] = str(processes)
    if cpu_devices is not None:
        base[CPU_DEVICES] = str(cpu_devices)
        base["JAX_PLATFORMS"] = "cpu"
        base.setdefault("PJRT_NPROC", str(max(32, 4 * cpu_devices)))
    return [{**base, PROCESS_ID: str(i)} for i in range(processes)]


def _watch(children: list[_Process], timeout: float) -> tuple[int | None, bool]:
    """Wait until all succeed, one fails, or time is up: ``(failed, timed_out)``."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [child.popen.poll() for child in children]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            return failed[0], False
        if all(code == 0 for code in codes):
            return None, False
        if time.monotonic() > deadline:
            return None, True
        time.sleep(_POLL_S)


def run(
    command: Sequence[str],
    *,
    processes: int,
    cpu_devices: int | None = None,
    timeout: float = 600.0,
    env: Mapping[str, str] | None = None,
    echo: bool = False,
) -> tuple[ProcessResult, ...]:
    """Run ``processes`` copies of ``command`` as one JAX program on this machine.

    Each copy gets the coordinator's address (``localhost`` and a free port), the
    number of processes and its own id in environment variables, which
    [`initialize`][jopt.sharding.launch.initialize] reads.  The call returns when every copy has
    exited with status 0.

    Args:
      command: the program and its arguments, e.g. ``[sys.executable, "train.py"]``.
      processes: how many copies to start.
      cpu_devices: simulate this many CPU devices in each copy (gloo collectives
        between them); by default each copy uses the default backend.
      timeout: seconds the whole run may take.
      env: environment variables to add for the copies.
      echo: print each copy's standard output as it comes, prefixed with
        ``[process i]``.

    Returns:
      A [`ProcessResult`][jopt.sharding.launch.ProcessResult] per process, in process order.

    Raises:
      LaunchError: a copy exited with a non-zero status (the others are stopped at
        once), or the run took longer than ``timeout`` (all are stopped).  The
        message names the process and ends with the last lines it wrote.
      TypeError, ValueError: an argument is out of its range.
    """
    command = checked("command", command)
    check(processes=processes, cpu_devices=cpu_devices, timeout=timeout, env=env, echo=echo)
    envs = _child_env(env, processes, cpu_devices, free_port())
    children: list[_Process] = []
    try:
        for i, child_env in enumerate(envs):
            children.append(_Process(i, command, child_env, echo))
        failed, timed_out = _watch(children, timeout)
    finally:
        running = [child.popen.poll() is None for child in children]
        for child in children:
            child.stop()
    results = [child.result(stopped) for child, stopped in zip(children, running, strict=True)]
    if failed is not None:
        code = results[failed].returncode
        stopped = [str(i) for i, was_running in enumerate(running) if was_running]
        raise LaunchError(
            f"process {failed} of {processes} {_describe(code)}"
            + (f"; stopped process(es) {', '.join(stopped)}" if stopped else "")
            + f". The end of process {failed}'s output:\n{_tail(results[failed])}",
            process_id=failed,
            returncode=_exit_status(code),
            results=results,
        )
    if timed_out:
        stuck = [i for i, was_running in enumerate(running) if was_running]
        first = results[stuck[0]]
        raise LaunchError(
            f"timed out after {timeout:g} s with process(es) "
            f"{', '.join(map(str, stuck))} of {processes} still running; stopped them. "
            f"The end of process {stuck[0]}'s output:\n{_tail(first)}",
            process_id=None,
            returncode=TIMEOUT_STATUS,
            results=results,
        )
    return tuple(results)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jopt.sharding.launch --processes N [--cpu-devices D] -- command ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m jopt.sharding.launch",
        description="Run a command as several JAX processes on this machine.",
    )
    parser.add_argument("--processes", type=int, default=2, help="copies to start (default 2)")
    parser.add_argument("--cpu-devices", type=int, default=None, metavar="N")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program and arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    try:
        run(
            command,
            processes=args.processes,
            cpu_devices=args.cpu_devices,
            timeout=args.timeout,
            echo=True,
        )
    except LaunchError as error:
        print(f"launch: {error}", file=sys.stderr)
        return error.returncode
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
