"""The parameter trees the harness benchmarks, as ``{path: shape}`` tables.

Each shape set is a function ``tiny -> ShapeSet``; ``tiny=True`` gives a version small
enough for a smoke test that keeps the structure (the same kinds of leaves, far fewer
and smaller).  All leaves are float32.

* ``big``: one leaf of 4096 × 8192 = 32 Mi parameters, the pure bandwidth case.
* ``resnet50``: ResNet-50's trainable parameters (He et al., 2016, torchvision layout:
  bias-free convolutions, batch-norm scale and offset, the classifier): 161 leaves,
  25,557,032 parameters.  Convolution kernels are stored HWIO as in flax.
* ``many``: 2,000 leaves of 64 × 64, where per-leaf costs (dispatch, kernels,
  compile time) dominate.
* ``transformer``: a GPT-style stack of 12 pre-norm blocks of width 384 (attention,
  4× MLP, two LayerNorms, biases everywhere) with token and position embeddings and a
  final LayerNorm: 148 leaves, about 24.6 M parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeSet:
    """A named parameter tree: ``leaves`` maps a ``/``-separated path to a shape."""

    name: str
    description: str
    leaves: dict[str, Shape]

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)

    @property
    def n_params(self) -> int:
        return sum(math.prod(shape) for shape in self.leaves.values())

    def nested(self, make: Callable[[str, Shape], object]) -> dict:
        """The tree as nested dicts, ``make(path, shape)`` at each leaf (paths in order)."""
        tree: dict = {}
        for path, shape in self.leaves.items():
            node = tree
            *parents, last = path.split("/")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = make(path, shape)
        return tree


def big(tiny: bool = False) -> ShapeSet:
    shape = (64, 1024) if tiny else (4096, 8192)
    return ShapeSet("big", f"one {shape[0]}×{shape[1]} leaf", {"w": shape})


def resnet50(tiny: bool = False) -> ShapeSet:
    # Widths divided by 16 (and 10 classes) in the tiny version; the block counts
    # [3, 4, 6, 3] are kept, so the number and kinds of leaves are the same.
    div = 16 if tiny else 1
    classes = 10 if tiny else 1000
    leaves: dict[str, Shape] = {}

    def conv_bn(prefix: str, k: int, cin: int, cout: int) -> None:
        leaves[f"{prefix}/conv/kernel"] = (k, k, cin, cout)
        leaves[f"{prefix}/bn/scale"] = (cout,)
        leaves[f"{prefix}/bn/bias"] = (cout,)

    stem = 64 // div
    conv_bn("stem", 7, 3, stem)
    cin = stem
    for stage, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512], strict=True)):
        width //= div
        for block in range(blocks):
            prefix = f"stage{stage + 1}/block{block}"
            conv_bn(f"{prefix}/a", 1, cin, width)
            conv_bn(f"{prefix}/b", 3, width, width)
            conv_bn(f"{prefix}/c", 1, width, 4 * width)
            if block == 0:
                conv_bn(f"{prefix}/downsample", 1, cin, 4 * width)
            cin = 4 * width
    leaves["fc/kernel"] = (cin, classes)
    leaves["fc/bias"] = (classes,)
    return ShapeSet("resnet50", "ResNet-50 (conv/BN/FC)", leaves)


def many(tiny: bool = False) -> ShapeSet:
    count, side = (20, 8) if tiny else (2000, 64)
    return ShapeSet(
        "many",
        f"{count} leaves of {side}×{side}",
        {f"layer{i:04d}/w": (side, side) for i in range(count)},
    )


def transformer(tiny: bool = False) -> ShapeSet:
    layers, width, vocab, context = (2, 32, 64, 16) if tiny else (12, 384, 8192, 512)
    leaves: dict[str, Shape] = {
        "embed/tokens": (vocab, width),
        "embed/positions": (context, width),
    }
    for layer in range(layers):
        prefix = f"block{layer:02d}"
        for norm in ("ln1", "ln2"):
            leaves[f"{prefix}/{norm}/scale"] = (width,)
            leaves[f"{prefix}/{norm}/bias"] = (width,)
        leaves[f"{prefix}/attn/qkv/kernel"] = (width, 3 * width)
        leaves[f"{prefix}/attn/qkv/bias"] = (3 * width,)
        leaves[f"{prefix}/attn/out/kernel"] = (width, width)
        leaves[f"{prefix}/attn/out/bias"] = (width,)
        leaves[f"{prefix}/mlp/fc1/kernel"] = (width, 4 * width)
        leaves[f"{prefix}/mlp/fc1/bias"] = (4 * width,)
        leaves[f"{prefix}/mlp/fc2/kernel"] = (4 * width, width)
        leaves[f"{prefix}/mlp/fc2/bias"] = (width,)
    leaves["final_ln/scale"] = (width,)
    leaves["final_ln/bias"] = (width,)
    return ShapeSet(
        "transformer", f"{layers} blocks, width {width} (attention/MLP/LayerNorm)", leaves
    )


SHAPES: dict[str, Callable[[bool], ShapeSet]] = {
    "big": big,
    "resnet50": resnet50,
    "many": many,
    "transformer": transformer,
}
