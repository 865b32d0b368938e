"""Independent float64 references for every optimizer of ``jopt.optimizers.ALL``.

Each entry of :data:`REFERENCES` restates one optimizer in NumPy, written from its
paper and from torch.optim's update rule (never from jopt's code), together with what
the generic suite needs to know about it.  The generic tests (``test_registry.py``,
``test_properties.py``, ``test_checkpoint.py``, ``test_sharding.py``,
``test_validation.py``, ``test_reliability.py``) loop over this table, and a test
asserts that its names are exactly the registry's.

Adding an optimizer ``foo``
---------------------------
1. Write ``ref_foo(learning_rate=…, *, …)`` below with **the alias's exact signature**
   (names, defaults, keyword-only after the first; a test compares them).  It returns
   ``(init, step)`` for a single array leaf: ``init(p) -> state`` and
   ``step(p, g, state, t) -> (new_p, new_state)``, with ``t`` the 1-based step and
   ``sq(g) = |g|²`` for squared gradients (real, also for complex ``g``).  Raise
   ``ValueError`` for argument combinations the alias must refuse (e.g. Nesterov
   without momentum); single-argument ranges come from ``jopt._validation``.
2. Add ``"foo": Reference(ref_foo, configs=(…))`` to :data:`REFERENCES`, in registry
   order.  The first configuration is the *main* one, used by the tests that run one
   configuration per optimizer (vmap, grad, float32, complex, checkpoints, sharding):
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
``step(leaves, grads, state, t) -> (new_leaves, new_state)``.  The generic tests call
every reference through :meth:`Reference.tree_rule`, which gives per-leaf rules that
form too.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp
import numpy as np

# --- the shape of an entry ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TorchPort:
    """How ``docs/porting.md`` maps a ``torch.optim`` call to this alias.

    Attributes:
      optimizer: the torch.optim class name, as golden files record it.
      arguments: torch argument -> jopt keyword (a tuple of keywords for a sequence
        such as ``betas``); ``None`` for a torch argument that only selects this alias
        (read by ``selects``) and is not passed on.  ``lr`` always maps to
        ``learning_rate`` (a schedule for ``lr_decay`` and LR schedulers).
      state: torch state entry -> jopt state field; ``None`` where jopt keeps no such
        entry (a step count it does not need).
      selects: whether a torch call (its recorded keyword arguments) is this alias's.
    """

    optimizer: str
    arguments: Mapping[str, str | tuple[str, ...] | None]
    state: Mapping[str, str | None]
    selects: Callable[[Mapping[str, Any]], bool] = lambda hp: True


@dataclasses.dataclass(frozen=True)
class Reference:
    """One optimizer's restatement, the configurations to test, and its capabilities.

    Attributes:
      rule: ``rule(**kwargs) -> (init, step)``; see the module docstring.
      configs: keyword arguments to test; ``configs[0]`` is the main configuration.
      complex_leaves: complex parameters are supported (with ``|g|²``).
      needs_value: ``update`` needs ``value=`` (the loss); the reference's ``step``
        then takes it as a keyword argument too.
      still_without_gradient: a zero gradient leaves the parameters unchanged when
        ``weight_decay`` is 0 (or absent).
      float32_rtol: tolerance of float32 runs against the float64 reference.
      torch: the torch.optim calls this alias ports.
      whole_tree: the rule steps the list of all leaves at once (see the module
        docstring), for optimizers whose leaves are coupled.
    """

    rule: Callable[..., tuple[Callable, Callable]]
    configs: tuple[Mapping[str, Any], ...]
    complex_leaves: bool = True
    needs_value: bool = False
    still_without_gradient: bool = True
    float32_rtol: float = 1e-5
    torch: tuple[TorchPort, ...] = ()
    whole_tree: bool = False

    def tree_rule(self, **kwargs: Any) -> tuple[Callable, Callable]:
        """``(init, step)`` over a list of leaves, whatever form the rule has.

        ``init(leaves) -> state`` and ``step(leaves, grads, state, t, **extra) ->
        (new_leaves, new_state)``; a per-leaf rule is applied to each leaf in turn.
        """
        init, step = self.rule(**kwargs)
        if self.whole_tree:
            return init, step

        def tree_init(leaves):
            return [init(p) for p in leaves]

        def tree_step(leaves, grads, states, t, **extra):
            results = [
                step(p, g, s, t, **extra) for p, g, s in zip(leaves, grads, states, strict=True)
            ]
            return [r[0] for r in results], [r[1] for r in results]

        return tree_init, tree_step

    @property
    def main(self) -> Mapping[str, Any]:
        return self.configs[0]

    def defaults(self) -> dict[str, Any]:
        return {
            name: p.default
            for name, p in inspect.signature(self.rule).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    def decays(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether ``kwargs`` (over the defaults) has a non-zero weight decay."""
        return bool({**self.defaults(), **kwargs}.get("weight_decay", 0.0))


