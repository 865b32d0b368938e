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
from jopt.lecture import digits, roster
from jopt.training import fit, lr_range_test

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
# (all 1,440 images), `1` (one image) or `32`.  Each runs plain SGD at η = 0.1; a
# callback records the full training loss after every step (every fifth for SGD), and
# the time spent in the steps themselves, from the end of the first step (which also
# pays for compilation) and without the recording.


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
# ## Every optimizer on one figure
#
# Mini-batches of 32 for 10 epochs, every optimizer of the registry
# (`jopt.optimizers.ALL`) at its demo learning rate
# (`jopt.optimizers.DEMO_LEARNING_RATES`, the rates of `python -m jopt`), a common
# rate for its kind: η = 0.1 for SGD, 0.01 for Momentum and Nesterov (their step sums
# about 1/(1 − γ) = 10 gradients), 0.01 for Adagrad, Adadelta's neutral 1, and 10⁻³
# (2·10⁻³ for Adamax) for the methods that divide by an RMS.

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
# **Figure 2.** Every optimizer on the same network, data order and initial weights.
# *Left*, the mean loss of each epoch's mini-batches; *right*, accuracy on the 357
# held-out digits after each epoch.  With these common settings all of them learn the
# task; the differences are in speed.

# %%
for name, history in runs.items():
    assert history.metrics["test accuracy"][-1] > 0.85, (name, history.metrics)
    assert history.epoch_loss[-1] < 0.5 * history.epoch_loss[0], name

# %% [markdown]
# ## Challenge 1: choosing the learning rate
#
# *A learning rate that is too small leads to painfully slow convergence; one that is
# too large can hinder convergence, make the loss fluctuate around the minimum, or
# diverge.*  Smith's range test measures where these regimes lie: train once while η
# grows geometrically from 10⁻⁴ to 10², and watch the loss.

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
# **Figure 3.** The range test.  For small η the loss does not move; it falls fastest
# around the suggested η (the steepest descent of the smoothed curve); past that it
# flattens, then climbs and diverges, where the test stops.
#
# Now three fixed learning rates for 10 epochs: 100× below the suggestion, the
# suggestion, and the η at which the range test diverged.

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
# **Figure 4.** Too small a learning rate converges, painfully slowly; the
# suggested one trains; too large a rate makes the loss jump around far above the
# minimum, or overflow (the curve stops where the loss stops being finite).

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
# ## Challenge 2: rare features deserve larger updates
#
# *The same learning rate applies to all parameter updates.  If our data is sparse and
# our features have very different frequencies, we might not want to update all of them
# to the same extent, but perform a larger update for rarely occurring features.*
#
# A linear model y = x·w* + noise with 20 binary features: ten frequent ones (present
# in half the examples) and ten rare ones (present in 2%), all with weights ±1, so the
# rare features carry as much of the signal per occurrence.  Mini-batches of 10, two
# passes over 4,000 examples.  SGD and Adagrad each run over one grid of η; each gets
# the η that learns all the weights (mean error < 0.1) soonest.  The runs are one
# `jax.lax.scan` per optimizer, vmapped over the grid.

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
# **Figure 5.** Mean weight error of the frequent (dashed) and rare (solid) features,
# each optimizer at its best η.  SGD learns the frequent weights quickly but the rare ones
# only get a gradient in the 2% of examples that contain them, always scaled by the same
# η, which the frequent features keep small for stability.  Adagrad divides each
# coordinate by the root of its own accumulated squared gradients, which stays small for
# rare features, so they get the larger steps and are learned several times sooner (at
# the price of noisier rare weights once learned: those steps stay large).

# %%
rare_steps = {name: steps_below(result["rare"]) for name, result in sparse.items()}
frequent_steps = {name: steps_below(result["frequent"]) for name, result in sparse.items()}
print("steps to rare-weight error < 0.1:", rare_steps)
print("steps to frequent-weight error < 0.1:", frequent_steps)
assert rare_steps["Adagrad"] is not None
assert rare_steps["SGD"] is None or rare_steps["Adagrad"] < rare_steps["SGD"] / 3
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
