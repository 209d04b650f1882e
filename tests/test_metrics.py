"""Verification metrics: agree with sklearn, hand-computed EER, both score directions, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from runtime.scoring import ScoreSpec
from train import metrics

HIGH = ScoreSpec("probability", "high", 0.5)
LOW = ScoreSpec("distance", "low", 1.0)


def _overlapping(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-like scores (high = same) for two overlapping Gaussians."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    scores = np.where(same, rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n))
    return scores, same


def test_roc_and_auc_match_sklearn() -> None:
    scores, same = _overlapping()
    fpr, tpr, thr = metrics.roc(scores, same, HIGH)
    ref_fpr, ref_tpr, ref_thr = roc_curve(same, scores)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(thr, ref_thr)
    assert metrics.roc_auc(scores, same, HIGH) == pytest.approx(roc_auc_score(same, scores))


def test_low_direction_equals_negated_high_direction() -> None:
    sim, same = _overlapping()
    dist = 3.0 - sim  # a "distance": low = same
    assert metrics.roc_auc(dist, same, LOW) == pytest.approx(metrics.roc_auc(-dist, same, HIGH))
    assert metrics.roc_auc(dist, same, LOW) == pytest.approx(roc_auc_score(same, sim))
    # reading a distance as if high meant same is the classic mistake: AUC flips
    assert metrics.roc_auc(dist, same, HIGH) == pytest.approx(1.0 - roc_auc_score(same, sim))

    e_low, t_low = metrics.eer(dist, same, LOW)
    e_high, t_high = metrics.eer(sim, same, HIGH)
    assert e_low == pytest.approx(e_high)
    assert t_low == pytest.approx(3.0 - t_high)  # threshold comes back in distance units

    fpr, tpr, thr = metrics.roc(dist, same, LOW)
    assert np.isneginf(thr[0])  # the "accept nothing" point, in distance units
    # each finite ROC threshold, applied with the spec's own rule, reproduces its (fpr, tpr) point
    for k in range(1, len(thr)):
        match = LOW.with_threshold(thr[k], "t").is_match(dist)
        assert np.mean(match[~same]) == pytest.approx(fpr[k])
        assert np.mean(match[same]) == pytest.approx(tpr[k])


def test_eer_hand_computed_exact_crossing() -> None:
    # same: 0.9 0.6 0.4; different: 0.7 0.3 0.2. At t = 0.6: FAR = 1/3 (0.7), FRR = 1/3 (0.4)
    scores = [0.9, 0.6, 0.4, 0.7, 0.3, 0.2]
    same = [1, 1, 1, 0, 0, 0]
    value, t = metrics.eer(scores, same, HIGH)
    assert value == pytest.approx(1 / 3)
    assert t == pytest.approx(0.6)


def test_eer_hand_computed_interpolated() -> None:
    # same: 0.9 0.8 0.4; different: 0.5 0.1.
    # t=0.8: FAR 0, FRR 1/3 (d=-1/3); t=0.5: FAR 1/2, FRR 1/3 (d=+1/6) -> a = 2/3 of the way:
    # EER = 0 + 2/3 * 1/2 = 1/3, threshold = 0.8 + 2/3 * (0.5 - 0.8) = 0.6
    scores = np.array([0.9, 0.8, 0.4, 0.5, 0.1])
    same = np.array([True, True, True, False, False])
    value, t = metrics.eer(scores, same, HIGH)
    assert value == pytest.approx(1 / 3)
    assert t == pytest.approx(0.6)
    # the same pairs as distances (low = same): same EER, threshold in distance units
    value_d, t_d = metrics.eer(1.0 - scores, same, LOW)
    assert value_d == pytest.approx(1 / 3)
    assert t_d == pytest.approx(0.4)


def test_eer_separable_is_zero_with_threshold_between_classes() -> None:
    scores = [0.9, 0.8, 0.2, 0.1]
    same = [1, 1, 0, 0]
    value, t = metrics.eer(scores, same, HIGH)
    assert value == 0.0
    assert 0.2 < t <= 0.8
    assert np.array_equal(HIGH.with_threshold(t, "x").is_match(scores), np.array(same, dtype=bool))


def test_threshold_at_far() -> None:
    # 10 different pairs at 0.0..0.9, 5 same pairs at 0.55..0.95
    diff = np.arange(10) / 10
    pos = np.array([0.55, 0.65, 0.75, 0.85, 0.95])
    scores = np.concatenate([diff, pos])
    same = np.concatenate([np.zeros(10, bool), np.ones(5, bool)])

    t, achieved, tpr = metrics.threshold_at_far(scores, same, HIGH, far=0.1)
    # descending: .95 S, .9 D, .85 S, .8 D, .75 S, .7 D, ... -> one different pair allowed
    assert (t, achieved, tpr) == (pytest.approx(0.85), pytest.approx(0.1), pytest.approx(0.4))
    t, achieved, tpr = metrics.threshold_at_far(scores, same, HIGH, far=0.25)
    assert (t, achieved, tpr) == (pytest.approx(0.75), pytest.approx(0.2), pytest.approx(0.6))

    # the threshold honours the spec's rule: FAR at it is <= the target
    match = HIGH.with_threshold(t, "x").is_match(scores)
    assert np.mean(match[~same]) <= 0.25

    # a FAR below what 10 different pairs can resolve, and the top pair is different: accept nothing
    scores2 = np.concatenate([diff, pos - 0.2])
    t0, achieved0, tpr0 = metrics.threshold_at_far(scores2, same, HIGH, far=1e-3)
    assert achieved0 == 0.0 and tpr0 == 0.0
    assert np.isfinite(t0) and not HIGH.with_threshold(t0, "x").is_match(scores2).any()

    # distances: the same threshold mirrored
    t_low, achieved_low, tpr_low = metrics.threshold_at_far(1.0 - scores, same, LOW, far=0.1)
    assert (t_low, achieved_low, tpr_low) == (pytest.approx(0.15), pytest.approx(0.1), pytest.approx(0.4))

    with pytest.raises(ValueError, match="far"):
        metrics.threshold_at_far(scores, same, HIGH, far=2.0)


def test_best_accuracy_threshold_against_brute_force() -> None:
    scores, same = _overlapping(300, seed=3)
    for spec, s in ((HIGH, scores), (LOW, 10.0 - scores)):
        t, acc = metrics.best_accuracy_threshold(s, same, spec)
        brute = max(np.mean(spec.with_threshold(c, "x").is_match(s) == same) for c in s)
        assert acc == pytest.approx(brute)
        assert np.mean(spec.with_threshold(t, "x").is_match(s) == same) == pytest.approx(acc)
        assert t not in set(s.tolist())  # halfway between two scores, not on one


def test_verification_report_is_json_and_consistent() -> None:
    scores, same = _overlapping()
    dist = 5.0 - scores
    report = metrics.verification_report(dist, same, LOW, far=0.01)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["pairs"] == len(same)
    assert report["same_pairs"] + report["different_pairs"] == report["pairs"]
    assert report["auc"] == pytest.approx(roc_auc_score(same, scores))
    assert report["eer"] == pytest.approx(metrics.eer(dist, same, LOW)[0])
    assert report["far_achieved"] <= 0.01
    assert report["score"]["same_when"] == "low"
    at = report["at_eer_threshold"]
    assert at["far"] == pytest.approx(report["eer"], abs=0.02)
    assert at["frr"] == pytest.approx(report["eer"], abs=0.02)


def test_calibrate_threshold_returns_spec_with_source() -> None:
    scores, same = _overlapping()
    dist = 5.0 - scores
    cal = metrics.calibrate_threshold(dist, same, LOW, method="eer", on="unit-test pairs")
    assert cal.kind == LOW.kind and cal.same_when == "low"
    assert cal.threshold == pytest.approx(metrics.eer(dist, same, LOW)[1])
    assert "EER" in cal.threshold_source and "unit-test pairs" in cal.threshold_source

    best = metrics.calibrate_threshold(dist, same, LOW, method="best-accuracy")
    assert best.threshold == pytest.approx(metrics.best_accuracy_threshold(dist, same, LOW)[0])
    strict = metrics.calibrate_threshold(dist, same, LOW, method="far", far=0.01)
    assert strict.threshold == pytest.approx(metrics.threshold_at_far(dist, same, LOW, 0.01)[0])
    assert strict.threshold < cal.threshold  # a stricter FAR means a smaller accepted distance
    with pytest.raises(ValueError, match="method"):
        metrics.calibrate_threshold(dist, same, LOW, method="median")


@pytest.mark.parametrize(
    "scores, same, message",
    [
        ([0.1, 0.2, 0.3], [1, 1, 1], "0 different"),
        ([0.1, 0.2, 0.3], [False, False, False], "0 same"),
        ([], [], "empty"),
        ([0.1, 0.2], [1, 0, 1], "different lengths"),
        ([0.1, np.nan], [1, 0], "NaN"),
        ([0.1, 0.2], [2, 0], "0/1"),
    ],
)
def test_degenerate_inputs_are_refused(scores: list, same: list, message: str) -> None:
    for fn in (metrics.roc, metrics.roc_auc, metrics.eer, metrics.best_accuracy_threshold):
        with pytest.raises(ValueError, match=message):
            fn(scores, same, HIGH)
    with pytest.raises(ValueError, match=message):
        metrics.verification_report(scores, same, HIGH)
