"""``python -m jopt``: see :mod:`jopt.lecture.cli`."""

import os
import sys

from jopt.lecture.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader of stdout went away (``python -m jopt --json | head``): not an error
    # worth a traceback.  Point stdout at devnull so the interpreter's final flush
    # does not raise again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
raise SystemExit(code)
