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
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "{{REQUIREMENT}}"])
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
with jopt's eight optimizers and then *measures* the lecture's summary table instead
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

T_START = time.perf_counter()
plt.rcParams.update({"figure.dpi": 72, "font.size": 9})

# %% [markdown]
## The eight optimizers and a path tracer

Each optimizer is a `jopt.GradientTransformation`.  `trajectory` runs one on a
two-parameter loss inside a single `jax.lax.scan`, so a path of hundreds of steps is
one compiled call.  Adadelta takes no learning rate: its step is
RMS[Δθ]/RMS[g]·g, so `learning_rate` stays at its neutral multiplier 1.

# %%
OPTIMIZERS = {
    "SGD": lambda lr: jopt.sgd(lr),
    "Momentum": lambda lr: jopt.momentum(lr),
    "Nesterov": lambda lr: jopt.nesterov(lr),
    "Adagrad": lambda lr: jopt.adagrad(lr),
    "Adadelta": lambda lr: jopt.adadelta(),
    "RMSprop": lambda lr: jopt.rmsprop(lr),
    "Adam": lambda lr: jopt.adam(lr),
    "Adamax": lambda lr: jopt.adamax(lr),
}
GLOBAL_LR = ["SGD", "Momentum", "Nesterov"]
ADAPTIVE = ["Adagrad", "Adadelta", "RMSprop", "Adam", "Adamax"]
COLORS = dict(zip(OPTIMIZERS, plt.get_cmap("tab10").colors))


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
    ax.contour(grid_x, grid_y, np.log10(z + 1e-3) if log else z, levels=30,
               colors="0.75", linewidths=0.6)
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
    ravine_steps[name] = {lr: steps_below(curve, 1e-3) for lr, curve in zip(LR_GRID, losses)}

print("steps to loss < 1e-3 (None: not within 400)")
print("η        " + "".join(f"{lr:>6}" for lr in LR_GRID))
for name, row in ravine_steps.items():
    print(f"{name:9}" + "".join(f"{str(n):>6}" for n in row.values()))
best = {
    name: min((n, lr) for lr, n in row.items() if n is not None)
    for name, row in ravine_steps.items()
}
print("best (steps, η):", best)
assert best["Momentum"][0] < best["SGD"][0] / 2, best
assert best["Nesterov"][0] < best["SGD"][0] / 2, best

# %% [markdown]
## Three surfaces, eight paths

The learning rates below are chosen per surface so that each path is visible.  On
the ravine SGD runs at its best η from the grid above, Momentum and Nesterov at
η = 0.1.

# %%
SURFACES = {
    "ravine": dict(loss=ravine, start=(-9.0, 1.8), steps=150, extent=(-10, 2, -2.5, 2.5),
                   lr=dict(SGD=best["SGD"][1], Momentum=0.1, Nesterov=0.1, Adagrad=1.0,
                           RMSprop=0.1, Adam=0.3, Adamax=0.3)),
    "Beale": dict(loss=beale, start=(1.0, 1.5), steps=600, extent=(-0.5, 4, -1, 2), log=True,
                  lr=dict(SGD=0.005, Momentum=0.001, Nesterov=0.001, Adagrad=0.3,
                          RMSprop=0.01, Adam=0.03, Adamax=0.03)),
    "saddle x² − y²": dict(loss=saddle, start=(1.0, 1e-3), steps=100,
                           extent=(-1.5, 1.5, -1.5, 1.5), lr=dict.fromkeys(OPTIMIZERS, 0.05)),
}
PATHS = {
    surface: {
        name: trajectory(make(spec["lr"].get(name, 1.0)), spec["loss"], spec["start"],
                         spec["steps"])
        for name, make in OPTIMIZERS.items()
    }
    for surface, spec in SURFACES.items()
}

