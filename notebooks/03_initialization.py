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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jopt-dev/jopt/blob/main/notebooks/03_initialization.ipynb)
#
# # Initialization, checked empirically
#
# The lecture's second half derives how to initialize a deep network: not all zeros
# (every neuron would stay the same), not too small (the signal vanishes) nor too large
# (it explodes), but with a variance calibrated so that
#
# $$\text{Var}(a^{[L]}) = \Big[\prod_{l=1}^{L} n^{[l-1]}\,\text{Var}(W^{[l]})\Big]\,\text{Var}(x)$$
#
# stays put: Xavier's Var(W) = 1/n for tanh, He's 2/n for ReLU.  This notebook measures
# each step of that argument on networks built with `jopt.initializers`, and ends with
# PyTorch's default `kaiming_uniform(a=√5)`.  Every claim is checked by an `assert`.

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
# ## 1. All-zero initialization: symmetric neurons
#
# A 4 → 16 → 16 → 1 tanh network learns y = sin(x·u) by full-batch gradient descent,
# from three starts: all weights zero, all weights the same constant (0.1), and Xavier.
# The lecture: with y_l = W y_{l−1} + b and ∂L/∂y_{l−1} = Wᵀ ∂L/∂y_l, W = 0 stops every
# gradient below the output; and neurons that start equal compute the same outputs,
# receive the same gradients and stay equal.

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
# **Figure 1.** *Left*, the training loss from each start.  *Right*, the first layer's
# weights after 500 steps, one row per hidden unit.  From zero every weight is still
# exactly zero: only the output bias learned, so the network predicts a constant.  From
# a constant every row is the same: sixteen copies of one neuron.  Xavier's random
# start breaks the symmetry and the loss falls well below the others'.

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
# ## 2. Too small or too large: vanishing and exploding gradients
#
# With linear activations the network is ŷ = W[L] ⋯ W[2] W[1] x, and each factor
# multiplies the signal, forward and backward, by about √(n Var(W)).  Ten layers of width
# 32 learn a random linear map with SGD (η = 0.03), from N(0, 0.01²) (n Var(W) = 0.0032),
# from Xavier (n Var(W) = 1), and from N(0, 0.5²) (n Var(W) = 8).

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
# **Figure 2.** *Left*, the gradient of every layer's weights at initialization: around
# 10⁻¹¹ for the small start (vanishing), around 10¹⁰ for the large one (exploding), of
# order 10 for Xavier.  *Right*, the training loss: the small start does not move, the
# large one overflows to NaN after its first step (×), Xavier learns.

# %%
small, xavier, large = (lin_losses[name] for name in SCALES)
g_small, g_xavier, g_large = (lin_grad_norms[name] for name in SCALES)
assert g_small.max() < 1e-6 * g_xavier.min() and g_large.min() > 1e6 * g_xavier.max()
assert small[-1] > 0.99 * small[0]  # too small: no learning
assert xavier[-1] < 0.1 * xavier[0]  # calibrated: learns
assert not np.all(np.isfinite(large))  # too large: diverges

# %% [markdown]
# ## 3. Activations through 30 layers
#
# Now the lecture's deep stacks: 30 square layers of width 256, no biases, fed 256
# Gaussian inputs.  For tanh the derivation assumes *the linear regime of tanh*, so the
# inputs have standard deviation 0.1 (section 5 lifts that).  Three starts for tanh:
# Xavier (`xavier_uniform`, n Var(W) = 1), small (`normal(0.01)`, n Var(W) ≈ 0.026) and
# large (`normal(1.0)`, n Var(W) ≈ 256).  Two for ReLU, fed unit-variance inputs: He
# (`kaiming_uniform(nonlinearity="relu")`, n Var(W) = 2) and Xavier.

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
# **Figure 3.** Histograms of the activations of layers 1, 5, 10, 20 and 30 (counts over
# 256 inputs × 256 units; for ReLU only the positive half).  Rows 1–3, tanh with
# inputs of std 0.1: Xavier keeps the same spread at every depth; the small start collapses to a
# spike at zero after one layer; the large start drives every unit into tanh's flat tails
# at ±1, where its gradient vanishes.  Rows 4–5, ReLU with unit inputs: He keeps the
# spread (up to the wandering of a single network, see Figure 4); Xavier halves the
# second moment at every layer and is gone by layer 20.

