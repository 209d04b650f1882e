"""runtime.parity: the comparator's numbers, the tolerances, the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.parity import (
    BF16_TOLERANCES,
    FP16_TOLERANCES,
    FP32_TOLERANCES,
    INT8_TOLERANCES,
    TOLERANCES_FILE,
    ParityResult,
    compare,
    format_table,
    noise_band,
    refit_threshold,
    tolerances_for,
)
from runtime.scoring import ScoreSpec

PROB = ScoreSpec("probability", "high", 0.5)


def _ref(seed=0, n=20, dim=8, pairs=30):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    scores = rng.random(pairs).astype(np.float32)
    return emb, scores


def test_identical_outputs_pass_with_zero_error():
    emb, scores = _ref()
    r = compare("ort", "fp32", emb, emb.copy(), scores, scores.copy(), PROB)
    assert r.passed
    assert r.metrics["embedding_max_abs"] == 0 and r.metrics["score_max_abs"] == 0
    assert r.metrics["min_cosine"] == pytest.approx(1.0)
    assert [c.metric for c in r.checks] == ["embedding_rel", "score_max_abs"]


def test_fp32_score_error_above_tolerance_fails_and_reports_min_passing():
    emb, scores = _ref()
    got = scores.astype(np.float64).copy()
    got[3] += 3e-5
    r = compare("ort", "fp32", emb, emb, scores, got, PROB)
    assert not r.passed
    check = {c.metric: c for c in r.checks}["score_max_abs"]
    assert check.asked == FP32_TOLERANCES.score_abs
    assert check.observed == pytest.approx(3e-5, rel=1e-3)
    assert not check.passed


def test_embedding_relative_error_is_relative_to_the_tensor_scale():
    emb, scores = _ref()
    got = emb.astype(np.float64).copy()
    scale = np.abs(emb).max()
    got[0, 0] += 5e-5 * scale
    r = compare("ort", "fp32", emb, got, scores, scores, PROB)
    assert r.metrics["embedding_rel"] == pytest.approx(5e-5, rel=1e-2)
    assert r.passed
    got[0, 0] += 1e-4 * scale
    assert not compare("ort", "fp32", emb, got, scores, scores, PROB).passed


def test_fp16_checks_cosine_and_decision_flips():
    emb, _ = _ref()
    scores = np.array([0.2, 0.49, 0.51, 0.9], np.float32)
    got = np.array([0.2, 0.51, 0.51, 0.9], np.float32)  # one pair crosses the threshold
    r = compare("trt", "fp16", emb, emb * 1.001, scores, got, PROB)
    assert r.metrics["decision_flips"] == 1 and r.metrics["flip_rate"] == 0.25
    by = {c.metric: c for c in r.checks}
    assert by["min_cosine"].passed and by["min_cosine"].higher_is_better
    assert not by["flip_rate"].passed and not r.passed
    assert by["min_cosine"].asked == FP16_TOLERANCES.min_cosine
    # the one line a warning gives: what failed against its limit first, then the numbers
    assert r.brief().startswith(f"flip_rate 0.25 > {FP16_TOLERANCES.max_flip_rate:.3g}, score_max_abs 0.02")
    assert ParityResult.from_dict(r.to_dict()).brief() == r.brief()


def test_cosine_catches_a_wrong_direction():
    emb, scores = _ref()
    got = emb.copy()
    got[5] = -got[5]
    r = compare("x", "fp16", emb, got, scores, scores, PROB)
    assert r.metrics["min_cosine"] == pytest.approx(-1.0)
    assert not r.passed


def test_distance_scores_flip_in_their_own_direction():
    spec = ScoreSpec("distance", "low", 0.5)
    emb, _ = _ref()
    r = compare("x", "fp16", emb, emb, np.array([0.4, 0.6]), np.array([0.6, 0.6]), spec)
    assert r.metrics["decision_flips"] == 1


def test_shape_mismatch_is_an_error_naming_the_backend():
    emb, scores = _ref()
    with pytest.raises(ValueError, match="ort"):
        compare("ort", "fp32", emb, emb[:-1], scores, scores, PROB)


def test_tolerances_for_precisions():
    assert tolerances_for("fp32") is FP32_TOLERANCES
    assert tolerances_for("fp16") is FP16_TOLERANCES and tolerances_for("bf16") is BF16_TOLERANCES
    assert tolerances_for("int8") is INT8_TOLERANCES
    doc = json.loads(TOLERANCES_FILE.read_text())
    assert doc["precisions"]["int8"]["min_cosine"] == INT8_TOLERANCES.min_cosine
    for prec in ("fp16", "bf16", "int8"):  # every reduced precision is judged on decisions
        t = tolerances_for(prec)
        assert t.max_flips_outside_band == 0 and 0 < t.max_flip_rate <= 0.02
    with pytest.raises(ValueError, match="int4"):
        tolerances_for("int4")


def test_table_shows_asked_observed_and_status():
    emb, scores = _ref()
    ok = compare("onnxruntime-cpu", "fp32", emb, emb, scores, scores, PROB)
    bad = compare("fp16 emulated", "fp16", emb, -emb, scores, 1 - scores, PROB, note="estimated on CPU")
    table = format_table([ok, bad])
    assert "PASSED" in table and "FAILED" in table and "estimated on CPU" in table
    assert "<=0.0001" in table.replace(" ", "") and ">=0.999" in table.replace(" ", "")
    d = bad.to_dict()
    assert d["status"] == "FAILED" and d["samples"] == {"images": 20, "pairs": 30}


# --- reduced precision judged on decisions -----------------------------------------------------------------------


def _noisy(seed=1, pairs=400, noise=0.01, threshold=0.5):
    """Reference scores spread over [0, 1] and a backend's scores with small symmetric noise."""
    rng = np.random.default_rng(seed)
    ref = rng.random(pairs)
    return ref, ref + rng.normal(0, noise, pairs)