fig, axes = plt.subplots(3, 2, figsize=(10, 12))
for row, (surface, spec) in zip(axes, SURFACES.items()):
    for ax, group, title in zip(row, (GLOBAL_LR, ADAPTIVE), ("one global η", "adaptive")):
        draw_contours(ax, spec["loss"], spec["extent"], log=spec.get("log", False))
        for name in group:
            path = PATHS[surface][name]
            label = name if name == "Adadelta" else f"{name} (η = {spec['lr'][name]:g})"
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
damps the swing sooner.  *Middle*, Beale's function
(log-spaced contours), whose minimum is at (3, 0.5).  *Bottom*, the saddle x² − y²
started at (1, 10⁻³): SGD, Momentum and Nesterov first slide towards the saddle point
before the tiny y-component grows, while the adaptive methods turn away at once.
Adadelta's early steps are small everywhere: its first step is about √ε = 10⁻³ long
whatever the surface, and grows from there (see its units below).

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
lines = {name: ax.plot([], [], lw=1.5, color=COLORS[name], label=name)[0] for name in race}
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
(Adadelta without a learning rate), one frame every three to four steps.  The adaptive methods
leave along y within a few dozen steps; SGD sits near the saddle point for over a
hundred.

# %% [markdown]
## The lecture's table, measured

| Methods | Adaptive learning rate | Consistent units | Easily handle saddle points |
|---|---|---|---|

Each column becomes a measurement on jopt's optimizers:

* **Adaptive learning rate.**  Feed a constant gradient whose two coordinates differ
  by 1000× (the loss c·θ with c = (1, 10⁻³)) for ten steps, and divide each
  coordinate's displacement by its gradient: that is the learning rate it actually
  got.  A global learning rate gives both coordinates the same one; an adaptive
  method does not.
