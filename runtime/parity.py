"""Parity of a deployed backend against the Keras reference, Polygraphy-style.

For each backend: embedding max absolute and relative error, minimum cosine, score max error, and the match
decisions of the reference pairs. FP32 is judged on the numbers. A reduced precision (FP16, bf16, INT8) changes
every number a little, so it is judged on what it decides:

- the **noise band** is a high quantile of the backend's |score - reference score| over the reference pairs;
  a decision flip of a pair whose reference score lies within the band of the threshold is numerical noise,
  any other flip is a real change, and there may be none;
- all flips together stay under a stated ceiling;
- where the reference pairs are labelled (same/different identity), the verification AUC and EER on the
  backend's scores stay within a stated drop of the Keras reference's (``task``: the caller measures them);
- when the scores shift as a whole near the threshold, the threshold moves with them for that precision, and is
  recorded (``ParityResult.threshold``) when that keeps clearly more reference decisions; the checks then judge
  decisions at that threshold.

Each check shows the tolerance asked, the minimum tolerance that would pass, and PASSED/FAILED. The tolerances
live in ``parity_tolerances.json`` (the C++ runtime's header is generated from the same file): the export's
parity.json and the runtime's load-time check both come from ``compare``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from runtime.scoring import ScoreSpec

TOLERANCES_FILE = Path(__file__).with_name("parity_tolerances.json")
REDUCED_PRECISIONS = ("fp16", "bf16", "int8")


@dataclass(frozen=True)
class Tolerances:
    """None means "reported, not checked". Relative error is max|got - ref| / max|ref| over the tensor; a flip
    rate is a share of the reference pairs; the AUC drop and EER rise are the reference's minus the backend's."""

    embedding_rel: float | None = None
    score_abs: float | None = None
    min_cosine: float | None = None
    max_flip_rate: float | None = None
    max_flips_outside_band: int | None = None
    max_auc_drop: float | None = None
    max_eer_rise: float | None = None


def _read_tolerances(path: Path = TOLERANCES_FILE) -> tuple[dict[str, Tolerances], dict[str, float]]:
    doc = json.loads(path.read_text())
    known = {f.name for f in fields(Tolerances)}
    table = {}
    for precision, values in doc["precisions"].items():
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: precisions.{precision}: unknown tolerance {sorted(unknown)}")
        table[precision] = Tolerances(**values)
    rules = {k: float(doc[k]) for k in ("noise_band_quantile", "refit_min_flips", "refit_min_rate")}
    return table, rules


_TABLE, _RULES = _read_tolerances()
FP32_TOLERANCES = _TABLE["fp32"]
FP16_TOLERANCES = _TABLE["fp16"]
BF16_TOLERANCES = _TABLE["bf16"]
INT8_TOLERANCES = _TABLE["int8"]
NOISE_BAND_QUANTILE = _RULES["noise_band_quantile"]
REFIT_MIN_FLIPS = int(_RULES["refit_min_flips"])
REFIT_MIN_RATE = _RULES["refit_min_rate"]

# (scores, same as bools, spec) -> (AUC, EER): verification metrics measured by the caller (train.metrics at
# export); the runtime's load-time check has no scikit-learn and judges decisions only
TaskMetrics = Callable[[np.ndarray, np.ndarray, ScoreSpec], tuple[float, float]]


def tolerances_for(precision: str) -> Tolerances:
    """The tolerances of a precision: fp32, fp16, bf16 or int8 (parity_tolerances.json)."""
    try:
        return _TABLE[precision]
    except KeyError:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(_TABLE)}") from None


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
    threshold: float | None = None  # refitted for this precision: decisions at the manifest's threshold did not hold

    @property
    def passed(self) -> bool:
        if not self.checks and self.recorded_status is not None:
            return self.recorded_status == "PASSED"
        return all(c.passed for c in self.checks)

    def brief(self) -> str:
        """One line for a warning: the checks that failed (observed against the limit), then the headline numbers."""
        failed = [
            f"{c.metric} {c.observed:.3g} {'<' if c.higher_is_better else '>'} {c.asked:.3g}"
            for c in self.checks
            if not c.passed
        ]
        m = self.metrics
        return ", ".join(
            failed + [f"{k} {m[k]:.3g}" for k in ("score_max_abs", "min_cosine", "decision_flips") if k in m]
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityResult:
        """A row as ``to_dict`` wrote it (rows written before the ``estimate`` field say so only in their note)."""
        checks = [Check(**c) for c in d.get("checks", [])]
        estimate = bool(d.get("estimate", "estimat" in str(d.get("note", ""))))
        threshold = d.get("threshold")
        if threshold is not None and not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise ValueError(
                f"parity row {d.get('backend')} {d.get('precision')}: threshold {threshold!r} is not a finite number"
            )
        return cls(
            str(d["backend"]),
            str(d["precision"]),
            dict(d.get("metrics", {})),
            checks,
            str(d.get("note", "")),
            dict(d.get("samples", {})),
            estimate,
            d.get("status"),
            None if threshold is None else float(threshold),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "status": "PASSED" if self.passed else "FAILED",
            "note": self.note,
            "estimate": self.estimate,
            "threshold": self.threshold,
            "metrics": self.metrics,
            "checks": [asdict(c) for c in self.checks],
            "samples": self.samples,
        }

    def spec(self, spec: ScoreSpec) -> ScoreSpec:
        """``spec`` with this precision's refitted threshold when parity recorded one, else ``spec`` itself."""
        if self.threshold is None:
            return spec
        return spec.with_threshold(
            self.threshold, f"refitted for {self.precision} on {self.backend} (parity; was {spec.threshold:.4g})"
        )


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-30)
    return np.where(both_zero, 1.0, cos)


