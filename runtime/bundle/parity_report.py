"""parity.json: every parity row the exporter measured, read and written here only.

The rows are ``runtime.parity.ParityResult`` (the comparator owns what a row is); this module owns the file: its
layout, its status (PASSED when every FP32 row passes), and finding the row measured on a given backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.bundle.layout import BundleError
from runtime.fileio import write_json_atomic
from runtime.parity import ParityResult, fp32_passed
from runtime.speed import SpeedRecord


@dataclass
class ParityReport:
    """``reference``: where the reference's images came from; ``results``: one row per backend and precision."""

    reference: str
    results: list[ParityResult] = field(default_factory=list)
    speed: SpeedRecord | None = None  # each backend's time for a pair on the exporting machine (auto ranks by it)

    @property
    def passed(self) -> bool:
        return fp32_passed(self.results)

    @property
    def estimated_on_cpu(self) -> bool:
        return any(r.estimate for r in self.results)

    def row(self, label: str, precision: str) -> ParityResult | None:
        """The row measured on ``label`` (e.g. "onnxruntime-cpu") at ``precision``, or None. Estimates (the FP16 CPU
        emulation) are not a measurement of any real backend and never match."""
        for r in self.results:
            if r.backend == label and r.precision == precision and not r.estimate:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "estimated_on_cpu": self.estimated_on_cpu,
            "results": [r.to_dict() for r in self.results],
            "status": "PASSED" if self.passed else "FAILED",
            **({"speed": self.speed.to_dict()} if self.speed is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityReport:
        speed = SpeedRecord.from_dict(d["speed"]) if d.get("speed") is not None else None
        return cls(str(d.get("reference", "unknown")), [ParityResult.from_dict(r) for r in d.get("results", [])], speed)


def write_report(
    path: str | Path, results: list[ParityResult], reference: str, speed: SpeedRecord | None = None
) -> ParityReport:
    """Write a bundle's ``parity.json``: every row, PASSED when every FP32 row passes, and the timings."""
    report = ParityReport(reference, list(results), speed)
    write_json_atomic(path, report.to_dict())
    return report


def read_report(path: str | Path) -> ParityReport | None:
    """A bundle's ``parity.json`` (None when it has none); BundleError naming it when it is not one."""
    try:
        return ParityReport.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BundleError(f"{path}: not a readable parity report ({e})") from None
