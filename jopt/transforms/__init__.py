"""Building blocks: small gradient transformations that the optimizers chain.

Each block does one thing to the incoming updates ``g`` (of any pytree structure) and
keeps the state that needs.  Every per-parameter block is written with
[`jopt.block`][jopt.block], which owns the rules shared by all of them: ``None`` leaves
pass through, integer and boolean leaves are not trained, complex leaves use ``|g|²``,
arithmetic runs in at least float32 and results keep their storage dtype, and trees
that disagree raise errors naming the path.

Blocks that share a name with optax compute what optax's compute, for the same
arguments and with the same defaults; jopt's additions are keyword arguments that
default to optax's behaviour (``eps_root``, ``nu_dtype``, ``correct_after_max``).
"""

from jopt.transforms._adam import *  # noqa: F403
from jopt.transforms._adam import __all__ as _adam
from jopt.transforms._adaptive import *  # noqa: F403
from jopt.transforms._adaptive import __all__ as _adaptive
from jopt.transforms._ademamix import *  # noqa: F403
from jopt.transforms._ademamix import __all__ as _ademamix
from jopt.transforms._adopt import *  # noqa: F403
from jopt.transforms._adopt import __all__ as _adopt
from jopt.transforms._asgd import *  # noqa: F403
from jopt.transforms._asgd import __all__ as _asgd
from jopt.transforms._belief import *  # noqa: F403
from jopt.transforms._belief import __all__ as _belief
from jopt.transforms._factored import *  # noqa: F403
from jopt.transforms._factored import __all__ as _factored
from jopt.transforms._lbfgs import *  # noqa: F403
from jopt.transforms._lbfgs import __all__ as _lbfgs
from jopt.transforms._lion import *  # noqa: F403
from jopt.transforms._lion import __all__ as _lion
from jopt.transforms._momentum import *  # noqa: F403  # noqa: F403
from jopt.transforms._momentum import __all__ as _momentum
from jopt.transforms._muon import *  # noqa: F403
from jopt.transforms._muon import __all__ as _muon
from jopt.transforms._nadam import *  # noqa: F403
from jopt.transforms._nadam import __all__ as _nadam
from jopt.transforms._prodigy import *  # noqa: F403
from jopt.transforms._prodigy import __all__ as _prodigy
from jopt.transforms._rectified import *  # noqa: F403
from jopt.transforms._rectified import __all__ as _rectified
from jopt.transforms._rprop import *  # noqa: F403
from jopt.transforms._rprop import __all__ as _rprop
from jopt.transforms._scaling import *  # noqa: F403
from jopt.transforms._scaling import __all__ as _scaling
from jopt.transforms._schedule_free import *  # noqa: F403
from jopt.transforms._schedule_free import __all__ as _schedule_free
from jopt.transforms._soap import *  # noqa: F403
from jopt.transforms._soap import __all__ as _soap
from jopt.transforms._trust_ratio import *  # noqa: F403
from jopt.transforms._trust_ratio import __all__ as _trust_ratio

__all__ = [
    *_scaling,
    *_momentum,
    *_adaptive,
    *_adam,
    *_nadam,
    *_rectified,
    *_rprop,
    *_asgd,
    *_factored,
    *_lbfgs,
    *_lion,
    *_trust_ratio,
    *_belief,
    *_adopt,
    *_ademamix,
    *_muon,
    *_soap,
    *_schedule_free,
    *_prodigy,
]
