# ---
# jupyter:
#   colab:
#     provenance: []
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jopt-dev/jopt/blob/main/notebooks/02_loss_surfaces.ipynb)
#
# # Paths on loss surfaces
#
# The lecture argues with pictures: optimizer paths drawn on the contours of a loss
# surface, a ravine where SGD zig-zags while momentum runs ahead, and a saddle point
# that plain gradient descent struggles to leave.  This notebook redraws those pictures
# with the lecture's eight optimizers and then *measures* the lecture's summary table instead
# of typing it in: adaptive learning rate, consistent units, and steps to escape a
# saddle.  Every claim it makes is checked by an `assert`.

# %%
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
        requirement = "jopt[examples] @ git+https://github.com/jopt-dev/jopt.git@main"
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", requirement])
    importlib.invalidate_caches()

# %%
# %matplotlib inline
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
from jopt.training import sweep

T_START = time.perf_counter()
plt.rcParams.update({"figure.dpi": 72, "font.size": 9})

# %% [markdown]
# ## The eight optimizers and a path tracer
#
# Each optimizer is a `jopt.GradientTransformation` from the registry,
# `jopt.optimizers.ALL`; `roster.LECTURE_OPTIMIZERS` names the lecture's eight.
# `trajectory` runs one on a two-parameter loss inside a single `jax.lax.scan`, so a
# path of hundreds of steps is one compiled call.  Adadelta takes no learning rate: its
# step is RMS[Δθ]/RMS[g]·g, so `roster.build` keeps its `learning_rate` at the neutral
# multiplier 1.

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
# ## Momentum on a ravine
#
# The lecture: *SGD has trouble navigating ravines … Momentum accelerates SGD in the
# relevant direction and dampens oscillations.*  The ravine here is
# f = 0.02x² + 2y² (curvatures 0.04 and 4, condition number 100).  To compare the
# methods and not the choice of η, each gets its best η from one grid, measured as
# the steps until the loss falls below 10⁻³ (at most 400).  The grid is one
# `jopt.training.sweep`: the three optimizers at the eight learning rates, 24 runs of
# 400 steps in one compiled program (the "data" is a single unused example, so every
# step is a full, deterministic gradient step on f).


# %%
def steps_below(losses, tol):
    hit = np.flatnonzero(losses < tol)
    return int(hit[0]) if hit.size else None


