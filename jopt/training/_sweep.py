"""Many training runs as one program: [`sweep`][jopt.training.sweep] over settings and seeds."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jopt._core import GradientTransformation
from jopt._validation import check, checked
from jopt.hyperparams import inject_hyperparams
from jopt.training import _cache
from jopt.training._batches import check_batch_size, check_key, num_examples
from jopt.training._grid import Member, members
from jopt.training._scan import Plan, orders, scan_steps
from jopt.training._step import LossFn, PyTree, fresh_arrays, train_step, with_extra_args
from jopt.training._sweep_result import SweepResult

Factory = Callable[..., GradientTransformation]


def sweep(
    loss_fn: LossFn,
    params: PyTree | Callable[[jax.Array], PyTree],
    optimizer_factory: Factory | Mapping[str, Factory],
    data: PyTree,
    *,
    grid: Mapping[str, Sequence[float]] | Mapping[str, Mapping[str, Sequence[float]]],
    seeds: int = 1,
    batch_size: int | None = None,
    epochs: int = 1,
    key: jax.Array | None = None,
    shuffle: bool = True,
    eval_fn: Callable[[PyTree], Any] | None = None,
    chunk: int | None = None,
) -> SweepResult | dict[str, SweepResult]:
    """Train one model for every hyperparameter configuration and seed, as one program.

    The configurations are the product of `grid`'s lists, in order (the last name
    varies fastest).  Every configuration is trained with `seeds` seeds: seed ``s``
    draws ``init_key, data_key = jax.random.split(jax.random.fold_in(key, s))``,
    initializes ``params(init_key)`` when `params` is a function (else every run
    starts from `params`), and shuffles its batches with ``data_key`` as
    [`fit`][jopt.training.fit] does with ``key=data_key``.

    The runs are one ``jax.vmap`` over configurations × seeds of one whole training
    run (``lax.scan`` over epochs and steps, batches gathered on the device), and the
    hyperparameters are data: the optimizer is ``inject_hyperparams(optimizer_factory,
    static_args=<every argument not in grid>)(**config)``, so the sweep is traced and
    compiled once, whatever the values.  Each run is the run
    ``fit(loss_fn, params, optimizer_factory(**config), data, batch_size=...,
    epochs=..., key=data_key)`` would make, to float32 rounding (the batched program
    may round the last bit differently).

    **Several optimizers** in one program: pass a mapping ``name -> factory`` as
    `optimizer_factory`, and as `grid` either one grid for all of them or a mapping
    ``name -> grid``.  One compilation then covers every optimizer (compiling one
    program costs less than compiling its parts one by one), and the result is a
    dict ``name -> SweepResult``.

    **Memory** grows with configurations × seeds: every run keeps its own
    parameters, optimizer state and activations in the one program.  ``chunk=m``
    runs ``m`` of them at a time (per optimizer); the program is the same for every
    chunk, so it is still compiled once.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``, as for
            [`fit`][jopt.training.fit].
        params: the initial parameters, or a function ``key -> params``.
        optimizer_factory: e.g. ``jopt.adam``, called with the names of `grid` (its
            defaults for the rest); or a mapping ``name -> factory``.
        data: a pytree of arrays sharing a leading example axis of length ``N``.
        grid: ``hyperparameter -> list of numbers``: what to sweep; or, with several
            factories, ``factory name -> {hyperparameter -> list of numbers}``.
        seeds: the number of seeds per configuration, ``>= 1``.
        batch_size: as for [`fit`][jopt.training.fit].
        epochs: passes over `data`, ``>= 0``.
        key: a PRNG key; needed to shuffle mini-batches or to initialize from a
            function.
        shuffle: as for [`fit`][jopt.training.fit].
        eval_fn: ``eval_fn(params) -> scalar or {name: scalar}``, traced: called in
            the program after each epoch of every run.
        chunk: the number of runs of each optimizer in one call (default: all).

    Returns:
        A [`SweepResult`][jopt.training.SweepResult], or a dict of them by factory name.
        With several factories, their ``wall_time`` and ``compile_time`` are those of
        the one program they share.

    Raises:
        TypeError: an argument of the wrong type (each error names it).
        ValueError: an argument out of range, an empty grid or list, a name that is
            not an argument of its factory, or ``key=None`` where a key is needed.
    """
    checked("loss_fn", loss_fn)
    options = check(seeds=seeds, epochs=epochs, shuffle=shuffle, eval_fn=eval_fn, chunk=chunk)
    factories = _factories(optimizer_factory)
    n = num_examples(data)
    batch_size = check_batch_size(batch_size, n)
    shuffle = options["shuffle"] and batch_size is not None
    check_key(key, needed=shuffle or callable(params))
    if key is None:
        key = jax.random.key(0)  # unused: nothing is random
    runs = members(factories, grid, options["seeds"])
    seeds, epochs = options["seeds"], options["epochs"]
    plan = Plan.make(n, batch_size, "epoch", shuffle)
    results = _run(loss_fn, params, runs, data, plan, seeds, epochs, key, eval_fn, options["chunk"])
    return results if isinstance(optimizer_factory, Mapping) else results[None]


def _factories(optimizer_factory: Any) -> dict[Any, Factory]:
    if isinstance(optimizer_factory, Mapping):
        if not optimizer_factory:
            raise ValueError("optimizer_factory must name at least one factory, got {}")
        for name, factory in optimizer_factory.items():
            checked(f"optimizer_factory[{name!r}]", factory)
        return dict(optimizer_factory)
    return {None: checked("optimizer_factory", optimizer_factory)}


def _run(loss_fn, params, runs: dict[Any, Member], data, plan, seeds, epochs, key, eval_fn, chunk):
    """Run every member, in chunks; the results by factory name."""
    shared = not callable(params)
    program = _program(loss_fn, runs, plan, epochs, eval_fn, shared)
    data = jax.tree.map(jnp.asarray, data)
    init_keys, data_keys = _seed_keys(key, seeds)
    starts = fresh_arrays(params) if shared else _stacked([params(k) for k in init_keys])
    seed_orders = np.stack([np.asarray(orders(plan, k, range(epochs))) for k in data_keys])
    sizes = {name: min(chunk or member.runs, member.runs) for name, member in runs.items()}
    calls = max(-(-member.runs // sizes[name]) for name, member in runs.items())
    outputs, compile_time, start = [], 0.0, time.perf_counter()
    for call in range(calls):
        chunks = {}
        for name, member in runs.items():
            index = np.minimum(call * sizes[name] + np.arange(sizes[name]), member.runs - 1)
            hyper = {hp: values[index] for hp, values in member.hyper.items()}
            chunks[str(name)] = (hyper, member.seed[index])
        args = (chunks, starts, seed_orders, data)
        executable, seconds = program.executable(_cache.signature(*args), *args)
        compile_time += seconds
        outputs.append(jax.device_get(executable(*args)))
    wall_time = time.perf_counter() - start
    return {
        name: SweepResult(
            **_result(member, [out[str(name)] for out in outputs], seeds, plan, epochs),
            wall_time=wall_time,
            compile_time=compile_time,
        )
        for name, member in runs.items()
    }


def _result(member: Member, pieces, seeds: int, plan: Plan, epochs: int) -> dict[str, Any]:
    """One factory's outputs of every call, joined and shaped ``(configs, seeds, ...)``."""
    final, losses, metrics = (
        jax.tree.map(lambda *parts: np.concatenate(parts)[: member.runs], *part)
        for part in zip(*pieces, strict=True)
    )

    def stacked(leaf):
        return np.reshape(leaf, (len(member.configs), seeds, *np.shape(leaf)[1:]))

    return {
        "configs": member.configs,
        "seeds": seeds,
        "loss": stacked(losses),
        "epoch_step": plan.steps_per_epoch * np.arange(1, epochs + 1),
        "metrics": {name: stacked(values) for name, values in metrics.items()},
        "params": jax.tree.map(stacked, final),
    }


