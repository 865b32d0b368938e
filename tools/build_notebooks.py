"""Write the notebooks in ``notebooks/`` from the sources in this file, without outputs.

The sources are Python strings in the "percent" format: a line ``# %%`` starts a code
cell and ``# %% [markdown]`` a markdown cell (whose lines are plain markdown).  Two
placeholders are filled in: ``{{BADGE}}`` (the "Open in Colab" badge) and
``{{INSTALL}}`` (the first code cell, which installs jopt when it is not importable).

Usage::

    python tools/build_notebooks.py           # rewrite notebooks/*.ipynb
    python tools/build_notebooks.py --check   # exit 1 if a notebook is out of date

Cell ids are derived from the notebook name and the cell's position, so rebuilding
an unchanged source gives byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

# The GitHub repository the badges and the Colab install point at: the one place to
# change when the project moves.
GITHUB_REPO = "jopt-dev/jopt"
GITHUB_BRANCH = "main"

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"


def colab_url(name: str) -> str:
    return (
        f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/"
        f"{GITHUB_BRANCH}/notebooks/{name}.ipynb"
    )


def badge(name: str) -> str:
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(name)})"
    )


def pip_requirement() -> str:
    """What Colab installs: jopt with its examples extra, from GitHub."""
    return f"jopt[examples] @ git+https://github.com/{GITHUB_REPO}.git@{GITHUB_BRANCH}"


INSTALL = """\
# Install jopt only when this kernel cannot import it: from the checkout when the
# notebook sits in one (editable, like the README), from GitHub otherwise (Colab).
import importlib
import importlib.util
import pathlib
import subprocess
import sys

if importlib.util.find_spec("jopt") is None:
    repo = pathlib.Path.cwd().parent
    if (repo / "pyproject.toml").exists() and (repo / "jopt" / "__init__.py").exists():
        subprocess.check_call(
            [sys.executable, "-m", "pip", "install", "-q", "-e", f"{repo}[examples]"]
        )
        # A running kernel does not re-read .pth files, so point it at the checkout.
        sys.path.insert(0, str(repo))
    else:
        requirement = "{{REQUIREMENT}}"
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", requirement])
    importlib.invalidate_caches()"""


# --------------------------------------------------------------------------------------
# 02: paths on loss surfaces
# --------------------------------------------------------------------------------------

LOSS_SURFACES = r'''
# %% [markdown]
{{BADGE}}

# Paths on loss surfaces

The lecture argues with pictures: optimizer paths drawn on the contours of a loss
surface, a ravine where SGD zig-zags while momentum runs ahead, and a saddle point
that plain gradient descent struggles to leave.  This notebook redraws those pictures
with the lecture's eight optimizers and then *measures* the lecture's summary table instead
of typing it in: adaptive learning rate, consistent units, and steps to escape a
saddle.  Every claim it makes is checked by an `assert`.

# %%
{{INSTALL}}

# %%
%matplotlib inline
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, Markdown, display
from matplotlib import animation

import jopt
from jopt.lecture import roster
from jopt.lecture.table import SADDLE_STARTS, lecture_table

T_START = time.perf_counter()
plt.rcParams.update({"figure.dpi": 72, "font.size": 9})

# %% [markdown]
## The eight optimizers and a path tracer

Each optimizer is a `jopt.GradientTransformation` from the registry,
`jopt.optimizers.ALL`; `roster.LECTURE_OPTIMIZERS` names the lecture's eight.
`trajectory` runs one on a two-parameter loss inside a single `jax.lax.scan`, so a
path of hundreds of steps is one compiled call.  Adadelta takes no learning rate: its
step is RMS[Δθ]/RMS[g]·g, so `roster.build` keeps its `learning_rate` at the neutral
multiplier 1.

# %%
OPTIMIZERS = {
    name: lambda lr, name=name: roster.build(name, learning_rate=lr)
    for name in roster.LECTURE_OPTIMIZERS
}
GLOBAL_LR = ["sgd", "momentum", "nesterov"]
ADAPTIVE = ["adagrad", "adadelta", "rmsprop", "adam", "adamax"]
COLORS = dict(zip(OPTIMIZERS, plt.get_cmap("tab10").colors, strict=False))


def trajectory(optimizer, loss, start, steps, state=None):
    """The points θ₀ … θ_steps that `optimizer` visits on `loss`: shape (steps + 1, 2)."""

    def step(carry, _):
        params, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        params = jopt.apply_updates(params, updates)
        return (params, opt_state), params

    @jax.jit
    def run(start, state):
        _, path = jax.lax.scan(step, (start, state), None, length=steps)
        return jnp.concatenate([start[None], path])

    start = jnp.asarray(start, jnp.float32)
    return np.asarray(run(start, optimizer.init(start) if state is None else state))


def sweep(make, learning_rates, loss, start, steps):
    """`trajectory` for every learning rate at once (vmapped): shape (len(lrs), steps + 1, 2)."""

    def run(learning_rate):
        optimizer = make(learning_rate)
        params = jnp.asarray(start, jnp.float32)

        def step(carry, _):
            params, opt_state = carry
            updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
            params = jopt.apply_updates(params, updates)
            return (params, opt_state), params

        _, path = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
        return jnp.concatenate([params[None], path])

    return np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(learning_rates, jnp.float32)))


def ravine(p):
    """An ill-conditioned quadratic: curvature 0.04 along x, 4 across (κ = 100)."""
    return 0.02 * p[0] ** 2 + 2.0 * p[1] ** 2


def beale(p):
    """Beale's function; minimum 0 at (3, 0.5)."""
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(p):
    """x² − y²: a minimum along x, a maximum along y, a saddle at the origin."""
    return p[0] ** 2 - p[1] ** 2


def draw_contours(ax, loss, extent, log=False):
    xs = np.linspace(extent[0], extent[1], 160)
    ys = np.linspace(extent[2], extent[3], 160)
    grid_x, grid_y = np.meshgrid(xs, ys)
    z = np.asarray(jax.vmap(loss)(jnp.stack([grid_x.ravel(), grid_y.ravel()], 1)))
    z = z.reshape(grid_x.shape)
    ax.contour(
        grid_x, grid_y, np.log10(z + 1e-3) if log else z, levels=30, colors="0.75", linewidths=0.6
    )
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])

# %% [markdown]
## Momentum on a ravine

The lecture: *SGD has trouble navigating ravines … Momentum accelerates SGD in the
relevant direction and dampens oscillations.*  The ravine here is
f = 0.02x² + 2y² (curvatures 0.04 and 4, condition number 100).  To compare the
methods and not the choice of η, each gets its best η from one grid, measured as
the steps until the loss falls below 10⁻³ (at most 400).

# %%
def steps_below(losses, tol):
    hit = np.flatnonzero(losses < tol)
    return int(hit[0]) if hit.size else None


LR_GRID = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.49]
ravine_steps = {}
for name in GLOBAL_LR:
    paths = sweep(OPTIMIZERS[name], LR_GRID, ravine, (-9.0, 1.8), 400)
    losses = np.asarray(jax.vmap(jax.vmap(ravine))(jnp.asarray(paths)))
    ravine_steps[name] = {
        lr: steps_below(curve, 1e-3) for lr, curve in zip(LR_GRID, losses, strict=True)
    }

