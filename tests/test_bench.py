"""``python -m jopt bench``: the scoring restated, the tuning rule, a quick race, the flags.

The performance profile and its area are restated by hand and by numerical
integration; the tuning rule (the fastest learning rate per seed, then the median
over seeds) is checked on fabricated sweep results; a quick race checks that every
registry optimizer asked for gets an entry and that the table, JSON and plot agree.
No timing is asserted.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import jopt
from jopt import training
from jopt.lecture import bench, cli, workloads


def test_scores_restated_by_hand():
    inf = math.inf
    times = {
        "a": {"w1": 1.0, "w2": 2.0},
        "b": {"w1": 2.0, "w2": inf},
        "c": {"w1": 5.0, "w2": 1.0},
    }
    ratios, scores = bench.profile_scores(times)
    assert ratios == {
        "a": {"w1": 1.0, "w2": 2.0},
        "b": {"w1": 2.0, "w2": inf},
        "c": {"w1": 5.0, "w2": 1.0},
    }
    # The area of ρ from 1 to 4, over 3: each workload solved within ratio r ≤ 4
    # adds (4 − r)/3 per workload.
    assert scores["a"] == pytest.approx(((4 - 1) + (4 - 2)) / 3 / 2)
    assert scores["b"] == pytest.approx((4 - 2) / 3 / 2)
    assert scores["c"] == pytest.approx((4 - 1) / 3 / 2)
    # The same by integrating the step function numerically.
    taus = np.linspace(1, 4, 30_001)
    for name in times:
        area = np.trapezoid(bench.profile(ratios[name], taus), taus) / 3
        assert scores[name] == pytest.approx(area, abs=1e-3)


def test_the_tuning_rule_is_fastest_rate_per_seed_then_median(monkeypatch):
    # Fabricated sweep: 3 learning rates x 3 seeds x 4 epochs of a metric to bring
    # to <= 0.5; epochs of 10 steps.
    values = np.array(
        [
            [[0.9, 0.6, 0.4, 0.3], [0.9, 0.8, 0.7, 0.6], [0.9, 0.4, 0.3, 0.2]],  # lr 1/3
            [[0.9, 0.9, 0.9, 0.45], [0.4, 0.3, 0.2, 0.1], [0.9, 0.9, 0.9, 0.9]],  # lr 1
            [[np.nan] * 4, [0.9, 0.9, 0.3, 0.2], [0.9, 0.9, 0.9, 0.9]],  # lr 3
        ]
    )
    fake = training.SweepResult(
        configs=[{"learning_rate": lr} for lr in (1 / 3, 1.0, 3.0)],
        seeds=3,
        loss=np.zeros((3, 3, 40)),
        epoch_step=np.array([10, 20, 30, 40]),
        metrics={"m": values},
        params={},
        wall_time=5.0,
        compile_time=1.0,
    )
    monkeypatch.setattr(bench.training, "sweep", lambda *args, **kwargs: fake)
    workload = workloads.Workload(
        name="fake",
        description="",
        train=(np.zeros((40, 1)), np.zeros(40)),
        init=None,
        loss=None,
        evaluate=None,
        metric="m",
        target=0.5,
        mode="min",
        batch_size=4,
        epochs=4,
    )
    entry = bench.race(workload, "sgd", seeds=3)
    # Seed 0: lr 1/3 at epoch 3 (30 steps), lr 1 at epoch 4: 30.  Seed 1: lr 1 at
    # epoch 1: 10.  Seed 2: lr 1/3 at epoch 2: 20.  Median: 20.
    assert entry["steps_per_seed"] == [30.0, 10.0, 20.0]
    assert entry["steps"] == 20.0
    seconds_per_step = (5.0 - 1.0) / (9 * 40)
    assert entry["seconds_per_step"] == pytest.approx(seconds_per_step)
    assert entry["seconds"] == pytest.approx(20 * seconds_per_step)
    # Fastest most often: lr 1/3 (seeds 0 and 2), times sgd's demo rate.
    assert entry["learning_rate"] == pytest.approx(jopt.optimizers.DEMO_LEARNING_RATES["sgd"] / 3)


@pytest.fixture(scope="module")
def quick_race(tmp_path_factory):
    plot = tmp_path_factory.mktemp("bench") / "profile.png"
    # Two optimizers on the two workloads that compile fastest (each optimizer and
    # workload is a compilation); every workload is built and evaluated below.
    argv = ["--quick", "--optimizers", "sgd,adam", "--seeds", "1", "--plot", str(plot)]
    args = bench.build_parser().parse_args([*argv, "--workloads", "least_squares,digits_mlp"])
    report = bench.run(args)
    bench._bench_output.write_plot(str(plot), report)
    return report, plot


def test_quick_race_structure(quick_race):
    report, plot = quick_race
    assert list(report["workloads"]) == ["least_squares", "digits_mlp"]
    assert set(report["results"]) == {"sgd", "adam"}
    for name, per_workload in report["results"].items():
        for load, entry in per_workload.items():
            assert "error" not in entry, (name, load, entry)
            w = workloads.make(load, quick=True)
            finite = [s for s in entry["steps_per_seed"] if math.isfinite(s)]
            assert all(
                s % w.steps_per_epoch == 0 and s <= w.epochs * w.steps_per_epoch for s in finite
            )
            assert entry["seconds"] == pytest.approx(
                entry["steps"] * entry["seconds_per_step"]
            ) or (math.isinf(entry["steps"]) and math.isinf(entry["seconds"]))
    for load in report["workloads"]:
        solved = [report["ratios"][n][load] for n in report["results"]]
        finite = [r for r in solved if math.isfinite(r)]
        assert not finite or min(finite) == 1.0
    assert all(0 <= s <= 1 for s in report["scores"].values())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = bench._bench_output.text(report)
    assert text.splitlines()[0].startswith("python -m jopt bench --quick")
    as_json = json.loads(json.dumps(bench._bench_output.jsonable(report)))
    assert set(as_json["scores"]) == {"sgd", "adam"}


@pytest.mark.parametrize("name", workloads.WORKLOADS)
def test_every_workload_builds_and_evaluates(name):
    # The loss is a scalar and the metric a scalar for every workload (traced only:
    # the quick race trains two of them, `python -m jopt bench` all four); the
    # metric starts on the far side of the target.
    import jax

    w = workloads.make(name, quick=True)
    params = w.init(jax.random.key(0))
    batch = jax.tree.map(lambda a: a[: w.batch_size], w.train)
    assert jax.eval_shape(w.loss, params, batch).shape == ()
    metric = jax.eval_shape(w.evaluate, params)[w.metric]
    assert metric.shape == () and w.mode in ("min", "max")
    assert len(w.train[0]) == len(w.train[1]) and w.steps_per_epoch >= 1


def test_the_conv_layer_is_a_convolution():
    # The patch-matrix convolution against lax.conv_general_dilated, padded alike.
    import jax

    params = workloads.conv_init(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (3, 8, 8, 16))
    for stride in (1, 2):
        expected = jax.jit(jax.lax.conv_general_dilated, static_argnums=(2, 3, 4, 5, 6))(
            x,
            params["conv2"]["w"],
            (stride, stride),
            ((1, 1), (1, 1)),
            None,
            None,
            ("NHWC", "HWIO", "NHWC"),
        )
        expected = jax.nn.relu(expected + params["conv2"]["b"])
        got = jax.jit(workloads._conv, static_argnums=2)(x, params["conv2"], stride)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_an_optimizer_that_fails_is_reported_not_raised(monkeypatch):
    def refusing(learning_rate=1e-3):
        def update(updates, state, params=None, **extra):
            raise ValueError("cannot train this")

        return jopt.GradientTransformation(lambda params: jopt.EmptyState(), update)

    monkeypatch.setattr(bench.optimizers, "ALL", {"refusing": refusing})
    monkeypatch.setattr(bench.optimizers, "DEMO_LEARNING_RATES", {"refusing": 1e-3})
    entry = bench.race(workloads.make("least_squares", quick=True), "refusing", seeds=1)
    assert entry["error"].startswith("ValueError: cannot train this")
    _, scores = bench.profile_scores({"refusing": {"least_squares": math.inf}})
    assert scores == {"refusing": 0.0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizers", "nope"], "argument --optimizers: unknown optimizer 'nope'"),
        (["--workloads", "mnist"], "argument --workloads: unknown workload 'mnist'"),
        (["--seeds", "0"], "argument --seeds: must be a positive integer, got 0"),
        (["--plot", "/no/such/folder/p.png"], "--plot: folder '/no/such/folder' does not exist"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_flags_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m jopt bench: error: ")
    assert message in err
