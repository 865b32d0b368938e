"""The bench's workloads: four small training problems, bundled or drawn from a seed.

Each ``Workload`` is a dataset, a model (``init``, ``loss``), an evaluation
and a target, as in AlgoPerf: an optimizer *solves* the workload when the
evaluation reaches the target within the step budget.

* ``digits_mlp``: the lecture's 64-64-10 tanh MLP ([`jopt.lecture.digits`][jopt.lecture.digits]);
  target: the test set's cross-entropy.
* ``digits_conv``: a small convolutional net on the same 8×8 images (two 3×3
  convolutions, 16 and 32 channels, the second with stride 2, ReLU, then a dense
  layer); target: the test cross-entropy.
* ``least_squares``: linear regression whose features are correlated and scaled
  so that the Hessian's condition number is 10³ (its axes rotated away from the
  coordinates, so a per-coordinate scale cannot undo it); target: the excess of the
  full training loss over its minimum, relative to the start's.
* ``transformer``: one pre-norm transformer block (two attention heads, width 32)
  that learns to sort sequences of 8 tokens drawn from 16, generated from a seed;
  target: the test set's token accuracy.

Nothing is downloaded: the digits ship with scikit-learn (the ``examples`` extra)
and the other data are drawn from fixed seeds.  ``quick=True`` shrinks every
workload to a smoke test (fewer examples and epochs, an easier target).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jopt import initializers
from jopt.lecture import digits

WORKLOADS = ("digits_mlp", "digits_conv", "least_squares", "transformer")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A training problem with a target.

    Attributes:
        name: one of ``WORKLOADS``.
        description: one line for the report.
        train: the training data, ``(inputs, targets)``.
        init: ``key -> params``.
        loss: ``loss(params, batch) -> scalar``, the mean loss of a batch.
        evaluate: ``params -> {metric: scalar}``, traced; called after every epoch.
        metric: the entry of `evaluate` the target is on.
        target: the value to reach.
        mode: ``"min"`` (reach ``<= target``) or ``"max"`` (``>= target``).
        batch_size: examples per step.
        epochs: the budget, in passes over `train`.
    """

    name: str
    description: str
    train: tuple[np.ndarray, np.ndarray]
    init: Callable[[jax.Array], Any]
    loss: Callable[[Any, Any], jax.Array]
    evaluate: Callable[[Any], dict[str, jax.Array]]
    metric: str
    target: float
    mode: str
    batch_size: int
    epochs: int

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train[0]) // self.batch_size)

    def reached(self, values: np.ndarray) -> np.ndarray:
        """Where `values` of the metric meet the target."""
        return values <= self.target if self.mode == "min" else values >= self.target


@functools.cache
def make(name: str, *, quick: bool = False) -> Workload:
    """The workload `name` (see the module doc); ``quick`` for a smoke test.

    Kept once built: the same object every time, so that its compiled programs are
    reused.
    """
    builders = {
        "digits_mlp": _digits_mlp,
        "digits_conv": _digits_conv,
        "least_squares": _least_squares,
        "transformer": _transformer,
    }
    if name not in builders:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    return builders[name](quick)


# --- the digits ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _split() -> digits.Split:
    return digits.load(seed=0)


