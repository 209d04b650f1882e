"""Verification metrics on pair scores: ROC, AUC, EER, threshold at a false-accept rate, best accuracy.

Every function takes the model's raw scores and its ``ScoreSpec``: scores are turned with
``spec.similarity`` (larger = more alike) for the arithmetic, and every threshold comes back in the
model's own score units, so it can go straight into ``spec.with_threshold`` and the bundle manifest.
A pair is a match when ``spec.is_match(score)``: ``score >= t`` for "high", ``score <= t`` for "low".

``same`` is always "this pair shows the same identity" (True/1), never a training label: keras.io's
contrastive example labels same pairs 0, so convert such labels before calling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from runtime.scoring import ScoreSpec

CALIBRATION_METHODS = ("eer", "best-accuracy", "far")


def _check(scores: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and flatten inputs; refuse what would give a meaningless curve."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(same).reshape(-1)
    if s.size != y.size:
        raise ValueError(f"scores ({s.size}) and same ({y.size}) have different lengths")
    if s.size == 0:
        raise ValueError("no pairs: scores and same are empty")
    if not np.all(np.isfinite(s)):
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise ValueError(f"{bad} of {s.size} scores are NaN or infinite")
    if y.dtype != np.bool_:
        if not np.all(np.isin(y, (0, 1))):
            raise ValueError("same must be booleans or 0/1 (True/1 = same identity)")
        y = y.astype(bool)
    n_same = int(y.sum())
    if n_same == 0 or n_same == y.size:
        raise ValueError(
            f"need both same and different pairs to measure verification: got {n_same} same, "
            f"{y.size - n_same} different"
        )
    return s, y


def _to_score_units(spec: ScoreSpec, similarity_threshold: Any) -> Any:
    """Map a threshold on ``spec.similarity`` back to the model's score units (similarity negates for "low")."""
    t = np.asarray(similarity_threshold, dtype=np.float64)
    return t if spec.same_when == "high" else -t


