"""Cautious updates: drop the components that move against the gradient (Liang et al., 2025)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jopt import _align, _core, _numerics
from jopt._core import GradientTransformation

__all__ = ["cautious"]

# The least kept fraction the rescaling divides by (the authors' reference clamps the
# mean of the mask at 1e-3), so a leaf that keeps almost nothing is not blown up.
MIN_FRACTION = 1e-3


def _caution(u: jax.Array, g: jax.Array) -> jax.Array:
    """``u`` where it points downhill (``Re(u·ḡ) < 0``), 0 elsewhere, over the kept fraction."""
    if u.size == 0:
        return u
    dtype = _numerics.compute_dtype(jnp.promote_types(u.dtype, g.dtype))
    u_c, g_c = _numerics.cast(u, dtype), _numerics.cast(g, dtype)
    keep = jnp.real(u_c * jnp.conj(g_c)) < 0
    fraction = jnp.mean(keep.astype(_numerics.real_dtype(dtype)))
    scaled = u_c / jnp.maximum(fraction, MIN_FRACTION)
    return jnp.where(keep, scaled, 0).astype(u.dtype)


def cautious(inner: GradientTransformation) -> GradientTransformation:
    """The cautious version of an optimizer (Liang et al., 2025, "Cautious Optimizers").

    ``inner`` proposes the update ``u`` (to be added to the parameters, jopt's and
    optax's convention) from the gradient ``g``.  For each leaf, the components where
    ``u`` and ``g`` have the same sign would raise the loss to first order; they are
    set to 0 and the others are scaled by the inverse of the fraction kept:

    ```text
    φ = 𝟙(u ⊙ g < 0),   u ← u ⊙ φ / max(mean(φ), 10⁻³).
    ```

    The fraction is per leaf (per parameter tensor) with the floor 10⁻³, as in the
    authors' reference (C-Optim's ``c_adamw.py``); the paper's first version scaled by
    ``dim/(nnz + 1)`` instead, which pytorch-optimizer's ``cautious`` options keep.  In
    the paper ``u`` is subtracted, hence its ``u ⊙ g > 0``.  For complex leaves a
    component is kept where ``Re(u·ḡ) < 0``.  ``None``, integer and boolean leaves
    pass through.

    Wrap the whole optimizer (learning rate included), e.g.
    ``cautious(jopt.lion(3e-4))``.  Everything ``inner`` returns is masked, its
    weight decay too; C-AdamW's reference masks the Adam direction and decays
    unmasked, which is ``chain(cautious(chain(scale_by_adam(), scale(-1.0))),
    scale(-1.0), add_decayed_weights(λ), scale_by_learning_rate(η))``.

    Args:
      inner: the optimizer to make cautious (jopt's or optax's).

    Returns:
      A transformation whose state is ``inner``'s own (cautious keeps none).
    """
    inner = _core._as_transformation(inner, "inner")

    def update(updates, state, params=None, **extra_args):
        proposed, state = inner.update(updates, state, params, **extra_args)
        return _align.map_updates(_caution, proposed, ("gradients", updates)), state

    return GradientTransformation(inner.init, update)
