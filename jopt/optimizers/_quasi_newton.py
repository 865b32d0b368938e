"""Quasi-Newton methods: L-BFGS, one iteration per update."""

from __future__ import annotations

from jopt._core import GradientTransformation, ScalarOrSchedule
from jopt.transforms import scale_by_lbfgs_step

__all__ = ["lbfgs"]


def lbfgs(
    learning_rate: ScalarOrSchedule = 1.0,
    *,
    history_size: int = 100,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    line_search: str | None = "strong_wolfe",
) -> GradientTransformation:
    """L-BFGS (Liu & Nocedal, 1989) with a strong-Wolfe line search, as torch.optim.LBFGS.

    One update is one iteration: the direction ``d = −H·g`` from the last
    ``history_size`` curvature pairs by the two-loop recursion, then a step length
    ``t`` from the line search started at ``η`` (``min(1, 1/‖g‖₁)·η`` the first time),
    and the update ``t·d``.  torch's defaults.  Called as
    ``update(grads, state, params, value=loss, value_fn=loss_fn)``; see
    [`scale_by_lbfgs_step`][jopt.transforms.scale_by_lbfgs_step] for the algorithm, the
    stopping rules and the state, and [`jopt.minimize`][jopt.minimize] for a whole
    solve in one compiled loop.

    Matches ``torch.optim.LBFGS(lr, max_iter=1, max_eval=26, history_size,
    tolerance_grad, tolerance_change, line_search_fn)`` stepped once per update (a
    torch ``step`` with ``max_iter=k`` is ``k`` updates; see the porting guide).

    Args:
      learning_rate: η, the first trial step (the fixed step with ``line_search=None``).
      history_size: m, the number of curvature pairs kept.
      tolerance_grad: no step once ``max|g| ≤ tolerance_grad``.
      tolerance_change: no step once ``gᵀd > −tolerance_change``; the line search's
        smallest bracket.
      line_search: ``"strong_wolfe"`` or ``None`` (a fixed step η, for stochastic
        gradients).

    Returns:
      The transformation; its state is a
      [`jopt.transforms.LbfgsState`][jopt.transforms.LbfgsState].

    References:
      Liu, D. C. & Nocedal, J. (1989). On the limited memory BFGS method for large
      scale optimization. *Mathematical Programming* 45, 503–528.

      Nocedal, J. & Wright, S. J. (2006). *Numerical Optimization*, 2nd ed.,
      algorithms 3.5, 3.6 and 7.4. Springer.
    """
    return scale_by_lbfgs_step(
        learning_rate,
        history_size=history_size,
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        line_search=line_search,
    )