# %% [markdown]
# ## 4. Var(a[l]) against depth, next to the formula
#
# Measured Var(a[l]) / Var(x) for every layer, beside the lecture's product
# Π n·Var(W[l]), with Var(W[l]) taken from the sampled kernels.  For ReLU the quantity He
# keeps is the second moment E[a²]: E[relu(z)²] = Var(z)/2, so the product is
# Π n·Var(W[l])/2.  A single network's variance wanders (a multiplicative random walk
# whose spread grows with depth/width); the derivation is an expectation over the
# weights, so the ReLU panel averages 16 networks (thin lines: each one).


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
# **Figure 4.** Signal against depth on a log axis.  Dots: measured; dashed: the
# lecture's formula.  The small start follows its formula (n·Var(W) ≈ 0.026 per layer)
# down to float32's underflow; the large one would grow as 256ˡ but tanh caps it at
# about 1/Var(x) = 100 (saturation: the formula's linear regime no longer holds).  Xavier
# stays flat for tanh; He stays flat for ReLU, where Xavier halves at every layer
# (2⁻³⁰ ≈ 10⁻⁹ after 30).
#
# The claims: Xavier keeps the tanh variance within 2× through 30 layers, the small
# start makes it vanish, He keeps the ReLU second moment within 2×, and Xavier under ReLU
# loses orders of magnitude.

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
# ## 5. Outside the linear regime, and tanh's gain
#
# With unit-variance inputs tanh is no longer linear: tanh(z) ≈ z − z³/3 gives
# Var(tanh z) ≈ v − 2v² for Var(z) = v, so under Xavier the variance decays like 1/(2l)
# until it is small enough to be linear.  The gain 5/3 of `calculate_gain("tanh")`
# (`xavier_uniform(gain=5/3)`) pushes back: n·Var(W) = 25/9 per layer balances the
# squashing, and the variance settles at a fixed point instead of decaying.

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
# **Figure 5.** Tanh with unit-variance inputs.  Plain Xavier's variance follows the
# cubic term's law 1/v_{l+1} ≈ 1/v_l + 2 (dotted, started from the measured v₁); with
# tanh's gain 5/3 it settles near 0.43 and stays there.

# %%
plain, gained = beyond_var.values()
assert plain[-1] < 0.1 * plain[0]  # decays outside the linear regime
assert 0.5 <= gained[-1] / gained[9] <= 2.0  # the gain holds it at a fixed point

# %% [markdown]
# ## 6. PyTorch's default, `kaiming_uniform(a=√5)`, by measurement
#
# `torch.nn.Linear` and `torch.nn.Conv*` initialize their weights with
# `kaiming_uniform_(w, a=math.sqrt(5))`.  The bound is gain·√(3/fan_in), and the
# leaky-ReLU gain for slope a is √(2/(1 + a²)) = √(2/6) = √(1/3), so the bound is
# 1/√fan_in: U(−1/√n, 1/√n), the older default torch kept when it moved to the kaiming
# functions.  Its variance is bound²/3 = 1/(3n), so n·Var(W) = 1/3: in a plain deep
# stack, each layer divides the signal's variance by 3.  jopt has it as
# `kaiming_uniform(a=math.sqrt(5))`, or `torch_default_kernel()`.

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
# **Figure 6.** PyTorch's default init through 30 layers of width 256.  The linear stack
# follows 3⁻ˡ exactly as the formula says (10⁻¹⁴ after 30 layers); the tanh stack, which
# is linear once the signal is small, shrinks the same way.  Deep torch models usually
# add normalization layers or residual connections, which reset the scale; for a plain
# deep stack, pick Xavier or He.

# %%
linear, tanh_torch = torch_var["linear"], torch_var["tanh"]
ratio = linear / predicted(torch_stack)
print(f"measured / formula over 30 linear layers: {ratio.min():.2f}–{ratio.max():.2f}")
assert 0.5 <= ratio.min() and ratio.max() <= 2.0
assert linear[-1] < 1e-12 and tanh_torch[-1] < 1e-12
print(f"notebook ran in {time.perf_counter() - T_START:.0f} s")
