"""What this machine is and which libraries it has, for reports, device descriptions and cache keys."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
