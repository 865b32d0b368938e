"""The validation vocabulary: every argument name jopt checks, with its type and range.

Every factory (optimizers, blocks, wrappers, schedules, initializers, training
helpers) and :func:`jopt.set_hyperparams` check their arguments here, by name, so a
name means the same range everywhere and no second table can drift from this one::

    check(b1=b1, b2=b2, eps=eps)            # raises TypeError / ValueError naming the argument
    k = checked("every_k", every_k)         # the value, normalized (an int here)

A wrong type raises ``TypeError``; a value out of range raises ``ValueError``; both
name the argument and show the value.  Numbers are Python reals, NumPy scalars and
0-d arrays of any real dtype (bfloat16 and float16 included).  Values traced under
``jit`` cannot be inspected: their type is checked, their range is not.

A few names mean different things to different owners (``mode`` is a fan mode for an
initializer and a direction for :func:`jopt.reduce_on_plateau`); such entries are keyed
``"owner.name"`` and looked up first when the caller passes ``owner=``.  Indexed names
such as ``"eps[1]"`` or ``"boundaries[0]"`` are checked against their base name.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["VOCABULARY", "check", "checked", "is_concrete", "is_static_zero"]


def is_concrete(value: Any) -> bool:
    """False for a JAX tracer, whose value is unknown until run time."""
    return not isinstance(value, jax.core.Tracer)


def is_static_zero(value: Any) -> bool:
    """True when ``value`` is a Python number equal to 0, so a block can be left out.

    Arrays never count, even a concrete ``jnp.array(0.0)``: hyperparameters injected as
    arrays (see :func:`jopt.inject_hyperparams`) must give the same chain, and so the
    same state structure, at ``init`` (concrete) and at ``update`` (traced).
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _real_dtype(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def as_number(name: str, value: Any) -> float | None:
    """``value`` as a Python float (``None`` for a tracer), or a TypeError naming ``name``.

    A number is a real Python or NumPy scalar, or a 0-d array of a real dtype: any
    floating dtype (bfloat16 and float16 included) or an integer one.
    """
    if _is_bool(value):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    if isinstance(value, numbers.Real):
        return float(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    if np.shape(value) != ():
        raise TypeError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
    if not _real_dtype(dtype):
        raise TypeError(f"{name} must be a real number, got an array of dtype {dtype}")
    if not is_concrete(value):
        return None
    return float(np.asarray(value, np.float64))


class Spec:
    """How one argument is checked: ``spec(name, value)`` returns the value, normalized."""

    def __call__(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        """The range in words, for error messages and the docs."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Real(Spec):
    """A real number in ``[low, high]`` (ends open where asked); finite unless ``allow_inf``.

    ``optional``: ``None`` is accepted.  ``schedule``: a callable ``step -> value`` is
    accepted (its values are not checked).
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    allow_inf: bool = False
    optional: bool = False
    schedule: bool = False

    def describe(self) -> str:
        if self.low == -math.inf and self.high == math.inf:
            text = "a finite number" if not self.allow_inf else "a number"
        elif self.high == math.inf:
            text = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        elif self.low == -math.inf:
            text = f"a number {'<' if self.high_open else '<='} {self.high:g}"
        else:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            text = f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.schedule:
            text += ", or a schedule"
        if self.optional:
            text += ", or None"
        return text

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if self.schedule and callable(value) and not hasattr(value, "dtype"):
            return value
        number = as_number(name, value)
        if number is None:
            return value
        below = number <= self.low if self.low_open else number < self.low
        above = number >= self.high if self.high_open else number > self.high
        infinite = math.isinf(number) and not self.allow_inf
        if math.isnan(number) or infinite or below or above:
            raise ValueError(f"{name} must be {self.describe()}, got {number!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Integer(Spec):
    """A Python or NumPy integer (not a bool) in ``[low, high]``; returned as an ``int``."""

    low: int | None = None
    high: int | None = None
    optional: bool = False

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"an integer in [{self.low}, {self.high}]"
        elif self.low is not None:
            text = f"an integer >= {self.low}"
        else:
            text = "an integer"
        return text + (", or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if _is_bool(value) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return int(value)


@dataclasses.dataclass(frozen=True)
class Flag(Spec):
    """A real boolean.  ``sgd(0.1, 0.9, 1e-4)`` must not turn a flag on by position."""

    def describe(self) -> str:
        return "a bool"

    def __call__(self, name: str, value: Any) -> Any:
        if not _is_bool(value):
            raise TypeError(f"{name} must be a bool, got {_show(value)}")
        return bool(value)


@dataclasses.dataclass(frozen=True)
class DType(Spec):
    """``None`` (keep the parameter's dtype) or a floating-point dtype, in any form."""

    def describe(self) -> str:
        return "None or a floating-point dtype"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            dtype = jnp.dtype(value)
        except TypeError:
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}") from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"{name} must be {self.describe()}, got {dtype}")
        return dtype


@dataclasses.dataclass(frozen=True)
class Choice(Spec):
    """One of the listed strings (or ``None`` when ``optional``)."""

    options: tuple[str, ...]
    optional: bool = False

    def describe(self) -> str:
        text = "one of " + ", ".join(repr(o) for o in self.options)
        return text + (", or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if value not in self.options:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Function(Spec):
    """A callable (or ``None`` when ``optional``)."""

    optional: bool = False

    def describe(self) -> str:
        return "callable" + (" or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not callable(value):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Transformation(Spec):
    """A gradient transformation: anything with callable ``init`` and ``update``."""

    def describe(self) -> str:
        return "a GradientTransformation (callable init and update)"

    def __call__(self, name: str, value: Any) -> Any:
        if not (
            callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))
        ):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Key(Spec):
    """A JAX PRNG key: new-style (``jax.random.key``) or raw ``uint32[2]``; or ``None``."""

    optional: bool = True

    def describe(self) -> str:
        return "a JAX PRNG key (jax.random.key(seed))" + (" or None" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        dtype = getattr(value, "dtype", None)
        is_key = dtype is not None and (
            jnp.issubdtype(dtype, jax.dtypes.prng_key)
            or (np.dtype(dtype) == np.uint32 and np.shape(value)[-1:] == (2,))
        )
        if not is_key:
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class StepsPerCall(Spec):
    """An integer >= 1, or ``"epoch"``."""

    def describe(self) -> str:
        return "an integer >= 1 or 'epoch'"

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            return Choice(("epoch",))(name, value)
        return Integer(low=1)(name, value)


@dataclasses.dataclass(frozen=True)
class Items(Spec):
    """A tuple or list of fixed length whose entries follow ``items`` (named ``name[i]``).

    Returned as a tuple.
    """

    items: tuple[Spec, ...]

    def describe(self) -> str:
        return f"a sequence of {len(self.items)}: " + ", ".join(s.describe() for s in self.items)

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{name} must be {self.describe()}, got {_show(value)}")
        if len(value) != len(self.items):
            raise ValueError(f"{name} must have {len(self.items)} entries, got {value!r}")
        return tuple(
            spec(f"{name}[{i}]", v)
            for i, (spec, v) in enumerate(zip(self.items, value, strict=True))
        )


# Shorthands for the table.
_ANY = Real()
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
        "lambd": _NON_NEGATIVE,
        "alpha": _NON_NEGATIVE,
        "t0": _NON_NEGATIVE,
        "trust_coefficient": _NON_NEGATIVE,
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
        "eps_before_correction": _FLAG,
        "strict_threshold": _FLAG,
        "mu_dtype": DType(),
        "nu_dtype": DType(),
        "accumulator_dtype": DType(),
        "hyperparam_dtype": DType(),
        # --- wrappers
        "every_k": _STEPS,
        "max_consecutive": Integer(low=0, optional=True),
        "sync_period": _STEPS,
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
    """``value`` checked against the vocabulary entry for ``name``, and normalized."""
    return _spec(name, owner)(name, value)


def check(owner: str | None = None, /, **values: Any) -> dict[str, Any]:
    """Check each ``name=value`` against the vocabulary; returns the normalized values.

    ``owner`` selects the ``"owner.name"`` entries where the vocabulary has them.
    """
    return {name: checked(name, value, owner=owner) for name, value in values.items()}


def describe(name: str, *, owner: str | None = None) -> str:
    """The range of ``name`` in words (for docs and messages)."""
    return _spec(name, owner).describe()


Checker = Callable[[str, Any], Any]
