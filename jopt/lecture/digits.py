"""The lecture's running example: a 64-64-10 tanh MLP that classifies handwritten digits.

The data are scikit-learn's bundled ``load_digits``, 1,797 grey 8×8 images of the
digits 0-9 (no download), split by a seed into 1,440 training and 357 test images.
The model is the lecture's: two dense layers, ``tanh`` between them, Xavier-uniform
weights and zero biases, trained on the mean softmax cross-entropy.  ``python -m
jopt``, the notebooks and ``examples/data_parallel.py`` all train this one definition:

```text
split = digits.load(seed=0)
params = digits.init_params(jax.random.key(0))
params, _, history = jopt.training.fit(digits.loss, params, jopt.adam(1e-3),
                                       split.train, batch_size=32, key=key)
digits.evaluate(params, split)   # {"train_loss", "test_loss", "test_accuracy"}
```

Parameters are ``{"layer0": {"w": (64, hidden), "b": (hidden,)}, "layer1": {"w":
(hidden, 10), "b": (10,)}}``, float32.  Needs scikit-learn (``pip install
"jopt[examples]"``) to load the images.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jopt import initializers
from jopt.lecture._extras import require

# 1,440 of the 1,797 images train and 357 (19.9%) test.  1440 = 2⁵·3²·5 is a multiple of
# most batch sizes (1-6, 8-10, 12, 15, 16, 18, 20, 24, 30, 32, ...), so the last batch
# is rarely ragged and the step is compiled once.
TRAIN_EXAMPLES = 1440
FEATURES = 64
HIDDEN = 64
CLASSES = 10
DTYPE = jnp.float32

Params = dict[str, dict[str, jax.Array]]


class Split(NamedTuple):
    """The digits, split: images of shape ``(n, 64)`` float32, labels ``(n,)`` int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_train, y_train)``: the batch format of ``loss``."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_test, y_test)``."""
        return self.x_test, self.y_test


def load(seed: int = 0) -> Split:
    """The digits in a seeded split, 1,440 / 357, with standardized pixels.

    The images are shuffled by ``np.random.default_rng(seed).permutation``; the first
    1,440 train.  Each pixel is standardized with the training set's mean and
    standard deviation (pixels that are constant there are only centred).

    Args:
        seed: the seed of the split.

    Returns:
        A ``Split`` of NumPy arrays.

    Raises:
        MissingExtra: scikit-learn is not installed.
    """
    images, labels = _images_and_labels()
    order = np.random.default_rng(seed).permutation(len(images))
    train, test = order[:TRAIN_EXAMPLES], order[TRAIN_EXAMPLES:]
    mean = images[train].mean(axis=0)
    std = images[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x = ((images - mean) / std).astype(np.float32)
    y = labels.astype(np.int32)
    return Split(x[train], y[train], x[test], y[test])


def _images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images ``(1797, 64)`` (0 to 16, float64) and labels.

    Read from the file scikit-learn ships, ``sklearn/datasets/data/digits.csv.gz`` (the
    one ``load_digits`` reads, one image and its label per line), without importing
    scikit-learn, which takes about a second; through ``load_digits`` where that file
    is not found.
    """
    spec = importlib.util.find_spec("sklearn")
    folders = [] if spec is None else list(spec.submodule_search_locations or [])
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(int)
    datasets = require("sklearn.datasets", purpose="the digits task")
    return datasets.load_digits(return_X_y=True)


@functools.partial(jax.jit, static_argnames="hidden")
def init_params(key: jax.Array, *, hidden: int = HIDDEN) -> Params:
    """Xavier-uniform weights and zero biases for the ``64-hidden-10`` MLP.

    Xavier's ``Var(W) = 2/(fan_in + fan_out)`` (Glorot and Bengio, 2010) keeps the
    variance of a tanh network's signal in its linear regime.  Layer ``i`` draws its
    weights from ``jax.random.split(key, 2)[i]``.  Jitted: one compiled program draws
    both layers (the same numbers as drawing them one operation at a time, compiled
    once instead of once per operation).

    Args:
        key: a PRNG key.
        hidden: the width of the hidden layer.

    Returns:
        ``{"layer0": {"w", "b"}, "layer1": {"w", "b"}}``, float32 arrays.
    """
    sizes = (FEATURES, hidden, CLASSES)
    kernel_init = initializers.xavier_uniform()
    layer_keys = jax.random.split(key, len(sizes) - 1)
    return {
        f"layer{i}": {
            "w": kernel_init(layer_keys[i], (fan_in, fan_out), DTYPE),
            "b": initializers.zeros(layer_keys[i], (fan_out,), DTYPE),
        }
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }


def logits(params: Params, x: jax.Array) -> jax.Array:
    """The class scores of images ``x`` (shape ``(n, 64)``): shape ``(n, 10)``."""
    layers = [params[f"layer{i}"] for i in range(len(params))]
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def loss(params: Params, batch: tuple[Any, Any]) -> jax.Array:
    """The mean softmax cross-entropy of a batch ``(x, labels)``."""
    x, labels = batch
    log_probs = jax.nn.log_softmax(logits(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def accuracy(params: Params, batch: tuple[Any, Any]) -> jax.Array:
    """The fraction of a batch ``(x, labels)`` classified correctly."""
    x, labels = batch
    return jnp.mean(jnp.argmax(logits(params, x), axis=1) == labels)


@jax.jit
def evaluate(params: Params, split: Split) -> dict[str, jax.Array]:
    """``{"train_loss", "test_loss", "test_accuracy"}`` of ``params`` on ``split``."""
    return {
        "train_loss": loss(params, split.train),
        "test_loss": loss(params, split.test),
        "test_accuracy": accuracy(params, split.test),
    }
