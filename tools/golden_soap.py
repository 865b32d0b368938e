"""Write SOAP's golden trajectories: the authors' code and pytorch-optimizer's port.

Run by ``tools/make_golden.py`` (or alone, from the repository root, with torch 2.13
CPU and pytorch-optimizer installed)::

    SOAP_REFERENCE=path/to/soap.py python tools/golden_soap.py   # writes tests/golden/soap/

``SOAP_REFERENCE`` names ``soap.py`` of the authors' repository,
https://github.com/nikhilvyas/SOAP, at commit :data:`REFERENCE_COMMIT` (it is not a
package: clone it, or fetch that one file).  Without it nothing is written.  The file
``soap.json`` is replayed without torch by ``tests/test_soap.py``.

The problem (tag ``"soap_tanh_v1"``) is a small tanh model whose leaves cover what
SOAP treats differently: a 3-D tensor, 2-D matrices, a 1-D vector and a 0-d scalar::

    z = einsum("nd,dhk->nhk", x, W) + B          # x: (N, 3), W: (3, 2, 2), B: (2, 2)
    h = tanh(z) * s[None, :, None]               # s: (2,)
    pred = einsum("nhk,hk->n", h, V) + c         # V: (2, 2), c: () 0-d
    loss = mean((pred - y) ** 2)                 # y: (N,)

Every leaf is small enough that the statistic of its first gradient has no repeated
eigenvalue (for a vector with ``precondition_1d``, ``g·gᵀ`` has one zero eigenvalue
when the vector has 2 entries): the eigenbasis is then unique up to signs, to which
SOAP's trajectory is blind, and two implementations follow the same trajectory.

Each configuration is trained in closed loop for :data:`NUM_STEPS` steps in float64
(the gradient at the implementation's current parameters).  Both implementations
compute their eigenvectors and QR decompositions in float32 even for float64
parameters (``.float()`` in the authors' code, ``.to(torch.float32)`` before the QR in
the port); for float64 data those two casts are made no-ops while the optimizer steps,
and torch's default dtype is float64 (the authors' code allocates its statistics
with it).  Nothing else in their code is changed.

The file holds both constructors' argument names, the data, the initial parameters,
and for each configuration the
implementation, its keyword arguments (torch names), and the parameters after every
step and the statistics ``GG`` (which do not depend on the basis) after the last.
Arrays are ``{"shape": [...], "data": [flat row-major floats]}``, floats written by
:func:`json.dumps` (their ``repr`` reads back to the same float64).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
from pathlib import Path

import numpy as np
import torch
from make_golden import encode

REFERENCE_COMMIT = "a1e553530fde97d0e6b307d7c82ac6d38b072340"
NUM_STEPS = 30
SEED = 20250301
NUM_EXAMPLES = 16
MODEL = "soap_tanh_v1"
LOSS_TEXT = (
    "mean((einsum('nhk,hk->n', tanh(einsum('nd,dhk->nhk', x, W) + B) * s[None, :, None], V)"
    " + c - y) ** 2)"
)
PARAM_ORDER = ("W", "B", "s", "V", "c")
SKIPPED = ("self", "params", "kwargs")

# name -> (implementation, keyword arguments in its own names).
CONFIGS: dict[str, tuple[str, dict]] = {
    "authors_defaults": ("authors", {"lr": 0.01}),
    "authors_frequent": (
        "authors",
        {
            "lr": 0.02,
            "betas": (0.9, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.05,
            "precondition_frequency": 3,
        },
    ),
    "authors_precondition_1d": (
        "authors",
        {"lr": 0.02, "precondition_frequency": 4, "precondition_1d": True},
    ),
    "authors_max_precond_dim_no_decay": (
        "authors",
        {"lr": 0.02, "precondition_frequency": 5, "max_precond_dim": 2, "weight_decay": 0.0},
    ),
    "port_frequent": (
        "pytorch_optimizer",
        {
            "lr": 0.02,
            "betas": (0.9, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.05,
            "precondition_frequency": 3,
            "precondition_1d": True,
        },
    ),
}


def make_problem(seed: int = SEED) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The data and initial parameters, all float64, from a fixed seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, 3))
    y = np.sin(x @ rng.normal(size=3)) + 0.05 * rng.normal(size=NUM_EXAMPLES)
    params = {
        "W": rng.normal(size=(3, 2, 2)) / np.sqrt(3),
        "B": 0.1 * rng.normal(size=(2, 2)),
        "s": 1.0 + 0.1 * rng.normal(size=2),
        "V": rng.normal(size=(2, 2)) / 2,
        "c": np.asarray(0.1 * rng.normal()),
    }
    return {"x": x, "y": y}, params


def torch_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    z = torch.einsum("nd,dhk->nhk", x, params["W"]) + params["B"]
    h = torch.tanh(z) * params["s"][None, :, None]
    pred = torch.einsum("nhk,hk->n", h, params["V"]) + params["c"]
    return ((pred - y) ** 2).mean()


def _authors_class(path: Path):
    spec = importlib.util.spec_from_file_location("soap_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOAP


@contextlib.contextmanager
def _float64_linear_algebra():
    """``Tensor.float()`` and ``Tensor.to(torch.float32)`` leave float64 tensors as they are."""
    original_float, original_to = torch.Tensor.float, torch.Tensor.to

    def keep_float(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original_float(self, *args, **kwargs)

    def keep_to(self, *args, **kwargs):
        if self.dtype == torch.float64 and args and args[0] is torch.float32 and not kwargs:
            return self
        return original_to(self, *args, **kwargs)

    torch.Tensor.float, torch.Tensor.to = keep_float, keep_to
    try:
        yield
    finally:
        torch.Tensor.float, torch.Tensor.to = original_float, original_to


def _optimizer(implementation: str, params: list, kwargs: dict, reference: Path):
    if implementation == "authors":
        return _authors_class(reference)(params, **kwargs)
    from pytorch_optimizer import SOAP

    kwargs = dict(kwargs)
    if "max_precond_dim" in kwargs:
        kwargs["max_precondition_dim"] = kwargs.pop("max_precond_dim")
    return SOAP(params, **kwargs)


def _statistics(optimizer, p) -> list:
    """The optimizer's ``GG`` for ``p``: one matrix per axis, ``None`` where it keeps none."""
    return [encode(m) if len(m) else None for m in optimizer.state[p]["GG"]]


