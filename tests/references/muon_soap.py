"""Muon and SOAP: the optimizers that work on whole matrices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._entry import Reference, TorchPort, sq, stored
from .classic import ref_adamw


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


def _labels_adam(params):
    """A ``labels`` function for ``muon``: every leaf to AdamW."""
    return jax.tree.map(lambda _: "adam", params)


MUON: dict[str, Reference] = {
    # Complex leaves go to AdamW (the routing's rule), so they are supported.  The
    # main configuration is close to torch's defaults with every state on; the
    # others switch each option, on small_tree's (3, 2) matrix and 0-d leaf.
    "muon": Reference(
        ref_muon,
        tested_elsewhere=("mesh", "axis"),
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
}
"""Muon."""

SOAP: dict[str, Reference] = {
    "soap": Reference(
        ref_soap,
        tested_elsewhere=("mesh", "axis"),
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
}
"""SOAP."""
