"""jopt: optimizers and initializers for JAX, as composable gradient transformations."""

from jopt import schedules, transforms
from jopt._core import (
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    Schedule,
    apply_updates,
    chain,
    identity,
    tree_get,
)
from jopt.hyperparams import (
    InjectHyperparamsState,
    get_hyperparams,
    inject_hyperparams,
    set_hyperparams,
)
from jopt.optimizers import (
    adadelta,
    adagrad,
    adam,
    adamax,
    adamw,
    momentum,
    nesterov,
    rmsprop,
    sgd,
)
from jopt.transforms import (
    ScaleByAdadeltaState,
    ScaleByAdamaxState,
    ScaleByAdamState,
    ScaleByAmsgradState,
    ScaleByCenteredRmsState,
    ScaleByRmsState,
    ScaleByRssState,
    ScaleByScheduleState,
    TraceState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    scale,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_rss,
    scale_by_schedule,
    trace,
)
from jopt.wrappers import (
    AccumulateState,
    MaskedState,
    PartitionState,
    SkipNonfiniteState,
    accumulate,
    freeze,
    masked,
    partition,
    skip_nonfinite,
)

__version__ = "0.1.0"

__all__ = [
    # core
    "GradientTransformation",
    "EmptyState",
    "Schedule",
    "ScalarOrSchedule",
    "chain",
    "identity",
    "apply_updates",
    "tree_get",
    # building blocks
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "trace",
    "scale_by_rss",
    "scale_by_rms",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    # states
    "TraceState",
    "ScaleByRssState",
    "ScaleByRmsState",
    "ScaleByCenteredRmsState",
    "ScaleByAdadeltaState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByAdamaxState",
    "ScaleByScheduleState",
    # optimizers
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamw",
    "adamax",
    # wrappers
    "skip_nonfinite",
    "SkipNonfiniteState",
    "partition",
    "PartitionState",
    "masked",
    "MaskedState",
    "freeze",
    "accumulate",
    "AccumulateState",
    # live hyperparameters
    "inject_hyperparams",
    "get_hyperparams",
    "set_hyperparams",
    "InjectHyperparamsState",
    # submodules
    "transforms",
    "schedules",
]
