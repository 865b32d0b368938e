"""What a person at the keyboard sees of a training run: progress, and Ctrl-C.

``Progress`` shows the running loss and the step rate; ``DeferredInterrupt``
turns a first Ctrl-C into a request to stop once the running step has finished.
Nothing here touches the arrays being trained.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Mapping


class Progress:
    """A progress display: tqdm's bar if installed, else a plain status line, else nothing.

    ``tqdm.auto`` (the ``examples`` extra) picks the notebook widget under Jupyter and
    Colab and the text bar in a terminal.  Without tqdm, a plain line goes to stderr
    at most once a second.  Both show the running mean loss of the current epoch, the
    last metrics and the step rate.
    """

    REFRESH_S = 0.2
    PLAIN_REFRESH_S = 1.0

    def __init__(self, enabled: bool, *, total: int, epochs: int):
        self.total, self.epochs = total, epochs
        self.bar = None
        self.plain = False
        self.start = time.perf_counter()
        self.last = -math.inf
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.plain = True
        else:
            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)

    def due(self, *, final: bool = False) -> bool:
        """Whether the display wants fresh values now (at most every refresh interval)."""
        if self.bar is None and not self.plain:
            return False
        now = time.perf_counter()
        interval = self.PLAIN_REFRESH_S if self.plain else self.REFRESH_S
        if final or now - self.last >= interval:
            self.last = now
            return True
        return False

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def show(self, step: int, epoch: int, loss: float, metrics: Mapping[str, float]) -> None:
        fields = {"epoch": f"{min(epoch + 1, self.epochs)}/{self.epochs}", "loss": f"{loss:.4g}"}
        fields.update({name: f"{value:.4g}" for name, value in metrics.items()})
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
        elif self.plain:
            rate = step / max(time.perf_counter() - self.start, 1e-9)
            described = " | ".join(f"{k} {v}" for k, v in fields.items())
            print(
                f"step {step}/{self.total} | {described} | {rate:.1f} steps/s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class DeferredInterrupt:
    """Turn the first Ctrl-C into a request to stop after the current step.

    A ``KeyboardInterrupt`` raised between a donating step's return and the assignment
    of its result would lose both the old parameters (donated, deleted) and the new
    ones.  While active in the main thread, the first SIGINT only sets ``requested``;
    a second one raises at once, as usual.  Elsewhere (other threads, a custom
    handler already installed) it does nothing.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
