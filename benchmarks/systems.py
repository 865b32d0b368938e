"""The systems under test: one optimizer step, set up the same way for each.

A *system* is jopt, optax, or torch.optim in its ``foreach`` or ``fused`` form.  The
optimizers are the registry's, :data:`jopt.optimizers.ALL`.  Three of them have
counterparts here (:data:`COUNTERPARTS`) that run the same algorithm with the same
hyperparameters (:data:`HYPERPARAMETERS`) in every system:

* ``momentum``: heavy ball, ``v ← γ·v + g``, ``θ ← θ − η·v``;
* ``rmsprop``: ``s ← ρ·s + (1 − ρ)·g²``, ``θ ← θ − η·g / (√s + ε)`` (optax is told
  ``eps_in_sqrt=False`` to match);
* ``adam``: bias-corrected Adam.

Every other optimizer of the registry runs in jopt alone, at its demo learning rate
(:data:`jopt.optimizers.DEMO_LEARNING_RATES`) and its defaults.

The JAX systems step with ``jit`` and the parameters and state donated, so a step
updates them in place; the gradient is an input that is not donated (a training loop
would compute it).  The torch systems call ``optimizer.step()`` on parameters whose
``.grad`` is set.  Each step reads and writes ``words_per_param`` float32 words per
parameter at the least (:func:`words_per_param`), which turns a step time into GB/s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.shapes import ShapeSet

COUNTERPARTS = ("momentum", "rmsprop", "adam")
"""The optimizers with optax and torch.optim counterparts: the default rows."""
JAX_SYSTEMS = ("jopt", "optax")
TORCH_SYSTEMS = ("torch-foreach", "torch-fused")
SYSTEMS = JAX_SYSTEMS + TORCH_SYSTEMS

HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "momentum": {"learning_rate": 1e-3, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-3, "decay": 0.9, "eps": 1e-8},
    "adam": {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8},
}

ITEMSIZE = 4  # float32
GRADIENT_SCALE = 1e-2


# Registry entries the step rows cannot time, and why (``--optimizers all`` leaves them
# out; naming one is an error that gives the reason).
NOT_TIMED: dict[str, str] = {
    "lbfgs": "its update needs the loss, which a step on given gradients does not have, "
    "and its state keeps history_size=100 pairs of parameter-sized vectors (27 GB on "
    "big); jopt.minimize has its own rows: --families minimize",
}


def registry() -> tuple[str, ...]:
    """Every optimizer the harness can time: the names of :data:`jopt.optimizers.ALL`
    but those of :data:`NOT_TIMED`."""
    import jopt

    return tuple(name for name in jopt.optimizers.ALL if name not in NOT_TIMED)


def hyperparameters(optimizer: str) -> dict[str, float]:
    """The hyperparameters ``optimizer`` runs with: the shared ones of a counterpart,
    else its demo learning rate (and its defaults)."""
    if optimizer in HYPERPARAMETERS:
        return dict(HYPERPARAMETERS[optimizer])
    import jopt

    return {"learning_rate": jopt.optimizers.DEMO_LEARNING_RATES[optimizer]}


def state_words_per_param(optimizer: str) -> float:
    """Float32 words of jopt's state per parameter (scalars such as a count left out).

    Measured from the state's shapes on a 64×64 leaf: 1 for momentum and rmsprop, 2
    for adam.
    """
    import jax
    import jax.numpy as jnp

    probe = {"w": jax.ShapeDtypeStruct((64, 64), jnp.float32)}
    state = jax.eval_shape(jax_optimizer("jopt", optimizer)[0].init, probe)
    words = sum(
        leaf.size * leaf.dtype.itemsize / ITEMSIZE
        for leaf in jax.tree.leaves(state)
        if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.ndim > 0
    )
    return words / (64 * 64)


def words_per_param(optimizer: str) -> float:
    """The least memory traffic of a step, in words per parameter: read g, θ and each
    state buffer, write θ and each state buffer back (5 for momentum, 7 for adam)."""
    return 3 + 2 * state_words_per_param(optimizer)


def bytes_per_step(optimizer: str, n_params: int) -> int:
    """The least number of bytes one step moves through memory."""
    return round(words_per_param(optimizer) * ITEMSIZE * n_params)


def expected_bytes(optimizer: str, n_params: int) -> int:
    """params + grads + optimizer state, in bytes (the step counter is not counted)."""
    return round((2 + state_words_per_param(optimizer)) * ITEMSIZE * n_params)


# --- JAX ------------------------------------------------------------------------------


def jax_optimizer(system: str, optimizer: str):
    """``(GradientTransformation, apply_updates)`` of ``system`` for ``optimizer``."""
    if system == "jopt" and optimizer not in HYPERPARAMETERS:
        import jopt

        factory = jopt.optimizers.ALL[optimizer]
        return factory(jopt.optimizers.DEMO_LEARNING_RATES[optimizer]), jopt.apply_updates
    if system in JAX_SYSTEMS and optimizer not in HYPERPARAMETERS:
        raise ValueError(f"{optimizer!r} has no {system} counterpart in the harness")
    hp = HYPERPARAMETERS[optimizer]
    if system == "jopt":
        import jopt

        make = {
            "momentum": lambda: jopt.momentum(hp["learning_rate"], momentum=hp["momentum"]),
            "rmsprop": lambda: jopt.rmsprop(hp["learning_rate"], decay=hp["decay"], eps=hp["eps"]),
            "adam": lambda: jopt.adam(hp["learning_rate"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
        }
        return make[optimizer](), jopt.apply_updates
    if system == "optax":
        import optax

        make = {
            "momentum": lambda: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
            # eps outside the root, as jopt and torch put it (optax's default is inside).
            "rmsprop": lambda: optax.rmsprop(
                hp["learning_rate"], hp["decay"], hp["eps"], eps_in_sqrt=False
            ),
            "adam": lambda: optax.adam(hp["learning_rate"], hp["b1"], hp["b2"], hp["eps"]),
        }
        return make[optimizer](), optax.apply_updates
    raise ValueError(f"system must be one of {JAX_SYSTEMS}, got {system!r}")


def jax_step(system: str, optimizer: str):
    """``(jitted step, optimizer)``; ``step(params, state, grads) -> (params, state)``.

    Parameters and state are donated.
    """
    opt, apply_updates = jax_optimizer(system, optimizer)
    return donated_step(opt, apply_updates), opt


def donated_step(opt, apply_updates=None):
    """``step(params, state, grads) -> (params, state)`` of transformation ``opt``,
    jitted with the parameters and the state donated (``apply_updates``: jopt's by
    default)."""
    import jax

    if apply_updates is None:
        import jopt

        apply_updates = jopt.apply_updates

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def abstract_params(shapes: ShapeSet):
    import jax
    import jax.numpy as jnp

    return shapes.nested(lambda path, shape: jax.ShapeDtypeStruct(shape, jnp.float32))


@dataclass
class Compiled:
    """A lowered-and-compiled JAX step and how long each phase took."""

    executable: Any
    optimizer: Any
    lower_s: float
    compile_s: float
    memory: dict[str, int] = field(default_factory=dict)


def compile_jax(system: str, optimizer: str, shapes: ShapeSet) -> Compiled:
    """Trace, lower and compile a fresh step, timing tracing+lowering and compiling apart."""
    import jax

    step, opt = jax_step(system, optimizer)
    params = abstract_params(shapes)
    state = jax.eval_shape(opt.init, params)
    t0 = time.perf_counter()
    lowered = step.lower(params, state, params)
    t1 = time.perf_counter()
    executable = lowered.compile()
    t2 = time.perf_counter()
    memory = {}
    try:
        analysis = executable.memory_analysis()
        for name in ("argument", "output", "alias", "temp"):
            memory[name] = int(getattr(analysis, f"{name}_size_in_bytes"))
    except Exception:  # not every backend reports it
        memory = {}
    return Compiled(executable, opt, t1 - t0, t2 - t1, memory)


def host_arrays(shapes: ShapeSet, seed: int = 0) -> tuple[dict, dict]:
    """``{path: array}`` parameters ~ N(0, 1) and gradients ~ N(0, 0.01²), float32 NumPy.

    Every system copies the same arrays, so all of them step the same numbers.
    """
    rng = np.random.default_rng(seed)
    params, grads = {}, {}
    for path, shape in shapes.leaves.items():
        params[path] = rng.standard_normal(shape, dtype=np.float32)
        grads[path] = rng.standard_normal(shape, dtype=np.float32) * np.float32(GRADIENT_SCALE)
    return params, grads


def to_jax(shapes: ShapeSet, arrays: dict):
    """Device copies of ``arrays`` as the nested tree (never aliasing NumPy memory,
    which could not be donated)."""
    import jax.numpy as jnp

    return shapes.nested(lambda path, shape: jnp.array(arrays[path], copy=True))


class JaxRunner:
    """Runs ``step(params, state, grads)`` ``k`` times on its own arrays, waiting for the
    last; the state starts as ``init(params)``."""

    def __init__(self, step, init, shapes: ShapeSet, params: dict, grads: dict):
        self.step = step
        self.params, self.grads = to_jax(shapes, params), to_jax(shapes, grads)
        self.state = init(self.params)

    @classmethod
    def of(cls, compiled: Compiled, shapes: ShapeSet, params: dict, grads: dict) -> JaxRunner:
        """The runner of a compiled step (``compile_jax``)."""
        return cls(compiled.executable, compiled.optimizer.init, shapes, params, grads)

    def __call__(self, k: int) -> None:
        import jax

        params, state, grads = self.params, self.state, self.grads
        for _ in range(k):
            params, state = self.step(params, state, grads)
        jax.block_until_ready((params, state))
        self.params, self.state = params, state

    def state_bytes(self) -> int:
        """Every array of the state, counts and scalars included."""
        import jax

        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(self.state))


# --- torch ----------------------------------------------------------------------------


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_optimizer(system: str, optimizer: str, params: list):
    """torch.optim's optimizer for ``system`` (``torch-foreach`` or ``torch-fused``)."""
    import torch

    if system not in TORCH_SYSTEMS:
        raise ValueError(f"system must be one of {TORCH_SYSTEMS}, got {system!r}")
    if optimizer not in HYPERPARAMETERS:
        raise ValueError(f"{optimizer!r} has no torch.optim counterpart in the harness")
    mode = {"foreach": True} if system == "torch-foreach" else {"fused": True}
    hp = HYPERPARAMETERS[optimizer]
    if optimizer == "momentum":
        return torch.optim.SGD(params, lr=hp["learning_rate"], momentum=hp["momentum"], **mode)
    if optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=hp["learning_rate"], alpha=hp["decay"], eps=hp["eps"], **mode
        )
    return torch.optim.Adam(
        params, lr=hp["learning_rate"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"], **mode
    )


def unavailable(system: str, optimizer: str) -> str | None:
    """Why ``system`` has no step for ``optimizer`` in the harness, or None if it has."""
    if system == "jopt" or optimizer in COUNTERPARTS:
        return None
    return f"no {system} counterpart for {optimizer} in the harness"


def torch_unsupported(system: str, optimizer: str, device: str) -> str | None:
    """Why torch cannot run ``system`` for ``optimizer`` here, or None if it can."""
    if optimizer not in COUNTERPARTS:
        return unavailable(system, optimizer)
    if not torch_available():
        return "torch is not installed"
    import torch

    try:
        param = torch.nn.Parameter(torch.zeros(4, device=device))
        param.grad = torch.ones(4, device=device)
        torch_optimizer(system, optimizer, [param]).step()
    except (TypeError, RuntimeError, ValueError) as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return None


class TorchRunner:
    """``k`` calls of ``optimizer.step()`` on its own parameters with ``.grad`` set;
    CUDA work is waited for.  ``make(params) -> optimizer`` builds the optimizer on the
    list of parameters (for the harness's systems:
    ``functools.partial(torch_optimizer, system, optimizer)``)."""

    def __init__(self, make, params: dict, grads: dict, device: str = "cpu") -> None:
        import torch

        self.device = device
        self.params = []
        for path, value in params.items():
            param = torch.nn.Parameter(torch.tensor(value, device=device))
            param.grad = torch.tensor(grads[path], device=device)
            self.params.append(param)
        self.optimizer = make(self.params)

    def __call__(self, k: int) -> None:
        import torch

        with torch.no_grad():
            for _ in range(k):
                self.optimizer.step()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def state_bytes(self) -> int:
        """Every tensor of ``optimizer.state`` (its 0-d step counts included); torch
        creates the state at the first step."""
        return sum(
            value.nbytes
            for entry in self.optimizer.state.values()
            for value in entry.values()
            if hasattr(value, "nbytes")
        )


# --- agreement ------------------------------------------------------------------------


def agreement(optimizer: str, systems: list[str], torch_device: str, steps: int = 3) -> dict:
    """How far each system's parameters end from jopt's after ``steps`` equal steps.

    A small float32 tree is stepped with the same gradients by every system; the
    result is ``max |θ_system − θ_jopt| / max |θ_jopt − θ₀|``, so that a system that
    ran another algorithm (or none) shows up as a number near 1, rounding as ~1e-6.
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    shapes = {"w": (33, 17), "b": (17,)}
    params0 = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    grads = [
        {k: (GRADIENT_SCALE * rng.normal(size=s)).astype(np.float32) for k, s in shapes.items()}
        for _ in range(steps)
    ]
    finals: dict[str, dict[str, np.ndarray]] = {}
    for system in systems:
        if system in JAX_SYSTEMS:
            opt, apply_updates = jax_optimizer(system, optimizer)
            params = {k: jnp.asarray(v) for k, v in params0.items()}
            state = opt.init(params)
            for g in grads:
                updates, state = opt.update(
                    {k: jnp.asarray(v) for k, v in g.items()}, state, params
                )
                params = apply_updates(params, updates)
            finals[system] = {k: np.asarray(jax.device_get(v)) for k, v in params.items()}
        else:
            import torch

            tensors = {
                k: torch.nn.Parameter(torch.from_numpy(v.copy()).to(torch_device))
                for k, v in params0.items()
            }
            opt = torch_optimizer(system, optimizer, list(tensors.values()))
            for g in grads:
                for k, t in tensors.items():
                    t.grad = torch.from_numpy(g[k].copy()).to(torch_device)
                opt.step()
            finals[system] = {k: t.detach().cpu().numpy() for k, t in tensors.items()}
    reference = finals["jopt"]
    moved = max(float(np.max(np.abs(reference[k] - params0[k]))) for k in shapes)
    return {
        system: max(float(np.max(np.abs(finals[system][k] - reference[k]))) for k in shapes) / moved
        for system in systems
    }


def calibrate(run: Callable[[int], None], seconds: float, max_steps: int = 10_000) -> int:
    """Steps per timed batch so that a batch takes about ``seconds`` (at least one)."""
    t0 = time.perf_counter()
    run(1)
    once = max(time.perf_counter() - t0, 1e-7)
    return int(min(max_steps, max(1, math.ceil(seconds / once))))