# --- float64 restatements ----------------------------------------------------------------


def sq(x: np.ndarray) -> np.ndarray:
    """``|x|²`` as a real array."""
    return (x * np.conj(x)).real


def stored(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` rounded to a moment's storage ``dtype`` (``None``: kept as it is).

    A complex moment kept in a real dtype is stored in the matching complex dtype.
    """
    if dtype is None:
        return x
    target = jnp.dtype(dtype)
    if np.iscomplexobj(x):
        target = np.result_type(target, np.complex64)
    return np.asarray(x).astype(target).astype(x.dtype)


def ref_sgd(learning_rate=1e-3, *, momentum=0.0, nesterov=False, weight_decay=0.0):
    # torch.optim.SGD: g += λθ; b = μb + g (b₁ = g); d = g + μb (Nesterov) or b; θ -= ηd.
    # (torch refuses Nesterov without momentum; with μ = 0 the rule is plain SGD.)

    def init(p):
        return {"buf": np.zeros_like(p)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        buf = momentum * s["buf"] + g
        direction = g + momentum * buf if nesterov else buf
        return p - learning_rate * direction, {"buf": buf}

    return init, step


def ref_momentum(learning_rate=1e-3, *, momentum=0.9, weight_decay=0.0):
    return ref_sgd(learning_rate, momentum=momentum, weight_decay=weight_decay)


def ref_nesterov(learning_rate=1e-3, *, momentum=0.9, weight_decay=0.0):
    return ref_sgd(learning_rate, momentum=momentum, nesterov=True, weight_decay=weight_decay)


def ref_adagrad(
    learning_rate=1e-2, *, initial_accumulator_value=0.0, eps=1e-10, eps_root=0.0, weight_decay=0.0
):
    # Duchi et al.: G = G₀ + Σ g²; θ -= η g / (√(G + eps_root) + eps).
    def init(p):
        return {"G": np.full(np.shape(p), initial_accumulator_value, np.float64)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        G = s["G"] + sq(g)
        return p - learning_rate * g / (np.sqrt(G + eps_root) + eps), {"G": G}

    return init, step


def ref_adadelta(learning_rate=1.0, *, rho=0.9, eps=1e-6, weight_decay=0.0):
    # Zeiler: E[g²] = ρE[g²] + (1-ρ)g²; Δ = √(E[Δ²] + ε)/√(E[g²] + ε)·g;
    # E[Δ²] = ρE[Δ²] + (1-ρ)Δ²; θ -= ηΔ.
    def init(p):
        zeros = np.zeros(np.shape(p))
        return {"Eg2": zeros, "Ed2": zeros}

    def step(p, g, s, t):
        g = g + weight_decay * p
        Eg2 = rho * s["Eg2"] + (1 - rho) * sq(g)
        delta = np.sqrt(s["Ed2"] + eps) / np.sqrt(Eg2 + eps) * g
        Ed2 = rho * s["Ed2"] + (1 - rho) * sq(delta)
        return p - learning_rate * delta, {"Eg2": Eg2, "Ed2": Ed2}

    return init, step


def ref_rmsprop(
    learning_rate=1e-3,
    *,
    decay=0.9,
    eps=1e-8,
    eps_root=0.0,
    centered=False,
    momentum=0.0,
    weight_decay=0.0,
):
    # Hinton's lecture 6e (+ Graves' centring, + torch's momentum buffer outside η).
    def init(p):
        return {"Eg2": np.zeros(np.shape(p)), "Eg": np.zeros_like(p), "buf": np.zeros_like(p)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        Eg2 = decay * s["Eg2"] + (1 - decay) * sq(g)
        Eg = decay * s["Eg"] + (1 - decay) * g
        second = Eg2 - sq(Eg) if centered else Eg2
        direction = g / (np.sqrt(second + eps_root) + eps)
        buf = momentum * s["buf"] + direction
        if momentum:
            direction = buf
        return p - learning_rate * direction, {"Eg2": Eg2, "Eg": Eg, "buf": buf}

    return init, step


def ref_adam(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    eps_root=0.0,
    amsgrad=False,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
):
    # Kingma & Ba, with torch's AMSGrad order (max of v, then bias correction); the
    # moments are stored rounded to their dtypes, the step uses them unrounded.
    def init(p):
        zeros = np.zeros(np.shape(p))
        return {"m": np.zeros_like(p), "v": zeros, "vmax": zeros}

    def step(p, g, s, t):
        g = g + weight_decay * p
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * sq(g)
        vmax = np.maximum(s["vmax"], v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        new_p = p - learning_rate * m_hat / (np.sqrt(v_hat + eps_root) + eps)
        state = {"m": stored(m, mu_dtype), "v": stored(v, nu_dtype), "vmax": stored(vmax, nu_dtype)}
        return new_p, state

    return init, step


def ref_adamw(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=1e-2,
    mu_dtype=None,
    nu_dtype=None,
):
    # Loshchilov & Hutter: the Adam step, then θ -= ηλθ with the θ before the step.
    init, adam_step = ref_adam(
        learning_rate, b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype
    )

    def step(p, g, s, t):
        new_p, s = adam_step(p, g, s, t)
        return new_p - learning_rate * weight_decay * p, s

    return init, step


def ref_adamax(
    learning_rate=2e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
):
    # Kingma & Ba §7.1 with torch's eps: u = max(β₂u, |g| + ε); θ -= η/(1-β₁ᵗ)·m/u.
    def init(p):
        return {"m": np.zeros_like(p), "u": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        g = g + weight_decay * p
        m = b1 * s["m"] + (1 - b1) * g
        u = np.maximum(b2 * s["u"], np.abs(g) + eps)
        new_p = p - learning_rate / (1 - b1**t) * m / u
        return new_p, {"m": stored(m, mu_dtype), "u": stored(u, nu_dtype)}

    return init, step


def _ref_schedule_free(learning_rate, b1, weight_decay, warmup_steps, r, power, mu_dtype, adam):
    # Defazio et al. 2024, with the schedulefree package's choices: γₜ = η·min(1, t/T),
    # averaging weight tʳ·(max γ)^p, decay λ·y inside the base direction; then
    # z ← z − γ·d, x ← (1 − c)·x + c·z, y = (1 − β)·z + β·x.  jopt stores z − x before
    # the average moves (in mu_dtype): z and x are rebuilt from y and that stored value.
    def init(p):
        return {"m": np.zeros_like(p), "c": 0.0, "v": np.zeros(np.shape(p)), "lr_max": 0.0,
                "weights": 0.0}  # fmt: skip

    def step(y, g, s, t):
        eta = learning_rate(t - 1) if callable(learning_rate) else learning_rate
        gamma = eta * (min(1.0, t / warmup_steps) if warmup_steps else 1.0)
        lr_max = max(s["lr_max"], gamma)
        weight = t**r * lr_max**power
        weights = s["weights"] + weight
        c = weight / weights if weights > 0 else 0.0
        v = s["v"]
        if adam is not None:
            b2, eps, nu_dtype = adam
            v = b2 * v + (1 - b2) * sq(g)
            direction = g / (np.sqrt(v / (1 - b2**t)) + eps)
            v = stored(v, nu_dtype)
        else:
            direction = g
        direction = direction + weight_decay * y
        z_minus_x = (1 - s["c"]) * s["m"]
        z, x = y + b1 * z_minus_x, y - (1 - b1) * z_minus_x
        z = z - gamma * direction
        m = z - x
        x = (1 - c) * x + c * z
        state = {"m": stored(m, mu_dtype), "c": c, "v": v, "lr_max": lr_max, "weights": weights}
        return (1 - b1) * z + b1 * x, state

    return init, step


def ref_schedule_free_adamw(
    learning_rate=2.5e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    warmup_steps=0,
    r=0.0,
    weight_lr_power=2.0,
    mu_dtype=None,
    nu_dtype=None,
):
    # AdamWScheduleFree: no first moment, v bias-corrected inside the root.
    return _ref_schedule_free(
        learning_rate, b1, weight_decay, warmup_steps, r, weight_lr_power, mu_dtype,
        adam=(b2, eps, nu_dtype),
    )  # fmt: skip


def ref_schedule_free_sgd(
    learning_rate=1.0,
    *,
    momentum=0.9,
    weight_decay=0.0,
    warmup_steps=0,
    r=0.0,
    weight_lr_power=2.0,
    mu_dtype=None,
):
    # SGDScheduleFree: the base direction is the gradient.
    return _ref_schedule_free(
        learning_rate, momentum, weight_decay, warmup_steps, r, weight_lr_power, mu_dtype, None
    )


def ref_prodigy(
    learning_rate=1.0,
    *,
    b1=0.9,
    b2=0.999,
    b3=None,
    eps=1e-8,
    weight_decay=0.0,
    d0=1e-6,
    d_coef=1.0,
    growth_rate=math.inf,
    use_bias_correction=False,
    safeguard_warmup=False,
    mu_dtype=None,
    nu_dtype=None,
):
    # Mishchenko & Defazio 2024 as prodigyopt's Prodigy (one parameter group, decoupled
    # decay).  d is one number for all leaves: the rule steps the list of leaves.
    beta3 = math.sqrt(b2) if b3 is None else b3

    def init(leaves):
        zeros = [np.zeros_like(p) for p in leaves]
        return {"d": d0, "d_max": d0, "r": 0.0, "k": 0, "m": zeros, "s": zeros,
                "v": [np.zeros(np.shape(p)) for p in leaves], "x0": list(leaves)}  # fmt: skip

    def step(leaves, grads, state, t):
        # A schedule is read at the number of earlier updates, t − 1, as a torch LR
        # scheduler stepped after every optimizer step.
        eta = learning_rate(t - 1) if callable(learning_rate) else learning_rate
        if eta <= 0:
            return leaves, state  # prodigyopt skips the group: nothing changes
        d, k = state["d"], state["k"]
        rho = math.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1)) if use_bias_correction else 1
        gamma = d * eta * rho
        r, denominator, m, v, s = beta3 * state["r"], 0.0, [], [], []
        for x, g, mi, vi, si, x0 in zip(leaves, grads, state["m"], state["v"], state["s"],
                                        state["x0"], strict=True):  # fmt: skip
            r += (d / d0) * gamma * np.vdot(g, x0 - x).real
            m.append(b1 * mi + d * (1 - b1) * g)
            v.append(b2 * vi + d * d * (1 - b2) * sq(g))
            s.append(beta3 * si + (d / d0) * (d if safeguard_warmup else gamma) * g)
            denominator += np.sum(np.abs(s[-1]))
        moments = {"m": [stored(a, mu_dtype) for a in m], "v": [stored(a, nu_dtype) for a in v]}
        if denominator == 0:  # no gradient seen yet: no step, d unchanged
            return leaves, {**state, **moments, "s": s}
        d_hat = d_coef * r / denominator
        d_max = max(state["d_max"], d_hat)
        d = min(d_max, (max(d, d_hat) if d == d0 else d) * growth_rate)
        new_leaves = [
            x - gamma * ((mi if b1 else d * g) / (np.sqrt(vi) + d * eps) + weight_decay * x)
            for x, g, mi, vi in zip(leaves, grads, m, v, strict=True)
        ]
        new_state = {**state, **moments, "s": s, "d": d, "d_max": d_max, "r": r, "k": k + 1}
        return new_leaves, new_state

    return init, step


# --- torch.optim ports ---------------------------------------------------------------------

_SGD_STATE = {"momentum_buffer": "trace"}
_ADAM_STATE = {"exp_avg": "mu", "exp_avg_sq": "nu", "max_exp_avg_sq": "nu_max", "step": "count"}
_BETAS = ("b1", "b2")


def _momentum_only(hp: Mapping[str, Any]) -> bool:
    return hp.get("momentum", 0.0) > 0 and not hp.get("nesterov", False)


def _decoupled(hp: Mapping[str, Any]) -> bool:
    return bool(hp.get("decoupled_weight_decay", False))


# --- the table -------------------------------------------------------------------------------

REFERENCES: Mapping[str, Reference] = MappingProxyType(
    {
        "sgd": Reference(
            ref_sgd,
            configs=(
                {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
                {"learning_rate": 0.1},
                {"learning_rate": 0.05, "momentum": 0.9},
                {"learning_rate": 0.1, "weight_decay": 0.05},
            ),
            torch=(
                TorchPort(
                    "SGD",
                    {
                        "momentum": "momentum",
                        "nesterov": "nesterov",
                        "weight_decay": "weight_decay",
                    },
                    _SGD_STATE,
                ),
            ),
        ),
        "momentum": Reference(
            ref_momentum,
            configs=(
                {"learning_rate": 0.05, "momentum": 0.7, "weight_decay": 0.05},
                {"learning_rate": 0.05},
            ),
            torch=(
                TorchPort(
                    "SGD",
                    {"momentum": "momentum", "weight_decay": "weight_decay", "nesterov": None},
                    _SGD_STATE,
                    selects=_momentum_only,
                ),
            ),
        ),
        "nesterov": Reference(
            ref_nesterov,
            configs=(
                {"learning_rate": 0.05, "momentum": 0.7, "weight_decay": 0.05},
                {"learning_rate": 0.05},
            ),
            torch=(
                TorchPort(
                    "SGD",
                    {"momentum": "momentum", "weight_decay": "weight_decay", "nesterov": None},
                    _SGD_STATE,
                    selects=lambda hp: bool(hp.get("nesterov", False)),
                ),
            ),
        ),
        "adagrad": Reference(
            ref_adagrad,
            configs=(
                {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 0.05},
                {"learning_rate": 0.1},
                {"learning_rate": 0.1, "eps": 0.0, "eps_root": 1e-2},
                {"learning_rate": 0.1, "eps": 1e-3, "eps_root": 1e-2},
            ),
            torch=(
                TorchPort(
                    "Adagrad",
                    {
                        "initial_accumulator_value": "initial_accumulator_value",
                        "eps": "eps",
                        "weight_decay": "weight_decay",
                        "lr_decay": None,
                    },
                    {"sum": "sum_of_squares", "step": None},
                ),
            ),
        ),
        "adadelta": Reference(
            ref_adadelta,
            configs=({"learning_rate": 0.5, "rho": 0.95, "eps": 1e-4, "weight_decay": 0.05}, {}),
            torch=(
                TorchPort(
                    "Adadelta",
                    {"rho": "rho", "eps": "eps", "weight_decay": "weight_decay"},
                    {"square_avg": "grad_sq_avg", "acc_delta": "delta_sq_avg", "step": None},
                ),
            ),
        ),
        "rmsprop": Reference(
            ref_rmsprop,
            configs=(
                {
                    "learning_rate": 0.01,
                    "decay": 0.95,
                    "centered": True,
                    "momentum": 0.9,
                    "weight_decay": 0.05,
                },
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "centered": True},
                {"learning_rate": 0.01, "momentum": 0.9},
                {"learning_rate": 0.01, "eps": 0.0, "eps_root": 1e-4},
                {"learning_rate": 0.01, "centered": True, "eps": 1e-3, "eps_root": 1e-4},
            ),
            torch=(
                TorchPort(
                    "RMSprop",
                    {
                        "alpha": "decay",
                        "eps": "eps",
                        "centered": "centered",
                        "momentum": "momentum",
                        "weight_decay": "weight_decay",
                    },
                    {
                        "square_avg": "nu",
                        "grad_avg": "mu",
                        "momentum_buffer": "trace",
                        "step": None,
                    },
                ),
            ),
        ),
        "adam": Reference(
            ref_adam,
            configs=(
                {
                    "learning_rate": 0.01,
                    "b1": 0.8,
                    "b2": 0.99,
                    "amsgrad": True,
                    "weight_decay": 0.05,
                },
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "amsgrad": True},
                {"learning_rate": 0.01, "eps": 0.0, "eps_root": 1e-4},
                {"learning_rate": 0.01, "amsgrad": True, "eps": 1e-6, "eps_root": 1e-4},
                {"learning_rate": 0.01, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
            torch=(
                TorchPort(
                    "Adam",
                    {
                        "betas": _BETAS,
                        "eps": "eps",
                        "weight_decay": "weight_decay",
                        "amsgrad": "amsgrad",
                        "decoupled_weight_decay": None,
                    },
                    _ADAM_STATE,
                    selects=lambda hp: not _decoupled(hp),
                ),
            ),
        ),
        "adamax": Reference(
            ref_adamax,
            configs=(
                {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "mu_dtype": jnp.float32, "nu_dtype": jnp.bfloat16},
            ),
            torch=(
                TorchPort(
                    "Adamax",
                    {"betas": _BETAS, "eps": "eps", "weight_decay": "weight_decay"},
                    {"exp_avg": "mu", "exp_inf": "nu", "step": "count"},
                ),
            ),
        ),
        "adamw": Reference(
            ref_adamw,
            configs=(
                {"learning_rate": 0.01, "weight_decay": 0.1},
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "weight_decay": 0.0},
                {
                    "learning_rate": 0.01,
                    "b1": 0.8,
                    "b2": 0.99,
                    "eps": 1e-6,
                    "mu_dtype": jnp.bfloat16,
                    "nu_dtype": jnp.float32,
                },
            ),
            torch=(
                TorchPort(
                    "AdamW",
                    {
                        "betas": _BETAS,
                        "eps": "eps",
                        "weight_decay": "weight_decay",
                        "amsgrad": None,
                    },
                    _ADAM_STATE,
                    selects=lambda hp: not hp.get("amsgrad", False),
                ),
                # torch's Adam(decoupled_weight_decay=True) is AdamW.
                TorchPort(
                    "Adam",
                    {
                        "betas": _BETAS,
                        "eps": "eps",
                        "weight_decay": "weight_decay",
                        "decoupled_weight_decay": None,
                        "amsgrad": None,
                    },
                    _ADAM_STATE,
                    selects=lambda hp: _decoupled(hp) and not hp.get("amsgrad", False),
                ),
            ),
        ),
        "schedule_free_adamw": Reference(
            ref_schedule_free_adamw,
            configs=(
                {
                    "learning_rate": 0.05,
                    "b1": 0.8,
                    "b2": 0.99,
                    "eps": 1e-6,
                    "weight_decay": 0.05,
                    "r": 0.5,
                    "weight_lr_power": 1.0,
                },
                {"learning_rate": 0.05},
                {"learning_rate": 0.05, "warmup_steps": 4},
                {"learning_rate": 0.05, "warmup_steps": 3, "r": 1.0, "weight_lr_power": 0.0},
                {"learning_rate": 0.05, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
        ),
        "schedule_free_sgd": Reference(
            ref_schedule_free_sgd,
            configs=(
                {
                    "learning_rate": 0.3,
                    "momentum": 0.8,
                    "weight_decay": 0.05,
                    "r": 0.5,
                    "weight_lr_power": 1.0,
                },
                {"learning_rate": 0.3},
                {"learning_rate": 0.3, "warmup_steps": 4},
                {"learning_rate": 0.3, "mu_dtype": jnp.bfloat16},
            ),
        ),
        "prodigy": Reference(
            ref_prodigy,
            # b3 is set outside the main configuration: injected, a live b3 could not
            # be set back to its default None (test_validation's set_hyperparams walk).
            configs=(
                {
                    "learning_rate": 0.5,
                    "b1": 0.8,
                    "b2": 0.99,
                    "eps": 1e-6,
                    "weight_decay": 0.05,
                    "d0": 1e-3,
                    "d_coef": 0.8,
                    "growth_rate": 1.5,
                    "use_bias_correction": True,
                },
                {"learning_rate": 1.0},
                {"learning_rate": 0.5, "safeguard_warmup": True, "b3": 0.95},
                {"learning_rate": 1.0, "b1": 0.0},
                {"learning_rate": 1.0, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
            whole_tree=True,
        ),
    }
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
