"""Independent float64 references for every optimizer of ``jopt.optimizers.ALL``.

Each entry of :data:`REFERENCES` restates one optimizer in NumPy, written from its
paper and from torch.optim's update rule (never from jopt's code), together with what
the generic suite needs to know about it.  The generic tests (``test_registry.py``,
``test_properties.py``, ``test_checkpoint.py``, ``test_sharding.py``,
``test_validation_registry.py``, ``test_reliability.py``) loop over this table, and a test
asserts that its names are exactly the registry's.

The restatements live in one module per family (``classic``, ``modern``,
``muon_soap``, ``torch_ports``, ``tuning_free``, ``lbfgs``), each with its part of the table;
this module joins the parts in registry order.  ``_entry`` holds the shape of an
entry (:class:`Reference`, :class:`TorchPort`) and the helpers every family uses.

Adding an optimizer ``foo``
---------------------------
1. Write ``ref_foo(learning_rate=…, *, …)`` in its family's module with **the
   alias's exact signature** (names, defaults, keyword-only after the first; a test
   compares them).  It returns ``(init, step)`` for a single array leaf:
   ``init(p) -> state`` and ``step(p, g, state, t) -> (new_p, new_state)``, with
   ``t`` the 1-based step and ``sq(g) = |g|²`` for squared gradients (real, also for
   complex ``g``).  Raise ``ValueError`` for argument combinations the alias must
   refuse (e.g. Nesterov without momentum); single-argument ranges come from
   ``jopt._validation``.
2. Add ``"foo": Reference(ref_foo, configs=(…))`` to that module's table, in registry
   order (a new family: a new table, joined into :data:`REFERENCES` here).  The first
   configuration is the *main* one, used by the tests that run one configuration per
   optimizer (vmap, grad, float32, complex, checkpoints, sharding):
   switch on every option that adds state there.  Then list every option alone and the
   combinations whose options interact.  Give learning rates large enough that 30 steps
   move the parameters visibly.
3. Set the capabilities that differ from the defaults (complex leaves, extra update
   arguments, moving without a gradient), and ``torch=`` if torch.optim has the
   optimizer: its class, how its arguments and state entries map to jopt's.  A golden
   file written by ``tools/make_golden.py`` for that class is then replayed with no
   edit in any test module.
4. If the optimizer takes a hyperparameter name that no optimizer took before, give it
   a range in :data:`PROPERTY_RANGES` when the vocabulary's range is unbounded.

An optimizer whose step couples the leaves (Prodigy's estimate of d sums over all of
them) cannot be restated per leaf.  Its entry sets ``whole_tree=True`` and its rule
works on the list of leaves: ``init(leaves) -> state`` and
``step(leaves, grads, state, t) -> (new_leaves, new_state)``; L-BFGS's too (one
direction for the concatenated vector).  The generic tests call
every reference through :meth:`Reference.tree_rule`, which gives per-leaf rules that
form too.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp

from ._entry import Reference, TorchPort, sq, stored
from .classic import CLASSIC
from .lbfgs import LBFGS, ref_lbfgs, ref_strong_wolfe
from .modern import MODERN
from .muon_soap import MUON, SOAP, ref_newton_schulz
from .torch_ports import TORCH_PORTS
from .tuning_free import TUNING_FREE

__all__ = [
    "PROPERTY_RANGES",
    "REFERENCES",
    "Reference",
    "TorchPort",
    "all_configs",
    "config_id",
    "main_configs",
    "ref_lbfgs",
    "ref_newton_schulz",
    "ref_strong_wolfe",
    "sq",
    "stored",
    "torch_ports",
]

REFERENCES: Mapping[str, Reference] = MappingProxyType(
    {**CLASSIC, **MODERN, **MUON, **TORCH_PORTS, **SOAP, **TUNING_FREE, **LBFGS}
)
"""Every optimizer of ``jopt.optimizers.ALL``, in registry order (a test checks both)."""


# --- hyperparameters drawn by the property tests ------------------------------------------

# Ranges for the numeric hyperparameters whose vocabulary range is unbounded or too
# wide for a few steps to stay finite.  Names not listed here take their vocabulary
# range (a decay rate in [0, 1) is drawn from [0, 0.99]).  ε starts above 0: centered
# RMSprop divides by √(E[g²] − E[g]²) + ε, exactly 0 after one step with decay 0.
PROPERTY_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "learning_rate": (0.0, 1.0),
        "eps": (1e-8, 1e-2),
        "eps_root": (0.0, 1e-2),
        "weight_decay": (0.0, 0.1),
        "initial_accumulator_value": (0.0, 1.0),
        "adam_learning_rate": (0.0, 1.0),
        "adam_eps": (1e-8, 1e-2),
        "adam_weight_decay": (0.0, 0.1),
        "d0": (1e-8, 1e-3),
        "d_coef": (0.1, 2.0),
    }
)


# --- helpers -------------------------------------------------------------------------------


def config_id(name: str, kwargs: Mapping[str, Any]) -> str:
    """``adam-learning_rate=0.01-amsgrad=True``: a readable test id."""

    def show(value):
        return jnp.dtype(value).name if isinstance(value, type) else value

    return "-".join([name, *(f"{k}={show(v)}" for k, v in kwargs.items())])


def all_configs() -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, kwargs)`` for every configuration of every optimizer."""
    return [(name, kwargs) for name, ref in REFERENCES.items() for kwargs in ref.configs]


def main_configs() -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, kwargs)``: each optimizer's main configuration."""
    return [(name, ref.main) for name, ref in REFERENCES.items()]


def torch_ports() -> list[tuple[str, TorchPort]]:
    """``(alias name, port)`` for every torch.optim call an alias ports."""
    return [(name, port) for name, ref in REFERENCES.items() for port in ref.torch]
