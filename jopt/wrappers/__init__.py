"""Wrappers: transformations that take a transformation.

* [`partition`][jopt.wrappers.partition], [`masked`][jopt.wrappers.masked],
  [`freeze`][jopt.wrappers.freeze]: parameter groups.
* [`skip_nonfinite`][jopt.wrappers.skip_nonfinite]: skip the steps whose gradients hold a NaN or an
  infinity.
* [`accumulate`][jopt.wrappers.accumulate]: gradient accumulation over micro-batches.
* [`reduce_on_plateau`][jopt.wrappers.reduce_on_plateau]: scale the updates down when the loss stops
  improving.
* [`averaged`][jopt.wrappers.averaged]: SWA's equal average or an EMA of the parameters.
* [`cautious`][jopt.wrappers.cautious]: drop the components of an update that move against the
  gradient.
* [`lookahead`][jopt.wrappers.lookahead]: Lookahead, with its slow weights in the state.
"""

from jopt.wrappers._accumulate import *  # noqa: F403
from jopt.wrappers._accumulate import __all__ as _accumulate
from jopt.wrappers._averaged import *  # noqa: F403
from jopt.wrappers._averaged import __all__ as _averaged
from jopt.wrappers._cautious import *  # noqa: F403
from jopt.wrappers._cautious import __all__ as _cautious
from jopt.wrappers._groups import *  # noqa: F403
from jopt.wrappers._groups import __all__ as _groups
from jopt.wrappers._lookahead import *  # noqa: F403
from jopt.wrappers._lookahead import __all__ as _lookahead
from jopt.wrappers._plateau import *  # noqa: F403
from jopt.wrappers._plateau import __all__ as _plateau
from jopt.wrappers._skip import *  # noqa: F403
from jopt.wrappers._skip import __all__ as _skip

__all__ = [*_skip, *_groups, *_accumulate, *_plateau, *_averaged, *_cautious, *_lookahead]
