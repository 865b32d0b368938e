"""The family benchmarks, run from ``python -m benchmarks --families ...``.

Each family of optimizers added after the first nine has its own module, with its own
reference systems (the authors' torch code, torch.optim's newer classes, scipy):
``python -m benchmarks.<family>`` runs it alone and saves its results next to the
harness's.  ``--families`` runs the chosen ones after the harness's rows, each in a
fresh process (its own thread pinning and its own imports, as run alone), and appends
each one's markdown table to the harness's report: the Adafactor-against-Adam state
row, Muon against ``torch.optim.Muon``, ``jopt.minimize`` against scipy, SOAP's refresh
step, and the rest.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

# family -> the flags of a quick run (the module's smallest; none where it has none)
FAMILIES: dict[str, tuple[str, ...]] = {
    "torch_optim": ("--quick", "--no-save"),
    "adam_like": ("--quick", "--no-save"),
    "modern": ("--repeats", "2", "--no-save"),
    "tuning_free": ("--quick",),
    "muon": ("--quick",),
    "soap": ("--quick", "--no-save"),
    "minimize": ("--repeats", "2"),
}
TIMEOUT_S = 3600


def parse(text: str) -> list[str]:
    """Family names, comma-separated, or ``all``; ``none`` (the default) runs none."""
    text = text.strip()
    if text == "none":
        return []
    if text == "all":
        return list(FAMILIES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {','.join(FAMILIES)} or all")
    return names


def run(names: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    """Run each family's module; its exit code and the markdown it printed."""
    results = {}
    for name in names:
        command = [sys.executable, "-m", f"benchmarks.{name}", *(FAMILIES[name] if quick else ())]
        print(f"# family {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
            )
            results[name] = {"returncode": done.returncode, "markdown": done.stdout.strip()}
            if done.returncode != 0:
                results[name]["stderr"] = done.stderr[-4000:]
        except subprocess.TimeoutExpired:
            results[name] = {"returncode": None, "markdown": f"timed out after {TIMEOUT_S} s"}
    return results


def render(results: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: each family's own report under a heading."""
    lines = []
    for name, result in results.items():
        lines += ["", f"## Family `{name}` (`python -m benchmarks.{name}`)", ""]
        if result["returncode"] != 0:
            lines += [f"Failed (exit code {result['returncode']}):", "", "```"]
            lines += [result.get("stderr", result["markdown"])[-2000:], "```"]
        else:
            lines.append(result["markdown"])
    return lines
