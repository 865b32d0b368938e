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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jopt-dev/jopt/blob/main/notebooks/01_training_loop.ipynb)
#
# # The training process
#
# The lecture opens with the common training process: initialize the parameters,
# choose an optimizer, then repeat forward pass, cost, backpropagation and update.  In
# jopt that loop is `jopt.training.fit`.  This notebook runs it on scikit-learn's digits
# (1,797 8×8 images, no download) to reproduce the lecture's first part: batch,
# stochastic and mini-batch gradient descent; every optimizer side by side; the
# first challenge, choosing the learning rate (with a learning-rate range test); and the
# second, rare features that deserve larger updates (Adagrad).  Every claim is checked
# by an `assert`.

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

import jopt
from jopt.lecture import compare, digits, roster
from jopt.training import fit, lr_range_test, sweep

T_START = time.perf_counter()
plt.rcParams.update({"figure.dpi": 72, "font.size": 9})

# %% [markdown]
# ## The task: digits with a small MLP
#
# The lecture's running example, `jopt.lecture.digits` (the same code as
# `python -m jopt`): 1,440 training images (a multiple of 32, so mini-batches are never
# ragged) and 357 test images, each pixel standardized with the training set's mean and
# standard deviation.  The model is a 64 → 64 → 10 tanh MLP with Xavier weights and
# zero biases, trained on the mean cross-entropy, `digits.loss(params, (x, y))`.

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
# ## Batch, stochastic and mini-batch gradient descent
#
# The three differ only in the data each gradient is taken on: `batch_size=None`
# (all 1,440 images), `1` (one image) or `32`.  Each runs plain SGD at η = 0.1.  `fit`
# runs `steps_per_call` steps per compiled call (by default a whole epoch, batches
# gathered on the device); here a call is one step (five for SGD), so that a callback
# can record the full training loss after it, and the time spent in the steps
# themselves, from the end of the first call (which also pays for compilation) and
# without the recording.


# %%
def run(batch_size, epochs, optimizer, every=1):
    # fit(), recording (step, seconds of training, full training loss) every `every` steps.
    record = {"step": [], "seconds": [], "loss": []}
    clock = {"spent": 0.0}

    def callback(step, params, opt_state, loss):
        loss.block_until_ready()  # time the steps, not their asynchronous dispatch
        if step > every:  # the first call also pays for compiling and first-use setup
            clock["spent"] += time.perf_counter() - clock["mark"]
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
        steps_per_call=every,
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
# **Figure 1.** Full training loss of plain SGD (η = 0.1) under the three regimes,
# against the number of updates (*left*, log axis) and against the time spent in them
# (*right*).  Per update, 32 images do about as well as all 1,440, and one image does
# worse, and noisily.  Per second the small batches win, since every step of batch GD
# reads all 1,440 images: 32 per step gets nearly the full gradient's direction at a
# fraction of its cost.  Absolute times depend on the machine.


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
# ## Every optimizer on one figure, over seeds
#
# Mini-batches of 32 for 10 epochs, every optimizer of the registry
# (`jopt.optimizers.ALL`) at its demo learning rate
# (`jopt.optimizers.DEMO_LEARNING_RATES`, the rates of `python -m jopt`), a common
# rate for its kind: η = 0.1 for SGD, 0.01 for Momentum and Nesterov (their step sums
# about 1/(1 − γ) = 10 gradients), 0.01 for Adagrad, Adadelta's neutral 1, and 10⁻³
# (2·10⁻³ for Adamax) for the methods that divide by an RMS.
#
# One seed is one draw of the initial weights and of the batch order; a difference
# between optimizers means something only if it is larger than the spread over seeds.
# `compare.compare` trains every optimizer with 3 seeds as one `jopt.training.sweep`:
# every run in one compiled program, each seed the same for every optimizer.

