"""The lecture's optional dependencies, imported when first needed.

scikit-learn (the digits), matplotlib (figures) and tqdm (progress bars) belong to
jopt's ``examples`` extra, not to its runtime dependencies.  ``require`` imports
one of them inside the function that needs it and, when it is missing, raises an
``ImportError`` that says which package to install and how.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = 'pip install "jopt[examples]"'

# The module each extra is imported as -> the name pip installs it by.
PACKAGES = {"sklearn": "scikit-learn", "matplotlib": "matplotlib", "tqdm": "tqdm"}


class MissingExtra(ImportError):
    """A package of the ``examples`` extra is not installed."""


def require(module: str, *, purpose: str) -> ModuleType:
    """``import module``, or a [`MissingExtra`][jopt.lecture.MissingExtra] naming the package and
    the extra.

    Args:
        module: the module to import, e.g. ``"sklearn.datasets"``.
        purpose: what needs it, for the message (``"the digits task"``).

    Returns:
        The imported module.

    Raises:
        MissingExtra: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".", 1)[0]
        package = PACKAGES.get(top, top)
        raise MissingExtra(
            f"{purpose} needs {package}, part of jopt's examples extra: {INSTALL_HINT}"
        ) from error
