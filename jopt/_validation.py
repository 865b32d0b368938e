"""The validation vocabulary: every argument name jopt checks, with its type and range.

Every factory (optimizers, blocks, wrappers, schedules, initializers, training
helpers) and [`jopt.set_hyperparams`][jopt.set_hyperparams] check their arguments
here, by name, so a name means the same range everywhere and no second table can drift
from this one:

```python
check(b1=b1, b2=b2, eps=eps)            # raises TypeError / ValueError naming the argument
k = checked("every_k", every_k)         # the value, normalized (an int here)
```

A wrong type raises ``TypeError``; a value out of range raises ``ValueError``; both
name the argument and show the value.  Numbers are Python reals, NumPy scalars and
0-d arrays of any real dtype (bfloat16 and float16 included).  Values traced under
``jit`` cannot be inspected: their type is checked, their range is not.

A few names mean different things to different owners (``mode`` is a fan mode for an
initializer and a direction for [`jopt.reduce_on_plateau`][jopt.reduce_on_plateau]);
such entries are keyed ``"owner.name"`` and looked up first when the caller passes
``owner=``.  Indexed names such as ``"eps[1]"`` or ``"boundaries[0]"`` are checked
against their base name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax

from jopt._specs import (
    Choice,
    Command,
    DType,
    Flag,
    Function,
    Instance,
    Integer,
    Items,
    Key,
    PerLeaf,
    Real,
    Spec,
    StepsPerCall,
    Transformation,
    as_number,
    is_concrete,
    is_static_zero,
)

__all__ = [
    "VOCABULARY",
    "Real",
    "Transformation",
    "as_number",
    "check",
    "checked",
    "describe",
    "is_concrete",
    "is_static_zero",
]


# Shorthands for the table.
_ANY = Real()
_MESHES = (jax.sharding.Mesh, jax.sharding.AbstractMesh)
_NON_NEGATIVE = Real(low=0.0)
_POSITIVE = Real(low=0.0, low_open=True)
_UNIT = Real(0.0, 1.0)
_DECAY = Real(0.0, 1.0, high_open=True)
_FLAG = Flag()
_COUNT = Integer(low=0)
_STEPS = Integer(low=1)
# Adafactor's (ε₁, ε₂): ε₁ None means the machine epsilon.
_ADAFACTOR_EPS = Items((Real(low=0.0, optional=True), _NON_NEGATIVE))

VOCABULARY: Mapping[str, Spec] = MappingProxyType(
    {
        # --- optimizers and blocks
        "learning_rate": Real(low=0.0, schedule=True),
        "b1": _DECAY,
        "b2": _DECAY,
        "b3": Real(0.0, 1.0, high_open=True, optional=True),
        "rho": _DECAY,
        "decay": _DECAY,
        "momentum": _DECAY,
        "eps": _NON_NEGATIVE,
        "eps_root": _NON_NEGATIVE,
        "weight_decay": Real(low=0.0, schedule=True),
        "initial_accumulator_value": _NON_NEGATIVE,
        "initial_scale": _NON_NEGATIVE,
        "factor": _ANY,
        "step_size": _ANY,
        "max_delta": _NON_NEGATIVE,
        "max_norm": _POSITIVE,
        "momentum_decay": _NON_NEGATIVE,
        "beta2_decay": Real(high=0.0),
        "d": Real(low=1.0),
        "ns_steps": _COUNT,
        "history_size": _STEPS,
        "tolerance_grad": _NON_NEGATIVE,
        "tolerance_change": _NON_NEGATIVE,
        "line_search": Choice(("strong_wolfe",), optional=True),
        "curvature_test": Choice(("absolute", "relative")),
        "fun": Function(),
        "lambd": _NON_NEGATIVE,
        "alpha": _NON_NEGATIVE,
        "t0": _NON_NEGATIVE,
        "trust_coefficient": _NON_NEGATIVE,
        "min_norm": _NON_NEGATIVE,
        "smooth_beta": _POSITIVE,
        "scale_by_lion.mode": Choice(("hard", "smooth", "refined")),
        "warmup_steps": _COUNT,
        "r": _NON_NEGATIVE,
        "weight_lr_power": _NON_NEGATIVE,
        "d0": _POSITIVE,
        "d_coef": _POSITIVE,
        "growth_rate": Real(low=1.0, allow_inf=True),
        "precondition_frequency": _STEPS,
        "max_precond_dim": _STEPS,
        "alpha_beta3_warmup": Integer(low=1, optional=True),
        "adam_learning_rate": Real(low=0.0, schedule=True, optional=True),
        "adam_b1": _DECAY,
        "adam_b2": _DECAY,
        "adam_eps": _NON_NEGATIVE,
        "adam_weight_decay": Real(low=0.0, schedule=True, optional=True),
        "ns_coefficients": Items((_ANY, _ANY, _ANY)),
        "adjust_lr_fn": Choice(("original", "match_rms_adamw"), optional=True),
        "stack_axes": PerLeaf(Integer(low=0)),
        "layout": Choice(("in_out", "out_in")),
        "muon.labels": PerLeaf(Choice(("muon", "adam")), optional=True),
        "ademamix.b3": _DECAY,
        "scale_by_ademamix.b3": Real(0.0, 1.0, high_open=True, schedule=True),
        "scale_by_ademamix.alpha": Real(low=0.0, schedule=True),
        "clip_value_fn": Function(),
        "etas": Items((Real(0.0, 1.0, low_open=True, high_open=True), Real(1.0, low_open=True))),
        "step_sizes": Items((_NON_NEGATIVE, _NON_NEGATIVE)),
        "adafactor.eps": _ADAFACTOR_EPS,
        "scale_by_adafactor.eps": _ADAFACTOR_EPS,
        # --- flags and dtypes
        "nesterov": _FLAG,
        "amsgrad": _FLAG,
        "centered": _FLAG,
        "eps_in_sqrt": _FLAG,
        "bias_correction": _FLAG,
        "bias_correction_mu": _FLAG,
        "bias_correction_nu": _FLAG,
        "correct_after_max": _FLAG,
        "flip_sign": _FLAG,
        "decoupled_weight_decay": _FLAG,
        "use_bias_correction": _FLAG,
        "safeguard_warmup": _FLAG,
        "precondition_1d": _FLAG,
        "use_clipping": _FLAG,
        "eps_before_correction": _FLAG,
        "strict_threshold": _FLAG,
        "mu_dtype": DType(),
        "nu_dtype": DType(),
        "accumulator_dtype": DType(),
        "hyperparam_dtype": DType(),
        "ns_dtype": DType(storage=False),
        # --- wrappers
        "every_k": _STEPS,
        "max_consecutive": Integer(low=0, optional=True),
        "sync_period": _STEPS,
        "reset_state": _FLAG,
        "start_step": _COUNT,
        "every": _STEPS,
        "patience": _COUNT,
        "threshold": _NON_NEGATIVE,
        "cooldown": _COUNT,
        "min_scale": _NON_NEGATIVE,
        "reduce_on_plateau.factor": Real(0.0, 1.0, high_open=True),
        "reduce_on_plateau.mode": Choice(("min", "max")),
        "threshold_mode": Choice(("rel", "abs")),
        "averaged.decay": Real(0.0, 1.0, optional=True),
        "lookahead.alpha": _UNIT,
        # --- schedules (step counts up to 2**63 - 1, the range a schedule is exact on)
        "value": _ANY,
        "values": _ANY,
        "init_value": _ANY,
        "end_value": _ANY,
        "exponential_decay.end_value": Real(optional=True),
        "peak_value": _ANY,
        "max_value": _ANY,
        "base_value": _ANY,
        "min_value": _ANY,
        "swa_value": _ANY,
        "base_momentum": _DECAY,
        "max_momentum": _DECAY,
        "decay_rate": _POSITIVE,
        "transition_steps": Integer(low=1, high=2**63 - 1),
        "transition_begin": Integer(low=0, high=2**63 - 1),
        "decay_steps": Integer(low=1, high=2**63 - 1),
        "schedule.warmup_steps": Integer(low=0, high=2**63 - 1),
        "stable_steps": Integer(low=0, high=2**63 - 1),
        "total_steps": Integer(low=1, high=2**63 - 1),
        "first_period": Integer(low=1, high=2**63 - 1),
        "period_mult": Integer(low=1, high=2**63 - 1),
        "step_size_up": Integer(low=1, high=2**63 - 1),
        "step_size_down": Integer(low=1, high=2**63 - 1, optional=True),
        "anneal_steps": Integer(low=0, high=2**63 - 1),
        "power": _NON_NEGATIVE,
        "gamma": _POSITIVE,
        "pct_start": Real(0.0, 1.0, low_open=True, high_open=True),
        "div_factor": _POSITIVE,
        "final_div_factor": _POSITIVE,
        "three_phase": _FLAG,
        "staircase": _FLAG,
        "boundaries": Integer(low=0, high=2**63 - 1),
        "milestones": Integer(low=0, high=2**63 - 1),
        "anneal_strategy": Choice(("cos", "linear")),
        "decay_shape": Choice(("linear", "cosine", "sqrt")),
        "cyclic.mode": Choice(("triangular", "triangular2", "exp_range")),
        # --- initializers
        "stddev": _NON_NEGATIVE,
        "mean": _ANY,
        "low": _ANY,
        "high": _ANY,
        "lower": Real(allow_inf=True),
        "upper": Real(allow_inf=True),
        "scale": _NON_NEGATIVE,
        "gain": _NON_NEGATIVE,
        "a": _ANY,
        "param": _ANY,
        "fan_in": Integer(low=1),
        "shape": Integer(low=0),
        "dtype": DType(),
        "in_axis": Integer(),
        "out_axis": Integer(),
        "batch_axis": Integer(),
        "column_axis": Integer(),
        "nonlinearity": Choice(
            (
                "linear",
                "conv1d",
                "conv2d",
                "conv3d",
                "conv_transpose1d",
                "conv_transpose2d",
                "conv_transpose3d",
                "sigmoid",
                "tanh",
                "relu",
                "leaky_relu",
                "selu",
            )
        ),
        "distribution": Choice(("truncated_normal", "normal", "uniform")),
        "variance_scaling.mode": Choice(("fan_in", "fan_out", "fan_avg", "fan_geo_avg")),
        "kaiming.mode": Choice(("fan_in", "fan_out")),
        # --- sharding (jopt.sharding and jopt.sharding.launch)
        "mesh": Instance(_MESHES, "a jax.sharding.Mesh"),
        "axis": Instance((str,), "a mesh axis name (a non-empty str)"),
        # Muon and SOAP run on one device unless given the mesh their matrices are split on.
        **{
            f"{owner}.mesh": Instance(_MESHES, "a jax.sharding.Mesh", optional=True)
            for owner in ("muon", "scale_by_newton_schulz", "soap", "scale_by_soap")
        },
        "fn": Function(),
        "items": Instance((list, tuple), "a list of arrays or pytrees of arrays"),
        "min_size": _COUNT,
        "offload": _FLAG,
        "processes": _STEPS,
        "cpu_devices": Integer(low=1, optional=True),
        "timeout": _POSITIVE,
        "command": Command(),
        "env": Instance((Mapping,), "a mapping of environment variables", optional=True),
        "echo": _FLAG,
        # --- training
        "batch_size": Integer(low=1, optional=True),
        "epochs": _COUNT,
        "steps": Integer(low=3),
        "seeds": _STEPS,
        "chunk": Integer(low=1, optional=True),
        "min_lr": _POSITIVE,
        "max_lr": _POSITIVE,
        "smoothing": _DECAY,
        "divergence": Real(low=1.0, low_open=True),
        "max_steps": _STEPS,
        "tol": _NON_NEGATIVE,
        "has_aux": _FLAG,
        "donate": _FLAG,
        "shuffle": _FLAG,
        "drop_last": _FLAG,
        "progress": _FLAG,
        "key": Key(),
        "optimizer": Transformation(),
        "inner": Transformation(),
        "steps_per_call": StepsPerCall(),
        "loss_fn": Function(),
        "eval_fn": Function(optional=True),
        "callback": Function(optional=True),
        "schedule": Function(),
        "step_size_fn": Function(),
        "factory": Function(),
        "optimizer_factory": Function(),
    }
)


def _spec(name: str, owner: str | None) -> Spec:
    base = name.split("[", 1)[0]
    if owner is not None and f"{owner}.{base}" in VOCABULARY:
        return VOCABULARY[f"{owner}.{base}"]
    try:
        return VOCABULARY[base]
    except KeyError:
        raise KeyError(f"{base!r} is not in jopt's validation vocabulary") from None


def checked(name: str, value: Any, *, owner: str | None = None) -> Any:
    """``value`` checked against the vocabulary entry for ``name``, and normalized.

    Args:
      name: the argument's name (``"eps[1]"`` is checked as ``eps``).
      value: what the caller passed.
      owner: selects an ``"owner.name"`` entry where the vocabulary has one.

    Returns:
      The value, normalized (an ``int`` for an integer entry, a dtype for a dtype).

    Raises:
      TypeError: for a value of the wrong type, naming the argument.
      ValueError: for a value out of range, naming the argument and showing the value.
      KeyError: when ``name`` is not in the vocabulary.
    """
    return _spec(name, owner)(name, value)


def check(owner: str | None = None, /, **values: Any) -> dict[str, Any]:
    """Check each ``name=value`` against the vocabulary (see ``checked``).

    Args:
      owner: selects the ``"owner.name"`` entries where the vocabulary has them.
      **values: the arguments, by name.

    Returns:
      ``{name: normalized value}``.
    """
    return {name: checked(name, value, owner=owner) for name, value in values.items()}


def describe(name: str, *, owner: str | None = None) -> str:
    """The range of ``name`` in words (for docs and messages), e.g. ``"in [0, 1)"``."""
    return _spec(name, owner).describe()


Checker = Callable[[str, Any], Any]
