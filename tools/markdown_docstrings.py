"""Convert reStructuredText markup in docstrings to the Markdown the docs site renders.

Run by hand on modules written with Sphinx roles:

    python tools/markdown_docstrings.py jopt/training/*.py

* ``:func:`x```, ``:class:`~jopt.X```, ... become mkdocs-autorefs links,
  ``[`x`][jopt.module.x]``, when ``x`` is a public name (looked up as written, in the
  file's public module, then in ``jopt``), and a plain ``x`` in double backticks
  otherwise;
* a paragraph ending in ``::`` and its indented literal block become a paragraph
  ending in ``:`` and a fenced block (``text``, or ``python`` with ``--python
  FILE:LINE`` for the blocks that are code).

Lines that grow past the line length are listed; rewrap them by hand (inside an
``Args:`` entry, continuation lines are indented two more spaces than the entry).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import docs_site  # noqa: E402

ROLE = re.compile(r":(?:func|class|data|mod|meth|attr|obj|exc):`(~?)([^`]+)`")


def public_module(path: Path) -> str:
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(part for part in parts if not part.startswith("_"))


def convert_roles(text: str, path: Path) -> str:
    known = set(docs_site.homes()) | set(docs_site.public_modules())
    module = public_module(path)

    def replace(match: re.Match) -> str:
        short, target = match.group(1) == "~", match.group(2)
        shown = target.rsplit(".", 1)[-1] if short else target
        for candidate in (target, f"{module}.{target}", f"jopt.{target}"):
            if candidate in known:
                return f"[`{shown}`][{candidate}]"
        return f"``{shown}``"

    return ROLE.sub(replace, text)


def convert_literal_blocks(lines: list[str], python_lines: set[int]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not (line.rstrip().endswith("::") and line.strip() != "::"):
            out.append(line)
            i += 1
            continue
        indent = " " * (len(line) - len(line.lstrip()))
        out += [line.rstrip()[:-1], ""]
        start = i + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        depth = len(lines[start]) - len(lines[start].lstrip())
        end = start
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) >= depth
        ):
            end += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        language = "python" if i + 1 in python_lines else "text"
        out.append(f"{indent}```{language}")
        out += [indent + block[depth:] if block.strip() else "" for block in lines[start:end]]
        out.append(f"{indent}```")
        i = end
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="FILE:LINE",
        help="a '::' line whose block is Python code (repeatable)",
    )
    parser.add_argument("--line-length", type=int, default=100)
    args = parser.parse_args()
    python = {(Path(f).resolve(), int(n)) for f, n in (s.rsplit(":", 1) for s in args.python)}
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        marked = {n for f, n in python if f == path.resolve()}
        new = "\n".join(convert_literal_blocks(convert_roles(text, path).split("\n"), marked))
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"converted {path}")
        for number, line in enumerate(new.split("\n"), 1):
            if len(line) > args.line_length:
                print(f"  {path}:{number}: {len(line)} characters")


if __name__ == "__main__":
    main()
