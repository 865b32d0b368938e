"""The training process as a library: batches, a compiled step, a loop.

The common training process is (1) initialize the parameters, (2) choose an optimizer,
(3) repeat: forward, cost, gradients by backpropagation, update.  Here that is:

```text
params, opt_state, history = fit(loss_fn, params, optimizer, data, batch_size=32,
                                 key=jax.random.key(0))
```

with ``loss_fn(params, batch) -> scalar`` and ``optimizer`` any
[`GradientTransformation`][jopt.GradientTransformation] (jopt's or optax's).  The three flavours of
gradient descent differ only in the data each gradient is taken on, ``batch_size``:

* ``None``: batch gradient descent, ``θ ← θ − η·∇θ J(θ; X⁽¹:ᴺ⁾)``;
* ``1``: stochastic gradient descent, ``θ ← θ − η·∇θ J(θ; X⁽ⁱ⁾)``;
* ``n``: mini-batch gradient descent, ``θ ← θ − η·∇θ J(θ; X⁽ⁱ:ⁱ⁺ⁿ⁾)``.

A PRNG ``key`` is needed only to shuffle mini-batches.
[`lr_range_test`][jopt.training.lr_range_test] measures a learning rate that is neither painfully
slow nor divergent, instead of guessing it.  [`sweep`][jopt.training.sweep] trains every
configuration of a hyperparameter grid, with several seeds, as one compiled program:

```text
result = sweep(loss_fn, init_params, jopt.adam, data, grid={"learning_rate": lrs},
               seeds=4, batch_size=32, epochs=10, key=jax.random.key(0))
result.loss          # (configs, seeds, steps)
result.best()        # {"learning_rate": ...}
```

Everything is compiled once and kept: [`fit`][jopt.training.fit] runs a whole epoch per compiled
call (``steps_per_call``), with the dataset on the device; a second [`fit`][jopt.training.fit] with
the same shapes and an optimizer built the same way reuses the first one's program.

The modules: ``_batches`` ([`batches`][jopt.training.batches] and the dataset checks), ``_step``
([`make_step`][jopt.training.make_step] and the per-step runner), ``_scan`` (several steps per call,
batches gathered on the device), ``_cache`` (programs kept by recipe), ``_fit``
(the loop), ``_history`` (what the loop records), ``_ui`` (progress display and
Ctrl-C), ``_grid``, ``_sweep`` and ``_sweep_result`` ([`sweep`][jopt.training.sweep]) and
``_range_test`` ([`lr_range_test`][jopt.training.lr_range_test]).
"""

from jopt.training._batches import batches
from jopt.training._fit import fit
from jopt.training._history import History
from jopt.training._range_test import LRRangeTest, lr_range_test
from jopt.training._step import make_step
from jopt.training._sweep import sweep
from jopt.training._sweep_result import SweepResult

__all__ = [
    "History",
    "LRRangeTest",
    "SweepResult",
    "batches",
    "fit",
    "lr_range_test",
    "make_step",
    "sweep",
]
