"""The nine classic optimizers: SGD, momentum, Nesterov, Adagrad, Adadelta, RMSprop,
Adam, Adamax and AdamW."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._entry import ADAM_STATE, BETAS, Reference, TorchPort, decoupled, sq, stored


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


_SGD_STATE = {"momentum_buffer": "trace"}


def _momentum_only(hp: Mapping[str, Any]) -> bool:
    return hp.get("momentum", 0.0) > 0 and not hp.get("nesterov", False)


CLASSIC: dict[str, Reference] = {
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
                    "betas": BETAS,
                    "eps": "eps",
                    "weight_decay": "weight_decay",
                    "amsgrad": "amsgrad",
                    "decoupled_weight_decay": None,
                },
                ADAM_STATE,
                selects=lambda hp: not decoupled(hp),
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
                {"betas": BETAS, "eps": "eps", "weight_decay": "weight_decay"},
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
                    "betas": BETAS,
                    "eps": "eps",
                    "weight_decay": "weight_decay",
                    "amsgrad": None,
                },
                ADAM_STATE,
                selects=lambda hp: not hp.get("amsgrad", False),
            ),
            # torch's Adam(decoupled_weight_decay=True) is AdamW.
            TorchPort(
                "Adam",
                {
                    "betas": BETAS,
                    "eps": "eps",
                    "weight_decay": "weight_decay",
                    "decoupled_weight_decay": None,
                    "amsgrad": None,
                },
                ADAM_STATE,
                selects=lambda hp: decoupled(hp) and not hp.get("amsgrad", False),
            ),
        ),
    ),
}
"""The classic nine, in registry order."""
