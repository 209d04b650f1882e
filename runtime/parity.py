"""Parity of a deployed backend against the Keras reference, Polygraphy-style.

For each backend: embedding max absolute and relative error, minimum cosine, score max error and the
share of reference pairs whose match decision flips at the threshold; each check shows the tolerance
asked, the minimum tolerance that would pass, and PASSED/FAILED. The tolerances here are the project's
only statement of them: the export's parity.json and the runtime's load-time check both come from ``compare``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from runtime.scoring import ScoreSpec


@dataclass(frozen=True)
class Tolerances:
    """None means "reported, not checked". Relative error is max|got - ref| / max|ref| over the tensor."""

    embedding_rel: float | None = None
    score_abs: float | None = None
    min_cosine: float | None = None
    max_flip_rate: float | None = None


FP32_TOLERANCES = Tolerances(embedding_rel=1e-4, score_abs=1e-5)
FP16_TOLERANCES = Tolerances(min_cosine=0.999, max_flip_rate=0.0)
BF16_TOLERANCES = FP16_TOLERANCES
# INT8 (QDQ) changes every activation by up to half a quantization step: embeddings stay close in angle, and a
# few decisions of pairs near the threshold may flip. Provisional, until the gate judges flips by their distance
# to the threshold (issue 14): INT8 is reported, never taken by auto.
INT8_TOLERANCES = Tolerances(min_cosine=0.99, max_flip_rate=0.02)


def tolerances_for(precision: str) -> Tolerances:
    """FP32 tolerances for fp32 backends; the FP16 ones for fp16 and bf16 (both 16-bit); INT8's for int8."""
    if precision == "fp32":
        return FP32_TOLERANCES
    if precision in ("fp16", "bf16"):
        return FP16_TOLERANCES
    if precision == "int8":
        return INT8_TOLERANCES
    raise ValueError(f"precision {precision!r}: expected fp32, fp16, bf16 or int8")


@dataclass
class Check:
    metric: str
    asked: float
    observed: float  # also the minimum tolerance that would pass
    passed: bool
    higher_is_better: bool = False


@dataclass
class ParityResult:
    backend: str
    precision: str
    metrics: dict[str, float]
    checks: list[Check]
    note: str = ""
    samples: dict[str, int] = field(default_factory=dict)
    estimate: bool = False  # not a measurement of a real backend (the FP16 emulation on a CPU)
    recorded_status: str | None = None  # a row read from parity.json without its checks keeps its status

    @property
    def passed(self) -> bool:
        if not self.checks and self.recorded_status is not None:
            return self.recorded_status == "PASSED"
        return all(c.passed for c in self.checks)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityResult:
        """A row as ``to_dict`` wrote it (rows written before the ``estimate`` field say so only in their note)."""
        checks = [Check(**c) for c in d.get("checks", [])]
        estimate = bool(d.get("estimate", "estimat" in str(d.get("note", ""))))
        return cls(
            str(d["backend"]),
            str(d["precision"]),
            dict(d.get("metrics", {})),
            checks,
            str(d.get("note", "")),
            dict(d.get("samples", {})),
            estimate,
            d.get("status"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "status": "PASSED" if self.passed else "FAILED",
            "note": self.note,
            "estimate": self.estimate,
            "metrics": self.metrics,
            "checks": [asdict(c) for c in self.checks],
            "samples": self.samples,
        }


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-30)
    return np.where(both_zero, 1.0, cos)


def compare(
    backend: str,
    precision: str,
    ref_embeddings: np.ndarray,
    got_embeddings: np.ndarray,
    ref_scores: np.ndarray,
    got_scores: np.ndarray,
    spec: ScoreSpec,
    tolerances: Tolerances | None = None,
    note: str = "",
    estimate: bool = False,
) -> ParityResult:
    """Compare a backend's embeddings and pair scores with the reference; see the module docstring."""
    tol = tolerances or tolerances_for(precision)
    re_, ge = np.asarray(ref_embeddings, np.float64), np.asarray(got_embeddings, np.float64)
    rs, gs = np.asarray(ref_scores, np.float64).reshape(-1), np.asarray(got_scores, np.float64).reshape(-1)
    if re_.shape != ge.shape:
        raise ValueError(f"{backend}: embedding shape {ge.shape}, reference {re_.shape}")
    if rs.shape != gs.shape:
        raise ValueError(f"{backend}: score shape {gs.shape}, reference {rs.shape}")
    emb_abs = float(np.max(np.abs(ge - re_))) if re_.size else 0.0
    scale = float(np.max(np.abs(re_))) if re_.size else 0.0
    emb_rel = emb_abs / scale if scale > 0 else emb_abs
    min_cos = float(np.min(_cosines(re_, ge))) if len(re_) else 1.0
    score_abs = float(np.max(np.abs(gs - rs))) if rs.size else 0.0
    flips = int(np.sum(np.asarray(spec.is_match(rs)) != np.asarray(spec.is_match(gs)))) if rs.size else 0
    flip_rate = flips / rs.size if rs.size else 0.0
    metrics = {
        "embedding_max_abs": emb_abs,
        "embedding_rel": emb_rel,
        "min_cosine": min_cos,
        "score_max_abs": score_abs,
        "decision_flips": flips,
        "flip_rate": flip_rate,
    }
    checks = []
    if tol.embedding_rel is not None:
        checks.append(Check("embedding_rel", tol.embedding_rel, emb_rel, emb_rel <= tol.embedding_rel))
    if tol.score_abs is not None:
        checks.append(Check("score_max_abs", tol.score_abs, score_abs, score_abs <= tol.score_abs))
    if tol.min_cosine is not None:
        checks.append(Check("min_cosine", tol.min_cosine, min_cos, min_cos >= tol.min_cosine, higher_is_better=True))
    if tol.max_flip_rate is not None:
        checks.append(Check("flip_rate", tol.max_flip_rate, flip_rate, flip_rate <= tol.max_flip_rate))
    return ParityResult(
        backend, precision, metrics, checks, note, {"images": int(len(re_)), "pairs": int(rs.size)}, estimate
    )


def fp32_passed(results: list[ParityResult] | tuple[ParityResult, ...]) -> bool:
    """A bundle passes parity when every FP32 row does (reduced precisions and estimates are reported, not gating)."""
    return not any(not r.passed and r.precision == "fp32" for r in results)


def format_table(results: list[ParityResult]) -> str:
    """A plain-text table: one line per check, Polygraphy-style."""
    header = f"{'backend':34s} {'prec':5s} {'check':15s} {'asked':>10s} {'min passing':>12s}  status"
    lines = [header, "-" * len(header)]
    for r in results:
        label = r.backend + (f" ({r.note})" if r.note else "")
        if not r.checks:
            lines.append(f"{label:34s} {r.precision:5s} {'(none)':15s} {'':>10s} {'':>12s}  PASSED")
        for c in r.checks:
            cmp = ">=" if c.higher_is_better else "<="
            lines.append(
                f"{label:34s} {r.precision:5s} {c.metric:15s} {cmp}{c.asked:<9.3g} {c.observed:12.6g}  "
                f"{'PASSED' if c.passed else 'FAILED'}"
            )
            label = ""
        m = r.metrics
        lines.append(
            f"{'':34s} {'':5s} embedding max abs {m['embedding_max_abs']:.3g}, min cosine {m['min_cosine']:.6f}, "
            f"score max abs {m['score_max_abs']:.3g}, flips {m['decision_flips']}/{r.samples.get('pairs', 0)}"
        )
    return "\n".join(lines)