# %%
SEEDS = 3
runs = compare.compare(
    list(jopt.optimizers.ALL),
    split,
    epochs=10,
    batch_size=32,
    seeds=SEEDS,
    key=jax.random.key(2),
    target=0.1,
)
print(f"{len(runs.results)} optimizers x {SEEDS} seeds in {runs.wall_time:.1f} s")
for name, reason in runs.failed.items():
    print(f"{name}: not trained ({reason})")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
for i, r in enumerate(runs.results):
    # Ten colours, then the same ten dashed, then dotted.
    color, ls = plt.get_cmap("tab10")(i % 10), ["-", "--", ":"][min(i // 10, 2)]
    epochs = np.arange(1, len(r.epoch_step) + 1)
    for ax, values in ((ax1, r.train_loss), (ax2, r.test_accuracy)):
        ax.plot(epochs, values.mean(0), color=color, ls=ls, label=roster.label(r.optimizer))
        ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.15)
ax1.set(yscale="log", xlabel="epoch", ylabel="full training loss", title="training")
ax2.set(xlabel="epoch", ylabel="test accuracy", title="held-out digits")
ax2.legend(ncol=2, fontsize=7)
print(f"{'optimizer':12} {'η':>7} {'final loss (mean ± std)':>24} {'test acc':>15}")
for r in runs.results:
    loss, acc = r.train_loss[:, -1], r.test_accuracy[:, -1]
    print(
        f"{roster.label(r.optimizer):12} {r.learning_rate:7g} "
        f"{loss.mean():14.4f} ± {loss.std(ddof=1):.4f} {acc.mean():9.3f} ± {acc.std(ddof=1):.3f}"
    )

# %% [markdown]
# **Figure 2.** Every optimizer on the same network, with the same three seeds.
# *Left*, the training loss on all 1,440 images after each epoch; *right*, accuracy on
# the 357 held-out digits.  Lines are means over the seeds, bands their range.  With
# these common settings the lecture's optimizers all learn the task; the differences
# are in speed, and mostly larger than the bands.

# %%
results = {r.optimizer: r for r in runs.results}
for name in roster.LECTURE_OPTIMIZERS:
    r = results[name]
    assert np.all(r.test_accuracy[:, -1] > 0.85), (name, r.test_accuracy[:, -1])
    assert np.all(r.train_loss[:, -1] < 0.5 * r.train_loss[:, 0]), name
# Adadelta, the fastest here, beats SGD on every seed.
assert np.all(results["adadelta"].train_loss[:, -1] < results["sgd"].train_loss[:, -1])


# %% [markdown]
# ## Challenge 1: choosing the learning rate
#
# *A learning rate that is too small leads to painfully slow convergence; one that is
# too large can hinder convergence, make the loss fluctuate around the minimum, or
# diverge.*  Smith's range test measures where these regimes lie: train once while η
# grows geometrically from 10⁻⁴ to 10², and watch the loss.  `lr_range_test` takes a
# dict of optimizers and runs them side by side on the same batches, in one compiled
# program: SGD, Momentum and Adam here.

# %%
ranges = lr_range_test(
    loss_fn,
    PARAMS0,
    {"sgd": jopt.sgd, "momentum": jopt.momentum, "adam": jopt.adam},
    TRAIN,
    min_lr=1e-4,
    max_lr=1e2,
    steps=120,
    batch_size=32,
    key=jax.random.key(3),
)
for name, test in ranges.items():
    print(
        f"{roster.label(name):8}: suggested learning rate {test.suggested_lr:.3g}; "
        f"stopped at η = {test.learning_rates[-1]:.3g} after {len(test.losses)} steps"
    )

fig, ax = plt.subplots(figsize=(7, 3.8))
for i, (name, test) in enumerate(ranges.items()):
    ax.plot(test.learning_rates, test.losses, color=f"C{i}", alpha=0.3, lw=0.8)
    ax.plot(test.learning_rates, test.smoothed_losses, color=f"C{i}", label=roster.label(name))
    ax.axvline(test.suggested_lr, color=f"C{i}", ls="--", lw=1)
ax.set(
    xscale="log",
    yscale="log",
    xlabel="learning rate η",
    ylabel="mini-batch loss",
    title="learning-rate range tests (faint: each step; dashed: suggested η)",
)
ax.legend()

# %% [markdown]
# **Figure 3.** The range tests.  For small η the loss does not move; it falls fastest
# around the suggested η (the steepest descent of the smoothed curve); past that it
# flattens, then climbs and diverges, where the test stops.  Momentum's step adds up
# about 1/(1 − γ) = 10 gradients, so its curve is SGD's shifted a decade to the left;
# Adam's step is about η whatever the gradient's scale, and it diverges at a far
# smaller η.
#
# Now SGD at three fixed learning rates for 10 epochs: 100× below its suggestion, the
# suggestion, and the η at which its range test diverged, each with three seeds
# (initial weights and batch order), all nine runs as one `jopt.training.sweep`.

# %%
sgd_test = ranges["sgd"]
RATES = {
    "too small": sgd_test.suggested_lr / 100,
    "suggested": sgd_test.suggested_lr,
    "too large": float(sgd_test.learning_rates[-1]),
}
rate_runs = sweep(
    loss_fn,
    digits.init_params,
    jopt.sgd,
    TRAIN,
    grid={"learning_rate": list(RATES.values())},
    seeds=SEEDS,
    batch_size=32,
    epochs=10,
    key=jax.random.key(4),
)
epoch_loss = rate_runs.epoch_loss  # (rates, seeds, epochs)

fig, ax = plt.subplots(figsize=(6.5, 3.6))
epochs = np.arange(1, epoch_loss.shape[-1] + 1)
for i, (name, lr) in enumerate(RATES.items()):
    curves = np.where(np.isfinite(epoch_loss[i]), epoch_loss[i], np.nan)
    ax.plot(epochs, np.nanmean(curves, 0), color=f"C{i}", label=f"{name}: η = {lr:.3g}")
    ax.fill_between(epochs, np.nanmin(curves, 0), np.nanmax(curves, 0), color=f"C{i}", alpha=0.2)
ax.set(
    yscale="log", xlabel="epoch", ylabel="mean mini-batch loss", title="SGD, three learning rates"
)
ax.legend()

# %% [markdown]
# **Figure 4.** Too small a learning rate converges, painfully slowly; the suggested
# one trains; too large a rate makes the loss jump around far above the minimum, or
# overflow (the curve stops where the loss stops being finite).  Bands: the range over
# the three seeds.

# %%
small, good, large = epoch_loss  # each (seeds, epochs)
for name, curves in zip(RATES, epoch_loss, strict=True):
    print(f"{name}: last epoch's mean loss per seed {np.array2string(curves[:, -1], precision=3)}")
# On every seed: too small converges (the loss goes down) but painfully slowly (10×
# above the suggestion's), the suggestion trains, and too large diverges or ends far
# above the suggested rate's loss.
assert np.all(small[:, -1] < small[:, 0]) and np.all(small[:, -1] > 10 * good[:, -1])
assert np.all(good[:, -1] < 0.2 * good[:, 0])
assert np.all(~np.isfinite(large[:, -1]) | (large[:, -1] > 5 * good[:, -1]))

# %% [markdown]
# ## Challenge 2: rare features deserve larger updates
#
# *The same learning rate applies to all parameter updates.  If our data is sparse and
# our features have very different frequencies, we might not want to update all of them
# to the same extent, but perform a larger update for rarely occurring features.*
#
# A linear model y = x·w* + noise with 20 binary features: ten frequent ones (present
# in half the examples) and ten rare ones (present in 2%), all with weights ±1, so the
# rare features carry as much of the signal per occurrence.  400 examples in
# mini-batches of 10, 20 epochs.  SGD and Adagrad each run over one grid of η with
# three seeds (batch orders), as one sweep; each gets the η whose runs learn all the
# weights (mean error < 0.1) soonest, by the median over seeds.

# %%
rng = np.random.default_rng(5)
N_SPARSE, N_FREQUENT, N_RARE, MINI = 400, 10, 10, 10
present = np.concatenate(
    [rng.random((N_SPARSE, N_FREQUENT)) < 0.5, rng.random((N_SPARSE, N_RARE)) < 0.02], axis=1
)
features = present.astype(np.float32)
w_star = rng.choice([-1.0, 1.0], N_FREQUENT + N_RARE).astype(np.float32)
targets = features @ w_star + 0.1 * rng.normal(size=N_SPARSE).astype(np.float32)


def linear_loss(params, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ params["w"] - y) ** 2)


