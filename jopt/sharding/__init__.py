"""Optimizer state on several devices and hosts: shardings for ``jax.jit`` and ``shard_map``.

jopt's transformations are plain JAX functions, so they run unchanged on sharded
arrays; this package answers *where the params and the state should live*, and
[`jopt.sharding.launch`][jopt.sharding.launch] starts several JAX processes on one machine.

**State follows the params.**  ``optimizer.init(params)`` called eagerly on sharded
params returns per-parameter state leaves (moments, accumulators, momentum buffers)
with their parameter's sharding, and 0-d leaves (step counts) replicated on the
params' mesh.  Under ``jax.jit`` the output layout is the compiler's choice unless it
is given: ``jax.jit(optimizer.init)(params)`` may return replicated state.  Pass
[`state_shardings`][jopt.sharding.state_shardings] as ``out_shardings`` to pin it.

**ZeRO stage 1** (Rajbhandari et al., 2020).  In plain data parallelism every device
keeps a full copy of the params and of the state, so Adam's two moments cost each
device twice the params' memory.  [`zero_shardings`][jopt.sharding.zero_shardings] instead splits
every state leaf along the data-parallel mesh axis, one block of ``shape[d] / n`` rows per device
for ``n`` devices on that axis.  Jitting the step with those shardings (params
replicated) makes XLA insert the collectives: each device updates only its block of
the state from its block of the averaged gradient, and the new params are gathered.
A sketch, with a batch sharded over ``"data"``:

```python
mesh = jax.make_mesh((jax.device_count(),), ("data",))
params = jax.device_put(params, NamedSharding(mesh, P()))       # replicated
optimizer = jopt.adam(1e-3)
state_sh, report = jopt.sharding.zero_shardings(optimizer, params, mesh)
print(report)                                 # what was split, what was not
state = jax.jit(optimizer.init, out_shardings=state_sh)(params)
params_sh = jax.tree.map(lambda p: p.sharding, params)

@partial(jax.jit, in_shardings=(params_sh, state_sh, batch_sh),
         out_shardings=(params_sh, state_sh, None), donate_argnums=(0, 1))
def step(params, state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, state = optimizer.update(grads, state, params)
    return jopt.apply_updates(params, updates), state, loss
```

**ZeRO stage 3 / FSDP.**  [`fsdp_shardings`][jopt.sharding.fsdp_shardings] splits the params too,
and each state leaf follows its parameter; the same step, jitted with those shardings for the
params, makes XLA gather each parameter where it is used.  With ``offload=True`` the
state lives in host memory between steps (wrap the optimizer with
[`offloaded`][jopt.sharding.offloaded]).

**Matrix optimizers.**  Muon and SOAP work on whole matrices, which FSDP splits; given
``mesh=``, [`jopt.muon`][jopt.muon] and [`jopt.soap`][jopt.soap] compute each matrix once,
on one owner device of the axis, through [`owner_map`][jopt.sharding.owner_map], and split
the results again, instead of gathering matrices around every product (and, for
SOAP, eigendecomposing every statistic on every device).

**Several hosts.**  Nothing changes in the step: after
``jax.distributed.initialize``, ``jax.devices()`` lists every process's devices,
and a mesh built from it spans the hosts.  [`jopt.sharding.launch`][jopt.sharding.launch] runs such
a program as several processes on one machine (with simulated CPU devices and gloo
collectives), which is how the tests check the multi-host path.

On a mesh whose axes are ``AxisType.Explicit`` (the default of ``jax.make_mesh`` in
recent JAX), call jitted ``init`` and the step inside ``with jax.set_mesh(mesh):``;
JAX needs the mesh in context to create arrays with an explicit sharding.
"""

from jopt.sharding import launch
from jopt.sharding._fsdp import fsdp_shardings, offloaded
from jopt.sharding._owners import owner_map
from jopt.sharding._report import FsdpReport, ZeroLeaf, ZeroReport
from jopt.sharding._zero import state_shardings, zero_shardings

__all__ = [
    "FsdpReport",
    "ZeroLeaf",
    "ZeroReport",
    "fsdp_shardings",
    "launch",
    "offloaded",
    "owner_map",
    "state_shardings",
    "zero_shardings",
]