def _seed_keys(key: jax.Array, seeds: int) -> tuple[jax.Array, jax.Array]:
    """``split(fold_in(key, s))`` for every seed: the init keys and the data keys."""

    def make():
        def keys(key, seeds):
            pairs = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(key, s)))(seeds)
            return pairs[:, 0], pairs[:, 1]

        return jax.jit(keys)

    program = _cache.program(make, "seed keys")
    args = (key, np.arange(seeds, dtype=np.int32))
    executable, _ = program.executable(_cache.signature(*args), *args)
    return executable(*args)


def _stacked(trees: list[PyTree]) -> PyTree:
    """The trees stacked leaf by leaf on a new leading axis, as new (host) arrays.

    Stacked by NumPy: no program to compile for each leaf's shape.
    """
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *trees)


def _program(loss_fn, runs: dict[Any, Member], plan: Plan, epochs: int, eval_fn, shared: bool):
    """Every factory's vmapped whole run in one program, kept by recipe.

    ``program(chunks, starts, orders, data)`` with ``chunks[name] = (hyper, seed)``,
    one entry per run; ``starts`` the shared parameters or those of each seed, and
    ``orders`` the ``(seeds, epochs, N)`` batch orders.
    """
    recipe = tuple((str(name), m.factory, m.names) for name, m in runs.items())

    def make():
        runners = {
            name: _run_one(loss_fn, factory, names, plan, eval_fn, shared)
            for name, factory, names in recipe
        }

        def program(chunks, starts, seed_orders, data):
            return {
                name: jax.vmap(runners[name], in_axes=(0, 0, None, None, None))(
                    *chunks[name], starts, seed_orders, data
                )
                for name in runners
            }

        return jax.jit(program)

    return _cache.program(make, "sweep", loss_fn, recipe, plan, epochs, eval_fn, shared)