def run_config(name: str, data: dict, init: dict, reference: Path) -> dict:
    implementation, kwargs = CONFIGS[name]
    x = torch.tensor(data["x"], dtype=torch.float64)
    y = torch.tensor(data["y"], dtype=torch.float64)
    params = {
        k: torch.tensor(init[k], dtype=torch.float64, requires_grad=True) for k in PARAM_ORDER
    }
    optimizer = _optimizer(implementation, [params[k] for k in PARAM_ORDER], kwargs, reference)
    trajectory, losses = [], []
    for _ in range(NUM_STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = torch_loss(params, x, y)
        loss.backward()
        losses.append(float(loss.item()))
        with _float64_linear_algebra():
            optimizer.step()
        trajectory.append({k: encode(params[k]) for k in PARAM_ORDER})
    hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    return {
        "implementation": implementation,
        "hyperparameters": hyper,
        "loss_history": losses,
        "params": trajectory,
        "statistics": {k: _statistics(optimizer, params[k]) for k in PARAM_ORDER},
    }


def write(out: Path) -> None:
    """Write ``out/soap.json``; nothing (with a note) when ``SOAP_REFERENCE`` is unset."""
    reference = os.environ.get("SOAP_REFERENCE")
    if not reference:
        print(
            "golden_soap: skipped; set SOAP_REFERENCE to soap.py of github.com/nikhilvyas/SOAP "
            f"at {REFERENCE_COMMIT}"
        )
        return
    from importlib.metadata import version

    import pytorch_optimizer  # noqa: F401  (fails early when the port is missing)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        data, init = make_problem()
        configs = {name: run_config(name, data, init, Path(reference)) for name in CONFIGS}
    finally:
        torch.set_default_dtype(default_dtype)
    from pytorch_optimizer import SOAP as Port

    arguments = {
        name: [a for a in inspect.signature(cls.__init__).parameters if a not in SKIPPED]
        for name, cls in (("authors", _authors_class(Path(reference))), ("pytorch_optimizer", Port))
    }
    record = {
        "format": 1,
        "generator": "tools/golden_soap.py",
        "reference": {
            "authors": f"github.com/nikhilvyas/SOAP soap.py at {REFERENCE_COMMIT}",
            "pytorch_optimizer": f"pytorch-optimizer {version('pytorch_optimizer')}",
        },
        "torch_version": torch.__version__,
        # Every constructor argument, so that docs/porting.md is checked without torch.
        "constructor_arguments": arguments,
        "model": MODEL,
        "loss": LOSS_TEXT,
        "seed": SEED,
        "num_steps": NUM_STEPS,
        "param_order": list(PARAM_ORDER),
        "data": {k: encode(v) for k, v in data.items()},
        "initial_params": {k: encode(init[k]) for k in PARAM_ORDER},
        "configs": configs,
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "soap.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    for name, config in configs.items():
        first, last = config["loss_history"][0], config["loss_history"][-1]
        print(f"soap/{name:28s} loss {first:.4f} -> {last:.4f}")
    print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    write(Path(__file__).resolve().parent.parent / "tests" / "golden" / "soap")
