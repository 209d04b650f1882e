"""What this machine is and which libraries it has, for reports, device descriptions and cache keys."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path

# the vector and matrix units that decide which kernels run (and how fast): what a speed figure is reported with
_FLAG_PREFIXES = ("avx512", "amx", "avx2", "avx_vnni", "fma", "f16c", "asimd", "sve", "i8mm", "bf16")


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's vector/matrix flags (AVX-512 and its bf16/VNNI parts, AMX, AVX2, NEON's asimd, SVE...) from
    /proc/cpuinfo, sorted; empty where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted({f for f in line.split(":", 1)[1].split() if f.startswith(_FLAG_PREFIXES)})
    except OSError:
        pass
    return []


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def package_version(dist: str) -> str | None:
    """The installed version of the distribution ``dist`` (its pip name), else None."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(dists: Iterable[str], missing: str | None = None) -> dict[str, str]:
    """``{"python": version, dist: version, ...}`` in the order given; a distribution that is not installed maps
    to ``missing``, or is left out when ``missing`` is None."""
    out = {"python": platform.python_version()}
    for dist in dists:
        version = package_version(dist)
        if version is not None or missing is not None:
            out[dist] = version if version is not None else missing
    return out
