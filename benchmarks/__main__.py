"""``python -m benchmarks``: run the harness (see :mod:`benchmarks.harness`)."""

from benchmarks.harness import main

raise SystemExit(main())