def _full_roc(s: np.ndarray, y: np.ndarray, spec: ScoreSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC with every distinct score as a threshold (thresholds in similarity units, descending)."""
    return roc_curve(y, spec.similarity(s), drop_intermediate=False)


def _reject_all_threshold(s: np.ndarray, spec: ScoreSpec) -> float:
    """A finite score-unit threshold that accepts no pair (stand-in for sklearn's +inf first threshold)."""
    top = float(np.max(spec.similarity(s)))
    return float(_to_score_units(spec, np.nextafter(top, np.inf)))


def roc(scores: Any, same: Any, spec: ScoreSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr, thresholds)``, thresholds in score units (the first one accepts nothing: +-inf)."""
    s, y = _check(scores, same)
    fpr, tpr, thr = roc_curve(y, spec.similarity(s))
    return fpr, tpr, _to_score_units(spec, thr)


def roc_auc(scores: Any, same: Any, spec: ScoreSpec) -> float:
    """Area under the ROC curve; independent of the score direction once oriented by the spec."""
    s, y = _check(scores, same)
    return float(roc_auc_score(y, spec.similarity(s)))


def eer(scores: Any, same: Any, spec: ScoreSpec) -> tuple[float, float]:
    """Equal error rate and its threshold (score units).

    FAR and FRR are interpolated linearly between the two neighbouring ROC points where FAR - FRR
    changes sign, and the threshold is interpolated the same way.
    """
    s, y = _check(scores, same)
    fpr, tpr, thr = _full_roc(s, y, spec)
    d = fpr - (1.0 - tpr)  # FAR - FRR: -1 at the first point (accept nothing), +1 at the last
    j = int(np.argmax(d >= 0))
    if d[j] == 0:
        value, t_sim = float(fpr[j]), float(thr[j])
    else:  # j >= 1: d[0] == -1 always
        i = j - 1
        a = -d[i] / (d[j] - d[i])
        value = float(fpr[i] + a * (fpr[j] - fpr[i]))
        # thr[0] is +inf (accept nothing): then the crossing's only finite end is thr[j]
        t_sim = float(thr[j]) if not np.isfinite(thr[i]) else float(thr[i] + a * (thr[j] - thr[i]))
    return value, float(_to_score_units(spec, t_sim))


def threshold_at_far(scores: Any, same: Any, spec: ScoreSpec, far: float = 1e-3) -> tuple[float, float, float]:
    """The most accepting threshold whose false-accept rate is <= ``far``: ``(threshold, achieved_far, tpr)``.

    The threshold is an observed score (conservative: the next lower score would exceed ``far``).
    With fewer than ``1/far`` different pairs the achievable FAR is coarse; if even the top-scored pair
    is a different one the threshold accepts nothing (tpr 0).
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far {far}: expected a rate in [0, 1]")
    s, y = _check(scores, same)
    fpr, tpr, thr = _full_roc(s, y, spec)
    i = int(np.flatnonzero(fpr <= far)[-1])  # fpr[0] == 0, so there is always one
    t = _reject_all_threshold(s, spec) if not np.isfinite(thr[i]) else float(_to_score_units(spec, thr[i]))
    return t, float(fpr[i]), float(tpr[i])


def best_accuracy_threshold(scores: Any, same: Any, spec: ScoreSpec) -> tuple[float, float]:
    """Threshold with the highest accuracy on these pairs: ``(threshold, accuracy)``.

    The threshold sits halfway between the lowest accepted and the highest rejected score, so it keeps
    a margin on both sides instead of touching a training pair.
    """
    s, y = _check(scores, same)
    fpr, tpr, thr = _full_roc(s, y, spec)
    n_same, n_diff = int(y.sum()), int((~y).sum())
    acc = (tpr * n_same + (1.0 - fpr) * n_diff) / y.size
    i = int(np.argmax(acc))
    if not np.isfinite(thr[i]):
        t = _reject_all_threshold(s, spec)
    elif i + 1 < thr.size:
        t = float(_to_score_units(spec, 0.5 * (thr[i] + thr[i + 1])))
    else:
        t = float(_to_score_units(spec, thr[i]))
    return t, float(acc[i])


def _rates_at(s: np.ndarray, y: np.ndarray, spec: ScoreSpec, threshold: float) -> dict[str, float]:
    """Accuracy, FAR and FRR of a fixed threshold, using the spec's own decision rule."""
    match = np.asarray(spec.with_threshold(threshold, "eval").is_match(s), dtype=bool)
    return {
        "threshold": float(threshold),
        "accuracy": float(np.mean(match == y)),
        "far": float(np.mean(match[~y])),
        "frr": float(np.mean(~match[y])),
    }


def verification_report(scores: Any, same: Any, spec: ScoreSpec, far: float = 1e-3) -> dict[str, Any]:
    """Everything above in one JSON-serialisable dict (plain floats and ints), for model cards and CLIs.

    Keys: pairs, same_pairs, different_pairs, score (the spec), auc, eer, eer_threshold, far_target,
    far_resolution (1 / different pairs: the smallest FAR step these pairs can show), far_threshold,
    far_achieved, far_tpr, best_accuracy, best_accuracy_threshold, and at_spec_threshold /
    at_eer_threshold: {threshold, accuracy, far, frr}.
    """
    s, y = _check(scores, same)
    n_diff = int((~y).sum())
    eer_value, eer_t = eer(s, y, spec)
    far_t, far_achieved, far_tpr = threshold_at_far(s, y, spec, far)
    acc_t, acc = best_accuracy_threshold(s, y, spec)
    return {
        "pairs": int(y.size),
        "same_pairs": int(y.sum()),
        "different_pairs": n_diff,
        "score": spec.to_dict(),
        "auc": roc_auc(s, y, spec),
        "eer": eer_value,
        "eer_threshold": eer_t,
        "far_target": float(far),
        "far_resolution": 1.0 / n_diff,
        "far_threshold": far_t,
        "far_achieved": far_achieved,
        "far_tpr": far_tpr,
        "best_accuracy": acc,
        "best_accuracy_threshold": acc_t,
        "at_spec_threshold": _rates_at(s, y, spec, spec.threshold),
        "at_eer_threshold": _rates_at(s, y, spec, eer_t),
    }


def calibrate_threshold(
    scores: Any,
    same: Any,
    spec: ScoreSpec,
    method: str = "eer",
    far: float = 1e-3,
    on: str | None = None,
) -> ScoreSpec:
    """A copy of ``spec`` with its threshold chosen on these pairs, the source saying how and on what.

    method: "eer" (FAR = FRR), "best-accuracy", or "far" (most accepting threshold with FAR <= ``far``).
    on: optional description of the pairs (e.g. "omniglot images_evaluation"), kept in the source.
    """
    s, y = _check(scores, same)
    where = f"{y.size} pairs ({int(y.sum())} same)" + (f" of {on}" if on else "")
    if method == "eer":
        value, t = eer(s, y, spec)
        source = f"calibrated at EER={value:.4g} on {where}"
    elif method == "best-accuracy":
        t, acc = best_accuracy_threshold(s, y, spec)
        source = f"calibrated for best accuracy={acc:.4g} on {where}"
    elif method == "far":
        t, achieved, tpr = threshold_at_far(s, y, spec, far)
        source = f"calibrated at FAR<={far:g} (achieved {achieved:.4g}, TPR {tpr:.4g}) on {where}"
    else:
        raise ValueError(f"calibration method {method!r}: expected one of {CALIBRATION_METHODS}")
    return spec.with_threshold(t, source)
