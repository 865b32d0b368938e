"""jopt.training.sweep and the range test of several optimizers: many runs, one program.

Every run of a sweep is compared with the lone :func:`jopt.training.fit` run it
stands for (fit itself is proven against hand-written loops in test_training_fit.py),
and the result's summaries with NumPy restatements.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_support import (
    counting_compiles,
    least_squares,
    make_regression,
    zeros_params,
)

import jopt
from jopt import training


def random_params(key):
    return {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}


def test_every_sweep_run_equals_its_lone_fit(rng):
    x, y = make_regression(rng, n=10, noise=0.3)
    key = jax.random.key(4)

    def eval_fn(params):
        return {"full": least_squares(params, (x, y))}

    result = training.sweep(
        least_squares,
        random_params,
        jopt.sgd,
        (x, y),
        grid={"learning_rate": [0.02, 0.05], "momentum": [0.0, 0.9]},
        seeds=2,
        batch_size=4,
        epochs=3,
        key=key,
        eval_fn=eval_fn,
    )
    assert result.configs == [
        {"learning_rate": lr, "momentum": m} for lr in (0.02, 0.05) for m in (0.0, 0.9)
    ]
    assert result.loss.shape == (4, 2, 9) and result.metrics["full"].shape == (4, 2, 3)
    assert result.params["w"].shape == (4, 2, 3)
    for c, config in enumerate(result.configs):
        for s in range(2):
            # The documented keys of seed s; fit is proven against hand loops above.
            init_key, data_key = jax.random.split(jax.random.fold_in(key, s))
            params, _, history = training.fit(
                least_squares,
                random_params(init_key),
                jopt.sgd(**config),
                (x, y),
                batch_size=4,
                epochs=3,
                key=data_key,
                progress=False,
                eval_fn=eval_fn,
            )
            np.testing.assert_allclose(result.loss[c, s], history.loss, rtol=1e-6)
            np.testing.assert_allclose(
                result.metrics["full"][c, s], history.metrics["full"], rtol=1e-6
            )
            np.testing.assert_allclose(result.params["w"][c, s], params["w"], rtol=1e-6, atol=1e-7)
    # Chunks of 3 runs: the same program for every chunk, the same results.
    chunked = training.sweep(
        least_squares,
        random_params,
        jopt.sgd,
        (x, y),
        grid={"learning_rate": [0.02, 0.05], "momentum": [0.0, 0.9]},
        seeds=2,
        batch_size=4,
        epochs=3,
        key=key,
        eval_fn=eval_fn,
        chunk=3,
    )
    np.testing.assert_allclose(chunked.loss, result.loss, rtol=1e-6)


def test_sweep_summaries_restated():
    # best, summary and final restated with NumPy on the stored arrays.
    loss = np.array(
        [[[4.0, 2.0], [4.0, 4.0]], [[1.0, 1.0], [1.0, 3.0]], [[1.0, 0.5], [0.1, np.nan]]]
    )
    result = training.SweepResult(
        configs=[{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}],
        seeds=2,
        loss=loss,
        epoch_step=np.array([1, 2]),
        metrics={"acc": np.array([[[0.1, 0.2]] * 2, [[0.3, 0.9]] * 2, [[0.5, 0.4]] * 2])},
        params={},
    )
    np.testing.assert_array_equal(result.final(), loss[:, :, -1])
    mean, std = result.summary()
    np.testing.assert_allclose(mean, loss[:, :, -1].mean(axis=1))
    np.testing.assert_allclose(std, loss[:, :, -1].std(axis=1, ddof=1))
    assert result.best() == {"lr": 0.2}  # 0.3 diverged on one seed: ranked last
    assert result.best("acc", mode="max") == {"lr": 0.2}
    with pytest.raises(KeyError, match="metric"):
        result.final("nope")


def test_a_sweep_of_several_optimizers_is_one_program(rng):
    x, y = make_regression(rng, n=12, noise=0.3)
    factories = {"sgd": jopt.sgd, "adam": jopt.adam}
    grids = {"sgd": {"learning_rate": [0.05, 0.1]}, "adam": {"learning_rate": [0.01]}}
    common = dict(epochs=2, batch_size=6, key=jax.random.key(0), seeds=2)
    training.sweep(least_squares, zeros_params(3), jopt.sgd, (x, y), grid=grids["sgd"], **common)
    with counting_compiles() as compiles:
        both = training.sweep(
            least_squares, zeros_params(3), factories, (x, y), grid=grids, **common
        )
    assert compiles.count == 1
    assert set(both) == {"sgd", "adam"} and both["sgd"].loss.shape == (2, 2, 4)
    # Each optimizer's runs equal its own sweep (proven against fit above).
    for name, factory in factories.items():
        alone = training.sweep(
            least_squares, zeros_params(3), factory, (x, y), grid=grids[name], **common
        )
        np.testing.assert_allclose(both[name].loss, alone.loss, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"grid": [0.1]}, TypeError, "grid must be a mapping"),
        ({"grid": {}}, ValueError, "grid must name at least one"),
        ({"grid": {"learning_rate": []}}, ValueError, r"grid\['learning_rate'\] is empty"),
        ({"grid": {"lr": [0.1]}}, ValueError, r"grid\['lr'\]: not an argument"),
        ({"grid": {"learning_rate": ["0.1"]}}, TypeError, "must hold numbers"),
        ({"grid": {"nesterov": [True]}}, TypeError, "must hold numbers"),
        ({"seeds": 0}, ValueError, "seeds must be an integer >= 1"),
        ({"chunk": 0}, ValueError, "chunk"),
        ({"batch_size": 4, "key": None}, ValueError, "key is None"),
    ],
)
def test_sweep_rejects_bad_arguments(rng, kwargs, error, match):
    x, y = make_regression(rng)
    args = {"grid": {"learning_rate": [0.1]}, "key": jax.random.key(0)} | kwargs
    with pytest.raises(error, match=match):
        training.sweep(least_squares, zeros_params(3), jopt.sgd, (x, y), **args)


def test_lr_range_test_of_several_optimizers_is_one_program(rng):
    x, y = make_regression(rng, n=32, noise=0.3)
    factories = {"sgd": jopt.sgd, "momentum": jopt.momentum, "adam": jopt.adam}
    options = dict(min_lr=1e-4, max_lr=1e2, steps=40, batch_size=8, key=jax.random.key(3))
    # Warm up what the runs share (copies of the states, the batch orders) with
    # optimizers of the same state structures, built differently.
    warm = {"sgd": jopt.sgd, "momentum": jopt.nesterov, "adam": jopt.adamw}
    training.lr_range_test(least_squares, zeros_params(3), warm, (x, y), **options)
    with counting_compiles() as compiles:
        together = training.lr_range_test(
            least_squares, zeros_params(3), factories, (x, y), **options
        )
    assert compiles.count == 1
    # Each equals its own range test (proven against the criteria above).
    for name, factory in factories.items():
        alone = training.lr_range_test(least_squares, zeros_params(3), factory, (x, y), **options)
        np.testing.assert_allclose(together[name].losses, alone.losses, rtol=1e-6)
        assert together[name].suggested_lr == alone.suggested_lr