* **Consistent units.**  Express the same problem in units k = 10 times smaller,
  θ' = kθ (the loss J(θ'/k), started at kθ₀), and see how the first step scales:
  as k^p.  The lecture's criterion is Newton's p = 1, a step in the units of θ.  For SGD
  the gradient shrinks by k, so p = −1; for methods that divide g by its own RMS, the
  step is a fixed number of "η units", p = 0.  To test the *rule* rather than the
  constant ε (whose units are fixed: Adadelta's first step is √ε long in any units),
  every ε is set to 0 here and Adadelta's E[Δθ²] starts at (k·10⁻³)², the value
  √ε = 10⁻³ would give, expressed in the new units.
* **Easily handle saddle points.**  Count the steps until |y| ≥ 1 on x² − y², from
  (1, 10⁻⁶) and from 1000× further away, (1, 10⁻³).  Plain gradient methods multiply
  y by a constant factor per step, so starting 1000× closer costs them a fixed number
  of extra steps (for SGD, ln 1000 / ln(1 + 2η) ≈ 73); methods that normalise the
  gradient take a step of about η along y whatever its size, and barely notice.  The
  method "easily handles saddles" when the closer start costs less than 50% more
  steps.

# %%
def effective_lr_spread(make, lr=0.05, steps=10):
    """max/min over coordinates of (displacement / gradient) under a constant gradient."""
    c = jnp.array([1.0, 1e-3])
    path = trajectory(make(lr), lambda p: jnp.dot(c, p), (0.0, 0.0), steps)
    per_coordinate = -(path[-1] - path[0]) / (steps * np.asarray(c))
    return float(per_coordinate.max() / per_coordinate.min())


EPS_FREE = {
    "SGD": lambda: jopt.sgd(0.05),
    "Momentum": lambda: jopt.momentum(0.05),
    "Nesterov": lambda: jopt.nesterov(0.05),
    "Adagrad": lambda: jopt.adagrad(0.05, eps=0.0),
    "Adadelta": lambda: jopt.adadelta(eps=0.0),
    "RMSprop": lambda: jopt.rmsprop(0.05, eps=0.0),
    "Adam": lambda: jopt.adam(0.05, eps=0.0),
    "Adamax": lambda: jopt.adamax(0.05, eps=0.0),
}


def seed_delta_average(state, value):
    """Adadelta's E[Δθ²] set to `value` (other optimizers' states are unchanged)."""

    def fill(path, leaf):
        return jnp.full_like(leaf, value) if "delta_sq_avg" in jax.tree_util.keystr(path) else leaf

    return jax.tree_util.tree_map_with_path(fill, state)


def scaled_path(name, scale, steps):
    """The ε-free path on J(θ/scale) = ½(x² + 0.1y²)/scale², started at scale·(1, 1)."""
    optimizer = EPS_FREE[name]()
    start = jnp.array([1.0, 1.0]) * scale
    state = seed_delta_average(optimizer.init(start), (scale * 1e-3) ** 2)
    loss = lambda p: 0.5 * (p[0] ** 2 + 0.1 * p[1] ** 2) / scale**2
    return trajectory(optimizer, loss, start, steps, state)


def units_exponent(name, k=10.0):
    """p such that the first step scales as k^p when the parameter's unit shrinks by k."""
    step = {s: np.linalg.norm(np.diff(scaled_path(name, s, 1), axis=0)) for s in (1.0, k)}
    return float(np.log(step[k] / step[1.0]) / np.log(k))


def escape_steps(make, y0, lr=0.05, max_steps=400):
    path = trajectory(make(lr), saddle, (1.0, y0), max_steps)
    hit = np.flatnonzero(np.abs(path[:, 1]) >= 1.0)
    return int(hit[0]) if hit.size else None


measured = {}
for name, make in OPTIMIZERS.items():
    near, far = escape_steps(make, 1e-6), escape_steps(make, 1e-3)
    measured[name] = dict(
        spread=effective_lr_spread(make),
        p=units_exponent(name),
        near=near,
        far=far,
    )
    measured[name].update(
        adaptive=measured[name]["spread"] > 2.0,
        units=abs(measured[name]["p"] - 1.0) < 0.05,
        saddle=near is not None and far is not None and near < 1.5 * far,
    )

# The lecture's table, typed in only to be compared with the measurements.
LECTURE = {
    "SGD": (False, False, False),
    "Momentum": (False, False, False),
    "Nesterov": (False, False, False),
    "Adagrad": (True, False, True),
    "Adadelta": (True, True, True),
    "RMSprop": (True, False, True),
    "Adam": (True, False, True),
}


def yes(flag):
    return "Yes" if flag else "No"


rows = [
    "| Method | Adaptive learning rate (η spread) | Consistent units (p) "
    "| Easily handle saddle points (steps from 10⁻⁶ / 10⁻³) | Lecture |",
    "|---|---|---|---|---|",
]
for name, m in measured.items():
    lecture = " / ".join(map(yes, LECTURE[name])) if name in LECTURE else "not in the table"
    rows.append(
        f"| {name} | {yes(m['adaptive'])} ({m['spread']:.3g}×) | {yes(m['units'])} "
        f"(p = {round(m['p'], 2) + 0.0:+.2f}) | {yes(m['saddle'])} ({m['near']} / {m['far']}) "
        f"| {lecture} |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
**Table.** The lecture's summary, regenerated from the measurements above; the last
column is the lecture's own verdict (adaptive / units / saddle).  Adamax, in the
lecture's outline but not in its table, behaves like Adam.

The claims, checked: every measured verdict agrees with the lecture, and Adagrad,
Adadelta, RMSprop and Adam escape the saddle from (1, 10⁻⁶) in fewer steps than SGD.

# %%
for name, verdict in LECTURE.items():
    m = measured[name]
    assert (m["adaptive"], m["units"], m["saddle"]) == verdict, (name, m, verdict)
for name in ["Adagrad", "Adadelta", "RMSprop", "Adam"]:
    assert measured[name]["near"] < measured["SGD"]["near"], (name, measured[name])
# Not only Adadelta's first step: its whole path is the same path in the new units.
np.testing.assert_allclose(
    scaled_path("Adadelta", 10.0, 50), 10.0 * scaled_path("Adadelta", 1.0, 50), rtol=1e-4
)
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
'''


NOTEBOOKS: dict[str, str] = {
    "02_loss_surfaces": LOSS_SURFACES,
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
