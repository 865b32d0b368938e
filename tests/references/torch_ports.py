"""The torch.optim ports: NAdam, RAdam, ASGD, Rprop and Adafactor."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._entry import ADAM_STATE, BETAS, Reference, TorchPort, sq, stored


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


TORCH_PORTS: dict[str, Reference] = {
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
                    "betas": BETAS,
                    "eps": "eps",
                    "weight_decay": "weight_decay",
                    "momentum_decay": "momentum_decay",
                    "decoupled_weight_decay": "decoupled_weight_decay",
                },
                {**ADAM_STATE, "mu_product": "mu_product"},
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
                    "betas": BETAS,
                    "eps": "eps",
                    "weight_decay": "weight_decay",
                    "decoupled_weight_decay": "decoupled_weight_decay",
                },
                ADAM_STATE,
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
}
"""NAdam to Adafactor, in registry order."""
