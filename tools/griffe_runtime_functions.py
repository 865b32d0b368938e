"""A griffe extension for the docs: functions that the source defines by assignment.

Static analysis sees ``glorot_uniform = _named(...)`` (or ``abs_sq =
_numerics.abs_sq``) as an attribute with no docstring, although at run time it is a
function with a signature and a docstring.  After a module is loaded, each public
attribute without a docstring whose run-time value is a plain function of jopt is
replaced by that function as griffe inspects it, so the API reference shows its
signature, its docstring and its ``Args:`` table.  ``mkdocs.yml`` names this file
under the Python handler's ``extensions``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import griffe


class RuntimeFunctions(griffe.Extension):
    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        candidates = [
            name
            for name, member in mod.members.items()
            if not name.startswith("_")
            and not member.is_alias
            and member.is_attribute
            and member.docstring is None
        ]
        if not candidates or mod.name == "__main__":  # importing __main__ runs it
            return
        runtime = importlib.import_module(mod.path)
        inspected = None
        for name in candidates:
            value = getattr(runtime, name, None)
            if not (inspect.isfunction(value) and value.__module__.startswith("jopt")):
                continue
            if not inspect.getdoc(value):
                continue
            if inspected is None:
                inspected = griffe.inspect(mod.path, filepath=mod.filepath)
            member = inspected.get_member(name)
            if member is None:
                continue
            if member.is_alias:  # defined in another module: point there
                mod.set_member(name, griffe.Alias(name, member.target_path))
            elif member.is_function:
                member.lineno = mod.members[name].lineno
                member.endlineno = mod.members[name].endlineno
                mod.set_member(name, member)