def _run_one(loss_fn, factory, names, plan: Plan, eval_fn, shared: bool):
    """One run: ``run(hyper, seed, starts, orders, data) -> (params, losses, metrics)``."""
    static = _static_names(factory, names)
    injected = inject_hyperparams(factory, static_args=static)

    def run(hyper, seed, starts, seed_orders, data):
        start = starts if shared else jax.tree.map(lambda leaf: leaf[seed], starts)
        optimizer = with_extra_args(injected(**hyper))

        def step_fn(carry, batch):
            new_params, state, loss = train_step(loss_fn, optimizer, False, *carry, batch)
            return (new_params, state), loss

        def epoch(carry, order):
            carry, losses = scan_steps(step_fn, plan, carry, data, order, 0, plan.steps_per_epoch)
            return carry, (losses, _metrics(eval_fn, carry[0]))

        carry = (start, optimizer.init(start))
        (final, _), (losses, metrics) = lax.scan(epoch, carry, seed_orders[seed])
        return final, losses.reshape(-1), metrics

    return run


def _static_names(factory: Factory, names: tuple[str, ...]) -> tuple[str, ...]:
    """Every argument of `factory` that is not swept: kept static, as given."""
    parameters = inspect.signature(factory).parameters.values()
    named = (p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    return tuple(sorted(set(named) - set(names)))


def _metrics(eval_fn, params) -> dict[str, jax.Array]:
    if eval_fn is None:
        return {}
    value = eval_fn(params)
    items = value.items() if isinstance(value, Mapping) else [("eval", value)]
    out = {}
    for name, metric in items:
        if np.shape(metric) != ():
            shape = np.shape(metric)
            raise ValueError(f"eval_fn must return scalars, got {name!r} of shape {shape}")
        out[str(name)] = metric
    return out
