"""Parameter initializers as pure functions of a PRNG key.

Every initializer follows the protocol of ``jax.nn.initializers``:

```python
init(key, shape, dtype=None, *, out_sharding=None) -> Array
```

so it can be passed wherever JAX code expects one, e.g. flax's ``kernel_init=``.
``dtype=None`` is the factory's ``dtype=`` argument, else the default float dtype
(float32, or float64 with 64-bit types on), as in jax.  ``shape`` and ``dtype`` are
static (checked in Python, so they must be concrete); the ``key`` may be traced, so an
initializer can be ``jax.jit``-ed with ``static_argnums=(1, 2)`` and ``jax.vmap``-ed
over keys.  The same key always gives the same values.  16-bit dtypes are sampled in
float32 and rounded once.

**Names.** A name shared with ``jax.nn.initializers`` has jax's signature, defaults
and distribution, truncation included: ``zeros``, ``ones``, ``constant``, ``normal``,
``uniform`` (on ``[0, scale)``), ``truncated_normal``, ``variance_scaling``,
``glorot_*``, ``he_*``, ``lecun_*`` and ``orthogonal`` (for float32 and float64 the
samples are jax's, for the same key).  torch's names keep torch's distributions and
gains: ``xavier_uniform``, ``xavier_normal``, ``kaiming_uniform`` and
``kaiming_normal`` draw untruncated normals with a ``gain`` (jax's ``xavier_*`` and
``kaiming_*`` are aliases of its truncated ``glorot_*`` and ``he_*``).  torch's
``uniform_(a, b)`` is [`uniform_range`][jopt.initializers.uniform_range].

**Layout.** The fan-based initializers follow JAX's layout by default: a dense kernel
is ``(in, out)`` and a convolution kernel ``(*spatial, in, out)`` (HWIO).  Each takes
``in_axis``, ``out_axis`` and ``batch_axis``; every other axis is a receptive-field
axis (see [`compute_fans`][jopt.initializers.compute_fans]).  torch's ``(out, in, *spatial)`` layout
is ``in_axis=1, out_axis=0``.

**Why the scales.** For a layer ``z = W·a`` with zero-mean i.i.d. weights independent
of zero-mean inputs, ``Var(z) = fan_in·Var(W)·Var(a)``, so across ``L`` layers the
signal is multiplied by ``∏ fan_in·Var(W)``: it vanishes when the factor is below one,
explodes above, and is preserved when ``Var(W) = 1 / fan_in`` (LeCun et al., 1998).
Backpropagation gives the same rule with ``fan_out``; Glorot & Bengio (2010)
compromise with ``Var(W) = 2 / (fan_in + fan_out)``.  For ReLU only half of a
symmetric pre-activation survives, ``E[relu(y)²] = Var(y) / 2``, so He et al. (2015)
double it: ``Var(W) = 2 / fan_in``.  All are
[`variance_scaling`][jopt.initializers.variance_scaling] with a different ``scale`` and ``mode``;
[`calculate_gain`][jopt.initializers.calculate_gain] tabulates torch's gains.

Arguments are checked when a factory is called, and ``shape`` and ``dtype`` when an
initializer is: a wrong type raises ``TypeError``, a value out of range
``ValueError``, naming the argument.  Every factory argument after the first is
keyword-only (``variance_scaling(scale, mode, distribution)`` keeps jax's three).
"""

from jopt.initializers._basic import (
    constant,
    normal,
    ones,
    truncated_normal,
    uniform,
    uniform_range,
    zeros,
)
from jopt.initializers._checks import Initializer, calculate_gain, compute_fans
from jopt.initializers._fans import (
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    lecun_normal,
    lecun_uniform,
    variance_scaling,
)
from jopt.initializers._orthogonal import orthogonal
from jopt.initializers._torch import (
    kaiming_normal,
    kaiming_uniform,
    torch_default_bias,
    torch_default_kernel,
    xavier_normal,
    xavier_uniform,
)

__all__ = [
    "Initializer",
    "calculate_gain",
    "compute_fans",
    "constant",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "torch_default_bias",
    "torch_default_kernel",
    "truncated_normal",
    "uniform",
    "uniform_range",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