def _subset(split: digits.Split, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    return (split.x_train[:320], split.y_train[:320]) if quick else split.train


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def _digits_mlp(quick: bool) -> Workload:
    split = _split()
    test = jax.tree.map(jnp.asarray, split.test)

    def evaluate(params):
        return {"test_loss": digits.loss(params, test)}

    return Workload(
        name="digits_mlp",
        description="MLP 64-64-10 (tanh) on the digits, batches of 32",
        train=_subset(split, quick),
        init=digits.init_params,
        loss=digits.loss,
        evaluate=evaluate,
        metric="test_loss",
        target=0.5 if quick else 0.06,
        mode="min",
        batch_size=32,
        epochs=2 if quick else 20,
    )


def conv_init(key: jax.Array) -> dict[str, dict[str, jax.Array]]:
    """He-normal convolutions (HWIO) and a Xavier-uniform dense layer, zero biases."""
    k1, k2, k3 = jax.random.split(key, 3)
    he, xavier = initializers.he_normal(), initializers.xavier_uniform()
    return {
        "conv1": {"w": he(k1, (3, 3, 1, 16)), "b": jnp.zeros(16)},
        "conv2": {"w": he(k2, (3, 3, 16, 32)), "b": jnp.zeros(32)},
        "dense": {"w": xavier(k3, (4 * 4 * 32, 10)), "b": jnp.zeros(10)},
    }


def _conv(x: jax.Array, layer: dict[str, jax.Array], stride: int) -> jax.Array:
    """A 3×3 convolution (zero padding of one pixel, NHWC images, HWIO kernel) and
    ReLU, as one matrix product over the image's 3×3 patches (faster on CPUs, and
    under ``vmap``, than a batched convolution)."""
    n, height, width, channels = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate(
        [
            padded[:, i : i + height : stride, j : j + width : stride, :]
            for i in range(3)
            for j in range(3)
        ],
        axis=-1,
    )
    kernel = layer["w"].reshape(9 * channels, -1)  # (kh, kw, in) flattened as the patches
    return jax.nn.relu(patches @ kernel + layer["b"])


def conv_logits(params: dict[str, dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    """Class scores of flattened 8×8 images ``x``, shape ``(n, 10)``."""
    h = x.reshape(-1, 8, 8, 1)
    h = _conv(h, params["conv1"], 1)
    h = _conv(h, params["conv2"], 2)  # (n, 4, 4, 32)
    return h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]


def conv_loss(params, batch) -> jax.Array:
    x, labels = batch
    return _cross_entropy(conv_logits(params, x), labels)


def _digits_conv(quick: bool) -> Workload:
    split = _split()
    test = jax.tree.map(jnp.asarray, split.test)

    def evaluate(params):
        return {"test_loss": conv_loss(params, test)}

    return Workload(
        name="digits_conv",
        description="conv net 16-32 (3×3, ReLU) on the digits images, batches of 32",
        train=_subset(split, quick),
        init=conv_init,
        loss=conv_loss,
        evaluate=evaluate,
        metric="test_loss",
        target=1.0 if quick else 0.05,
        mode="min",
        batch_size=32,
        epochs=2 if quick else 10,
    )


# --- least squares ---------------------------------------------------------------------

LSQ_FEATURES = 16
LSQ_CONDITION = 1e3


def _least_squares(quick: bool) -> Workload:
    rng = np.random.default_rng(0)
    n = 256 if quick else 2048
    # X = Z·diag(s)·Q with orthonormal Q: XᵀX/n ≈ Qᵀ diag(s²) Q, curvatures from
    # 1/condition to 1.
    scales = np.geomspace(1 / math.sqrt(LSQ_CONDITION), 1.0, LSQ_FEATURES)
    rotation, _ = np.linalg.qr(rng.normal(size=(LSQ_FEATURES, LSQ_FEATURES)))
    x = (rng.normal(size=(n, LSQ_FEATURES)) * scales) @ rotation
    w_true = rng.normal(size=LSQ_FEATURES)
    y = x @ w_true + 0.1 * rng.normal(size=n)
    x, y = x.astype(np.float32), y.astype(np.float32)
    solution, *_ = np.linalg.lstsq(np.asarray(x, np.float64), np.asarray(y, np.float64))
    best = 0.5 * float(np.mean((x @ solution - y) ** 2))
    start = 0.5 * float(np.mean(y.astype(np.float64) ** 2))
    full = (jnp.asarray(x), jnp.asarray(y))

    def evaluate(params):
        excess = (lsq_loss(params, full) - best) / (start - best)
        return {"relative_excess": excess}

    return Workload(
        name="least_squares",
        description=f"least squares, {LSQ_FEATURES} rotated features, condition 1e3, batches of 64",
        train=(x, y),
        init=lsq_init,
        loss=lsq_loss,
        evaluate=evaluate,
        metric="relative_excess",
        target=0.2 if quick else 0.01,
        mode="min",
        batch_size=64,
        epochs=2 if quick else 20,
    )


def lsq_init(key: jax.Array) -> dict[str, jax.Array]:
    """Zero weights; the key is not used (every seed starts at the same point)."""
    del key
    return {"w": jnp.zeros(LSQ_FEATURES)}


def lsq_loss(params, batch) -> jax.Array:
    x, y = batch
    return 0.5 * jnp.mean((x @ params["w"] - y) ** 2)


# --- the transformer -------------------------------------------------------------------

VOCAB, LENGTH, WIDTH, HEADS, HIDDEN = 16, 8, 32, 2, 64


def _sorting_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.random.default_rng(seed).integers(0, VOCAB, size=(n, LENGTH)).astype(np.int32)
    return tokens, np.sort(tokens, axis=1)


def transformer_init(key: jax.Array) -> dict[str, Any]:
    """Embeddings N(0, 0.02²)·√width-scaled as GPT-2, Xavier-uniform projections."""
    keys = iter(jax.random.split(key, 8))
    small, xavier = initializers.normal(0.02), initializers.xavier_uniform()
    return {
        "embed": small(next(keys), (VOCAB, WIDTH)),
        "position": small(next(keys), (LENGTH, WIDTH)),
        "norm1": {"scale": jnp.ones(WIDTH), "bias": jnp.zeros(WIDTH)},
        "qkv": xavier(next(keys), (WIDTH, 3 * WIDTH)),
        "out": xavier(next(keys), (WIDTH, WIDTH)),
        "norm2": {"scale": jnp.ones(WIDTH), "bias": jnp.zeros(WIDTH)},
        "mlp_in": {"w": xavier(next(keys), (WIDTH, HIDDEN)), "b": jnp.zeros(HIDDEN)},
        "mlp_out": {"w": xavier(next(keys), (HIDDEN, WIDTH)), "b": jnp.zeros(WIDTH)},
        "norm3": {"scale": jnp.ones(WIDTH), "bias": jnp.zeros(WIDTH)},
        "head": xavier(next(keys), (WIDTH, VOCAB)),
    }


def _norm(h: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
    mean = h.mean(-1, keepdims=True)
    var = ((h - mean) ** 2).mean(-1, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]


def _attention(params, h: jax.Array) -> jax.Array:
    n = h.shape[0]
    q, k, v = jnp.split(h @ params["qkv"], 3, axis=-1)
    heads = lambda t: t.reshape(n, LENGTH, HEADS, WIDTH // HEADS)
    q, k, v = heads(q), heads(k), heads(v)
    scores = jnp.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(WIDTH // HEADS)
    mixed = jnp.einsum("nhqk,nkhd->nqhd", jax.nn.softmax(scores, axis=-1), v)
    return mixed.reshape(n, LENGTH, WIDTH) @ params["out"]


def transformer_logits(params, tokens: jax.Array) -> jax.Array:
    """Scores of every output position, shape ``(n, LENGTH, VOCAB)``."""
    h = jnp.take(params["embed"], tokens, axis=0) + params["position"]
    h = h + _attention(params, _norm(h, params["norm1"]))
    hidden = jax.nn.gelu(_norm(h, params["norm2"]) @ params["mlp_in"]["w"] + params["mlp_in"]["b"])
    h = h + hidden @ params["mlp_out"]["w"] + params["mlp_out"]["b"]
    return _norm(h, params["norm3"]) @ params["head"]


def transformer_loss(params, batch) -> jax.Array:
    tokens, targets = batch
    logits = transformer_logits(params, tokens)
    return _cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def _transformer(quick: bool) -> Workload:
    train = _sorting_data(512 if quick else 2048, seed=1)
    test_tokens, test_targets = (jnp.asarray(a) for a in _sorting_data(512, seed=2))

    def evaluate(params):
        predicted = jnp.argmax(transformer_logits(params, test_tokens), axis=-1)
        return {"test_accuracy": jnp.mean(predicted == test_targets)}

    return Workload(
        name="transformer",
        description=f"transformer block (2 heads, width {WIDTH}) sorting {LENGTH} tokens of "
        f"{VOCAB}, batches of 64",
        train=train,
        init=transformer_init,
        loss=transformer_loss,
        evaluate=evaluate,
        metric="test_accuracy",
        target=0.2 if quick else 0.9,
        mode="max",
        batch_size=64,
        epochs=2 if quick else 15,
    )
