"""AdaBelief, ADOPT and AdEMAMix against their authors' code, optax and their state sizes.

The generic suite (``test_registry.py`` and the others) compares the three aliases
with the float64 restatements of ``references``.  Here:

* **Golden data.**  ``tools/golden_adam_like.py`` trained ``make_golden.py``'s float64
  network with the authors' implementations (``adabelief-pytorch``, ``torch-adopt``,
  apple/ml-ademamix's ``pytorch/ademamix.py``) and with pytorch-optimizer's ports, and
  wrote ``tests/golden/adam_like/``.  jopt replays each in closed loop and stays within
  1e-10 of the parameters and of every state entry.  Where a port differs from the
  authors (``docs/porting.md``), the port's file is replayed by the chain of blocks
  that restates the port, and the alias is shown to leave it.
* **optax.**  ``scale_by_adopt`` and ``scale_by_ademamix`` share their names with
  ``optax.contrib`` (``scale_by_belief``, shared with optax itself, is in
  ``test_blocks_optax.py``): same arguments, same defaults, same numbers, live.
* **State bytes**, counted from the shapes and dtypes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from golden_replay import GOLDEN_DIR, GOLDEN_RTOL, load_golden, replay
from references import TorchPort
from support import make_nested_tree, returns_transformation, run_side_by_side

import jopt

ROOT = Path(__file__).resolve().parents[1]
FOLDER = "adam_like"
NAMES = tuple(sorted(p.stem for p in (GOLDEN_DIR / FOLDER).glob("*.json")))

# --- golden data --------------------------------------------------------------------------

_BELIEF = TorchPort(
    "AdaBelief",
    {"betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay", "rectify": None},
    {"exp_avg": "mu", "exp_avg_var": "nu", "step": "count"},
    selects=lambda hp: hp.get("rectify", False) is False,
)
# (reference package, class) -> how the authors' call maps to a jopt alias.
PORTS = {
    ("adabelief-pytorch", "AdaBelief"): ("adabelief", _BELIEF),
    ("pytorch-optimizer", "AdaBelief"): ("adabelief", _BELIEF),
    ("torch-adopt", "ADOPT"): (
        "adopt",
        TorchPort(
            "ADOPT",
            {"betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay"},
            {"exp_avg": "mu", "exp_avg_sq": "nu", "step": "count"},
        ),
    ),
    ("ml-ademamix", "AdEMAMix"): (
        "ademamix",
        TorchPort(
            "AdEMAMix",
            {
                "betas": ("b1", "b2", "b3"),
                "alpha": "alpha",
                "eps": "eps",
                "weight_decay": "weight_decay",
                "beta3_warmup": "alpha_beta3_warmup",
                "alpha_warmup": "alpha_beta3_warmup",
            },
            {"exp_avg_fast": "m1", "exp_avg_slow": "m2", "exp_avg_sq": "nu", "step": "count"},
        ),
    ),
}
PORT_STATE = {
    "ADOPT": {"exp_avg": "mu", "exp_avg_sq": "nu"},
    "AdEMAMix": {"exp_avg": "m1", "exp_avg_slow": "m2", "exp_avg_sq": "nu"},
}


def _record(name):
    return load_golden(f"{FOLDER}/{name}")


def _port(record):
    return PORTS.get((record["reference"]["package"], record["optimizer"]))


def jopt_from_reference(record, **override):
    """The alias ``docs/porting.md`` maps the reference call to, built from the file."""
    alias, port = _port(record)
    assert port.selects(record["hyperparameters"]), record["name"]
    kwargs = {}
    for name, value in record["hyperparameters"].items():
        if name == "lr":
            continue
        target = port.arguments[name]  # an unmapped argument is a KeyError
        if isinstance(target, tuple):
            kwargs.update(zip(target, value, strict=True))
        elif target is not None:
            kwargs[target] = value
    return getattr(jopt, alias)(record["hyperparameters"]["lr"], **{**kwargs, **override})


def _generator_configs() -> list[str]:
    tree = ast.parse((ROOT / "tools" / "golden_adam_like.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "CONFIGS":
            return sorted(ast.literal_eval(node.value))
    raise AssertionError("tools/golden_adam_like.py has no CONFIGS")


def test_golden_files_are_the_generators_configurations():
    assert list(NAMES) == _generator_configs()
    packages = {_record(n)["reference"]["package"] for n in NAMES}
    assert packages == {"adabelief-pytorch", "torch-adopt", "ml-ademamix", "pytorch-optimizer"}


@pytest.mark.parametrize("name", NAMES)
def test_golden_file_is_self_describing(name):
    record = _record(name)
    assert record["name"] == name and record["generator"] == "tools/golden_adam_like.py"
    assert record["reference"]["version"] and record["torch_version"]
    assert set(record["hyperparameters"]) <= set(record["torch_arguments"])
    assert [c["step"] for c in record["checkpoints"]][-1] == record["num_steps"] == 100


# The files an alias reproduces: the authors' and the ports that agree with them.
ALIASED = [n for n in NAMES if _port(_record(n)) is not None]


@pytest.mark.float64
@pytest.mark.parametrize("name", ALIASED)
def test_alias_replays_the_reference(name):
    record = _record(name)
    _, port = _port(record)
    errors = replay(record, jopt_from_reference(record), port.state)
    worst = {k: v for k, v in errors.items() if v > GOLDEN_RTOL}
    assert not worst, f"relative error above {GOLDEN_RTOL:g}: {worst}"
    kept = set(record["checkpoints"][-1]["state"]["W1"]) - {"step"}
    assert kept and kept <= set(errors)  # every moment was compared


def _coupled_decay_belief(record):
    hp = record["hyperparameters"]
    return jopt.chain(
        jopt.add_decayed_weights(hp["weight_decay"]),
        jopt.adabelief(hp["lr"], b1=hp["betas"][0], b2=hp["betas"][1], eps=hp["eps"]),
    )


def _eps_outside_only(record):
    hp = record["hyperparameters"]
    return jopt.chain(
        jopt.scale_by_belief(hp["betas"][0], b2=hp["betas"][1], eps=hp["eps"], eps_root=0.0),
        jopt.scale_by_learning_rate(hp["lr"]),
    )


def _adopt_without_clipping(record):
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    return jopt.chain(
        jopt.scale_by_adopt(b1, b2=b2, eps=hp["eps"], use_clipping=False),
        jopt.scale_by_learning_rate(hp["lr"]),
    )


def _adopt_decoupled(record):
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    return jopt.chain(
        jopt.scale_by_adopt(b1, b2=b2, eps=hp["eps"]),
        jopt.add_decayed_weights(hp["weight_decay"]),
        jopt.scale_by_learning_rate(hp["lr"]),
    )


# Each trap of docs/porting.md, applied to a golden file, must be caught.
WRONG = [
    ("adabelief", _eps_outside_only),
    ("adabelief_weight_decay", _coupled_decay_belief),
    ("adopt", _adopt_without_clipping),
    ("adopt_weight_decay", _adopt_decoupled),
    ("ademamix", lambda r: jopt_from_reference(r, alpha=2.0)),  # the class's default α
    ("ademamix_warmup", lambda r: jopt_from_reference(r, alpha_beta3_warmup=None)),
]


@pytest.mark.float64
@pytest.mark.parametrize("name, wrong", WRONG, ids=[w[0] for w in WRONG])
def test_a_wrong_mapping_is_caught(name, wrong):
    record = _record(name)
    errors = replay(record, wrong(record), _port(record)[1].state)
    assert max(errors.values()) > 1e-6


def _shifted_clip_adopt(record):
    """pytorch-optimizer's ADOPT: the authors' rule with the clip bound (t + 1)^¼."""
    hp = record["hyperparameters"]
    b1, b2 = hp["betas"]
    return jopt.chain(
        jopt.scale_by_adopt(b1, b2=b2, eps=hp["eps"], clip_value_fn=lambda n: (n + 1) ** 0.25),
        jopt.scale_by_learning_rate(hp["lr"]),
    )


def _paper_form_ademamix(record):
    """pytorch-optimizer's AdEMAMix: β₃(t) in the paper's closed form (no 1e-8 in ln)."""
    hp = record["hyperparameters"]
    b1, b2, b3 = hp["betas"]
    alpha, warmup = hp["alpha"], hp["t_alpha_beta3"]

    def b3_schedule(n):
        t = jnp.asarray(n + 1, jnp.float64)
        ln1, ln3 = math.log(b1), math.log(b3)
        mixed = jnp.exp(ln1 * ln3 / ((1 - t / warmup) * ln3 + t / warmup * ln1))
        return jnp.minimum(mixed, b3)

    return jopt.chain(
        jopt.scale_by_ademamix(
            b1,
            b2=b2,
            b3=b3_schedule,
            alpha=lambda n: jnp.minimum((n + 1) * alpha / warmup, alpha),
            eps=1e-8,
        ),
        jopt.add_decayed_weights(hp["weight_decay"]),
        jopt.scale_by_learning_rate(hp["lr"]),
    )


# (pytorch-optimizer file, the chain restating it, the alias on the same arguments)
PORT_DIFFERENCES = [
    (
        "adopt_pytorch_optimizer",
        _shifted_clip_adopt,
        lambda hp: jopt.adopt(hp["lr"], b1=hp["betas"][0], b2=hp["betas"][1], eps=hp["eps"]),
    ),
    (
        "ademamix_pytorch_optimizer",
        _paper_form_ademamix,
        lambda hp: jopt.ademamix(
            hp["lr"],
            b1=hp["betas"][0],
            b2=hp["betas"][1],
            b3=hp["betas"][2],
            alpha=hp["alpha"],
            weight_decay=hp["weight_decay"],
            alpha_beta3_warmup=hp["t_alpha_beta3"],
        ),
    ),
]


@pytest.mark.float64
@pytest.mark.parametrize(
    "name, restated, alias", PORT_DIFFERENCES, ids=[p[0] for p in PORT_DIFFERENCES]
)
def test_port_differs_from_the_authors_as_documented(name, restated, alias):
    """The port's trajectory is the chain of the documented difference, to 1e-10; the
    alias, which follows the authors, leaves it."""
    record = _record(name)
    fields = PORT_STATE[record["optimizer"]]
    errors = replay(record, restated(record), fields)
    assert max(errors.values()) <= GOLDEN_RTOL, errors
    assert set(fields) <= set(errors)
    assert max(replay(record, alias(record["hyperparameters"]), fields).values()) > 1e-8


def test_every_golden_file_is_replayed():
    assert sorted([*ALIASED, *(p[0] for p in PORT_DIFFERENCES)]) == list(NAMES)


# --- optax.contrib -------------------------------------------------------------------------

CONTRIB_BLOCKS = ("scale_by_adopt", "scale_by_ademamix")


def test_the_contrib_blocks_are_every_name_this_family_shares_with_optax_contrib():
    modules = ("_belief", "_adopt", "_ademamix")
    names = {n for m in modules for n in importlib.import_module(f"jopt.transforms.{m}").__all__}
    ours = {n for n in names if returns_transformation(getattr(jopt, n))}
    assert {n for n in ours if hasattr(optax.contrib, n)} == set(CONTRIB_BLOCKS)
    assert {n for n in ours if hasattr(optax, n)} == {"scale_by_belief"}  # in test_blocks_optax


@pytest.mark.parametrize("name", CONTRIB_BLOCKS)
def test_contrib_arguments_have_optax_names_and_defaults(name):
    ours = inspect.signature(getattr(jopt, name)).parameters
    for parameter in list(inspect.signature(getattr(optax.contrib, name)).parameters.values()):
        assert parameter.name in ours, f"{name}: no argument {parameter.name}"
        default = ours[parameter.name].default
        if callable(parameter.default):  # ADOPT's clip bound: the same function
            steps = jnp.arange(6.0)
            np.testing.assert_allclose(default(steps), parameter.default(steps))
        else:
            assert default == parameter.default, (name, parameter.name)


def _ademamix_schedules():
    return {
        "b3": lambda n: 0.9 + 0.09 * jnp.minimum(n / 4, 1.0),
        "alpha": lambda n: 2.0 * jnp.minimum((n + 1) / 3, 1.0),
    }


# (block, keyword arguments) run the same way on both sides
CONTRIB_CASES = [
    ("scale_by_adopt", {}),
    ("scale_by_adopt", {"b1": 0.8, "b2": 0.95, "eps": 1e-3, "nesterov": True}),
    ("scale_by_adopt", {"use_clipping": False}),
    ("scale_by_adopt", {"clip_value_fn": lambda n: 0.5 + n / 4}),
    ("scale_by_ademamix", {}),
    ("scale_by_ademamix", {"b1": 0.8, "b2": 0.95, "b3": 0.99, "alpha": 3.0, "eps_root": 1e-6}),
    ("scale_by_ademamix", _ademamix_schedules()),
]


@pytest.mark.float64
@pytest.mark.parametrize("name, kwargs", CONTRIB_CASES, ids=lambda c: str(c)[:40])
def test_contrib_block_computes_what_optax_computes(name, kwargs, rng):
    params = make_nested_tree(rng)
    ours, theirs = run_side_by_side(
        [getattr(jopt, name)(**kwargs), getattr(optax.contrib, name)(**kwargs)], params, 6
    )
    fields = {"scale_by_adopt": ("mu", "nu"), "scale_by_ademamix": ("m1", "m2", "nu")}[name]
    for t, ((u1, p1, s1), (u2, p2, s2)) in enumerate(zip(ours, theirs, strict=True), start=1):
        pairs = [(u1, u2), (p1, p2), *[(getattr(s1, f), getattr(s2, f)) for f in fields]]
        pairs.append((s1.count, s2.count))
        for a, b in pairs:
            jax.tree.map(
                lambda x, y, t=t: np.testing.assert_allclose(
                    x, y, rtol=1e-12, atol=1e-14, err_msg=f"{name} step {t}"
                ),
                a,
                b,
            )
    assert any(np.any(np.asarray(u) != 0) for u in jax.tree.leaves(ours[-1][0]))


@pytest.mark.float64
def test_aliases_are_optax_aliases_where_the_formula_is_the_same(nested_tree):
    pairs = [
        (
            jopt.adabelief(0.02, b1=0.8, eps=1e-6),
            optax.adabelief(0.02, b1=0.8, eps=1e-6, eps_root=1e-6),
        ),
        (jopt.adopt(0.02, b2=0.99), optax.contrib.adopt(0.02, b2=0.99)),
        (
            jopt.ademamix(0.02, b3=0.99, weight_decay=0.1),
            optax.contrib.ademamix(0.02, b3=0.99, alpha=5.0, weight_decay=0.1),
        ),
    ]
    for ours, theirs in pairs:
        a, b = run_side_by_side([ours, theirs], nested_tree, 5)
        for (u1, _, _), (u2, _, _) in zip(a, b, strict=True):
            jax.tree.map(
                lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14), u1, u2
            )


# --- state bytes ---------------------------------------------------------------------------

SHAPES = {"w": (5, 3), "b": (3,), "s": ()}
MOMENTS = {  # alias -> its per-parameter moments and which dtype argument sets each
    "adabelief": ("mu_dtype", "nu_dtype"),
    "adopt": ("mu_dtype", "nu_dtype"),
    "ademamix": ("mu_dtype", "mu_dtype", "nu_dtype"),
}
# float16 parameters: every storage dtype below differs from theirs and from the other.
DTYPES = [(None, None), (jnp.float32, jnp.bfloat16), (jnp.bfloat16, jnp.float32)]


@pytest.mark.parametrize("mu_dtype, nu_dtype", DTYPES)
@pytest.mark.parametrize("name", MOMENTS)
def test_state_bytes(name, mu_dtype, nu_dtype):
    params = {k: jnp.ones(s, jnp.float16) for k, s in SHAPES.items()}
    optimizer = getattr(jopt, name)(1e-3, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    chosen = {"mu_dtype": mu_dtype, "nu_dtype": nu_dtype}
    size = sum(math.prod(s) for s in SHAPES.values())
    expected = 4  # the int32 step count
    for argument in MOMENTS[name]:
        expected += size * np.dtype(chosen[argument] or jnp.float16).itemsize
    for state in (
        optimizer.init(params),
        optimizer.update(params, optimizer.init(params), params)[1],
    ):
        assert sum(leaf.nbytes for leaf in jax.tree.leaves(state)) == expected


# --- the benchmark rows ----------------------------------------------------------------------


def test_benchmark_rows_run_the_same_algorithm_and_count_the_state():
    """``python -m benchmarks.adam_like`` compares jopt with optax's counterparts: they
    end three float32 steps within rounding of each other, and the state it reports is
    two (three for AdEMAMix) float32 words per parameter plus the int32 count."""
    from benchmarks import adam_like, shapes

    tiny = shapes.transformer(True)
    for name, words in {"adabelief": 2, "adopt": 2, "ademamix": 3}.items():
        assert adam_like.agreement(name, ["jopt", "optax"])["optax"] < 1e-5, name
        optimizer = adam_like.jax_factory("jopt", name)
        assert adam_like.jax_state_bytes(optimizer, tiny) == 4 * words * tiny.n_params + 4
