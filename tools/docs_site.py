"""The documentation pages generated from the code, as a mkdocs hook.

``mkdocs.yml`` names this file under ``hooks:``.  At build time it adds, without
writing anything to disk:

* ``optimizers/<name>.md``: one page per entry of ``jopt.optimizers.ALL``, with
  the docstring's equations, the defaults read from the signature, the state fields
  read from ``jax.eval_shape(optimizer.init, params)`` on a small tree, and the
  reference paper (the docstring's ``References:`` section, or the citation in its
  first line);
* ``api/<module>.md``: the API reference, one page per public module (``jopt`` and
  every submodule whose path has no private part and that defines ``__all__``, plus
  the modules those ``__all__`` name).  Each public object is rendered once, on the
  page of the deepest public module that exports it; every other public name of it
  (``jopt.adam`` for ``jopt.optimizers.adam``) is an anchor next to that rendering;
* ``benchmarks.md``: ``benchmarks/README.md`` and the latest tables,
  ``benchmarks/results/*.md``;
* ``notebooks/*.ipynb``, rendered by mkdocs-jupyter, and ``changelog.md``.

The nav sections that start with ``optimizers/index.md``, ``notebooks/index.md`` and
``api/index.md`` get the generated pages appended, and a hand-written page may ask for
a generated list with an HTML comment ``<!-- generated: NAME -->`` (see ``MARKERS``).
A new optimizer, module or notebook therefore appears without editing the docs.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType

import griffe
import jax
import jax.numpy as jnp
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
# Document the checkout the site is built from, whatever jopt is installed: import it
# now, while this directory is first on the path (mkdocs restores sys.path after
# loading a hook; the submodules then come from the package's own path).
sys.path.insert(0, str(ROOT))
import jopt  # noqa: E402

if Path(jopt.__file__).resolve().parents[1] != ROOT:
    raise RuntimeError(f"jopt was imported from {jopt.__file__}, not from {ROOT}")

# The small tree the optimizer pages initialize: a matrix and a vector.
EXAMPLE_PARAMS = {
    "b": jax.ShapeDtypeStruct((3,), jnp.float32),
    "w": jax.ShapeDtypeStruct((4, 3), jnp.float32),
}


# ----------------------------------------------------------------------------- inventory


@functools.cache
def public_modules() -> dict[str, ModuleType]:
    """``jopt`` and its public submodules, by dotted name, sorted."""
    found = {"jopt": jopt}
    for info in pkgutil.walk_packages(jopt.__path__, "jopt."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            found[info.name] = module
    for module in list(found.values()):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.ismodule(value):
                found.setdefault(value.__name__, value)
    return dict(sorted(found.items()))


@functools.cache
def homes() -> dict[str, str]:
    """Every public name ``module.name`` -> the path its object is rendered under."""
    exporters: dict[tuple[str, int], list[str]] = {}
    result = {}
    for module_name, module in public_modules().items():
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if inspect.ismodule(value):
                result[f"{module_name}.{name}"] = value.__name__
            else:
                exporters.setdefault((name, id(value)), []).append(module_name)
    for (name, _), modules in exporters.items():
        home = min(modules, key=lambda m: (-m.count("."), m))  # the deepest, then by name
        for module_name in modules:
            result[f"{module_name}.{name}"] = f"{home}.{name}"
    return result


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


# ----------------------------------------------------------------------------- API pages


def api_page(module_name: str) -> str:
    """The reference page of one public module."""
    module = public_modules()[module_name]
    aliases: dict[str, list[str]] = {}
    for public, home in homes().items():
        if public != home:
            aliases.setdefault(home, []).append(public)
    # A module with __all__ shows its docstring here and each name below; a module
    # that is only named by another's __all__ shows all its public members.
    lines = [f"::: {module_name}", "    options:", "      heading_level: 1"]
    lines += ["      members: false"] if hasattr(module, "__all__") else []
    lines.append("")
    elsewhere = []
    for name in getattr(module, "__all__", ()):
        path = f"{module_name}.{name}"
        home = homes()[path]
        if home != path or inspect.ismodule(getattr(module, name)):
            elsewhere.append((path, home))
            continue
        lines += [f"[](){{#{alias}}}" for alias in sorted(aliases.get(path, ()))]
        lines += [f"::: {path}", ""]
    if elsewhere:
        lines += ["## Documented elsewhere", "", "| name | documented as | |", "|---|---|---|"]
        for path, home in elsewhere:
            target = public_modules().get(home)
            obj = target if target is not None else _resolve(home)
            lines.append(f"| `{path}` | [`{home}`][{home}] | {_one_line(_summary(obj))} |")
    return "\n".join(lines) + "\n"


def _resolve(path: str):
    module_name, _, name = path.rpartition(".")
    return getattr(public_modules()[module_name], name)


def _one_line(text: str) -> str:
    return text.replace("|", "\\|")


def names_table(module_name: str) -> str:
    """A table of the public functions of a module, each linked to its reference."""
    module = public_modules()[module_name]
    rows = ["| name | |", "|---|---|"]
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value) and not inspect.isclass(value):
            home = homes()[f"{module_name}.{name}"]
            rows.append(f"| [`{name}`][{home}] | {_one_line(_summary(value))} |")
    return "\n".join(rows)


def api_index() -> str:
    rows = ["| module | |", "|---|---|"]
    for module_name, module in public_modules().items():
        rows.append(f"| [`{module_name}`][{module_name}] | {_one_line(_summary(module))} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- optimizers


def _parse(obj) -> list:
    text = inspect.getdoc(obj) or ""
    options = {
        "warn_missing_types": False,
        "warn_unknown_params": False,
        "returns_multiple_items": False,
        "returns_named_value": False,
    }
    return griffe.Docstring(text, parser="google", parser_options=options).parsed


def _reference(sections: list, summary: str) -> str:
    for section in sections:
        if section.kind.value == "admonition" and section.title.lower().startswith("reference"):
            return section.value.contents
    cited = re.search(r"\(([^()]*\d{4}[^()]*)\)", summary)
    return cited.group(1) if cited else ""


def _describe(leaf) -> str:
    shape = ", ".join(map(str, leaf.shape))
    return f"`{leaf.dtype}[{shape}]`"


def _field_value(value) -> str:
    leaves, treedef = jax.tree.flatten(value)
    if treedef == jax.tree.structure(EXAMPLE_PARAMS):
        parts = jax.tree.map(_describe, value)
        return "like params: " + ", ".join(f"`{k}` {v}" for k, v in sorted(parts.items()))
    if len(leaves) == 1 and treedef.num_nodes == 1:
        return _describe(leaves[0])
    if not leaves:
        return "—"
    flat = jax.tree_util.tree_flatten_with_path(value)[0]
    return ", ".join(f"`{jax.tree_util.keystr(p)}` {_describe(x)}" for p, x in flat)


def _attributes(cls) -> dict[str, str]:
    """``field -> description`` from the ``Attributes:`` section of a class docstring."""
    for section in _parse(cls):
        if section.kind.value == "attributes":
            return {a.name: " ".join(a.description.split()) for a in section.value}
    return {}


def state_rows(state, path: str = "state") -> list[str]:
    """Markdown table rows ``| where | type | field | leaves | meaning |`` for a state."""
    if hasattr(state, "_fields"):
        kind = f"`{type(state).__name__}`"
        if not state._fields:
            return [f"| `{path}` | {kind} | — | — | no state |"]
        meaning = _attributes(type(state))
        rows, labelled = [], False
        for field in state._fields:
            value = getattr(state, field)
            nested = isinstance(value, tuple) and (
                hasattr(value, "_fields") or any(hasattr(v, "_fields") for v in value)
            )
            if nested:  # a wrapper's inner state
                rows += state_rows(value, f"{path}.{field}")
                continue
            label = "" if labelled else f"`{path}` | {kind}"
            labelled = True
            rows.append(
                f"| {label or ' | '} | `{field}` | {_field_value(value)} "
                f"| {_one_line(meaning.get(field, ''))} |"
            )
        return rows
    if isinstance(state, tuple):
        return [row for i, part in enumerate(state) for row in state_rows(part, f"{path}[{i}]")]
    return [f"| `{path}` | `{type(state).__name__}` | — | {_field_value(state)} | |"]


def optimizer_page(name: str) -> str:
    factory = jopt.optimizers.ALL[name]
    sections = _parse(factory)
    summary = _summary(factory)
    described, returns, body = {}, "", []
    for section in sections:
        kind = section.kind.value
        if kind == "parameters":
            described = {p.name: " ".join(p.description.split()) for p in section.value}
        elif kind == "returns":
            returns = " ".join(r.description for r in section.value)
        elif kind == "text":
            body.append(section.value)
    body_text = "\n\n".join(body).partition("\n\n")[2]
    home = homes()[f"jopt.optimizers.{name}"]
    lines = [f"# {name}", "", f"`jopt.{name}` · [API reference][{home}]", "", summary, ""]
    if body_text:
        lines += [body_text, ""]
    lines += ["## Defaults", "", "| argument | default | meaning |", "|---|---|---|"]
    for parameter in inspect.signature(factory).parameters.values():
        default = "required" if parameter.default is parameter.empty else repr(parameter.default)
        meaning = _one_line(described.get(parameter.name, ""))
        lines.append(f"| `{parameter.name}` | `{default}` | {meaning} |")
    if returns:
        lines += ["", "## Returns", "", returns]
    state = jax.eval_shape(factory().init, EXAMPLE_PARAMS)
    lines += [
        "",
        "## State",
        "",
        f"`jax.eval_shape(jopt.{name}().init, params)` with `params = "
        "{'b': float32[3], 'w': float32[4, 3]}`:",
        "",
        "| where | type | field | leaves | meaning |",
        "|---|---|---|---|---|",
        *state_rows(state),
        "",
        "## References",
        "",
        _reference(sections, summary) or "—",
        "",
    ]
    return "\n".join(lines)


def registry_table() -> str:
    rows = ["| optimizer | demo learning rate | |", "|---|---:|---|"]
    for name, factory in jopt.optimizers.ALL.items():
        rate = jopt.optimizers.DEMO_LEARNING_RATES[name]
        rows.append(f"| [`{name}`]({name}.md) | {rate:g} | {_one_line(_summary(factory))} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- other pages


def _shift_headings(text: str, top: int) -> str:
    """Moves every ATX heading outside code fences so that the highest is level ``top``."""
    lines, fenced, levels = text.splitlines(), False, []
    for line in lines:
        fenced ^= line.startswith("```")
        if not fenced and (m := re.match(r"(#+) ", line)):
            levels.append(len(m.group(1)))
    shift = top - min(levels, default=top)
    out, fenced = [], False
    for line in lines:
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#+ ", line):
            line = "#" * shift + line if shift >= 0 else line[-shift:]
        out.append(line)
    return "\n".join(out)


def benchmarks_page() -> str:
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    parts = [_shift_headings(readme, 1), "", "## Latest results", ""]
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        parts += [
            f"### `benchmarks/results/{path.name}`",
            "",
            _shift_headings(path.read_text(encoding="utf-8"), 4),
            "",
        ]
    return "\n".join(parts)


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def notebook_list() -> str:
    return "\n".join(f"* [{path.stem}]({path.name})" for path in notebooks())


GENERATED = {
    "benchmarks.md": benchmarks_page,
    "changelog.md": lambda: (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"),
}
MARKERS = {
    "registry-table": registry_table,
    "notebook-list": notebook_list,
    "api-modules": api_index,
    "names": names_table,  # <!-- generated: names MODULE -->
}


# ----------------------------------------------------------------------------- mkdocs events


def _nav_pages() -> dict[str, list]:
    return {
        "optimizers/index.md": [{name: f"optimizers/{name}.md"} for name in jopt.optimizers.ALL],
        "notebooks/index.md": [{p.stem: f"notebooks/{p.name}"} for p in notebooks()],
        "api/index.md": [{m: f"api/{m}.md"} for m in public_modules()],
    }


def _extend_nav(items: list, extra: dict[str, list]) -> None:
    for item in items:
        if isinstance(item, dict):
            for value in item.values():
                if isinstance(value, list):
                    _extend_nav(value, extra)
    for index, pages in extra.items():
        if index in items:
            items.extend(pages)


def on_config(config):
    _extend_nav(config["nav"], _nav_pages())
    return config


@event_priority(100)  # before mkdocs-jupyter sorts the notebooks out
def on_files(files, config):
    generated = dict(GENERATED)
    for name in jopt.optimizers.ALL:
        generated[f"optimizers/{name}.md"] = functools.partial(optimizer_page, name)
    for module_name in public_modules():
        generated[f"api/{module_name}.md"] = functools.partial(api_page, module_name)
    for uri, make in generated.items():
        files.append(File.generated(config, uri, content=make()))
    for path in notebooks():
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown, page, config, files):
    def fill(match):
        make, argument = MARKERS[match.group(1)], match.group(2)
        return make(argument) if argument else make()

    return re.sub(r"<!-- generated: ([\w-]+)(?: ([\w.]+))? -->", fill, markdown)