def noise_band(ref_scores: np.ndarray, got_scores: np.ndarray) -> float:
    """The backend's score noise: the ``NOISE_BAND_QUANTILE`` quantile of |got - ref| (numpy's linear rule)."""
    err = np.abs(np.asarray(got_scores, np.float64) - np.asarray(ref_scores, np.float64)).reshape(-1)
    return float(np.quantile(err, NOISE_BAND_QUANTILE)) if err.size else 0.0


def refit_threshold(ref_scores: np.ndarray, got_scores: np.ndarray, spec: ScoreSpec, band: float) -> tuple[float, int]:
    """The manifest's threshold moved by the backend's systematic score shift there: (threshold, flips at it).

    The shift is the median of got - ref over the pairs whose reference score lies within ``band`` of the threshold
    (all pairs when fewer than 5 do): a shift of the scores as a whole moves the threshold with it, while noise,
    which flips a few pairs either way, leaves the median near zero and the threshold where it was."""
    rs, gs = np.asarray(ref_scores, np.float64), np.asarray(got_scores, np.float64)
    near = np.abs(rs - spec.threshold) <= band
    if near.sum() < 5:
        near = np.ones_like(near)
    t = float(spec.threshold + np.median(gs[near] - rs[near]))
    want = np.asarray(spec.is_match(rs), bool)
    return t, int(np.sum(np.asarray(spec.with_threshold(t, "refit").is_match(gs), bool) != want))


