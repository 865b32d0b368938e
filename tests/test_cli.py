"""``python -m jopt`` and :mod:`jopt.lecture`: the end-to-end run, its flags, the digits
task, and the measured lecture table.

The lecture's table is the reference for the measured columns; the measurements
themselves are checked against closed forms and hand-written controls, and the
digits MLP against a float64 NumPy restatement.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jopt
from jopt.lecture import LECTURE_OPTIMIZERS, MissingExtra, cli, compare, digits
from jopt.lecture import table as lecture_table

ROOT = Path(__file__).resolve().parents[1]

# The lecture's summary table: (adaptive learning rate, consistent units, easily
# handles saddle points).
LECTURE_TABLE = {
    "sgd": (False, False, False),
    "momentum": (False, False, False),
    "nesterov": (False, False, False),
    "adagrad": (True, False, True),
    "adadelta": (True, True, True),
    "rmsprop": (True, False, True),
    "adam": (True, False, True),
}


def run_module(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JAX_ENABLE_X64", None)
    return subprocess.run(
        [sys.executable, "-m", "jopt", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_agrees_with_the_lecture(table: list[dict]) -> None:
    rows = {row["method"]: row for row in table}
    for method, (adaptive, units, saddle) in LECTURE_TABLE.items():
        row = rows[method]
        measured = (row["adaptive_lr"], row["consistent_units"], row["handles_saddle"])
        assert measured == (adaptive, units, saddle), (method, row)
    sgd_steps = rows["sgd"]["saddle_escape_steps"]["1e-06"]
    for method in ("adagrad", "adadelta", "rmsprop", "adam"):
        assert rows[method]["saddle_escape_steps"]["1e-06"] < sgd_steps, (method, rows[method])


@pytest.mark.slow
def test_python_m_jopt_runs_end_to_end(tmp_path):
    plot = tmp_path / "curves.png"
    done = run_module("--epochs", "1", "--seeds", "2", "--json", "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    assert report["config"] == {
        "optimizers": list(LECTURE_OPTIMIZERS),
        "epochs": 1,
        "batch_size": 32,
        "steps_per_epoch": 45,
        "seed": 0,
        "seeds": 2,
        "target_loss": 0.1,
    }
    assert report["task"]["train_examples"] + report["task"]["test_examples"] == 1797
    assert [r["optimizer"] for r in report["results"]] == list(LECTURE_OPTIMIZERS)
    assert report["failed"] == {}
    for r in report["results"]:
        # One epoch takes the loss well below chance, ln 10, and the accuracy well
        # above chance, 10%, on every seed; the summary is their mean and spread.
        losses = r["final_train_loss"]["per_seed"]
        assert len(losses) == 2 and all(0 < v < 0.5 * math.log(10) for v in losses), r
        assert all(0.5 < v <= 1 for v in r["test_accuracy"]["per_seed"]), r
        assert r["final_train_loss"]["mean"] == pytest.approx(np.mean(losses))
        assert r["final_train_loss"]["std"] == pytest.approx(np.std(losses, ddof=1))
        assert r["epoch_step"] == [45]
    assert 0 < report["training_compile_time_s"] <= report["training_wall_time_s"]
    assert_agrees_with_the_lecture(report["lecture_table"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_output(capsys):
    argv = ["--optimizers", "sgd,adadelta", "--epochs", "1", "--batch-size", "full"]
    assert cli.main([*argv, "--seeds", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("jopt ") and "1440 train / 357 test" in out[0]
    assert (
        out[1] == "1 epochs, full batch (1 steps/epoch), seed 0, 2 runs per optimizer (mean ± std)"
    )
    header = out[3].split()
    assert header[:4] == ["optimizer", "lr", "train", "loss"]
    rows = {line.split()[0]: line.split() for line in out[4:6]}
    assert set(rows) == {"sgd", "adadelta"}
    assert rows["sgd"][1] == "0.1" and rows["adadelta"][1] == "1"
    assert rows["sgd"][3] == "±"  # train loss: mean ± std over the 2 seeds
    assert out[6].startswith("trained in one program: ")
    table_start = out.index(
        "The lecture's table, measured (python -m jopt --help explains the columns):"
    )
    lecture_rows = {line.split()[0]: line for line in out[table_start + 3 : table_start + 5]}
    assert lecture_rows["sgd"].split()[1:3] == ["no", "(1)"]
    assert "yes (p=-1..1)" in lecture_rows["adadelta"]
    assert out[-1].startswith("total ") and out[-1].endswith(" s")


def test_runs_are_deterministic_for_a_seed(capsys):
    def run(seed):
        argv = ["--optimizers", "nesterov,adam", "--epochs", "1", "--batch-size", "64"]
        assert cli.main([*argv, "--seed", str(seed), "--seeds", "1", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["results"]

    first = run(3)
    assert run(3) == first
    assert run(4) != first


def test_each_seed_is_the_lone_fit_it_stands_for():
    # compare() runs every optimizer and seed in one sweep; seed s of it is the fit
    # with the keys the sweep documents (fit and sweep are proven in test_training
    # and test_sweep).
    split = digits.load(0)
    key = jax.random.key(7)
    result = compare.compare(
        ["momentum"], split, epochs=1, batch_size=48, seeds=2, key=key, target=0.1
    ).results[0]
    init_key, data_key = jax.random.split(jax.random.fold_in(key, 1))
    _, _, history = jopt.training.fit(
        digits.loss,
        digits.init_params(init_key),
        jopt.momentum(jopt.optimizers.DEMO_LEARNING_RATES["momentum"]),
        split.train,
        batch_size=48,
        key=data_key,
        progress=False,
        eval_fn=lambda params: digits.evaluate(params, split),
    )
    np.testing.assert_allclose(result.step_loss[1], history.loss, rtol=1e-5)
    np.testing.assert_allclose(result.test_accuracy[1], history.metrics["test_accuracy"])
    assert not np.allclose(result.step_loss[0], result.step_loss[1])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--optimizers", "sgd,foo"],
            "argument --optimizers: unknown optimizer 'foo'; choose from sgd, momentum,",
        ),
        (["--optimizers", "adam,adam"], "argument --optimizers: 'adam' listed twice"),
        (["--epochs", "-3"], "argument --epochs: must be a positive integer, got -3"),
        (["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
        (["--epochs", "two"], "argument --epochs: must be a positive integer, got 'two'"),
        (
            ["--batch-size", "5000"],
            "argument --batch-size: 5000 is larger than the training set (1440 examples)",
        ),
        (
            ["--batch-size", "0"],
            "argument --batch-size: must be a positive integer or 'full', got 0",
        ),
        (["--seed", "-1"], "argument --seed: must be a non-negative integer, got -1"),
        (["--seeds", "0"], "argument --seeds: must be a positive integer, got 0"),
        (["--target-loss", "nan"], "argument --target-loss: must be a positive number, got 'nan'"),
        (["--plot", "/no/such/folder/out.png"], "--plot: folder '/no/such/folder' does not exist"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_flags_exit_with_code_2_and_say_why(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line
    assert err.startswith(f"python -m jopt: error: {message}")
    assert err.endswith("(python -m jopt --help lists the flags)\n")


def test_bad_flag_exit_status_of_the_process():
    done = run_module("--epochs", "-1", timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "error: argument --epochs: must be a positive integer, got -1" in done.stderr


# --- the measurements behind the lecture's table -------------------------------------


def test_sgd_saddle_escape_matches_the_closed_form():
    # Gradient descent on y: y ← y + 2ηy, so |y| reaches 1 after
    # ⌈log(1/y₀) / log(1 + 2η)⌉ steps.
    lr = lecture_table.SADDLE_LR
    steps = lecture_table.saddle_escape_steps(jopt.sgd(lr), starts=(1e-6, 1e-2, 0.5))
    expected = [math.ceil(math.log(1 / y0) / math.log(1 + 2 * lr)) for y0 in (1e-6, 1e-2, 0.5)]
    assert all(abs(s - e) <= 1 for s, e in zip(steps, expected, strict=True)), (steps, expected)


def test_saddle_starts_spread_around_the_nominal_ones():
    # Seed 0 is the nominal start; the others move x0 and y0.  SGD's escape from each
    # start follows the closed form above whatever x0 (x and y decouple).
    x0, y0 = lecture_table.saddle_starts(4)
    np.testing.assert_array_equal(x0[:, 0], 1.0)
    np.testing.assert_array_equal(y0[:, 0], lecture_table.SADDLE_STARTS)
    assert np.all((0.5 <= x0) & (x0 <= 1.5))
    ratio = y0 / np.asarray(lecture_table.SADDLE_STARTS)[:, None]
    assert np.all((10**-0.5 <= ratio) & (ratio <= 10**0.5)) and np.unique(ratio).size > 4
    lr = lecture_table.SADDLE_LR
    steps = lecture_table.saddle_spread(jopt.sgd(lr), seeds=4)
    expected = np.ceil(np.log(1 / y0) / np.log(1 + 2 * lr))
    assert steps.shape == (2, 4) and np.all(np.abs(steps - expected) <= 1), (steps, expected)


def test_a_measurement_that_fails_is_reported_not_raised(monkeypatch):
    # An optimizer that rejects these toy problems: its row says why, the others
    # are measured as usual.
    def refusing(learning_rate=1e-3):
        def update(updates, state, params=None, **extra):
            raise ValueError("needs something the table does not give")

        return jopt.GradientTransformation(lambda params: jopt.EmptyState(), update)

    registry = dict(jopt.optimizers.ALL, refusing=refusing)
    monkeypatch.setattr(lecture_table.optimizers, "ALL", registry)
    rows = {row.method: row for row in lecture_table.lecture_table(("sgd", "refusing"))}
    assert rows["refusing"].adaptive is None and rows["refusing"].saddle_steps is None
    assert "needs something the table does not give" in rows["refusing"].note
    assert rows["sgd"].saddle_steps == (145, 49) and rows["sgd"].note == ""


def test_saddle_escape_reports_max_steps_when_stuck():
    assert lecture_table.saddle_escape_steps(jopt.sgd(0.0), starts=(1e-6,), max_steps=50) == (50,)


def test_effective_lr_ratio_matches_closed_forms():
    # SGD: one rate for all, ratio 1.  Adam on constant gradients: m̂ = g, v̂ = g², so
    # ηᵢ = η/(|gᵢ| + ε) and the ratio is (100 + ε)/(1 + ε).
    assert lecture_table.effective_lr_ratio(jopt.sgd(0.1)) == pytest.approx(1.0, rel=1e-6)
    eps = 1e-8
    expected = (100 + eps) / (1 + eps)
    assert lecture_table.effective_lr_ratio(jopt.adam(0.1, eps=eps)) == pytest.approx(
        expected, rel=1e-5
    )


def _stateless(rule):
    def init(params):
        return jopt.EmptyState()

    def update(updates, state, params=None, **extra):
        return rule(updates, params), state

    return jopt.GradientTransformation(init, update)


def test_units_exponents_on_hand_written_rules():
    # Controls written here: a step in the units of θ (−0.1·|θ|·sign g), one in those
    # of g (−0.1·g), one in those of 1/g (−0.1/g) and one mixing two units.
    in_theta = _stateless(lambda g, p: -0.1 * jnp.abs(p) * jnp.sign(g))
    in_g = _stateless(lambda g, p: -0.1 * g)
    in_inverse_g = _stateless(lambda g, p: -0.1 / g)
    mixed = _stateless(lambda g, p: -0.1 * g - 0.1 * p)
    assert lecture_table.units_exponents(in_theta) == (1.0,)
    assert lecture_table.units_exponents(in_g) == (-1.0,)
    assert lecture_table.units_exponents(in_inverse_g) == (1.0,)
    assert lecture_table.units_exponents(mixed) == ()


def test_units_exponents_of_the_lecture_optimizers():
    # Dimensional analysis: SGD/momentum steps carry g's units (p = −1); the adaptive
    # rules divide g by an RMS of g (p = 0); Adadelta multiplies by RMS[Δθ], which can
    # carry θ's units (p = 1 is among the consistent ones).
    assert lecture_table.units_exponents(jopt.sgd(0.1)) == (-1.0,)
    assert lecture_table.units_exponents(jopt.momentum(0.1)) == (-1.0,)
    assert lecture_table.units_exponents(jopt.adagrad(0.1)) == (0.0,)
    assert lecture_table.units_exponents(jopt.adam(0.1)) == (0.0,)
    assert 1.0 in lecture_table.units_exponents(jopt.adadelta())


def test_lecture_table_in_process_agrees_with_the_lecture():
    rows = lecture_table.lecture_table(tuple(LECTURE_TABLE))
    table = [
        {
            "method": row.method,
            "adaptive_lr": row.adaptive,
            "consistent_units": row.consistent_units,
            "handles_saddle": row.handles_saddle,
            "saddle_escape_steps": {"1e-06": row.saddle_steps[0]},
        }
        for row in rows
    ]
    assert_agrees_with_the_lecture(table)
    with pytest.raises(ValueError, match="methods: unknown"):
        lecture_table.lecture_table(("sgd", "no_such_optimizer"))


def test_mlp_initialisation_follows_xavier():
    params = digits.init_params(jax.random.key(0))
    assert list(params) == ["layer0", "layer1"]
    assert [layer["w"].shape for layer in params.values()] == [(64, 64), (64, 10)]
    for layer in params.values():
        fan_in, fan_out = layer["w"].shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = np.asarray(layer["w"])
        assert w.dtype == np.float32 and np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # spread over the whole interval
        np.testing.assert_array_equal(layer["b"], 0)
    assert digits.init_params(jax.random.key(0), hidden=128)["layer1"]["w"].shape == (128, 10)


# --- the digits task -----------------------------------------------------------------


def test_digits_split_is_seeded_disjoint_and_standardized():
    split = digits.load(seed=0)
    assert split.x_train.shape == (1440, 64) and split.x_test.shape == (357, 64)
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int32
    # Standardized with the training set's statistics: mean 0, and std 1 wherever the
    # pixel varies (a few border pixels are constant 0 in the training images).
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-5)
    std = split.x_train.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-4) | (std == 0))
    # The documented split, restated from scikit-learn's arrays: the seed's permutation,
    # the first 1,440 images train; pixels standardized by the training statistics.
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    np.testing.assert_array_equal(split.y_train, labels[order[:1440]])
    np.testing.assert_array_equal(split.y_test, labels[order[1440:]])
    mean, std = images[order[:1440]].mean(axis=0), images[order[:1440]].std(axis=0)
    restated = (images[order[1440:]] - mean) / np.where(std > 0, std, 1.0)
    np.testing.assert_allclose(split.x_test, restated, rtol=1e-6, atol=1e-6)
    again, other = digits.load(seed=0), digits.load(seed=1)
    np.testing.assert_array_equal(again.y_train, split.y_train)
    assert not np.array_equal(other.y_train, split.y_train)


def test_digits_loss_and_evaluation_match_numpy():
    split = digits.load(seed=0)
    params = digits.init_params(jax.random.key(3))
    # The forward pass and the mean softmax cross-entropy, restated in float64 NumPy.
    w0, b0, w1, b1 = (
        np.asarray(params[layer][name], np.float64)
        for layer in ("layer0", "layer1")
        for name in ("w", "b")
    )

    def numpy_logits(x):
        return np.tanh(x.astype(np.float64) @ w0 + b0) @ w1 + b1

    def numpy_loss(x, y):
        z = numpy_logits(x)
        log_probs = z - z.max(axis=1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
        return -log_probs[np.arange(len(y)), y].mean()

    metrics = digits.evaluate(params, split)
    np.testing.assert_allclose(metrics["train_loss"], numpy_loss(*split.train), rtol=1e-5)
    np.testing.assert_allclose(metrics["test_loss"], numpy_loss(*split.test), rtol=1e-5)
    accuracy = np.mean(numpy_logits(split.x_test).argmax(axis=1) == split.y_test)
    np.testing.assert_allclose(metrics["test_accuracy"], accuracy, atol=1 / 357)
    np.testing.assert_allclose(
        digits.loss(params, split.train), numpy_loss(*split.train), rtol=1e-5
    )


def test_a_missing_extra_is_named_with_its_install_command(monkeypatch, capsys):
    # Imports of scikit-learn fail, and find_spec("sklearn") finds nothing.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingExtra, match=r'scikit-learn.*pip install "jopt\[examples\]"'):
        digits.load()
    assert cli.main(["--optimizers", "sgd", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m jopt: the digits task needs scikit-learn")


def test_optimizers_flag_takes_registry_names_and_all():
    parser = cli.build_parser()
    assert parser.parse_args([]).optimizers == LECTURE_OPTIMIZERS
    assert parser.parse_args(["--optimizers", "all"]).optimizers == tuple(jopt.optimizers.ALL)
    assert parser.parse_args(["--optimizers", "adamw,sgd"]).optimizers == ("adamw", "sgd")
    # The help lists every optimizer of the registry with its demo learning rate.
    help_text = " ".join(parser.format_help().split())
    for name, lr in jopt.optimizers.DEMO_LEARNING_RATES.items():
        assert f"{name} {lr:g}" in help_text


def test_lecture_table_covers_the_registry_by_default():
    race = {name: lecture_table.race_optimizer(name) for name in jopt.optimizers.ALL}
    assert list(race) == list(jopt.optimizers.ALL)
    # Adadelta runs at its default rate (a multiplier), every other one at SADDLE_LR:
    # one SGD-like step on a unit gradient moves by the rate.
    params = jnp.zeros(1)
    step, _ = race["sgd"].update(jnp.ones(1), race["sgd"].init(params), params)
    assert float(step[0]) == pytest.approx(-lecture_table.SADDLE_LR)


def test_import_jopt_leaves_the_lecture_and_its_extras_alone():
    code = (
        "import sys, jopt; assert 'jopt.lecture' not in sys.modules; "
        "import jopt.lecture; "
        "loaded = [m for m in ('sklearn', 'matplotlib', 'tqdm') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