def test_noise_band_is_the_high_quantile_of_score_error():
    ref = np.zeros(100)
    got = np.linspace(0, 1, 100)
    assert noise_band(ref, got) == pytest.approx(np.quantile(got, 0.99))
    assert noise_band(ref, ref) == 0.0


def test_flips_within_the_noise_band_pass_and_a_flip_outside_fails():
    emb, _ = _ref()
    ref, got = _noisy()
    r = compare("ov", "bf16", emb, emb, ref, got, PROB)
    m = r.metrics
    # noise flips only pairs close to the threshold: every flip lies inside the band
    assert m["decision_flips"] >= 1 and m["flips_outside_band"] == 0
    assert m["flip_rate"] <= BF16_TOLERANCES.max_flip_rate and r.passed, format_table([r])
    # one pair far from the threshold (0.9) that the backend scores as 0.1 is a real change, not noise
    far = int(np.argmax(ref > 0.85))
    got2 = got.copy()
    got2[far] = 0.1
    r2 = compare("ov", "bf16", emb, emb, ref, got2, PROB)
    by = {c.metric: c for c in r2.checks}
    assert r2.metrics["flips_outside_band"] == 1 and not by["flips_outside"].passed and not r2.passed


def test_too_many_flips_fail_even_inside_the_band():
    """A bundle whose reference scores all sit at the threshold: every flip is noise, the ceiling still holds."""
    emb, _ = _ref()
    rng = np.random.default_rng(3)
    ref = 0.5 + rng.normal(0, 1e-4, 256)
    got = ref + rng.normal(0, 1e-4, 256)
    r = compare("ov", "int8", emb, emb, ref, got, PROB)
    assert r.metrics["flips_outside_band"] == 0
    assert r.metrics["flip_rate"] > INT8_TOLERANCES.max_flip_rate and not r.passed


def test_a_shifted_precision_gets_a_refitted_threshold_and_is_judged_at_it():
    emb, _ = _ref()
    ref, got = _noisy(noise=0.002)
    shifted = got + 0.05  # every score moves up: decisions near 0.5 flip at the manifest's threshold
    r = compare("ov", "int8", emb, emb, ref, shifted, PROB)
    assert r.threshold is not None and r.threshold == pytest.approx(0.55, abs=0.01)
    assert r.metrics["threshold_holds"] == 0.0
    assert r.metrics["flips_at_manifest_threshold"] > r.metrics["decision_flips"]
    assert r.passed, format_table([r])
    assert "refitted" in format_table([r])
    spec = r.spec(PROB)
    assert spec.threshold == r.threshold and "refitted for int8" in spec.threshold_source
    # the row survives parity.json
    back = ParityResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.threshold == r.threshold and back.passed
    # an unshifted backend keeps the manifest's threshold
    plain = compare("ov", "int8", emb, emb, ref, got, PROB)
    assert plain.threshold is None and plain.metrics["threshold_holds"] == 1.0 and plain.spec(PROB) is PROB


def test_refit_threshold_follows_a_shift_and_ignores_noise():
    ref, got = _noisy(noise=0.002)
    t, flips = refit_threshold(ref, got + 0.05, PROB, band=0.06)
    assert t == pytest.approx(0.55, abs=0.005) and flips <= 3
    # symmetric noise: the median shift is ~0 and the threshold stays put
    t2, _ = refit_threshold(ref, got, PROB, band=noise_band(ref, got))
    assert t2 == pytest.approx(0.5, abs=0.002)


def test_fp32_is_never_refitted():
    emb, _ = _ref()
    ref, got = _noisy(noise=1e-7)
    r = compare("ort", "fp32", emb, emb, ref, got + 0.05, PROB)
    assert r.threshold is None and not r.passed


def _auc_eer(scores, same, spec):
    from train.metrics import eer, roc_auc

    return roc_auc(scores, same, spec), eer(scores, same, spec)[0]


def test_task_checks_compare_auc_and_eer_on_labelled_pairs():
    emb, _ = _ref()
    rng = np.random.default_rng(5)
    same = rng.integers(0, 2, 300).astype(np.int8)
    ref = np.clip(np.where(same == 1, 0.7, 0.3) + rng.normal(0, 0.15, 300), 0, 1)
    r = compare("ov", "int8", emb, emb, ref, ref + rng.normal(0, 1e-3, 300), PROB, same=same, task=_auc_eer)
    by = {c.metric: c for c in r.checks}
    assert by["auc_drop"].passed and by["eer_rise"].passed
    assert r.metrics["auc"] == pytest.approx(r.metrics["auc_reference"], abs=0.005)
    # a backend that scrambles the same pairs loses AUC: the task check fails although it is labelled data
    bad = ref.copy()
    idx = np.flatnonzero(same == 1)[:60]
    bad[idx] = 0.45
    r2 = compare("ov", "int8", emb, emb, ref, bad, PROB, same=same, task=_auc_eer)
    assert not {c.metric: c for c in r2.checks}["auc_drop"].passed and not r2.passed
    # unlabelled pairs (-1) and no task: no task checks
    r3 = compare("ov", "int8", emb, emb, ref, ref, PROB, same=np.full(300, -1, np.int8), task=_auc_eer)
    assert "auc_drop" not in {c.metric for c in r3.checks}
    with pytest.raises(ValueError, match="labels"):
        compare("ov", "int8", emb, emb, ref, ref, PROB, same=same[:10], task=_auc_eer)