def weight_errors(params):
    error = jnp.abs(params["w"] - w_star)
    return {"frequent": error[:N_FREQUENT].mean(), "rare": error[N_FREQUENT:].mean()}


def steps_below(curve, steps, level=0.1):
    hit = np.flatnonzero(curve < level)
    return int(steps[hit[0]]) if hit.size else np.inf


GRID = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
sparse_runs = sweep(
    linear_loss,
    {"w": np.zeros(N_FREQUENT + N_RARE, np.float32)},
    {"SGD": jopt.sgd, "Adagrad": jopt.adagrad},
    (features, targets),
    grid={"learning_rate": GRID},
    seeds=SEEDS,
    batch_size=MINI,
    epochs=20,
    key=jax.random.key(5),
    eval_fn=weight_errors,
)
sparse = {}
for name, runs_of in sparse_runs.items():
    steps = runs_of.epoch_step
    both = (runs_of.metrics["frequent"] + runs_of.metrics["rare"]) / 2  # (grid, seeds, epochs)
    median_steps = [np.median([steps_below(c, steps) for c in seeds]) for seeds in both]
    best = int(np.argmin(median_steps))
    sparse[name] = dict(lr=GRID[best], **{k: v[best] for k, v in runs_of.metrics.items()})
    per_rate = dict(zip(GRID, median_steps, strict=True))
    print(f"{name}: median steps to mean error < 0.1 per η {per_rate}")

