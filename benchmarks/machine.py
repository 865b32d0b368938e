"""What the results say about the machine they were measured on."""

from __future__ import annotations

import os
import platform
from typing import Any

from benchmarks import systems


def load() -> list[float] | None:
    """The load average over 1, 5 and 15 minutes, or None where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info(threads: int, torch_device: str | None) -> dict[str, Any]:
    import jax
    import jaxlib
    import optax

    device = jax.devices()[0]
    info = {
        "platform": device.platform,
        "device": getattr(device, "device_kind", str(device)),
        "cpu": _cpu_model(),
        "cpus_available": threads,
        "cpus_total": os.cpu_count(),
        "memory_bytes": _memory_total(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "torch": None,
        "torch_device": torch_device,
        "torch_threads": None,
    }
    if systems.torch_available():
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def torch_device(platform_name: str) -> tuple[str | None, str | None]:
    """The torch device matching the JAX backend, or (None, why not)."""
    if not systems.torch_available():
        return None, "torch is not installed"
    import torch

    if platform_name == "cpu":
        return "cpu", None
    if platform_name == "gpu" and torch.cuda.is_available():
        return "cuda", None
    return None, f"torch has no device matching JAX's {platform_name!r} backend"