LR_GRID = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.49]
ravine_runs = sweep(
    lambda params, batch: ravine(params),
    np.asarray([-9.0, 1.8], np.float32),
    {name: jopt.optimizers.ALL[name] for name in GLOBAL_LR},
    np.zeros(1),
    grid={"learning_rate": LR_GRID},
    epochs=400,
)
# result.loss[c, s, t]: the loss after t steps at learning rate c (one seed: no noise)
ravine_steps = {
    name: {lr: steps_below(runs.loss[c, 0], 1e-3) for c, lr in enumerate(LR_GRID)}
    for name, runs in ravine_runs.items()
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
# ## Three surfaces, eight paths
#
# The learning rates below are chosen per surface so that each path is visible.  On
# the ravine SGD runs at its best η from the grid above, Momentum and Nesterov at
# η = 0.1.

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
# **Figure 1.** Paths of the eight optimizers (black dot: the start; Adadelta has no
# η).  *Top*, the ravine f = 0.02x² + 2y²: SGD zig-zags across the narrow direction
# and crawls along the long one; Momentum averages the alternating gradients away into
# a slow swing it damps as it goes, and runs along the valley; Nesterov's look-ahead
# damps the swing sooner.  *Middle*, Beale's function (log-spaced contours), whose
# minimum is at (3, 0.5).  *Bottom*, the saddle x² − y²
# started at (1, 10⁻³): SGD, Momentum and Nesterov first slide towards the saddle point
# before the tiny y-component grows, while the adaptive methods turn away at once.
# Adadelta's early steps are small everywhere: from a zero state its first step,
# √ε/√((1 − ρ)g² + ε)·g, is at most √(ε/(1 − ρ)) ≈ 3·10⁻³ long whatever the surface,
# and its steps grow from there.

# %% [markdown]
# ## The saddle race
#
# The lecture's animation (after Alec Radford's) shows that around a saddle point
# *it's easier for RMSprop, Adadelta and Adagrad to escape*.  Here all methods start at
# (1, 10⁻⁶), a hair away from the saddle's stable direction, with η = 0.05.

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
# **Figure 2.** The saddle race: all eight optimizers from (1, 10⁻⁶) with η = 0.05
# (Adadelta without a learning rate), one frame every three to four steps.  The
# adaptive methods leave along y within a few dozen steps; SGD sits near the saddle
# point for over a hundred.

# %% [markdown]
# ## The lecture's table, measured
#
# | Methods | Adaptive learning rate | Consistent units | Easily handle saddle points |
# |---|---|---|---|
#
# jopt measures each column on a small problem by running the optimizer's own
# `init`/`update` (`jopt.lecture.table`, the same code as the `python -m jopt`
# summary), for every optimizer of the registry:
#
# * **Adaptive learning rate.**  Three parameters see constant gradients 1, 10 and 100.
#   Each parameter's effective learning rate is −Δθᵢ/gᵢ; a global learning rate gives
#   them all the same one (ratio 1), an adaptive method does not.
# * **Consistent units.**  Measure θ in a unit k times smaller, θ' = kθ, so g' = g/k,
#   and express the optimizer's state in the new unit too (a momentum buffer has the
#   units of g, a second moment those of g²; the units are found by trying every
#   assignment).  The step then scales as kᵖ.  Newton's step has p = 1, the units of θ;
#   SGD's has p = −1 (the lecture's "units of Δθ ∝ 1/units of θ"); a step divided by
#   the gradient's own RMS has p = 0.  Adadelta's E[Δθ²] is fed only by its own steps,
#   so it can carry the units of θ², and then its step has the units of θ.
# * **Easily handle saddle points.**  Steps until |y| ≥ 1 on x² − y², from (1, 10⁻⁶) and
#   from (1, 10⁻²), at η = 0.05.  Plain gradient methods multiply y by a constant factor
#   per step, so the flatter start costs them three times the steps (log 10⁶ / log 10²);
#   methods that normalise the gradient take a step of about η along y whatever its
#   size, and barely notice.  A method "easily handles" the saddle when the flat start
#   costs at most 1.5× the steps.  The race is also run from four more starts around
#   each (x₀ in [0.5, 1.5], y₀ within half a decade), and the table shows the mean ±
#   standard deviation over the five.

# %%
SEEDS = 5
rows = {row.method: row for row in lecture_table(seeds=SEEDS)}

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
    return "n/a" if flag is None else "Yes" if flag else "No"


def cells(row):
    """The measured cells of a row; a measurement the table could not make is n/a."""
    ratio = "" if row.effective_lr_ratio is None else f" ({row.effective_lr_ratio:.3g})"
    if row.units_exponents is None:
        powers = "not searched"
    else:
        powers = ", ".join(f"{p:+g}" for p in row.units_exponents) or "none"
    steps = "n/a"
    if row.saddle_mean is not None:
        pairs = zip(row.saddle_mean, row.saddle_std, strict=True)
        steps = " / ".join(f"{mean:.0f} ± {std:.0f}" for mean, std in pairs)
    return (
        yes(row.adaptive) + ratio,
        f"{yes(row.consistent_units)} ({powers})",
        f"{yes(row.handles_saddle)} ({steps})",
    )


starts = " / ".join(f"{y0:g}" for y0 in SADDLE_STARTS)
table = [
    "| Method | Adaptive learning rate (ratio) | Consistent units (powers p) "
    f"| Easily handle saddle points (steps from y₀ ≈ {starts}, {SEEDS} starts) | Lecture |",
    "|---|---|---|---|---|",
]
for name, row in rows.items():
    lecture = " / ".join(map(yes, LECTURE[name])) if name in LECTURE else "not in the table"
    table.append(f"| {name} | " + " | ".join(cells(row)) + f" | {lecture} |")
display(Markdown("\n".join(table)))
for name, row in rows.items():
    if row.note:
        print(f"{name}: not measured: {row.note}")

# %% [markdown]
# **Table.** The lecture's summary, regenerated from the measurements above; the last
# column is the lecture's own verdict (adaptive / units / saddle).  Adamax, in the
# lecture's outline but not in its table, behaves like Adam.  AdamW's step mixes units
# (m̂/√v̂ + λθ), so no single power fits it.
#
# The claims, checked: every measured verdict agrees with the lecture, and Adagrad,
# Adadelta, RMSprop and Adam escape the saddle from near (1, 10⁻⁶) in fewer steps than
# SGD, on average over the five starts and by more than the spread.

# %%
for name, verdict in LECTURE.items():
    row = rows[name]
    assert (row.adaptive, row.consistent_units, row.handles_saddle) == verdict, row
sgd = rows["sgd"]
for name in ["adagrad", "adadelta", "rmsprop", "adam"]:
    row = rows[name]
    assert row.saddle_steps[0] < sgd.saddle_steps[0], row
    assert row.saddle_mean[0] + row.saddle_std[0] < sgd.saddle_mean[0] - sgd.saddle_std[0], row
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
