"""The harness's results as markdown: the tables of ``cpu.md`` and the like."""

from __future__ import annotations

from benchmarks import families, systems
from benchmarks.training import render as render_training

AA = "jopt#2"  # the A/A control's name in the results


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    value = seconds * 1e3
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _ratio(entry: dict | None) -> str:
    if not entry:
        return "—"
    if "q25" in entry:
        return f"{entry['median']:.2f} ({entry['q25']:.2f}–{entry['q75']:.2f})"
    return f"{entry['median']:.2f}"


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.0f}" if n >= 2**20 else f"{n / 2**20:.2f}"


def render_markdown(results) -> str:
    """Every table of a run, as one markdown text."""
    steps = bool(results["rows"])
    lines = [
        *_header(results),
        *(_step_table(results) if steps else []),
        *(_nominal_table(results) if steps else []),
        *(_floor_table(results) if steps else []),
        *(_compile_table(results) if steps else []),
        *(_memory_table(results) if steps else []),
        *(render_training(results["training"]) if "training" in results else []),
        *(families.render(results["families"]) if "families" in results else []),
        *_notes(results),
    ]
    return "\n".join(lines) + "\n"


def _header(results) -> list[str]:
    m = results["machine"]
    c = results["config"]
    load = results["load"]
    words = ", ".join(f"{name} {w:g}" for name, w in c["words_per_param"].items())
    return [
        f"### Benchmark: {results['date']}, {m['platform'].upper()}"
        + (" (tiny shapes: a smoke run, not a measurement)" if c["quick"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cpus_available']} of {m['cpus_total']} CPUs used"
        + (f", {m['memory_bytes'] / 2**30:.0f} GiB" if m["memory_bytes"] else "")
        + (f"; device {m['device']}" if m["platform"] != "cpu" else "")
        + f". Load average (1/5/15 min) {load['before']} before, {load['after']} after."
        + f" jax {m['jax']}, optax {m['optax']}"
        + (
            f", torch {m['torch']} ({m['torch_device']}, {m['torch_threads']} threads)"
            if m["torch"]
            else ""
        )
        + f". {c['repeats']} interleaved rounds per row, batches of ~{c['batch_seconds']} s.",
    ] + (
        []
        if not results["rows"]
        else [
            "",
            "Step time: median ms per step; ratios are medians over rounds of per-round time",
            "ratios (quartiles in brackets), below 1 means jopt is faster; every system got",
            f"fresh buffers {c['instances']} times per row. A/A compares jopt's step with a",
            "second copy of itself on its own buffers: how far from 1 it lands is the",
            "resolution of the other ratios on this machine. GB/s counts the least",
            f"traffic ({words} float32 words per parameter); % floor is",
            "the median per-round fraction of the best STREAM-like kernel over the same",
            "working set (see the floor table).",
        ]
    )


def _step_ms(row, system) -> str:
    entry = row["systems"].get(system)
    if not entry or "step_s" not in entry:
        return "n/a" if system in row["skipped"] else "—"
    return _ms(entry["step_s"]["median"])


def _fraction(row, system) -> str:
    entry = row["systems"].get(system)
    if not entry or "floor_fraction" not in entry:
        return "—"
    return f"{100 * entry['floor_fraction']['median']:.0f}%"


def _step_table(results) -> list[str]:
    lines = [
        "",
        "| shape | optimizer | params | leaves | jopt ms | optax ms | torch-foreach ms | "
        "torch-fused ms | jopt/optax | jopt/torch-foreach | jopt/torch-fused | "
        "A/A: jopt/jopt#2 | jopt GB/s (% floor) | optax % floor | torch-fused % floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        jopt = row["systems"]["jopt"]
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {row['n_params'] / 1e6:.2f} M | "
            f"{row['n_leaves']} | {_step_ms(row, 'jopt')} | {_step_ms(row, 'optax')} | "
            f"{_step_ms(row, 'torch-foreach')} | {_step_ms(row, 'torch-fused')} | "
            f"{_ratio(row['ratios'].get('jopt/optax'))} | "
            f"{_ratio(row['ratios'].get('jopt/torch-foreach'))} | "
            f"{_ratio(row['ratios'].get('jopt/torch-fused'))} | "
            f"{_ratio(row['ratios'].get('jopt/' + AA))} | "
            f"{jopt['gbps']:.1f} ({_fraction(row, 'jopt')}) | {_fraction(row, 'optax')} | "
            f"{_fraction(row, 'torch-fused')} |"
        )
    return lines


def _nominal_table(results) -> list[str]:
    nominal = results["config"]["nominal_gbps"]
    if not nominal:
        return []
    lines = [
        "",
        f"Fraction of the device's nominal memory bandwidth ({nominal:g} GB/s):",
        "",
        "| shape | optimizer | jopt | optax | torch-foreach | torch-fused |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        cells = []
        for system in systems.SYSTEMS:
            fraction = row["systems"].get(system, {}).get("nominal_fraction")
            cells.append("—" if fraction is None else f"{100 * fraction:.0f}%")
        lines.append(f"| {row['shape']} | {row['optimizer']} | " + " | ".join(cells) + " |")
    return lines


def _floor_table(results) -> list[str]:
    kernels = results["floor_kernels"]
    lines = [
        "",
        "Bandwidth floor, median GB/s per kernel (same threads, same rounds; each kernel's",
        "arrays hold as many floats as params + grads + state of the row):",
        "",
        "| shape | optimizer | working set | " + " | ".join(kernels) + " |",
        "|---|---|---:|" + "---:|" * len(kernels),
    ]
    for row in results["rows"]:
        cells = [
            f"{row['floor'][k]['gbps']['median']:.1f}" if k in row["floor"] else "—"
            for k in kernels
        ]
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {_mb(row['expected_bytes'])} MB | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def _compile_table(results) -> list[str]:
    lines = [
        "",
        "Compile time in seconds (trace+lower / XLA compile, the fastest of "
        f"{results['config']['compile_repeats'] or '1 to 5'} passes; ratio: median per pass):",
        "",
        "| shape | optimizer | jopt | optax | jopt/optax (total) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results["rows"]:
        cells = []
        for system in ("jopt", "optax"):
            entry = row["systems"].get(system, {}).get("compile")
            cells.append(f"{entry['lower_s']:.2f} / {entry['compile_s']:.2f}" if entry else "—")
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {cells[0]} | {cells[1]} | "
            f"{_ratio(row['ratios'].get('jopt/optax compile'))} |"
        )
    return lines


def _memory_cells(row) -> list[str]:
    measured = []
    for system in systems.SYSTEMS:
        memory = row["systems"].get(system, {}).get("memory")
        if memory is None:
            measured.append("—")
        elif "error" in memory or memory.get("ratio") is None:
            measured.append("error")
        else:
            extra = (memory["peak_bytes"] - memory["data_bytes"]) / memory["expected_bytes"]
            measured.append(f"{memory['ratio']:.3f} ({extra:+.3f})")
    estimates = []
    for system in systems.JAX_SYSTEMS:
        xla = row["systems"].get(system, {}).get("compile", {}).get("xla_memory")
        if xla:
            peak = xla["argument"] + xla["output"] - xla["alias"] + xla["temp"]
            estimates.append(f"{peak / row['expected_bytes']:.3f}")
        else:
            estimates.append("—")
    return measured + estimates


def _memory_table(results) -> list[str]:
    lines = [
        "",
        "Peak memory of a donated step over params + grads + state (1.00 = nothing extra),",
        "each system in its own process; in brackets what the steps added to the resident",
        "data (the rest is the allocator's rounding of the buffers themselves). XLA: the",
        "compiled step's own estimate (arguments + outputs − aliased + temporaries).",
        "",
        "| shape | optimizer | params+grads+state MB | jopt | optax | torch-foreach | "
        "torch-fused | jopt (XLA) | optax (XLA) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        cells = _memory_cells(row)
        if all(cell == "—" for cell in cells):
            continue
        lines.append(
            f"| {row['shape']} | {row['optimizer']} | {_mb(row['expected_bytes'])} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def _notes(results) -> list[str]:
    """Agreement between the systems, what was not run, and the targets."""
    lines = []
    agreement = results.get("agreement", {})
    if agreement:
        lines += [
            "",
            "Agreement (max |θ − θ_jopt| / max |θ_jopt − θ₀| after 3 steps on a small tree):",
            "",
        ]
        for optimizer, values in agreement.items():
            cells = ", ".join(f"{s} {v:.1e}" for s, v in values.items() if s != "jopt")
            lines.append(f"- {optimizer}: {cells or 'jopt alone'}")
    skipped = sorted(
        {f"{s}: {why}" for row in results["rows"] for s, why in row["skipped"].items()}
    )
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    if results["targets"]:
        lines += [
            "",
            "Targets (not resolved: past the limit by less than this run can tell apart,",
            "by its quartiles or its A/A control):",
            "",
        ]
        for t in results["targets"]:
            sign = "≤" if t["target"].find("fraction") < 0 else "≥"
            lines.append(f"- {t['target']}: {t['value']:.3f} ({sign} {t['limit']}) {t['status']}")
    return lines
