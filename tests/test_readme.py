"""README's optimizer table lists the registry, in its order, with the real defaults.

The registry (``jopt.optimizers.ALL``) is the one list of optimizers; the README's
table is written by hand, so this test holds it to the registry: one row per entry in
the registry's order, and every ``name=value`` a row shows equals the default of that
argument in the factory's signature.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
from pathlib import Path

import jopt

README = Path(__file__).resolve().parents[1] / "README.md"


def _table_rows() -> list[tuple[str, str]]:
    """``(name, defaults cell)`` for each row of the table under "## The optimizers"."""
    section = README.read_text(encoding="utf-8").split("## The optimizers", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \| (.*?) \| .* \|$", section, re.M)


def _shown_defaults(cell: str) -> dict[str, object]:
    """The ``name=value`` pairs of the first code span of a defaults cell."""
    code = re.match(r"`([^`]*)`", cell).group(1)
    call = ast.parse(f"f({code})", mode="eval").body
    values = {}
    for keyword in call.keywords:
        if isinstance(keyword.value, ast.Name) and keyword.value.id == "inf":
            values[keyword.arg] = math.inf
        else:
            values[keyword.arg] = ast.literal_eval(keyword.value)
    return values


def test_readme_table_lists_the_registry_in_order():
    assert [name for name, _ in _table_rows()] == list(jopt.optimizers.ALL)


def test_readme_table_shows_the_real_defaults():
    for name, cell in _table_rows():
        parameters = inspect.signature(jopt.optimizers.ALL[name]).parameters
        shown = _shown_defaults(cell)
        assert "learning_rate" in shown, name
        for argument, value in shown.items():
            assert argument in parameters, (name, argument)
            assert parameters[argument].default == value, (name, argument, value)
