"""What a measurement ran on: the CPU, its instruction-set features, and the arithmetic precision
a runtime actually used. Bench rows and export parity records carry these, because the same
graph computes different numbers (and at different speeds) on CPUs with and without AVX-512
VNNI, BF16 or AMX. Torch-free; reads ``/proc/cpuinfo`` where there is one."""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: The instruction-set features that change how INT8, FP16 and BF16 graphs run, as Linux names them
#: in ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``), in this order.
ISA_FEATURES: tuple[str, ...] = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
)

#: What a runtime without a precision setting computes in: the precision stored in the graph files.
AS_STORED = "as stored"

_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_text() -> str:
    return _CPUINFO.read_text(errors="replace") if _CPUINFO.is_file() else ""


def cpu_features(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The :data:`ISA_FEATURES` this CPU has (from ``cpuinfo``, the text of ``/proc/cpuinfo``;
    None: read it), in that order; empty where the system does not say (not Linux)."""
    text = _cpuinfo_text() if cpuinfo is None else cpuinfo
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
            break
    return tuple(f for f in ISA_FEATURES if f in flags)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    text = _cpuinfo_text() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_description() -> str:
    """``"<cpu model>, <n> CPUs, <os> <arch>, Python <version>"``."""
    return (
        f"{cpu_model()}, {cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def machine_record() -> dict[str, object]:
    """The machine as parity records and bench JSON store it: ``{"cpu", "cpus", "isa"}``."""
    return {"cpu": cpu_model(), "cpus": cpu_count(), "isa": list(cpu_features())}


__all__ = [
    "ISA_FEATURES",
    "AS_STORED",
    "cpu_features",
    "cpu_model",
    "cpu_count",
    "machine_description",
    "machine_record",
]