print("steps to loss < 1e-3 (None: not within 400)")
print("η        " + "".join(f"{lr:>6}" for lr in LR_GRID))
for name, row in ravine_steps.items():
    print(f"{roster.label(name):9}" + "".join(f"{str(n):>6}" for n in row.values()))
best = {
    name: min((n, lr) for lr, n in row.items() if n is not None)
    for name, row in ravine_steps.items()
}
print("best (steps, η):", best)
assert best["momentum"][0] < best["sgd"][0] / 2, best
assert best["nesterov"][0] < best["sgd"][0] / 2, best

# %% [markdown]
## Three surfaces, eight paths

The learning rates below are chosen per surface so that each path is visible.  On
the ravine SGD runs at its best η from the grid above, Momentum and Nesterov at
η = 0.1.

# %%
SURFACES = {
    "ravine": dict(
        loss=ravine,
        start=(-9.0, 1.8),
        steps=150,
        extent=(-10, 2, -2.5, 2.5),
        lr=dict(
            sgd=best["sgd"][1],
            momentum=0.1,
            nesterov=0.1,
            adagrad=1.0,
            rmsprop=0.1,
            adam=0.3,
            adamax=0.3,
        ),
    ),
    "Beale": dict(
        loss=beale,
        start=(1.0, 1.5),
        steps=600,
        extent=(-0.5, 4, -1, 2),
        log=True,
        lr=dict(
            sgd=0.005,
            momentum=0.001,
            nesterov=0.001,
            adagrad=0.3,
            rmsprop=0.01,
            adam=0.03,
            adamax=0.03,
        ),
    ),
    "saddle x² − y²": dict(
        loss=saddle,
        start=(1.0, 1e-3),
        steps=100,
        extent=(-1.5, 1.5, -1.5, 1.5),
        lr=dict.fromkeys(OPTIMIZERS, 0.05),
    ),
}
PATHS = {
    surface: {
        name: trajectory(
            make(spec["lr"].get(name, 1.0)), spec["loss"], spec["start"], spec["steps"]
        )
        for name, make in OPTIMIZERS.items()
    }
    for surface, spec in SURFACES.items()
}

fig, axes = plt.subplots(3, 2, figsize=(10, 12))
for row, (surface, spec) in zip(axes, SURFACES.items(), strict=True):
    groups = zip(row, (GLOBAL_LR, ADAPTIVE), ("one global η", "adaptive"), strict=True)
    for ax, group, title in groups:
        draw_contours(ax, spec["loss"], spec["extent"], log=spec.get("log", False))
        for name in group:
            path = PATHS[surface][name]
            label = roster.label(name)
            if name not in roster.SELF_SCALED:
                label += f" (η = {spec['lr'][name]:g})"
            ax.plot(path[:, 0], path[:, 1], lw=1.4, color=COLORS[name], label=label)
        ax.plot(*spec["start"], "ko", ms=4)
        ax.set_title(f"{surface}: {title}")
        ax.legend(loc="lower right", fontsize=7)
fig.tight_layout()

# %% [markdown]
**Figure 1.** Paths of the eight optimizers (black dot: the start; Adadelta has no
η).  *Top*, the ravine f = 0.02x² + 2y²: SGD zig-zags across the narrow direction
and crawls along the long one; Momentum averages the alternating gradients away into
a slow swing it damps as it goes, and runs along the valley; Nesterov's look-ahead
damps the swing sooner.  *Middle*, Beale's function (log-spaced contours), whose
minimum is at (3, 0.5).  *Bottom*, the saddle x² − y²
started at (1, 10⁻³): SGD, Momentum and Nesterov first slide towards the saddle point
before the tiny y-component grows, while the adaptive methods turn away at once.
Adadelta's early steps are small everywhere: from a zero state its first step,
√ε/√((1 − ρ)g² + ε)·g, is at most √(ε/(1 − ρ)) ≈ 3·10⁻³ long whatever the surface,
and its steps grow from there.

# %% [markdown]
## The saddle race

The lecture's animation (after Alec Radford's) shows that around a saddle point
*it's easier for RMSprop, Adadelta and Adagrad to escape*.  Here all methods start at
(1, 10⁻⁶), a hair away from the saddle's stable direction, with η = 0.05.

# %%
RACE_STEPS, FRAMES = 120, 36
race = {
    name: trajectory(make(0.05), saddle, (1.0, 1e-6), RACE_STEPS)
    for name, make in OPTIMIZERS.items()
}

fig, ax = plt.subplots(figsize=(4.8, 4), dpi=60)
draw_contours(ax, saddle, (-1.5, 1.5, -0.5, 2.5))
ax.plot(0, 0, "k+", ms=10)
lines = {
    name: ax.plot([], [], lw=1.5, color=COLORS[name], label=roster.label(name))[0] for name in race
}
heads = {name: ax.plot([], [], "o", ms=5, color=COLORS[name])[0] for name in race}
ax.legend(loc="upper left", fontsize=7, ncol=2)
title = ax.set_title("")
frame_steps = np.linspace(0, RACE_STEPS, FRAMES).astype(int)


def draw_frame(i):
    t = frame_steps[i]
    for name, path in race.items():
        lines[name].set_data(path[: t + 1, 0], path[: t + 1, 1])
        heads[name].set_data(path[t : t + 1, 0], path[t : t + 1, 1])
    title.set_text(f"saddle x² − y², step {t}")
    return [*lines.values(), *heads.values(), title]


movie = animation.FuncAnimation(fig, draw_frame, frames=FRAMES, interval=120, blit=True)
html = movie.to_jshtml(default_mode="once")
plt.close(fig)
HTML(html)

# %% [markdown]
**Figure 2.** The saddle race: all eight optimizers from (1, 10⁻⁶) with η = 0.05
(Adadelta without a learning rate), one frame every three to four steps.  The
adaptive methods leave along y within a few dozen steps; SGD sits near the saddle
point for over a hundred.

# %% [markdown]
## The lecture's table, measured

| Methods | Adaptive learning rate | Consistent units | Easily handle saddle points |
|---|---|---|---|

jopt measures each column on a small problem by running the optimizer's own
`init`/`update` (`jopt.lecture.table`, the same code as the `python -m jopt`
summary), for every optimizer of the registry:

* **Adaptive learning rate.**  Two parameters see constant gradients 1 and 100.  Each
  parameter's effective learning rate is −Δθᵢ/gᵢ; a global learning rate gives both
  the same one (ratio 1), an adaptive method does not.
* **Consistent units.**  Measure θ in a unit k times smaller, θ' = kθ, so g' = g/k,
  and express the optimizer's state in the new unit too (a momentum buffer has the
  units of g, a second moment those of g²; the units are found by trying every
  assignment).  The step then scales as kᵖ.  Newton's step has p = 1, the units of θ;
  SGD's has p = −1 (the lecture's "units of Δθ ∝ 1/units of θ"); a step divided by
  the gradient's own RMS has p = 0.  Adadelta's E[Δθ²] is fed only by its own steps,
  so it can carry the units of θ², and then its step has the units of θ.
