"""Wrappers: transformations that take a transformation.

* :func:`partition`, :func:`masked`, :func:`freeze`: parameter groups.
* :func:`skip_nonfinite`: skip the steps whose gradients hold a NaN or an infinity.
* :func:`accumulate`: gradient accumulation over micro-batches.
"""

from jopt.wrappers._accumulate import *  # noqa: F403
from jopt.wrappers._accumulate import __all__ as _accumulate
from jopt.wrappers._groups import *  # noqa: F403
from jopt.wrappers._groups import __all__ as _groups
from jopt.wrappers._skip import *  # noqa: F403
from jopt.wrappers._skip import __all__ as _skip

__all__ = [*_skip, *_groups, *_accumulate]
