"""Lion, LAMB, LARS, AdaBelief, ADOPT and AdEMAMix."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ._entry import Reference, sq, stored


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


MODERN: dict[str, Reference] = {
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
}
"""Lion to AdEMAMix, in registry order."""
