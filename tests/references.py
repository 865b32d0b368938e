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

import jax
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
      matrix_state: besides state shaped like each parameter, the state holds square
        matrices, one ``(d, d)`` per axis of length ``d`` (SOAP's preconditioners), in
        a tuple at the parameter's path.
      torch: the torch.optim calls this alias ports.
      decay_arguments: the arguments that shrink the parameters even without a
        gradient (``weight_decay``; ASGD's ``lambd`` too): a configuration with all of
        them 0 stands still on a zero gradient.
      factored: the state keeps factored statistics for leaves of 2 dims or more
        (shapes ``(…, n, 1)`` and ``(…, 1, m)``) and leaves a field ``None`` where a
        parameter does not use it (Adafactor).
      whole_tree: the rule steps the list of all leaves at once (see the module
        docstring), for optimizers whose leaves are coupled.
    """

    rule: Callable[..., tuple[Callable, Callable]]
    configs: tuple[Mapping[str, Any], ...]
    complex_leaves: bool = True
    needs_value: bool = False
    still_without_gradient: bool = True
    float32_rtol: float = 1e-5
    matrix_state: bool = False
    torch: tuple[TorchPort, ...] = ()
    decay_arguments: tuple[str, ...] = ("weight_decay",)
    factored: bool = False
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

    def state_shapes(self, shape: tuple[int, ...]) -> set[tuple[int, ...]]:
        """The shapes a state leaf may have for a parameter of ``shape``."""
        shapes = {(), shape}
        if self.factored and len(shape) >= 2:
            shapes |= {(*shape[:-1], 1), (*shape[:-2], 1, shape[-1])}
        if self.matrix_state:  # one square matrix per axis
            shapes |= {(n, n) for n in shape}
        return shapes

    def decays(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether ``kwargs`` (over the defaults) has a non-zero decay argument: one of
        ``decay_arguments`` or any argument named ``*_weight_decay`` (``None`` is no
        value)."""
        values = {**self.defaults(), **kwargs}
        return any(bool(v) for k, v in values.items() if self.is_decay(k, v))

    def is_decay(self, name: str, value: Any) -> bool:
        """Whether argument ``name`` is a decay amount (not a flag such as
        ``decoupled_weight_decay``) with a value."""
        named = name in self.decay_arguments or name.endswith("weight_decay")
        return named and value is not None and not isinstance(value, bool)


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


def _norm(x: np.ndarray) -> float:
    """‖x‖₂ over the whole leaf, ``√(Σ|x|²)``."""
    return float(np.sqrt(np.sum(sq(x))))


def ref_lion(learning_rate=1e-4, *, b1=0.9, b2=0.99, weight_decay=0.0):
    # Chen et al. 2023, Program 1: c = β₁m + (1-β₁)g; θ -= η(sign(c) + λθ);
    # m = β₂m + (1-β₂)g.  sign(c) = c/|c| for complex c (torch's sgn).
    def init(p):
        return {"m": np.zeros_like(p)}

    def step(p, g, s, t):
        c = b1 * s["m"] + (1 - b1) * g
        new_p = p - learning_rate * (np.sign(c) + weight_decay * p)
        return new_p, {"m": b2 * s["m"] + (1 - b2) * g}

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


def ref_lamb(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-6,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
):
    # You et al. 2020, Algorithm 2 (φ the identity): r = m̂/(√v̂ + ε) + λθ;
    # θ -= η·(‖θ‖/‖r‖)·r per leaf, the ratio 1 when either norm is 0.
    def init(p):
        return {"m": np.zeros_like(p), "v": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * sq(g)
        r = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) + weight_decay * p
        p_norm, r_norm = _norm(p), _norm(r)
        ratio = p_norm / r_norm if p_norm > 0 and r_norm > 0 else 1.0
        return p - learning_rate * ratio * r, {"m": stored(m, mu_dtype), "v": stored(v, nu_dtype)}

    return init, step


def ref_lars(
    learning_rate=1e-3,
    *,
    momentum=0.9,
    weight_decay=0.0,
    trust_coefficient=1e-3,
    eps=0.0,
    nesterov=False,
):
    # You, Gitman & Ginsburg 2017, Algorithm 1: local rate c‖θ‖/(‖g‖ + β‖θ‖ + ε)
    # (1 where ‖θ‖ or the denominator is 0); v = μv + η·rate·(g + βθ); θ -= v
    # (Nesterov: θ -= η·rate·(g + βθ) + μv).
    def init(p):
        return {"v": np.zeros_like(p)}

    def step(p, g, s, t):
        p_norm = _norm(p)
        denominator = _norm(g) + weight_decay * p_norm + eps
        rate = trust_coefficient * p_norm / denominator if p_norm > 0 and denominator > 0 else 1.0
        d = learning_rate * rate * (g + weight_decay * p)
        v = momentum * s["v"] + d
        return p - (d + momentum * v if nesterov else v), {"v": v}

    return init, step


def ref_adabelief(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-16,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
):
    # Zhuang et al., Algorithm 2, as adabelief-pytorch with rectify=False: θ *= 1 − ηλ;
    # m = β₁m + (1-β₁)g; s = β₂s + (1-β₂)|g − m|² + ε; θ -= η/(1-β₁ᵗ)·m/(√s/√(1-β₂ᵗ) + ε).
    def init(p):
        return {"m": np.zeros_like(p), "s": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        decayed = p * (1 - learning_rate * weight_decay)
        m = b1 * s["m"] + (1 - b1) * g
        var = b2 * s["s"] + (1 - b2) * sq(g - m) + eps
        denom = np.sqrt(var) / math.sqrt(1 - b2**t) + eps
        new_p = decayed - learning_rate / (1 - b1**t) * m / denom
        return new_p, {"m": stored(m, mu_dtype), "s": stored(var, nu_dtype)}

    return init, step


def _clip_magnitude(x, bound):
    """Real: clip(x, −c, c).  Complex: the phase kept, the magnitude clipped to c."""
    if np.iscomplexobj(x):
        size = np.abs(x)
        return np.where(size > bound, x * bound / np.where(size > 0, size, 1), x)
    return np.clip(x, -bound, bound)


def ref_adopt(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.9999,
    eps=1e-6,
    weight_decay=0.0,
    mu_dtype=None,
    nu_dtype=None,
):
    # Taniguchi et al., Algorithm 2 (clipped), as the authors' torch-adopt ADOPT with
    # decouple=False: g += λθ; the first step sets v = |g|² only; then, with k = t − 1
    # earlier steps, ĝ = clip(g / max(√v, ε), k^¼), m = β₁m + (1-β₁)ĝ, θ -= ηm,
    # v = β₂v + (1-β₂)|g|².
    def init(p):
        return {"m": np.zeros_like(p), "v": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        g = g + weight_decay * p
        if t == 1:
            return p, {"m": s["m"], "v": stored(sq(g), nu_dtype)}
        normed = _clip_magnitude(g / np.maximum(np.sqrt(s["v"]), eps), (t - 1) ** 0.25)
        m = b1 * s["m"] + (1 - b1) * normed
        v = b2 * s["v"] + (1 - b2) * sq(g)
        return p - learning_rate * m, {"m": stored(m, mu_dtype), "v": stored(v, nu_dtype)}

    return init, step


def ref_ademamix(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.999,
    b3=0.9999,
    alpha=5.0,
    eps=1e-8,
    weight_decay=0.0,
    alpha_beta3_warmup=None,
    mu_dtype=None,
    nu_dtype=None,
):
    # Pagliardini et al., Algorithm 1, as the authors' pytorch/ademamix.py: for t < T,
    # α(t) = α·t/T and β₃(t) = f⁻¹((1 − t/T)·f(β₁) + (t/T)·f(β₃)), f(β) = ln ½ / ln(β + 1e-8) − 1,
    # f⁻¹(x) = ½^(1/(x+1)); m₁, m₂ (β₃(t)), ν as Adam's; θ -= η((m₁/(1-β₁ᵗ) + α(t)m₂) /
    # (√ν/√(1-β₂ᵗ) + ε) + λθ).
    def half_life(beta):
        return math.log(0.5) / math.log(beta + 1e-8) - 1

    def schedules(t):
        if alpha_beta3_warmup is None or t >= alpha_beta3_warmup:
            return alpha, b3
        a = t / alpha_beta3_warmup
        mixed = (1 - a) * half_life(b1) + a * half_life(b3)
        return a * alpha, 0.5 ** (1 / (mixed + 1))

    def init(p):
        return {"m1": np.zeros_like(p), "m2": np.zeros_like(p), "nu": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        alpha_t, b3_t = schedules(t)
        m1 = b1 * s["m1"] + (1 - b1) * g
        m2 = b3_t * s["m2"] + (1 - b3_t) * g
        nu = b2 * s["nu"] + (1 - b2) * sq(g)
        denom = np.sqrt(nu) / math.sqrt(1 - b2**t) + eps
        update = (m1 / (1 - b1**t) + alpha_t * m2) / denom + weight_decay * p
        state = {"m1": stored(m1, mu_dtype), "m2": stored(m2, mu_dtype), "nu": stored(nu, nu_dtype)}
        return p - learning_rate * update, state

    return init, step


def ref_newton_schulz(G, ns_coefficients=(3.4445, -4.775, 2.0315), ns_steps=5, eps=1e-7):
    # torch.optim.Muon's _zeropower_via_newtonschulz on one (out, in) matrix, in
    # float64: transposed while rows > columns, divided by max(‖G‖_F, eps), then
    # X ← aX + (bA + cA²)X with A = XXᵀ, ns_steps times.
    a, b, c = ns_coefficients
    X = G.T if G.shape[0] > G.shape[1] else G
    X = X / max(np.linalg.norm(X), eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if G.shape[0] > G.shape[1] else X


def _muon_label(labels, p, k):
    # The alias's routing, per leaf: a given label (a string, or a function of the
    # params applied to this one leaf), else Muon for real leaves with two or more
    # axes after the k stack axes.
    if labels is not None:
        return labels if isinstance(labels, str) else labels(p)
    return "muon" if np.ndim(p) - k >= 2 and not np.iscomplexobj(p) else "adam"


def ref_muon(
    learning_rate=1e-3,
    *,
    weight_decay=0.1,
    momentum=0.95,
    nesterov=True,
    ns_coefficients=(3.4445, -4.775, 2.0315),
    eps=1e-7,
    ns_steps=5,
    adjust_lr_fn=None,
    adam_learning_rate=None,
    adam_b1=0.9,
    adam_b2=0.999,
    adam_eps=1e-8,
    adam_weight_decay=None,
    labels=None,
    stack_axes=0,
    layout="in_out",
    ns_dtype=None,
    mu_dtype=None,
    nu_dtype=None,
    mesh=None,
    axis="data",
):
    # torch.optim.Muon on each matrix (Jordan et al. 2024; Liu et al. 2025), with
    # torch's (out, in) matrix the leaf's (in, out) one transposed under "in_out", and
    # torch.optim.AdamW on every other leaf.  The Newton–Schulz iteration runs in
    # float64 here: ns_dtype (a precision, not an algorithm) is not restated, nor are
    # mesh and axis (where the work runs, not what it computes).
    del ns_dtype, mesh, axis
    adam_init, adam_step = ref_adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        b1=adam_b1,
        b2=adam_b2,
        eps=adam_eps,
        weight_decay=weight_decay if adam_weight_decay is None else adam_weight_decay,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
    )

    def k_of(p):
        return stack_axes if isinstance(stack_axes, int) else stack_axes(p)

    def torch_matrices(x, k):
        # (stack..., out, in), torch's layout.
        shape = np.shape(x)
        if layout == "in_out":
            m = x.reshape(shape[:k] + (-1, shape[-1]))
            return np.swapaxes(m, -1, -2)
        return x.reshape(shape[:k] + (shape[k], -1))

    def init(p):
        if _muon_label(labels, p, k_of(p)) == "adam":
            return {"adam": adam_init(p)}
        return {"buf": np.zeros_like(p)}

    def step(p, g, s, t):
        if "adam" in s:
            new_p, adam_state = adam_step(p, g, s["adam"], t)
            return new_p, {"adam": adam_state}
        k = k_of(p)
        buf = momentum * s["buf"] + (1 - momentum) * g
        u = (1 - momentum) * g + momentum * buf if nesterov else buf
        G = torch_matrices(u, k)
        ortho = np.stack(
            [
                ref_newton_schulz(m, ns_coefficients, ns_steps, eps)
                for m in G.reshape((-1,) + G.shape[-2:])
            ]
        ).reshape(G.shape)
        A, B = G.shape[-2:]  # torch's param.shape[:2]: (out, in)
        if adjust_lr_fn == "match_rms_adamw":
            ratio = 0.2 * np.sqrt(max(A, B))
        else:
            ratio = np.sqrt(max(1, A / B))
        if layout == "in_out":
            ortho = np.swapaxes(ortho, -1, -2)
        direction = ratio * ortho.reshape(p.shape)
        new_p = p * (1 - learning_rate * weight_decay) - learning_rate * direction
        return new_p, {"buf": stored(buf, mu_dtype)}

    return init, step


def _decayed(p, g, learning_rate, weight_decay, decoupled):
    """torch's two weight decays: ``(θ shrunk by ηλθ, g)`` or ``(θ, g + λθ)``."""
    if decoupled:
        return p - learning_rate * weight_decay * p, g
    return p, g + weight_decay * p


def ref_nadam(
    learning_rate=2e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    momentum_decay=4e-3,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    mu_dtype=None,
    nu_dtype=None,
):
    # Dozat (2016) with torch.optim.NAdam's schedule μₜ = β₁(1 − ½·0.96^(tψ)), its
    # running product Π, and the two terms (1 − μₜ)/(1 − Πₜ)·g and μₜ₊₁/(1 − Πₜμₜ₊₁)·m.
    def schedule(t):
        return b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))

    def init(p):
        return {"m": np.zeros_like(p), "v": np.zeros(np.shape(p)), "product": 1.0}

    def step(p, g, s, t):
        p_decayed, g = _decayed(p, g, learning_rate, weight_decay, decoupled_weight_decay)
        product = s["product"] * schedule(t)
        product_next = product * schedule(t + 1)
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * sq(g)
        denominator = np.sqrt(v / (1 - b2**t)) + eps
        direction = (1 - schedule(t)) / (1 - product) * g + schedule(t + 1) / (1 - product_next) * m
        new_p = p_decayed - learning_rate * direction / denominator
        return new_p, {"m": stored(m, mu_dtype), "v": stored(v, nu_dtype), "product": product}

    return init, step


def ref_radam(
    learning_rate=1e-3,
    *,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    mu_dtype=None,
    nu_dtype=None,
):
    # Liu et al. (2020) as torch.optim.RAdam: ρₜ = ρ∞ − 2tβ₂ᵗ/(1 − β₂ᵗ); while ρₜ ≤ 5 the
    # step is η·m̂, then η·r·m̂·√(1 − β₂ᵗ)/(√v + ε).
    rho_inf = 2 / (1 - b2) - 1

    def init(p):
        return {"m": np.zeros_like(p), "v": np.zeros(np.shape(p))}

    def step(p, g, s, t):
        p_decayed, g = _decayed(p, g, learning_rate, weight_decay, decoupled_weight_decay)
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * sq(g)
        m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            direction = r * m_hat * np.sqrt(1 - b2**t) / (np.sqrt(v) + eps)
        else:
            direction = m_hat
        new_p = p_decayed - learning_rate * direction
        return new_p, {"m": stored(m, mu_dtype), "v": stored(v, nu_dtype)}

    return init, step


def ref_asgd(learning_rate=1e-2, *, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0):
    # torch.optim.ASGD: θ ← θ(1 − λη) − η(g + wd·θ); ax ← θ while μ = 1, else
    # ax + μ(θ − ax); then η = lr/(1 + λ·lr·t)^α and μ = 1/max(1, t − t₀).
    def init(p):
        return {"eta": learning_rate, "mu": 1.0, "ax": np.zeros_like(p)}

    def step(p, g, s, t):
        g = g + weight_decay * p
        new_p = p * (1 - lambd * s["eta"]) - s["eta"] * g
        ax = new_p if s["mu"] == 1 else s["ax"] + s["mu"] * (new_p - s["ax"])
        eta = learning_rate / (1 + lambd * learning_rate * t) ** alpha
        return new_p, {"eta": eta, "mu": 1 / max(1, t - t0), "ax": ax}

    return init, step


def _real_pairs(x):
    """A complex array as real pairs (the last axis), as torch's ``view_as_real``."""
    return np.stack([x.real, x.imag], axis=-1) if np.iscomplexobj(x) else x


def _from_pairs(x, like):
    return x[..., 0] + 1j * x[..., 1] if np.iscomplexobj(like) else x


def ref_rprop(learning_rate=1e-2, *, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
    # Igel & Hüsken's iRprop⁻ as torch.optim.Rprop: Δ ×η⁺ on a kept sign, ×η⁻ on a flip
    # (and the gradient forgotten), clipped to step_sizes; θ -= sign(g)·Δ.  Complex
    # entries are pairs of reals.
    eta_minus, eta_plus = etas
    low, high = step_sizes  # np.clip, as torch's clamp, gives high where low > high

    def init(p):
        pairs = _real_pairs(np.asarray(p))
        return {"prev": np.zeros_like(pairs), "size": np.full_like(pairs, learning_rate)}

    def step(p, g, s, t):
        g = _real_pairs(np.asarray(g))
        product = g * s["prev"]
        factor = np.where(product > 0, eta_plus, np.where(product < 0, eta_minus, 1.0))
        size = np.clip(s["size"] * factor, low, high)
        g = np.where(product < 0, 0.0, g)
        new_p = p - _from_pairs(np.sign(g) * size, p)
        return new_p, {"prev": g, "size": size}

    return init, step


def _factored_mean(x, axis):
    return np.sum(x, axis=axis, keepdims=True) / max(x.shape[axis], 1)


def _rms(x):
    return np.sqrt(np.sum(x * x) / max(x.size, 1))


def ref_adafactor(
    learning_rate=1e-2, *, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0
):
    # Shazeer & Stern (2018) as torch.optim.Adafactor: row and column means of g² over
    # the last two axes (with 1 − β̂₂ = t^τ), v̂ = R·C/max(mean R, ε₁), û = g/√max(v̂, ε₁²)
    # (0 where v̂ = 0), ρ = min(η, 1/√t), θ ← θ(1 − ηλ) − ρ·max(ε₂, RMS θ)·û/max(1, RMS(û)/d).
    eps1, eps2 = eps

    def init(p):
        shape = np.shape(p)
        if len(shape) < 2:
            return {"v": np.zeros(shape)}
        return {"row": np.zeros((*shape[:-1], 1)), "col": np.zeros((*shape[:-2], 1, shape[-1]))}

    def step(p, g, s, t):
        floor = np.finfo(np.asarray(p).dtype).eps if eps1 is None else eps1
        w = t**beta2_decay
        if "v" in s:
            s = {"v": (1 - w) * s["v"] + w * g * g}
            estimate = s["v"]
        else:
            s = {
                "row": (1 - w) * s["row"] + w * _factored_mean(g * g, -1),
                "col": (1 - w) * s["col"] + w * _factored_mean(g * g, -2),
            }
            estimate = s["row"] * s["col"] / np.maximum(_factored_mean(s["row"], -2), floor)
        estimate = np.maximum(estimate, floor**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(estimate > 0, g / np.sqrt(estimate), 0.0)
        scale = max(eps2, _rms(p)) * min(learning_rate, 1 / np.sqrt(t))
        new_p = p * (1 - learning_rate * weight_decay) - scale * u / max(1.0, _rms(u) / d)
        return new_p, s

    return init, step


def ref_soap(
    learning_rate=3e-3,
    *,
    b1=0.95,
    b2=0.95,
    eps=1e-8,
    weight_decay=0.01,
    precondition_frequency=10,
    max_precond_dim=10000,
    precondition_1d=False,
    mu_dtype=None,
    nu_dtype=None,
    mesh=None,
    axis="data",
):
    # mesh and axis say where the work runs, not what it computes: not restated.
    del mesh, axis
    # Vyas et al. 2025, in the order of the authors' code (github nikhilvyas/SOAP): the
    # first call only accumulates GG and takes its eigenvectors.  Then, with k = t − 1:
    # project g (tensordot over axis 0, which cycles the axes), Adam moments in the
    # basis, θ -= η·√(1−β₂ᵏ)/(1−β₁ᵏ)·Q(m/(√v+ε)), θ -= ηλθ (the stepped θ), then m back
    # to the original space, GG = lerp(GG, Σ g⊗ḡ, 1−β₂), every f-th k one power
    # iteration (columns sorted by qᴴ·GG·q, v permuted alike, QR), m projected again.
    # Complex leaves: Hermitian GG, unitary Q, |·|².  The basis is fixed only up to the
    # sign (phase) and the order of equal eigenvalues, to which the trajectory is blind.

    def preconditioned(p):
        if p.ndim == 0 or p.size == 0 or (p.ndim == 1 and not precondition_1d):
            return [False] * p.ndim
        return [d <= max_precond_dim for d in p.shape]

    def init(p):
        gg = [
            np.zeros((d, d), p.dtype) if on else None
            for d, on in zip(p.shape, preconditioned(p), strict=True)
        ]
        return {"m": np.zeros_like(p), "v": np.zeros(np.shape(p)), "GG": gg, "Q": None}

    def project(x, bases, back=False):
        for q in bases:
            if q is None:
                x = np.moveaxis(x, 0, -1)
            else:
                x = (
                    np.tensordot(x, q, axes=([0], [1]))
                    if back
                    else np.tensordot(x, q.conj(), axes=([0], [0]))
                )
        return x

    def statistic(g, axis):
        a = np.moveaxis(g, axis, 0).reshape(g.shape[axis], -1)
        return a @ a.conj().T

    def accumulate(gg, g):
        return [
            None if s is None else s + (1 - b2) * (statistic(g, i) - s) for i, s in enumerate(gg)
        ]

    def eigenvectors(s):
        _, vectors = np.linalg.eigh(s + 1e-30 * np.eye(len(s)))
        return vectors[:, ::-1]

    def power_iteration(gg, bases, v):
        new = []
        for axis, (s, q) in enumerate(zip(gg, bases, strict=True)):
            if s is None:
                new.append(None)
                continue
            order = np.argsort(-np.diag(q.conj().T @ s @ q).real, kind="stable")
            v = np.take(v, order, axis=axis)
            new.append(np.linalg.qr(s @ q[:, order])[0])
        return new, v

    def step(p, g, s, t):
        if t == 1:
            gg = accumulate(s["GG"], g)
            return p, {**s, "GG": gg, "Q": [None if x is None else eigenvectors(x) for x in gg]}
        k, bases = t - 1, s["Q"]
        g_rotated = project(g, bases)
        m = b1 * s["m"] + (1 - b1) * g_rotated
        v = b2 * s["v"] + (1 - b2) * sq(g_rotated)
        step_size = learning_rate * np.sqrt(1 - b2**k) / (1 - b1**k)
        p = p - step_size * project(m / (np.sqrt(v) + eps), bases, back=True)
        p = p - learning_rate * weight_decay * p
        m = project(m, bases, back=True)
        gg = accumulate(s["GG"], g)
        if k % precondition_frequency == 0:
            bases, v = power_iteration(gg, bases, v)
        m = project(m, bases)
        return p, {"m": stored(m, mu_dtype), "v": stored(v, nu_dtype), "GG": gg, "Q": bases}

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


def _labels_adam(params):
    """A ``labels`` function for ``muon``: every leaf to AdamW."""
    return jax.tree.map(lambda _: "adam", params)


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
        "lion": Reference(
            ref_lion,
            configs=(
                {"learning_rate": 0.01, "b1": 0.8, "b2": 0.95, "weight_decay": 0.1},
                {"learning_rate": 0.01},
            ),
        ),
        "lamb": Reference(
            ref_lamb,
            configs=(
                {"learning_rate": 0.05, "b1": 0.8, "b2": 0.99, "eps": 1e-4, "weight_decay": 0.1},
                {"learning_rate": 0.05},
                {"learning_rate": 0.05, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
        ),
        "lars": Reference(
            ref_lars,
            configs=(
                {
                    "learning_rate": 2.0,
                    "momentum": 0.8,
                    "weight_decay": 0.05,
                    "trust_coefficient": 0.02,
                    "eps": 1e-3,
                    "nesterov": True,
                },
                {"learning_rate": 2.0, "trust_coefficient": 0.02},
                {"learning_rate": 2.0, "momentum": 0.0, "trust_coefficient": 0.02},
                {"learning_rate": 2.0, "weight_decay": 0.1, "trust_coefficient": 0.02},
            ),
        ),
        "adabelief": Reference(
            ref_adabelief,
            configs=(
                {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
        ),
        "adopt": Reference(
            ref_adopt,
            configs=(
                {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-3, "weight_decay": 0.05},
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "mu_dtype": jnp.float32, "nu_dtype": jnp.bfloat16},
            ),
        ),
        "ademamix": Reference(
            ref_ademamix,
            configs=(
                {
                    "learning_rate": 0.01,
                    "b1": 0.8,
                    "b2": 0.99,
                    "b3": 0.999,
                    "alpha": 3.0,
                    "eps": 1e-6,
                    "weight_decay": 0.05,
                },
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "b3": 0.999, "alpha_beta3_warmup": 6},
                {"learning_rate": 0.01, "b1": 0.0, "weight_decay": 0.1, "alpha_beta3_warmup": 4},
                {"learning_rate": 0.01, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
        ),
        # Complex leaves go to AdamW (the routing's rule), so they are supported.  The
        # main configuration is close to torch's defaults with every state on; the
        # others switch each option, on small_tree's (3, 2) matrix and 0-d leaf.
        "muon": Reference(
            ref_muon,
            configs=(
                {
                    "learning_rate": 0.05,
                    "momentum": 0.9,
                    "weight_decay": 0.05,
                    "adam_b1": 0.8,
                    "adam_b2": 0.99,
                },
                {"learning_rate": 0.05},
                {
                    "learning_rate": 0.05,
                    "nesterov": False,
                    "adjust_lr_fn": "original",
                    "layout": "out_in",
                },
                {
                    "learning_rate": 0.05,
                    "adjust_lr_fn": "match_rms_adamw",
                    "weight_decay": 0.0,
                    "momentum": 0.0,
                },
                {
                    "learning_rate": 0.05,
                    "ns_coefficients": (1.5, -0.5, 0.0),
                    "ns_steps": 8,
                    "eps": 10.0,
                    "ns_dtype": jnp.float64,
                },
                {
                    "learning_rate": 0.05,
                    "adam_learning_rate": 0.01,
                    "adam_eps": 1e-6,
                    "adam_weight_decay": 0.02,
                    "mu_dtype": jnp.bfloat16,
                    "nu_dtype": jnp.float32,
                },
                {"learning_rate": 0.05, "labels": _labels_adam},
                {"learning_rate": 0.05, "stack_axes": 1},
            ),
            torch=(
                TorchPort(
                    "Muon",
                    {
                        "weight_decay": "weight_decay",
                        "momentum": "momentum",
                        "nesterov": "nesterov",
                        "ns_coefficients": "ns_coefficients",
                        "eps": "eps",
                        "ns_steps": "ns_steps",
                        "adjust_lr_fn": "adjust_lr_fn",
                    },
                    {"momentum_buffer": "mu"},
                ),
            ),
        ),
        "nadam": Reference(
            ref_nadam,
            configs=(
                {
                    "learning_rate": 0.01,
                    "b1": 0.8,
                    "b2": 0.99,
                    "momentum_decay": 0.01,
                    "weight_decay": 0.05,
                },
                {"learning_rate": 0.01},
                {"learning_rate": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True},
                {"learning_rate": 0.01, "momentum_decay": 0.0},
                {
                    "learning_rate": 0.01,
                    "eps": 1e-3,
                    "mu_dtype": jnp.bfloat16,
                    "nu_dtype": jnp.float32,
                },
            ),
            torch=(
                TorchPort(
                    "NAdam",
                    {
                        "betas": _BETAS,
                        "eps": "eps",
                        "weight_decay": "weight_decay",
                        "momentum_decay": "momentum_decay",
                        "decoupled_weight_decay": "decoupled_weight_decay",
                    },
                    {**_ADAM_STATE, "mu_product": "mu_product"},
                ),
            ),
        ),
        "radam": Reference(
            ref_radam,
            configs=(
                # β₂ = 0.9: ρₜ first exceeds 5 at t = 6, inside every run.
                {"learning_rate": 0.01, "b1": 0.8, "b2": 0.9, "weight_decay": 0.05},
                {"learning_rate": 0.01, "b2": 0.9},
                {
                    "learning_rate": 0.01,
                    "b2": 0.9,
                    "weight_decay": 0.05,
                    "decoupled_weight_decay": True,
                },
                {
                    "learning_rate": 0.01,
                    "b2": 0.9,
                    "eps": 1e-3,
                    "mu_dtype": jnp.float32,
                    "nu_dtype": jnp.bfloat16,
                },
            ),
            torch=(
                TorchPort(
                    "RAdam",
                    {
                        "betas": _BETAS,
                        "eps": "eps",
                        "weight_decay": "weight_decay",
                        "decoupled_weight_decay": "decoupled_weight_decay",
                    },
                    _ADAM_STATE,
                ),
            ),
        ),
        "asgd": Reference(
            ref_asgd,
            configs=(
                # t0 = 3: the average departs from the iterate after a few steps.
                {
                    "learning_rate": 0.05,
                    "lambd": 0.01,
                    "alpha": 0.6,
                    "t0": 3.0,
                    "weight_decay": 0.05,
                },
                {"learning_rate": 0.05},
                {"learning_rate": 0.05, "lambd": 0.0, "t0": 2.0},
            ),
            decay_arguments=("weight_decay", "lambd"),
            torch=(
                TorchPort(
                    "ASGD",
                    {
                        "lambd": "lambd",
                        "alpha": "alpha",
                        "t0": "t0",
                        "weight_decay": "weight_decay",
                    },
                    {"eta": "eta", "mu": "avg_weight", "ax": "ax", "step": "count"},
                ),
            ),
        ),
        "rprop": Reference(
            ref_rprop,
            configs=(
                {"learning_rate": 0.05, "etas": (0.4, 1.5), "step_sizes": (1e-3, 0.2)},
                {"learning_rate": 0.05},
            ),
            torch=(
                TorchPort(
                    "Rprop",
                    {"etas": "etas", "step_sizes": "step_sizes"},
                    {"prev": "prev_grad", "step_size": "step_size", "step": "count"},
                ),
            ),
        ),
        "adafactor": Reference(
            ref_adafactor,
            configs=(
                {
                    "learning_rate": 0.05,
                    "beta2_decay": -0.6,
                    "eps": (1e-20, 1e-2),
                    "d": 1.5,
                    "weight_decay": 0.05,
                },
                {"learning_rate": 0.05},
                {"learning_rate": 0.05, "eps": (None, 0.5)},
            ),
            complex_leaves=False,
            factored=True,
            torch=(
                TorchPort(
                    "Adafactor",
                    {
                        "beta2_decay": "beta2_decay",
                        "eps": "eps",
                        "d": "d",
                        "weight_decay": "weight_decay",
                    },
                    {"row_var": "nu_row", "col_var": "nu_col", "variance": "nu", "step": "count"},
                ),
            ),
        ),
        "soap": Reference(
            ref_soap,
            configs=(
                # precondition_1d stays off here: the generic gradient test runs on a 1-D
                # leaf, whose first statistic g·gᵀ has a repeated eigenvalue 0 (eigh is not
                # differentiable there, and the basis in that eigenspace is arbitrary).
                {
                    "learning_rate": 0.02,
                    "b1": 0.9,
                    "b2": 0.9,
                    "eps": 1e-6,
                    "weight_decay": 0.05,
                    "precondition_frequency": 3,
                },
                {"learning_rate": 0.02},
                {"learning_rate": 0.02, "weight_decay": 0.0, "precondition_frequency": 2},
                {"learning_rate": 0.02, "max_precond_dim": 2, "precondition_frequency": 2},
                {"learning_rate": 0.02, "precondition_1d": True, "precondition_frequency": 2},
                {"learning_rate": 0.02, "mu_dtype": jnp.bfloat16, "nu_dtype": jnp.float32},
            ),
            matrix_state=True,
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