* **Easily handle saddle points.**  Steps until |y| ≥ 1 on x² − y², from (1, 10⁻⁶) and
  from (1, 10⁻²), at η = 0.05.  Plain gradient methods multiply y by a constant factor
  per step, so the flatter start costs them three times the steps (log 10⁶ / log 10²);
  methods that normalise the gradient take a step of about η along y whatever its
  size, and barely notice.  A method "easily handles" the saddle when the flat start
  costs at most 1.5× the steps.

# %%
rows = {row.method: row for row in lecture_table()}

# The lecture's table, typed in only to be compared with the measurements.
LECTURE = {
    "sgd": (False, False, False),
    "momentum": (False, False, False),
    "nesterov": (False, False, False),
    "adagrad": (True, False, True),
    "adadelta": (True, True, True),
    "rmsprop": (True, False, True),
    "adam": (True, False, True),
}


def yes(flag):
    return "Yes" if flag else "No"


starts = " / ".join(f"{y0:g}" for y0 in SADDLE_STARTS)
table = [
    "| Method | Adaptive learning rate (ratio) | Consistent units (powers p) "
    f"| Easily handle saddle points (steps from y₀ = {starts}) | Lecture |",
    "|---|---|---|---|---|",
]
for name, row in rows.items():
    lecture = " / ".join(map(yes, LECTURE[name])) if name in LECTURE else "not in the table"
    powers = ", ".join(f"{p:+g}" for p in row.units_exponents) or "none"
    steps = " / ".join(map(str, row.saddle_steps))
    table.append(
        f"| {name} | {yes(row.adaptive)} ({row.effective_lr_ratio:.3g}) "
        f"| {yes(row.consistent_units)} ({powers}) | {yes(row.handles_saddle)} ({steps}) "
        f"| {lecture} |"
    )
display(Markdown("\n".join(table)))

# %% [markdown]
**Table.** The lecture's summary, regenerated from the measurements above; the last
column is the lecture's own verdict (adaptive / units / saddle).  Adamax, in the
lecture's outline but not in its table, behaves like Adam.  AdamW's step mixes units
(m̂/√v̂ + λθ), so no single power fits it.

The claims, checked: every measured verdict agrees with the lecture, and Adagrad,
Adadelta, RMSprop and Adam escape the saddle from (1, 10⁻⁶) in fewer steps than SGD.

# %%
for name, verdict in LECTURE.items():
    row = rows[name]
    assert (row.adaptive, row.consistent_units, row.handles_saddle) == verdict, row
