"""The tuning-free optimizers: schedule-free AdamW and SGD, and Prodigy."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ._entry import Reference, sq, stored


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


TUNING_FREE: dict[str, Reference] = {
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
"""Schedule-free AdamW and SGD, and Prodigy, in registry order."""
