"""The documentation site builds, covers every public name, and its examples run.

The site is built once per session with ``mkdocs build --strict`` (which fails on any
warning: a broken link or anchor, a docstring that does not parse, a reference to a
name that is not documented).  The tests then read the built HTML:

* every public name, ``module.name`` for each name in the ``__all__`` of ``jopt`` and
  of every public submodule (found here by walking the package, not by asking the
  docs generator), has an anchor in the API reference;
* every optimizer of ``jopt.optimizers.ALL`` has a page with its defaults (read here
  from its signature), the fields of its state (read here from
  ``jax.eval_shape(optimizer.init, params)``) and a reference.

The Python examples of the guide pages run in a fresh interpreter.  The module skips
when the ``docs`` extra (mkdocs) is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import html
import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import jopt

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600
# The guide pages whose ```python blocks form a runnable program, page by page.
RUNNABLE_PAGES = [
    "index.md",
    "getting-started.md",
    "blocks.md",
    "schedules.md",
    "wrappers.md",
    "hyperparams.md",
    "training.md",
    "initializers.md",
    "checkpoints.md",
]
# Modules whose docstrings still use Sphinx roles (:func:`x`) and ``::`` literal
# blocks, to be converted to the Markdown style of the rest of the package.
NOT_YET_MARKDOWN = ("jopt/training/", "jopt/lecture/", "jopt/__main__.py")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    return out


def _public_names() -> list[str]:
    """``module.name`` for every name in the ``__all__`` of jopt's public modules."""
    modules = {"jopt": jopt}
    for info in pkgutil.walk_packages(jopt.__path__, "jopt."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            module = importlib.import_module(info.name)
            if hasattr(module, "__all__"):
                modules[info.name] = module
    names = []
    for module_name, module in modules.items():
        names.append(module_name)
        names += [f"{module_name}.{name}" for name in module.__all__]
    return names


def _ids(pages: list[Path]) -> set[str]:
    return {
        html.unescape(i) for page in pages for i in re.findall(r'id="([^"]+)"', page.read_text())
    }


def test_every_public_name_is_in_the_api_reference(site):
    names = _public_names()
    assert {"jopt.adam", "jopt.optimizers.ALL", "jopt.sharding.launch.run"} <= set(names)
    anchors = _ids(list((site / "api").rglob("*.html")))
    missing = [name for name in names if name not in anchors]
    assert not missing, f"not in the API reference: {missing}"


def _page_text(path: Path) -> str:
    """The words of a built page's article (no navigation, no table of contents)."""
    article = re.search(r"<article[^>]*>(.*)</article>", path.read_text(), re.S).group(1)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", article)).split())


def _state_fields(state) -> set[str]:
    """The field names of every NamedTuple in an abstract optimizer state."""
    if hasattr(state, "_fields"):
        return set(state._fields).union(*(_state_fields(v) for v in state))
    if isinstance(state, (tuple, list)):
        return set().union(*(_state_fields(v) for v in state))
    return set()


def test_every_optimizer_has_a_page_with_defaults_state_and_reference(site):
    params = {"b": jnp.zeros(3), "w": jnp.zeros((4, 3))}
    index = _page_text(site / "optimizers" / "index.html")
    for name, factory in jopt.optimizers.ALL.items():
        assert name in index, name
        page = _page_text(site / "optimizers" / name / "index.html")
        defaults = page.split(" Defaults ", 1)[1].split(" Returns ", 1)[0]
        for parameter in inspect.signature(factory).parameters.values():
            assert f"{parameter.name} {parameter.default!r}" in defaults, (name, parameter)
        state = page.split(" State ", 1)[1].split("References", 1)[0]
        for field in _state_fields(jax.eval_shape(factory().init, params)):
            assert f" {field} " in state, (name, field)
        reference = page.split("References", 1)[1]
        assert re.search(r"(19|20)\d\d", reference), (name, reference[:200])


def test_readme_links_to_built_pages(site):
    site_url = re.search(r"^site_url: (\S+)$", (ROOT / "mkdocs.yml").read_text(), re.M).group(1)
    links = re.findall(re.escape(site_url) + r"([\w/.-]*)", (ROOT / "README.md").read_text())
    assert len(links) > 10, links
    missing = [link for link in links if not (site / link / "index.html").is_file()]
    assert not missing, f"README links to pages the site does not have: {missing}"


def test_docstrings_use_markdown_references():
    offenders = []
    for path in sorted((ROOT / "jopt").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(NOT_YET_MARKDOWN):
            continue
        text = path.read_text()
        for pattern in (r":(func|class|mod|meth|data|attr):`", r"\S::\n"):
            offenders += [f"{relative}: {m.group(0)!r}" for m in re.finditer(pattern, text)]
    assert not offenders, "\n".join(offenders)


def _python_blocks(page: Path) -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    return "\n".join(blocks)


def test_guide_examples_run(tmp_path):
    # One interpreter for all pages (importing jax once), a fresh namespace per page;
    # the working directory is a temporary one, where the checkpoint example writes.
    programs = {page: _python_blocks(ROOT / "docs" / page) for page in RUNNABLE_PAGES}
    assert all(programs.values()), [page for page, code in programs.items() if not code]
    runner = (
        "import json, sys\n"
        "for page, code in json.loads(sys.stdin.read()).items():\n"
        "    print('page', page, flush=True)\n"
        "    exec(compile(code, page, 'exec'), {'__name__': '__main__'})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner],
        input=json.dumps(programs),
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
