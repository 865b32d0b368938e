"""The training rows: a whole run as one program, and many runs in one vmap.

Measured on the digits MLP of :mod:`jopt.lecture.digits` (64-64-10 tanh, batches of
32, Adam at 1e-3), each ratio from interleaved runs in the same process:

* ``fit(steps_per_call="epoch")`` per step over the *bare compiled step loop*: a
  Python loop calling the jitted, donating step of :func:`jopt.training.make_step`
  on batches already on the device (the same batches, cut ahead of the timing);
* the same per-step time over ``fit(steps_per_call=1)``, the per-step loop (one
  call per batch, batches cut on the host), which was ``fit`` before;
* a ``sweep`` of 8 learning rates × 4 seeds, compilation included, over 32
  sequential ``fit`` calls of the same runs, compilation included, in two forms:
  ``fit`` as it was (``steps_per_call=1``, every call traced and compiled anew,
  which is what the per-step loop did before programs were kept), and ``fit`` as
  it is (one compile per learning rate, reused for the other seeds).

Every round times each runner once, in a fresh random order; a ratio is the median
over rounds of the per-round ratio, with quartiles.  Compilations are excluded
from the per-step rows (every runner is warmed up first) and included in the
sweep rows (the kept programs are forgotten before each timed call).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

LEARNING_RATES = (3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)
SEEDS = 4


def _quantiles(values) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(array)),
        "q25": float(np.quantile(array, 0.25)),
        "q75": float(np.quantile(array, 0.75)),
        "per_round": [float(v) for v in array],
    }


class _Task:
    """The digits MLP task and the three per-step runners."""

    def __init__(self, epochs: int):
        import jax
        import jax.numpy as jnp

        import jopt
        from jopt import training
        from jopt.lecture import digits

        self.jax, self.jnp, self.jopt, self.training, self.digits = jax, jnp, jopt, training, digits
        self.split = digits.load(0)
        self.params = digits.init_params(jax.random.key(0))
        self.key = jax.random.key(1)
        self.epochs = epochs
        self.steps = epochs * (len(self.split.x_train) // 32)
        self.step = training.make_step(digits.loss, jopt.adam(1e-3), donate=True)
        x, y = (jnp.asarray(a) for a in self.split.train)
        self.batches = []
        for epoch in range(epochs):
            order = np.asarray(jax.random.permutation(jax.random.fold_in(self.key, epoch), len(x)))
            for start in range(0, len(x), 32):
                index = jnp.asarray(order[start : start + 32])
                self.batches.append((x[index], y[index]))
        jax.block_until_ready(self.batches)

    def bare(self) -> float:
        """The bare loop: seconds per step."""
        jax = self.jax
        params = jax.tree.map(self.jnp.array, self.params)
        state = self.jopt.adam(1e-3).init(params)
        jax.block_until_ready((params, state))
        start = time.perf_counter()
        for batch in self.batches:
            params, state, loss = self.step(params, state, batch)
        jax.block_until_ready(params)
        return (time.perf_counter() - start) / len(self.batches)

    def fit(self, steps_per_call) -> float:
        """``fit``'s seconds per step, until its parameters are ready (compilation
        excluded: the program is kept from the warm-up)."""
        start = time.perf_counter()
        params, _, history = self.training.fit(
            self.digits.loss,
            self.params,
            self.jopt.adam(1e-3),
            self.split.train,
            batch_size=32,
            epochs=self.epochs,
            key=self.key,
            steps_per_call=steps_per_call,
            progress=False,
        )
        self.jax.block_until_ready(params)
        return (time.perf_counter() - start - history.compile_time) / history.steps


def per_step_rows(rounds: int, epochs: int) -> dict[str, Any]:
    """The two per-step ratios (and the absolute times behind them)."""
    task = _Task(epochs)
    runners = {
        "bare": task.bare,
        "fit_epoch": lambda: task.fit("epoch"),
        "fit_step": lambda: task.fit(1),
    }
    for run in runners.values():  # compile, and reach steady state
        run()
    times = {name: [] for name in runners}
    shuffle = np.random.default_rng(0)
    for _ in range(rounds):
        for name in shuffle.permutation(list(runners)):
            times[str(name)].append(runners[str(name)]())
    t = {name: np.asarray(values) for name, values in times.items()}
    return {
        "task": f"digits MLP 64-64-10, Adam 1e-3, batches of 32, {epochs} epochs "
        f"({task.steps} steps) per timed run",
        "step_s": {name: _quantiles(values) for name, values in t.items()},
        "ratios": {
            "fit(epoch)/bare loop": _quantiles(t["fit_epoch"] / t["bare"]),
            "fit(epoch)/fit(per step)": _quantiles(t["fit_epoch"] / t["fit_step"]),
        },
    }


def _sweep_runners(epochs: int, learning_rates: tuple[float, ...], seeds: int):
    import jax

    import jopt
    from jopt import training
    from jopt.lecture import digits
    from jopt.training import _cache

    split = digits.load(0)
    key = jax.random.key(2)
    common = dict(batch_size=32, epochs=epochs)

    def lone(lr, seed, steps_per_call, forget):
        if forget:
            _cache.clear()
        init_key, data_key = jax.random.split(jax.random.fold_in(key, seed))
        training.fit(
            digits.loss,
            digits.init_params(init_key),
            jopt.adam(lr),
            split.train,
            key=data_key,
            steps_per_call=steps_per_call,
            progress=False,
            **common,
        )

    def sweep():
        _cache.clear()
        grid = {"learning_rate": list(LEARNING_RATES)}
        training.sweep(
            digits.loss,
            digits.init_params,
            jopt.adam,
            split.train,
            grid=grid,
            seeds=SEEDS,
            key=key,
            **common,
        )

    def sequential(steps_per_call, forget):
        def run():
            _cache.clear()
            for lr in learning_rates:
                for seed in range(seeds):
                    lone(lr, seed, steps_per_call, forget)

        return run

    return {
        "sweep": sweep,
        "fit_step_fresh": sequential(1, True),
        "fit_epoch_kept": sequential("epoch", False),
    }


def sweep_rows(
    rounds: int, epochs: int, learning_rates=LEARNING_RATES, seeds: int = SEEDS
) -> dict[str, Any]:
    """The sweep ratio against both forms of sequential fits of the same runs."""
    runners = _sweep_runners(epochs, tuple(learning_rates), seeds)
    runners["sweep"]()  # import and warm what every runner shares (data, orders)
    times = {name: [] for name in runners}
    shuffle = np.random.default_rng(1)
    for _ in range(rounds):
        for name in shuffle.permutation(list(runners)):
            start = time.perf_counter()
            runners[str(name)]()
            times[str(name)].append(time.perf_counter() - start)
    t = {name: np.asarray(values) for name, values in times.items()}
    runs = len(learning_rates) * seeds
    return {
        "task": f"digits MLP, Adam at {len(learning_rates)} learning rates x {seeds} seeds, "
        f"{epochs} epochs each, compilation included",
        "wall_s": {name: _quantiles(values) for name, values in t.items()},
        "ratios": {
            f"sweep/{runs} fits (per step, compiled each call)": _quantiles(
                t["sweep"] / t["fit_step_fresh"]
            ),
            f"sweep/{runs} fits (epoch calls, programs kept)": _quantiles(
                t["sweep"] / t["fit_epoch_kept"]
            ),
        },
    }


def run(quick: bool) -> dict[str, Any]:
    """Both groups of rows; ``quick`` runs few epochs and rounds (a smoke run)."""
    if quick:
        return {
            "per_step": per_step_rows(rounds=2, epochs=1),
            "sweep": sweep_rows(rounds=1, epochs=1, learning_rates=LEARNING_RATES[:2], seeds=2),
        }
    return {"per_step": per_step_rows(rounds=15, epochs=5), "sweep": sweep_rows(rounds=3, epochs=3)}


TARGETS = {
    "fit(epoch)/bare loop": 1.1,
    "fit(epoch)/fit(per step)": 0.3,
    "sweep/32 fits (per step, compiled each call)": 0.25,
}
"""The training issue's limits on the ratios (the kept-program sweep row is shown
beside its target's, against the stricter baseline, without a limit of its own)."""


def render(training: dict[str, Any]) -> list[str]:
    """The training rows as markdown lines."""
    lines = ["", "Training (digits MLP; ratios: median of per-round ratios, quartiles):", ""]
    lines += ["| ratio | median (q25–q75) | limit | |", "|---|---:|---:|---|"]
    for group in ("per_step", "sweep"):
        for name, entry in training[group]["ratios"].items():
            limit = TARGETS.get(name)
            verdict = "" if limit is None else "met" if entry["median"] <= limit else "NOT met"
            lines.append(
                f"| {name} | {entry['median']:.3f} ({entry['q25']:.3f}–{entry['q75']:.3f}) | "
                f"{'' if limit is None else limit} | {verdict} |"
            )
    steps = training["per_step"]["step_s"]
    walls = training["sweep"]["wall_s"]
    lines += [
        "",
        f"Per step ({training['per_step']['task']}): "
        + ", ".join(f"{name} {1e6 * v['median']:.1f} µs" for name, v in steps.items())
        + f". Wall ({training['sweep']['task']}): "
        + ", ".join(f"{name} {v['median']:.2f} s" for name, v in walls.items())
        + ".",
    ]
    return lines