def _task_checks(
    task: TaskMetrics, rs: np.ndarray, gs: np.ndarray, same: np.ndarray, spec: ScoreSpec, tol: Tolerances
) -> tuple[dict[str, float], list[Check]]:
    """AUC and EER on the labelled pairs (same 1/0; -1 is unknown), the backend's against the reference's."""
    labelled = same >= 0
    y = same[labelled] == 1
    if not y.any() or y.all():
        return {}, []
    auc_ref, eer_ref = task(rs[labelled], y, spec)
    auc, eer = task(gs[labelled], y, spec)
    metrics = {"auc": auc, "auc_reference": auc_ref, "eer": eer, "eer_reference": eer_ref}
    checks = []
    if tol.max_auc_drop is not None:
        checks.append(Check("auc_drop", tol.max_auc_drop, auc_ref - auc, auc_ref - auc <= tol.max_auc_drop))
    if tol.max_eer_rise is not None:
        checks.append(Check("eer_rise", tol.max_eer_rise, eer - eer_ref, eer - eer_ref <= tol.max_eer_rise))
    return metrics, checks


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
    same: np.ndarray | None = None,
    task: TaskMetrics | None = None,
) -> ParityResult:
    """Compare a backend's embeddings and pair scores with the reference; see the module docstring.

    same: the reference pairs' labels (1 same, 0 different, -1 unknown); with ``task`` they add the AUC/EER checks.
    """
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
    band = noise_band(rs, gs)

    want = np.asarray(spec.is_match(rs), bool)
    flips_at_t = int(np.sum(want != np.asarray(spec.is_match(gs), bool))) if rs.size else 0
    threshold = None
    decide = spec
    if precision in REDUCED_PRECISIONS and rs.size:
        refit, refit_flips = refit_threshold(rs, gs, spec, band)
        if flips_at_t - refit_flips >= max(REFIT_MIN_FLIPS, REFIT_MIN_RATE * rs.size):
            threshold = refit
            decide = spec.with_threshold(refit, "refit")
    flipped = want != np.asarray(decide.is_match(gs), bool) if rs.size else np.zeros(0, bool)
    flips = int(flipped.sum())
    outside = int(np.sum(flipped & (np.abs(rs - spec.threshold) > band)))
    flip_rate = flips / rs.size if rs.size else 0.0
    metrics = {
        "embedding_max_abs": emb_abs,
        "embedding_rel": emb_rel,
        "min_cosine": min_cos,
        "score_max_abs": score_abs,
        "noise_band": band,
        "decision_flips": flips,
        "flips_outside_band": outside,
        "flip_rate": flip_rate,
        "flips_at_manifest_threshold": flips_at_t,
        "threshold_holds": float(threshold is None),
    }
    checks = []
    if tol.embedding_rel is not None:
        checks.append(Check("embedding_rel", tol.embedding_rel, emb_rel, emb_rel <= tol.embedding_rel))
    if tol.score_abs is not None:
        checks.append(Check("score_max_abs", tol.score_abs, score_abs, score_abs <= tol.score_abs))
    if tol.min_cosine is not None:
        checks.append(Check("min_cosine", tol.min_cosine, min_cos, min_cos >= tol.min_cosine, higher_is_better=True))
    if tol.max_flips_outside_band is not None:
        checks.append(
            Check("flips_outside", tol.max_flips_outside_band, outside, outside <= tol.max_flips_outside_band)
        )
    if tol.max_flip_rate is not None:
        checks.append(Check("flip_rate", tol.max_flip_rate, flip_rate, flip_rate <= tol.max_flip_rate))
    if task is not None and same is not None and rs.size:
        labels = np.asarray(same).reshape(-1)
        if labels.shape != rs.shape:
            raise ValueError(f"{backend}: {labels.size} pair labels for {rs.size} pairs")
        task_metrics, task_checks = _task_checks(task, rs, gs, labels, spec, tol)
        metrics.update(task_metrics)
        checks.extend(task_checks)
    samples = {"images": int(len(re_)), "pairs": int(rs.size)}
    return ParityResult(backend, precision, metrics, checks, note, samples, estimate, threshold=threshold)


def fp32_passed(results: list[ParityResult] | tuple[ParityResult, ...]) -> bool:
    """A bundle passes parity when every FP32 row does (reduced precisions and estimates are reported, not gating)."""
    return not any(not r.passed and r.precision == "fp32" for r in results)


def format_table(results: list[ParityResult]) -> str:
    """A plain-text table: one line per check, Polygraphy-style, and a line of what was measured."""
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
        lines.append(f"{'':34s} {'':5s} {_measured(r)}")
    return "\n".join(lines)


def _measured(r: ParityResult) -> str:
    m = r.metrics
    parts = [
        f"embedding max abs {m['embedding_max_abs']:.3g}, min cosine {m['min_cosine']:.6f}, "
        f"score max abs {m['score_max_abs']:.3g}, flips {m['decision_flips']}/{r.samples.get('pairs', 0)}"
    ]
    if "flips_outside_band" in m and m["decision_flips"]:
        parts.append(f"{m['flips_outside_band']} outside the noise band {m.get('noise_band', 0):.3g}")
    if "auc" in m:
        parts.append(
            f"AUC {m['auc']:.4f} (Keras {m['auc_reference']:.4f}), EER {m['eer']:.4f} (Keras {m['eer_reference']:.4f})"
        )
    if r.threshold is not None:
        parts.append(
            f"threshold refitted to {r.threshold:.4g} ({m.get('flips_at_manifest_threshold', 0)} flips at the manifest's)"
        )
    return "; ".join(parts)