fig, ax = plt.subplots(figsize=(7, 3.8))
steps = sparse_runs["SGD"].epoch_step
for i, (name, result) in enumerate(sparse.items()):
    for kind, ls in (("frequent", "--"), ("rare", "-")):
        curves = result[kind]  # (seeds, epochs)
        label = f"{name} (η = {result['lr']:g}): {kind}"
        ax.plot(steps, curves.mean(0), color=f"C{i}", ls=ls, label=label)
        ax.fill_between(steps, curves.min(0), curves.max(0), color=f"C{i}", alpha=0.15)
ax.set(yscale="log", xlabel="step", ylabel="mean |w − w*|", title="sparse features")
ax.legend(fontsize=8)

# %% [markdown]
# **Figure 5.** Mean weight error of the frequent (dashed) and rare (solid) features,
# each optimizer at its best η (mean over three seeds, bands their range).  SGD learns
# the frequent weights quickly but the rare ones only get a gradient in the 2% of
# examples that contain them, always scaled by the same η, which the frequent features
# keep small for stability.  Adagrad divides each coordinate by the root of its own
# accumulated squared gradients, which stays small for rare features, so they get the
# larger steps and are learned several times sooner (at the price of noisier rare
# weights once learned: those steps stay large).

# %%
rare_steps = {
    name: [steps_below(c, steps) for c in result["rare"]] for name, result in sparse.items()
}
print("steps to rare-weight error < 0.1, per seed:", rare_steps)
# On every seed, Adagrad learns the rare weights at least 3 times sooner than SGD.
assert np.all(np.isfinite(rare_steps["Adagrad"]))
assert np.all(np.asarray(rare_steps["Adagrad"]) * 3 < np.asarray(rare_steps["SGD"]))
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