for name in ["adagrad", "adadelta", "rmsprop", "adam"]:
    assert rows[name].saddle_steps[0] < rows["sgd"].saddle_steps[0], rows[name]
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
'''

INITIALIZATION = r"""
# %% [markdown]
{{BADGE}}

# Initialization, checked empirically

The lecture's second half derives how to initialize a deep network: not all zeros
(every neuron would stay the same), not too small (the signal vanishes) nor too large
(it explodes), but with a variance calibrated so that

$$\text{Var}(a^{[L]}) = \Big[\prod_{l=1}^{L} n^{[l-1]}\,\text{Var}(W^{[l]})\Big]\,\text{Var}(x)$$

stays put: Xavier's Var(W) = 1/n for tanh, He's 2/n for ReLU.  This notebook measures
each step of that argument on networks built with `jopt.initializers`, and ends with
PyTorch's default `kaiming_uniform(a=√5)`.  Every claim is checked by an `assert`.

# %%
{{INSTALL}}

# %%
%matplotlib inline
import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jopt
from jopt import initializers as init

T_START = time.perf_counter()
plt.rcParams.update({"figure.dpi": 72, "font.size": 9})

# %% [markdown]
## 1. All-zero initialization: symmetric neurons

A 4 → 16 → 16 → 1 tanh network learns y = sin(x·u) by full-batch gradient descent,
from three starts: all weights zero, all weights the same constant (0.1), and Xavier.
The lecture: with y_l = W y_{l−1} + b and ∂L/∂y_{l−1} = Wᵀ ∂L/∂y_l, W = 0 stops every
gradient below the output; and neurons that start equal compute the same outputs,
receive the same gradients and stay equal.

# %%
SIZES = [4, 16, 16, 1]
kx, ku = jax.random.split(jax.random.key(0))
X_TOY = jax.random.normal(kx, (256, 4))
Y_TOY = jnp.sin(X_TOY @ jax.random.normal(ku, (4, 1)))


def make_mlp(kernel_init, key):
    keys = jax.random.split(key, len(SIZES) - 1)
    return [
        {"w": kernel_init(k, (n_in, n_out)), "b": jnp.zeros(n_out)}
        for k, n_in, n_out in zip(keys, SIZES[:-1], SIZES[1:], strict=True)
    ]


def mlp_hidden(params, x):
    # The hidden layers' activations, then the output.
    hidden = []
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
        hidden.append(x)
    return hidden, x @ params[-1]["w"] + params[-1]["b"]


def toy_loss(params):
    return jnp.mean((mlp_hidden(params, X_TOY)[1] - Y_TOY) ** 2)


@partial(jax.jit, static_argnums=1)
def train(params, steps, learning_rate=0.1):
    optimizer = jopt.sgd(learning_rate)

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(toy_loss)(params)
        updates, state = optimizer.update(grads, state, params)
        return (jopt.apply_updates(params, updates), state), loss

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), None, steps)
    return params, losses


STARTS = {"zeros": init.zeros, "constant 0.1": init.constant(0.1), "Xavier": init.xavier_uniform()}
trained = {name: train(make_mlp(fn, jax.random.key(1)), 500) for name, fn in STARTS.items()}

fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), gridspec_kw={"width_ratios": [1.6, 1, 1, 1]})
for name, (_, losses) in trained.items():
    axes[0].plot(losses, label=name)
axes[0].set(xlabel="step", ylabel="training loss (MSE)", yscale="log", title="learning")
axes[0].legend()
for ax, (name, (params, _)) in zip(axes[1:], trained.items(), strict=True):
    image = ax.imshow(
        np.asarray(params[0]["w"]).T, cmap="coolwarm", vmin=-1.5, vmax=1.5, aspect="auto"
    )
    ax.set(title=f"W[1] after training: {name}", xlabel="input", yticks=[])
axes[1].set(ylabel="hidden unit")
fig.colorbar(image, ax=axes[1:], shrink=0.9)

# %% [markdown]
**Figure 1.** *Left*, the training loss from each start.  *Right*, the first layer's
weights after 500 steps, one row per hidden unit.  From zero every weight is still
exactly zero: only the output bias learned, so the network predicts a constant.  From
a constant every row is the same: sixteen copies of one neuron.  Xavier's random
start breaks the symmetry and the loss falls well below the others'.

# %%
zero_params, constant_params, xavier_params = (trained[name][0] for name in STARTS)
for layer in zero_params[:-1]:
    assert not np.any(np.asarray(layer["w"])) and not np.any(np.asarray(layer["b"]))
assert not np.any(np.asarray(zero_params[-1]["w"]))  # the output weights see tanh(0) = 0
for layer in constant_params[:-1]:
    w = np.asarray(layer["w"])
    assert np.array_equal(w, np.repeat(w[:, :1], w.shape[1], axis=1)), "units diverged"
w = np.asarray(xavier_params[0]["w"])
assert np.min(np.max(np.abs(w[:, 1:] - w[:, :1]), axis=0)) > 1e-2
final = {name: float(losses[-1]) for name, (_, losses) in trained.items()}
print("final loss:", final)
assert final["Xavier"] < 0.5 * min(final["zeros"], final["constant 0.1"])

# %% [markdown]
## 2. Too small or too large: vanishing and exploding gradients

With linear activations the network is ŷ = W[L] ⋯ W[2] W[1] x, and each factor
multiplies the signal, forward and backward, by about √(n Var(W)).  Ten layers of width
32 learn a random linear map with SGD (η = 0.03), from N(0, 0.01²) (n Var(W) = 0.0032),
from Xavier (n Var(W) = 1), and from N(0, 0.5²) (n Var(W) = 8).

# %%
N_LIN, L_LIN = 32, 10
kx, kt = jax.random.split(jax.random.key(2))
X_LIN = jax.random.normal(kx, (256, N_LIN))
Y_LIN = X_LIN @ (jax.random.normal(kt, (N_LIN, N_LIN)) / math.sqrt(N_LIN))


def deep_linear_loss(weights):
    out, _ = jax.lax.scan(lambda a, w: (a @ w, None), X_LIN, weights)
    return 0.5 * jnp.mean(jnp.sum((out - Y_LIN) ** 2, axis=-1))


@jax.jit
def train_linear(weights):
    optimizer = jopt.sgd(0.03)

    def step(carry, _):
        weights, state = carry
        loss, grads = jax.value_and_grad(deep_linear_loss)(weights)
        updates, state = optimizer.update(grads, state, weights)
        return (jopt.apply_updates(weights, updates), state), loss

    _, losses = jax.lax.scan(step, (weights, optimizer.init(weights)), None, 300)
    return losses


SCALES = {
    "N(0, 0.01²): too small": init.normal(0.01),
    "Xavier": init.xavier_normal(),
    "N(0, 0.5²): too large": init.normal(0.5),
}
lin_grad_norms, lin_losses = {}, {}
linear_grad = jax.jit(jax.grad(deep_linear_loss))
for name, fn in SCALES.items():
    keys = jax.random.split(jax.random.key(3), L_LIN)
    weights = jnp.stack([fn(k, (N_LIN, N_LIN)) for k in keys])
    grads = linear_grad(weights)
    lin_grad_norms[name] = np.asarray(jnp.sqrt(jnp.sum(grads**2, axis=(1, 2))))
    lin_losses[name] = np.asarray(train_linear(weights))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
for i, name in enumerate(SCALES):
    ax1.semilogy(np.arange(1, L_LIN + 1), lin_grad_norms[name], "o-", label=name)
    losses = lin_losses[name]
    ax2.semilogy(losses, color=f"C{i}", label=name)
    last = np.flatnonzero(np.isfinite(losses))[-1]
    if last < len(losses) - 1:  # mark where it blew up
        ax2.semilogy(last, losses[last], "x", ms=9, mew=2, color=f"C{i}")
ax1.set(xlabel="layer l", ylabel="‖∂L/∂W[l]‖ at initialization", title="gradients")
ax2.set(xlabel="step", ylabel="training loss", title="learning (×: last finite loss)")
ax1.legend()
ax2.legend()

# %% [markdown]
**Figure 2.** *Left*, the gradient of every layer's weights at initialization: around
10⁻¹¹ for the small start (vanishing), around 10¹⁰ for the large one (exploding), of
order 10 for Xavier.  *Right*, the training loss: the small start does not move, the
large one overflows to NaN after its first step (×), Xavier learns.

# %%
small, xavier, large = (lin_losses[name] for name in SCALES)
g_small, g_xavier, g_large = (lin_grad_norms[name] for name in SCALES)
assert g_small.max() < 1e-6 * g_xavier.min() and g_large.min() > 1e6 * g_xavier.max()
assert small[-1] > 0.99 * small[0]  # too small: no learning
assert xavier[-1] < 0.1 * xavier[0]  # calibrated: learns
assert not np.all(np.isfinite(large))  # too large: diverges

# %% [markdown]
## 3. Activations through 30 layers

Now the lecture's deep stacks: 30 square layers of width 256, no biases, fed 256
Gaussian inputs.  For tanh the derivation assumes *the linear regime of tanh*, so the
inputs have standard deviation 0.1 (section 5 lifts that).  Three starts for tanh:
Xavier (`xavier_uniform`, n Var(W) = 1), small (`normal(0.01)`, n Var(W) ≈ 0.026) and
large (`normal(1.0)`, n Var(W) ≈ 256).  Two for ReLU, fed unit-variance inputs: He
(`kaiming_uniform(nonlinearity="relu")`, n Var(W) = 2) and Xavier.

# %%
WIDTH, DEPTH, BATCH = 256, 30, 256


def sample_stack(kernel_init, key, depth=DEPTH, width=WIDTH):
    # One network: `depth` independent (width, width) kernels, shape (depth, width, width).
    return jax.vmap(lambda k: kernel_init(k, (width, width)))(jax.random.split(key, depth))


def identity(z):
    return z


@partial(jax.jit, static_argnums=2)
def activations(weights, x, activation):
    # a[l] = activation(a[l-1] W[l]) for every layer: shape (depth, batch, width).
    def layer(a, w):
        a = activation(a @ w)
        return a, a

    return jax.lax.scan(layer, x, weights)[1]


X_SMALL = 0.1 * jax.random.normal(jax.random.key(4), (BATCH, WIDTH))
X_UNIT = jax.random.normal(jax.random.key(4), (BATCH, WIDTH))
TANH = {"Xavier": init.xavier_uniform(), "small": init.normal(0.01), "large": init.normal(1.0)}
RELU = {"He": init.kaiming_uniform(nonlinearity="relu"), "Xavier": init.xavier_uniform()}
STACKS = {("tanh", name): sample_stack(fn, jax.random.key(5)) for name, fn in TANH.items()}
STACKS.update({("ReLU", name): sample_stack(fn, jax.random.key(5)) for name, fn in RELU.items()})
INPUTS = {"tanh": (X_SMALL, jnp.tanh), "ReLU": (X_UNIT, jax.nn.relu)}
ACTS = {key: np.asarray(activations(w, *INPUTS[key[0]])) for key, w in STACKS.items()}

SHOWN = [1, 5, 10, 20, 30]
fig, axes = plt.subplots(5, len(SHOWN), figsize=(13, 10), sharey="row")
for row, key in zip(axes, ACTS, strict=True):
    for ax, layer in zip(row, SHOWN, strict=True):
        a = ACTS[key][layer - 1].ravel()
        if key[0] == "tanh":
            ax.hist(a, bins=60, range=(-1, 1), color="C0")
        else:  # half of a ReLU's outputs are exactly 0: show the positive half
            ax.hist(a[a > 0], bins=60, range=(0, 3), color="C1")
        ax.set_title(f"{key[0]} {key[1]}, layer {layer}\nstd {a.std():.2g}", fontsize=8)
        ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
**Figure 3.** Histograms of the activations of layers 1, 5, 10, 20 and 30 (counts over
256 inputs × 256 units; for ReLU only the positive half).  Rows 1–3, tanh with
inputs of std 0.1: Xavier keeps the same spread at every depth; the small start collapses to a
spike at zero after one layer; the large start drives every unit into tanh's flat tails
at ±1, where its gradient vanishes.  Rows 4–5, ReLU with unit inputs: He keeps the
spread (up to the wandering of a single network, see Figure 4); Xavier halves the
second moment at every layer and is gone by layer 20.

# %% [markdown]
## 4. Var(a[l]) against depth, next to the formula

Measured Var(a[l]) / Var(x) for every layer, beside the lecture's product
Π n·Var(W[l]), with Var(W[l]) taken from the sampled kernels.  For ReLU the quantity He
keeps is the second moment E[a²]: E[relu(z)²] = Var(z)/2, so the product is
Π n·Var(W[l])/2.  A single network's variance wanders (a multiplicative random walk
whose spread grows with depth/width); the derivation is an expectation over the
weights, so the ReLU panel averages 16 networks (thin lines: each one).

# %%
@partial(jax.jit, static_argnums=(0, 1))
def relu_second_moments(kernel_init, n_nets, x):
    # E[a[l]²] / E[x²] for each of n_nets ReLU networks: shape (n_nets, depth).
    def one(key):
        acts = activations(sample_stack(kernel_init, key), x, jax.nn.relu)
        return jnp.mean(acts**2, axis=(1, 2)) / jnp.mean(x**2)

    return jax.vmap(one)(jax.random.split(jax.random.key(6), n_nets))


def predicted(weights, relu=False):
    # The lecture's product Π n Var(W[l]) (÷ 2 per ReLU layer) for these kernels.
    variances = np.var(np.asarray(weights, np.float64), axis=(1, 2))  # float64: 256³⁰ fits
    factors = WIDTH * variances / (2.0 if relu else 1.0)
    return np.cumprod(factors)


depth = np.arange(1, DEPTH + 1)
tanh_var = {name: ACTS[("tanh", name)].var(axis=(1, 2)) / float(X_SMALL.var()) for name in TANH}
relu_m2 = {name: np.asarray(relu_second_moments(fn, 16, X_UNIT[:64])) for name, fn in RELU.items()}

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
for i, name in enumerate(TANH):
    ax1.semilogy(depth, tanh_var[name], "o", ms=4, color=f"C{i}", label=f"{name}: measured")
    ax1.semilogy(
        depth, predicted(STACKS[("tanh", name)]), "--", color=f"C{i}", label=f"{name}: Π n·Var(W)"
    )
ax1.set(
    ylim=(1e-30, 1e6),
    xlabel="layer l",
    ylabel="Var(a[l]) / Var(x)",
    title="tanh, inputs of std 0.1",
)
for i, (name, m2) in enumerate(relu_m2.items()):
    ax2.semilogy(depth, m2.T, color=f"C{i}", lw=0.4, alpha=0.5)
    ax2.semilogy(depth, m2.mean(0), "o", ms=4, color=f"C{i}", label=f"{name}: mean of 16 nets")
    ax2.semilogy(
        depth,
        predicted(STACKS[("ReLU", name)], relu=True),
        "--",
        color=f"C{i}",
        label=f"{name}: Π n·Var(W)/2",
    )
ax2.set(xlabel="layer l", ylabel="E[a[l]²] / E[x²]", title="ReLU, unit inputs")
for ax in (ax1, ax2):
    ax.legend(fontsize=7)

# %% [markdown]
**Figure 4.** Signal against depth on a log axis.  Dots: measured; dashed: the
lecture's formula.  The small start follows its formula (n·Var(W) ≈ 0.026 per layer)
down to float32's underflow; the large one would grow as 256ˡ but tanh caps it at
about 1/Var(x) = 100 (saturation: the formula's linear regime no longer holds).  Xavier
stays flat for tanh; He stays flat for ReLU, where Xavier halves at every layer
(2⁻³⁰ ≈ 10⁻⁹ after 30).

The claims: Xavier keeps the tanh variance within 2× through 30 layers, the small
start makes it vanish, He keeps the ReLU second moment within 2×, and Xavier under ReLU
loses orders of magnitude.

# %%
x_tanh, small_tanh = tanh_var["Xavier"], tanh_var["small"]
he, xavier_relu = relu_m2["He"].mean(0), relu_m2["Xavier"].mean(0)
print(f"tanh Xavier: {x_tanh.min():.2f}–{x_tanh.max():.2f}, small: {small_tanh[-1]:.1e} at l = 30")
print(f"ReLU He: {he.min():.2f}–{he.max():.2f}, Xavier at layer 30: {xavier_relu[-1]:.1e}")
assert 0.5 <= x_tanh.min() and x_tanh.max() <= 2.0
assert small_tanh[-1] < 1e-3 * x_tanh[-1]
assert 0.5 <= he.min() and he.max() <= 2.0
assert xavier_relu[-1] < 1e-6
saturated = float(np.mean(np.abs(ACTS[("tanh", "large")][-1]) > 0.9))
print(f"large start: {saturated:.0%} of layer 30's tanh units beyond ±0.9")
assert saturated > 0.8

# %% [markdown]
## 5. Outside the linear regime, and tanh's gain

With unit-variance inputs tanh is no longer linear: tanh(z) ≈ z − z³/3 gives
Var(tanh z) ≈ v − 2v² for Var(z) = v, so under Xavier the variance decays like 1/(2l)
until it is small enough to be linear.  The gain 5/3 of `calculate_gain("tanh")`
(`xavier_uniform(gain=5/3)`) pushes back: n·Var(W) = 25/9 per layer balances the
squashing, and the variance settles at a fixed point instead of decaying.

# %%
GAIN = init.calculate_gain("tanh")
beyond = {
    "Xavier": sample_stack(init.xavier_uniform(), jax.random.key(7)),
    f"Xavier, gain {GAIN:.3g}": sample_stack(init.xavier_uniform(gain=GAIN), jax.random.key(7)),
}
beyond_var = {
    name: np.asarray(activations(w, X_UNIT, jnp.tanh)).var(axis=(1, 2))
    for name, w in beyond.items()
}

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, v in beyond_var.items():
    ax.semilogy(depth, v, "o-", ms=3, label=name)
plain = beyond_var["Xavier"]
ax.semilogy(depth, 1 / (1 / plain[0] + 2 * (depth - 1)), "k:", label="1 / (1/v₁ + 2(l − 1))")
ax.set(xlabel="layer l", ylabel="Var(a[l])", title="tanh, unit-variance inputs")
ax.legend(fontsize=8)

# %% [markdown]
**Figure 5.** Tanh with unit-variance inputs.  Plain Xavier's variance follows the
cubic term's law 1/v_{l+1} ≈ 1/v_l + 2 (dotted, started from the measured v₁); with
tanh's gain 5/3 it settles near 0.43 and stays there.

# %%
plain, gained = beyond_var.values()
assert plain[-1] < 0.1 * plain[0]  # decays outside the linear regime
assert 0.5 <= gained[-1] / gained[9] <= 2.0  # the gain holds it at a fixed point

# %% [markdown]
## 6. PyTorch's default, `kaiming_uniform(a=√5)`, by measurement

`torch.nn.Linear` and `torch.nn.Conv*` initialize their weights with
`kaiming_uniform_(w, a=math.sqrt(5))`.  The bound is gain·√(3/fan_in), and the
leaky-ReLU gain for slope a is √(2/(1 + a²)) = √(2/6) = √(1/3), so the bound is
1/√fan_in: U(−1/√n, 1/√n), the older default torch kept when it moved to the kaiming
functions.  Its variance is bound²/3 = 1/(3n), so n·Var(W) = 1/3: in a plain deep
stack, each layer divides the signal's variance by 3.  jopt has it as
`kaiming_uniform(a=math.sqrt(5))`, or `torch_default_kernel()`.

# %%
FAN_IN = 512
w = np.asarray(init.kaiming_uniform(a=math.sqrt(5))(jax.random.key(8), (FAN_IN, 256)))
w_torch = np.asarray(init.torch_default_kernel()(jax.random.key(8), (FAN_IN, 256)))
print(f"gain(leaky_relu, √5)² = {init.calculate_gain('leaky_relu', math.sqrt(5)) ** 2:.4f}")
print(f"max|W|·√fan_in = {np.abs(w).max() * math.sqrt(FAN_IN):.4f}")
print(f"fan_in·Var(W)  = {FAN_IN * w.var():.4f}  (1/3 = {1 / 3:.4f})")
assert np.array_equal(w, w_torch)
assert 0.99 <= np.abs(w).max() * math.sqrt(FAN_IN) <= 1.0
assert abs(FAN_IN * w.var() - 1 / 3) < 0.01

torch_default = init.kaiming_uniform(a=math.sqrt(5))
torch_stack = sample_stack(torch_default, jax.random.key(9))
torch_var = {
    "linear": np.asarray(activations(torch_stack, X_UNIT, identity)).var(axis=(1, 2)),
    "tanh": np.asarray(activations(torch_stack, X_UNIT, jnp.tanh)).var(axis=(1, 2)),
}

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, v in torch_var.items():
    ax.semilogy(depth, v / float(X_UNIT.var()), "o", ms=4, label=f"{name}: measured")
ax.semilogy(depth, predicted(torch_stack), "k--", label="Π n·Var(W) ≈ 3⁻ˡ")
ax.set(xlabel="layer l", ylabel="Var(a[l]) / Var(x)", title="PyTorch's default init, 30 layers")
ax.legend(fontsize=8)

# %% [markdown]
**Figure 6.** PyTorch's default init through 30 layers of width 256.  The linear stack
follows 3⁻ˡ exactly as the formula says (10⁻¹⁴ after 30 layers); the tanh stack, which
is linear once the signal is small, shrinks the same way.  Deep torch models usually
add normalization layers or residual connections, which reset the scale; for a plain
deep stack, pick Xavier or He.

# %%
linear, tanh_torch = torch_var["linear"], torch_var["tanh"]
ratio = linear / predicted(torch_stack)
print(f"measured / formula over 30 linear layers: {ratio.min():.2f}–{ratio.max():.2f}")
assert 0.5 <= ratio.min() and ratio.max() <= 2.0
assert linear[-1] < 1e-12 and tanh_torch[-1] < 1e-12
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
"""

TRAINING_LOOP = r"""
# %% [markdown]
{{BADGE}}

# The training process

The lecture opens with the common training process: initialize the parameters,
choose an optimizer, then repeat forward pass, cost, backpropagation and update.  In
jopt that loop is `jopt.training.fit`.  This notebook runs it on scikit-learn's digits
(1,797 8×8 images, no download) to reproduce the lecture's first part: batch,
stochastic and mini-batch gradient descent; every optimizer side by side; the
first challenge, choosing the learning rate (with a learning-rate range test); and the
second, rare features that deserve larger updates (Adagrad).  Every claim is checked
by an `assert`.

# %%
{{INSTALL}}

# %%
%matplotlib inline
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jopt
from jopt.lecture import digits, roster
from jopt.training import fit, lr_range_test

T_START = time.perf_counter()
plt.rcParams.update({"figure.dpi": 72, "font.size": 9})

# %% [markdown]
## The task: digits with a small MLP

The lecture's running example, `jopt.lecture.digits` (the same code as
`python -m jopt`): 1,440 training images (a multiple of 32, so mini-batches are never
ragged) and 357 test images, each pixel standardized with the training set's mean and
standard deviation.  The model is a 64 → 64 → 10 tanh MLP with Xavier weights and
zero biases, trained on the mean cross-entropy, `digits.loss(params, (x, y))`.

# %%
split = digits.load(seed=0)
TRAIN = tuple(jnp.asarray(a) for a in split.train)  # on the device: batches gather there
TEST = tuple(jnp.asarray(a) for a in split.test)
loss_fn = digits.loss
train_loss = jax.jit(lambda params: digits.loss(params, TRAIN))
test_accuracy = jax.jit(lambda params: digits.accuracy(params, TEST))
PARAMS0 = digits.init_params(jax.random.key(0))
print(f"initial training loss {float(train_loss(PARAMS0)):.3f} (ln 10 = {np.log(10):.3f})")

# %% [markdown]
## Batch, stochastic and mini-batch gradient descent

The three differ only in the data each gradient is taken on: `batch_size=None`
(all 1,440 images), `1` (one image) or `32`.  Each runs plain SGD at η = 0.1; a
callback records the full training loss after every step (every fifth for SGD), and
the time spent in the steps themselves, from the end of the first step (which also
pays for compilation) and without the recording.

# %%
def run(batch_size, epochs, optimizer, every=1):
    # fit(), recording (step, seconds of training, full training loss) every `every` steps.
    record = {"step": [], "seconds": [], "loss": []}
    clock = {"spent": 0.0}

    def callback(step, params, opt_state, loss):
        loss.block_until_ready()  # time the step, not its asynchronous dispatch
        if step > 1:  # the first step also pays for compiling and first-use setup
            clock["spent"] += time.perf_counter() - clock["mark"]
        if step % every == 0:
            record["step"].append(step)
            record["seconds"].append(clock["spent"])
            record["loss"].append(float(train_loss(params)))
        clock["mark"] = time.perf_counter()

    clock["mark"] = time.perf_counter()
    params, _, history = fit(
        loss_fn,
        PARAMS0,
        optimizer,
        TRAIN,
        batch_size=batch_size,
        epochs=epochs,
        key=jax.random.key(1),
        progress=False,
        callback=callback,
    )
    return params, history, {name: np.asarray(values) for name, values in record.items()}


VARIANTS = {
    "batch GD (1440)": (None, 150, 1),
    "mini-batch GD (32)": (32, 10, 1),
    "stochastic GD (1)": (1, 1, 5),
}
variant_runs = {
    name: run(batch_size, epochs, jopt.sgd(0.1), every)
    for name, (batch_size, epochs, every) in VARIANTS.items()
}

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
for name, (_, history, record) in variant_runs.items():
    ax1.plot(record["step"], record["loss"], label=f"{name}: {history.steps} steps")
    ax2.plot(record["seconds"], record["loss"], label=name)
ax1.set(xscale="log", xlabel="step", ylabel="full training loss", title="per step")
ax2.set(xlabel="seconds in steps", ylabel="full training loss", title="per second")
ax1.legend()
ax2.legend()

# %% [markdown]
**Figure 1.** Full training loss of plain SGD (η = 0.1) under the three regimes,
against the number of updates (*left*, log axis) and against the time spent in them
(*right*).  Per update, 32 images do about as well as all 1,440, and one image does
worse, and noisily.  Per second the small batches win, since every step of batch GD
reads all 1,440 images: 32 per step gets nearly the full gradient's direction at a
fraction of its cost.  Absolute times depend on the machine.

# %%
def first_step_below(record, level):
    hit = np.flatnonzero(record["loss"] < level)
    return int(record["step"][hit[0]]) if hit.size else None


reach = {name: first_step_below(rec, 0.5) for name, (_, _, rec) in variant_runs.items()}
print("steps to a training loss of 0.5:", reach)
batch_steps, mini_steps, sgd_steps = reach.values()
assert None not in reach.values()
# Per update, 32 examples give nearly the full gradient's progress and 1 example much less;
assert mini_steps < 1.5 * batch_steps and sgd_steps > 1.5 * batch_steps
# per pass over the data (45 updates of 32 against one of 1440), mini-batches win by far.
assert mini_steps / 45 < batch_steps / 10
for name, (_, _, rec) in variant_runs.items():
    assert rec["loss"][-1] < 0.3 * np.log(10), name

# %% [markdown]
## Every optimizer on one figure

Mini-batches of 32 for 10 epochs, every optimizer of the registry
(`jopt.optimizers.ALL`) at its demo learning rate
(`jopt.optimizers.DEMO_LEARNING_RATES`, the rates of `python -m jopt`), a common
rate for its kind: η = 0.1 for SGD, 0.01 for Momentum and Nesterov (their step sums
about 1/(1 − γ) = 10 gradients), 0.01 for Adagrad, Adadelta's neutral 1, and 10⁻³
(2·10⁻³ for Adamax) for the methods that divide by an RMS.

# %%
runs = {}
for name, factory in jopt.optimizers.ALL.items():
    optimizer = factory(jopt.optimizers.DEMO_LEARNING_RATES[name])
    _, _, runs[name] = fit(
        loss_fn,
        PARAMS0,
        optimizer,
        TRAIN,
        batch_size=32,
        epochs=10,
        key=jax.random.key(2),
        progress=False,
        eval_fn=lambda p: {"test accuracy": test_accuracy(p)},
    )

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
for i, (name, history) in enumerate(runs.items()):
    # Ten colours, then the same ten dashed.
    style = dict(
        color=plt.get_cmap("tab10")(i % 10), ls="-" if i < 10 else "--", label=roster.label(name)
    )
    epochs = np.arange(1, history.epochs + 1)
    ax1.plot(epochs, history.epoch_loss, marker="o", ms=3, **style)
    ax2.plot(epochs, history.metrics["test accuracy"], marker="o", ms=3, **style)
ax1.set(yscale="log", xlabel="epoch", ylabel="mean mini-batch loss", title="training")
ax2.set(xlabel="epoch", ylabel="test accuracy", title="held-out digits")
ax2.legend(ncol=2, fontsize=8)
print(
    f"{'optimizer':10} {'η':>7} {'final loss':>10} {'test acc':>9} {'wall s':>7} {'compile s':>9}"
)
for name, h in runs.items():
    print(
        f"{roster.label(name):10} {jopt.optimizers.DEMO_LEARNING_RATES[name]:7g} "
        f"{h.epoch_loss[-1]:10.4f} {h.metrics['test accuracy'][-1]:9.3f} "
        f"{h.wall_time:7.2f} {h.compile_time:9.2f}"
    )

# %% [markdown]
**Figure 2.** Every optimizer on the same network, data order and initial weights.
*Left*, the mean loss of each epoch's mini-batches; *right*, accuracy on the 357
held-out digits after each epoch.  With these common settings all of them learn the
task; the differences are in speed.

# %%
for name, history in runs.items():
    assert history.metrics["test accuracy"][-1] > 0.85, (name, history.metrics)
    assert history.epoch_loss[-1] < 0.5 * history.epoch_loss[0], name

# %% [markdown]
## Challenge 1: choosing the learning rate

*A learning rate that is too small leads to painfully slow convergence; one that is
too large can hinder convergence, make the loss fluctuate around the minimum, or
diverge.*  Smith's range test measures where these regimes lie: train once while η
grows geometrically from 10⁻⁴ to 10², and watch the loss.

# %%
sweep = lr_range_test(
    loss_fn,
    PARAMS0,
    jopt.sgd,
    TRAIN,
    min_lr=1e-4,
    max_lr=1e2,
    steps=120,
    batch_size=32,
    key=jax.random.key(3),
)
print(
    f"suggested learning rate {sweep.suggested_lr:.3g}; "
    f"stopped at η = {sweep.learning_rates[-1]:.3g} after {len(sweep.losses)} steps"
)

fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(sweep.learning_rates, sweep.losses, color="0.7", lw=0.8, label="loss of each step")
ax.plot(sweep.learning_rates, sweep.smoothed_losses, label="smoothed")
ax.axvline(sweep.suggested_lr, color="C2", ls="--", label="suggested η")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="learning rate η",
    ylabel="mini-batch loss",
    title="learning-rate range test (SGD)",
)
ax.legend()

# %% [markdown]
**Figure 3.** The range test.  For small η the loss does not move; it falls fastest
around the suggested η (the steepest descent of the smoothed curve); past that it
flattens, then climbs and diverges, where the test stops.

Now three fixed learning rates for 10 epochs: 100× below the suggestion, the
suggestion, and the η at which the range test diverged.

# %%
RATES = {
    "too small": sweep.suggested_lr / 100,
    "suggested": sweep.suggested_lr,
    "too large": float(sweep.learning_rates[-1]),
}
rate_runs = {}
for name, lr in RATES.items():
    _, _, rate_runs[name] = fit(
        loss_fn,
        PARAMS0,
        jopt.sgd(lr),
        TRAIN,
        batch_size=32,
        epochs=10,
        key=jax.random.key(4),
        progress=False,
    )

fig, ax = plt.subplots(figsize=(6.5, 3.6))
for name, history in rate_runs.items():
    ax.plot(history.loss, lw=0.8, label=f"{name}: η = {RATES[name]:.3g}")
ax.set(yscale="log", xlabel="step", ylabel="mini-batch loss", title="SGD, three learning rates")
ax.legend()

# %% [markdown]
**Figure 4.** Too small a learning rate converges, painfully slowly; the
suggested one trains; too large a rate makes the loss jump around far above the
minimum, or overflow (the curve stops where the loss stops being finite).

# %%
small, good, large = (rate_runs[name].loss for name in RATES)
for name, history in rate_runs.items():
    print(f"{name}: last epoch's mean loss {history.loss[-45:].mean():.3g}")
# too small: converges (the loss goes down) but painfully slowly (10× above the suggestion's)
assert small[-45:].mean() < small[:45].mean() and small[-45:].mean() > 10 * good[-45:].mean()
assert good[-45:].mean() < 0.2 * good[:45].mean()  # trains
# too large: diverges, or ends far above the suggested rate's loss and fluctuates
assert not np.all(np.isfinite(large)) or (
    large[-45:].mean() > 5 * good[-45:].mean() and large[-45:].std() > good[-45:].std()
)

# %% [markdown]
## Challenge 2: rare features deserve larger updates

*The same learning rate applies to all parameter updates.  If our data is sparse and
our features have very different frequencies, we might not want to update all of them
to the same extent, but perform a larger update for rarely occurring features.*

A linear model y = x·w* + noise with 20 binary features: ten frequent ones (present
in half the examples) and ten rare ones (present in 2%), all with weights ±1, so the
rare features carry as much of the signal per occurrence.  Mini-batches of 10, two
passes over 4,000 examples.  SGD and Adagrad each run over one grid of η; each gets
the η that learns all the weights (mean error < 0.1) soonest.  The runs are one
`jax.lax.scan` per optimizer, vmapped over the grid.

# %%
rng = np.random.default_rng(5)
N_SPARSE, N_FREQUENT, N_RARE, MINI = 4000, 10, 10, 10
present = np.concatenate(
    [rng.random((N_SPARSE, N_FREQUENT)) < 0.5, rng.random((N_SPARSE, N_RARE)) < 0.02], axis=1
)
features = present.astype(np.float32)
w_star = rng.choice([-1.0, 1.0], N_FREQUENT + N_RARE).astype(np.float32)
targets = features @ w_star + 0.1 * rng.normal(size=N_SPARSE).astype(np.float32)
x_batches = jnp.asarray(features.reshape(-1, MINI, N_FREQUENT + N_RARE))
y_batches = jnp.asarray(targets.reshape(-1, MINI))


def sparse_paths(make, learning_rates, epochs=2):
    # The weights after every step, for every η: shape (len(lrs), steps, 20).
    def one(lr):
        optimizer = make(lr)
        w = jnp.zeros(N_FREQUENT + N_RARE)

        def step(carry, batch):
            w, state = carry
            x, y = batch
            grad = jax.grad(lambda w: 0.5 * jnp.mean((x @ w - y) ** 2))(w)
            updates, state = optimizer.update(grad, state, w)
            w = jopt.apply_updates(w, updates)
            return (w, state), w

        def epoch(carry, _):
            return jax.lax.scan(step, carry, (x_batches, y_batches))

        _, ws = jax.lax.scan(epoch, (w, optimizer.init(w)), None, length=epochs)
        return ws.reshape(-1, N_FREQUENT + N_RARE)

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(learning_rates, jnp.float32)))


def steps_below(curve, level=0.1):
    hit = np.flatnonzero(curve < level)
    return int(hit[0]) + 1 if hit.size else None


GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
sparse = {}
for name, make in {"SGD": jopt.sgd, "Adagrad": jopt.adagrad}.items():
    # float64: the diverging η's weights reach float32's limit, and so would their sums
    errors = np.abs(sparse_paths(make, GRID).astype(np.float64) - w_star)  # (grid, steps, 20)
    mean_steps = [steps_below(e.mean(-1)) or np.inf for e in errors]
    best = int(np.argmin(mean_steps))
    sparse[name] = dict(
        lr=GRID[best],
        frequent=errors[best, :, :N_FREQUENT].mean(-1),
        rare=errors[best, :, N_FREQUENT:].mean(-1),
    )
    print(f"{name}: steps to mean error < 0.1 per η {dict(zip(GRID, mean_steps, strict=True))}")

fig, ax = plt.subplots(figsize=(7, 3.8))
for i, (name, result) in enumerate(sparse.items()):
    label = f"{name} (η = {result['lr']:g})"
    ax.plot(result["frequent"], color=f"C{i}", ls="--", label=f"{label}: frequent")
    ax.plot(result["rare"], color=f"C{i}", label=f"{name}: rare")
ax.set(yscale="log", xlabel="step", ylabel="mean |w − w*|", title="sparse features")
ax.legend(fontsize=8)

# %% [markdown]
**Figure 5.** Mean weight error of the frequent (dashed) and rare (solid) features,
each optimizer at its best η.  SGD learns the frequent weights quickly but the rare ones
only get a gradient in the 2% of examples that contain them, always scaled by the same
η, which the frequent features keep small for stability.  Adagrad divides each
coordinate by the root of its own accumulated squared gradients, which stays small for
rare features, so they get the larger steps and are learned several times sooner (at
the price of noisier rare weights once learned: those steps stay large).

# %%
rare_steps = {name: steps_below(result["rare"]) for name, result in sparse.items()}
frequent_steps = {name: steps_below(result["frequent"]) for name, result in sparse.items()}
print("steps to rare-weight error < 0.1:", rare_steps)
print("steps to frequent-weight error < 0.1:", frequent_steps)
assert rare_steps["Adagrad"] is not None
assert rare_steps["SGD"] is None or rare_steps["Adagrad"] < rare_steps["SGD"] / 3
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
"""


NOTEBOOKS: dict[str, str] = {
    "01_training_loop": TRAINING_LOOP,
    "02_loss_surfaces": LOSS_SURFACES,
    "03_initialization": INITIALIZATION,
}


def _cells(name: str, source: str) -> list:
    """Split a percent-format source into nbformat cells with stable ids."""
    source = source.replace("{{INSTALL}}", INSTALL).replace("{{BADGE}}", badge(name))
    source = source.replace("{{REQUIREMENT}}", pip_requirement())
    chunks: list[tuple[str, list[str]]] = []
    for line in source.strip("\n").splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            chunks.append((kind, []))
        elif not chunks:
            raise ValueError(f"{name}: text before the first '# %%' marker: {line!r}")
        else:
            chunks[-1][1].append(line)
    cells = []
    for index, (kind, lines) in enumerate(chunks):
        text = "\n".join(lines).strip("\n")
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(text)
        cell["id"] = f"{name[:2]}-{index:03d}"
        cells.append(cell)
    return cells


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` as an nbformat node, without outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = _cells(name, NOTEBOOKS[name])
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    }
    nbformat.validate(notebook)
    return notebook


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        text = render(name)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
