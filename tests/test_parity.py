"""runtime.parity: the comparator's numbers, the tolerances, the table."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.parity import FP16_TOLERANCES, FP32_TOLERANCES, INT8_TOLERANCES, compare, format_table, tolerances_for
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
    assert tolerances_for("fp16") is FP16_TOLERANCES and tolerances_for("bf16") is FP16_TOLERANCES
    assert tolerances_for("int8") is INT8_TOLERANCES and INT8_TOLERANCES.min_cosine == 0.99
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
