"""Which of the backends that pass is fastest on this machine: a brief timing of each, cached.

``backend="auto"`` (``runtime.select``) ranks the candidates that pass their parity gates by how long the call
every user makes first takes here: one pair, both images through the network in one batch of 2. A fixed order
cannot know that: on a CPU with native bf16, OpenVINO bf16 ran VGG16 slower than its FP32 (78 vs 49 ms a pair),
and ONNX Runtime ran the small demo network faster than OpenVINO.

Where the timings come from, cheapest first:

1. the bundle's ``parity.json``, when it was exported on this machine with these library versions (the exporter
   times every backend it checks, ``SpeedRecord``);
2. a timing at first load, cached in ``$SIAMESE_EDGE_CACHE/speed`` by bundle, machine and library versions
   (like the parity check's cache), so later loads build one backend only.

Candidates within ``TIE_RATIO`` of the fastest keep the registry's order (5% is noise on a shared machine), and
the registry's order alone decides when timing is off (``SIAMESE_EDGE_AUTO_TIMING=0``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.machine import cpu_flags, cpu_name, package_version, usable_cpus
from runtime.timing import time_calls

TIE_RATIO = 1.10  # within 10% of the fastest is a tie: the registry's order decides
TIMING_BUDGET_S = 0.4  # per candidate, after warm-up
TIMING_CALLS = 25
TIMING_WARMUP = 2
SPEED_CACHE_SCHEMA = 1


def timing_enabled() -> bool:
    """False when ``SIAMESE_EDGE_AUTO_TIMING`` is "0" (or "off"/"false"/"no"): auto then follows the registry's order."""
    return os.environ.get("SIAMESE_EDGE_AUTO_TIMING", "1").strip().lower() not in ("0", "off", "false", "no")


def option_key(variant: str, precision: str | None) -> str:
    """How a (variant, precision) option is named in timings: "openvino:bf16", "tensorrt:auto"."""
    return f"{variant}:{precision or 'auto'}"


def machine_id() -> dict[str, Any]:
    """What a timing depends on besides the libraries: the CPU, its vector units, the cores this process may use."""
    return {"cpu": cpu_name(), "arch": platform.machine(), "flags": cpu_flags(), "cores": usable_cpus()}


def library_versions(distributions: Iterable[str]) -> dict[str, str]:
    return {d: v for d in sorted(set(distributions)) if (v := package_version(d)) is not None}


def time_pair(backend: Any, pair: np.ndarray) -> float:
    """Milliseconds per ``backend.embed`` of ``pair`` (two preprocessed images): the median of a short run."""
    seconds = time_calls(lambda _i: backend.embed(pair), TIMING_CALLS, warmup=TIMING_WARMUP, budget_s=TIMING_BUDGET_S)
    return float(np.median(seconds) * 1e3)


def fastest_first(options: Sequence[str], timings: dict[str, float | None]) -> list[str]:
    """``options`` (in the registry's order) reordered by ``timings`` (ms; None or absent: not timed).

    Repeatedly take the earliest remaining option within ``TIE_RATIO`` of the fastest remaining one; untimed
    options follow in their order."""
    timed = [o for o in options if timings.get(o) is not None]
    rest = [o for o in options if timings.get(o) is None]
    out: list[str] = []
    while timed:
        best = min(float(timings[o]) for o in timed)  # type: ignore[arg-type]
        pick = next(o for o in timed if float(timings[o]) <= best * TIE_RATIO)  # type: ignore[arg-type]
        out.append(pick)
        timed.remove(pick)
    return out + rest


@dataclass
class SpeedRecord:
    """Timings of one machine: ``pair_ms`` per option key (None: present but not eligible, e.g. failed parity)."""

    machine: dict[str, Any]
    libraries: dict[str, str]
    pair_ms: dict[str, float | None] = field(default_factory=dict)

    def matches(self, machine: dict[str, Any], libraries: dict[str, str]) -> bool:
        return self.machine == machine and self.libraries == libraries

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "libraries": self.libraries, "pair_ms": self.pair_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeedRecord:
        pair_ms = {str(k): (None if v is None else float(v)) for k, v in dict(d.get("pair_ms", {})).items()}
        return cls(dict(d["machine"]), {str(k): str(v) for k, v in dict(d["libraries"]).items()}, pair_ms)


def speed_cache_path(manifest_sha256: str, machine: dict[str, Any], libraries: dict[str, str]) -> Path:
    from runtime.verifier import cache_dir

    blob = json.dumps(
        {"schema": SPEED_CACHE_SCHEMA, "manifest": manifest_sha256, "machine": machine, "libraries": libraries},
        sort_keys=True,
    ).encode()
    return cache_dir() / "speed" / f"{hashlib.sha256(blob).hexdigest()[:24]}.json"


def read_cached(path: Path) -> dict[str, float | None] | None:
    try:
        return SpeedRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))).pair_ms
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cached(path: Path, record: SpeedRecord) -> None:
    from runtime.fileio import write_json_atomic

    try:
        write_json_atomic(path, record.to_dict())
    except OSError:
        pass  # a read-only home is fine: the timing reruns next time


@dataclass
class Speed:
    """What ``runtime.select.select`` needs to rank by speed: the timings known (``known``), how to time a loaded
    backend (``time``), and where to keep new timings (``save``). Built by ``runtime.verifier.load``."""

    known: dict[str, float | None]
    pair: np.ndarray | Callable[[], np.ndarray]  # the two images timed, or how to get them (read only when timing)
    machine: dict[str, Any]
    libraries: dict[str, str]
    cache_path: Path | None = None
    source: str = "measured at load"

    def time(self, backend: Any) -> float:
        if callable(self.pair):
            self.pair = self.pair()
        return time_pair(backend, self.pair)

    def save(self, timings: dict[str, float | None]) -> None:
        if self.cache_path is not None:
            write_cached(self.cache_path, SpeedRecord(self.machine, self.libraries, dict(timings)))
