"""jopt: optimizers and initializers for JAX, as composable gradient transformations."""

from jopt import initializers, optimizers, schedules, sharding, training, transforms, wrappers
from jopt._block import Field, abs_sq, block
from jopt._core import (
    EmptyState,
    GradientTransformation,
    Params,
    ScalarOrSchedule,
    Schedule,
    Updates,
    apply_updates,
    chain,
    identity,
    tree_get,
    tree_get_all,
)
from jopt._minimize import MinimizeResult, minimize
from jopt._version import __version__
from jopt.hyperparams import (
    InjectHyperparamsState,
    get_hyperparams,
    inject_hyperparams,
    set_hyperparams,
)
from jopt.optimizers import *  # noqa: F403
from jopt.transforms import *  # noqa: F403
from jopt.wrappers import *  # noqa: F403

__all__ = [
    # core
    "GradientTransformation",
    "EmptyState",
    "Params",
    "Updates",
    "Schedule",
    "ScalarOrSchedule",
    "chain",
    "identity",
    "apply_updates",
    "tree_get",
    "tree_get_all",
    # writing blocks
    "block",
    "Field",
    "abs_sq",
    # optimizers (jopt.optimizers.ALL), building blocks and wrappers
    *optimizers.ALL,
    *transforms.__all__,
    *wrappers.__all__,
    # a whole solve in one compiled loop
    "minimize",
    "MinimizeResult",
    # live hyperparameters
    "inject_hyperparams",
    "get_hyperparams",
    "set_hyperparams",
    "InjectHyperparamsState",
    # submodules
    "optimizers",
    "transforms",
    "wrappers",
    "initializers",
    "schedules",
    "training",
    "sharding",
    "__version__",
]
