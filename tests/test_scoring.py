"""runtime.scoring.ScoreSpec: match decisions in both directions, similarity orientation, dict form, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.scoring import ScoreSpec

PROB = ScoreSpec("probability", "high", 0.5)
DIST = ScoreSpec("distance", "low", 0.8, "calibrated (EER)")


def test_high_direction_scalars_including_the_threshold() -> None:
    assert PROB.is_match(0.9) is True
    assert PROB.is_match(0.5) is True  # exactly at the threshold counts as a match
    assert PROB.is_match(0.4999) is False
    assert PROB.is_match(0.0) is False
    assert PROB.is_match(np.float32(0.5)) is True


def test_low_direction_scalars_including_the_threshold() -> None:
    assert DIST.is_match(0.1) is True
    assert DIST.is_match(0.8) is True  # exactly at the threshold counts as a match
    assert DIST.is_match(0.8000001) is False
    assert DIST.is_match(3.0) is False
    assert DIST.is_match(np.float64(0.0)) is True


def test_arrays_give_bool_arrays() -> None:
    scores = np.array([0.0, 0.3, 0.5, 0.8, 1.0])
    hi = PROB.is_match(scores)
    lo = DIST.is_match(scores)
    assert isinstance(hi, np.ndarray) and hi.dtype == bool and hi.shape == (5,)
    np.testing.assert_array_equal(hi, [False, False, True, True, True])
    np.testing.assert_array_equal(lo, [True, True, True, True, False])
    np.testing.assert_array_equal(PROB.is_match([[0.6, 0.4]]), [[True, False]])
    np.testing.assert_array_equal(DIST.is_match([]), np.zeros(0, bool))


def test_comparison_is_exact_in_float64() -> None:
    # float32 scores are compared exactly (as float64) with the float64 threshold: thresholds calibrated
    # between two float32 scores keep separating them, and a float32 score equal to the threshold matches
    half = ScoreSpec("probability", "high", 0.75)
    assert half.is_match(np.float32(0.75)) is True
    assert half.is_match(np.nextafter(np.float32(0.75), np.float32(0))) is False
    s_lo, s_hi = np.float32(0.3), np.nextafter(np.float32(0.3), np.float32(1))
    mid = (float(s_lo) + float(s_hi)) / 2  # not representable in float32
    assert ScoreSpec("distance", "low", mid).is_match(np.array([s_lo, s_hi])).tolist() == [True, False]
    assert ScoreSpec("probability", "high", mid).is_match(np.array([s_lo, s_hi])).tolist() == [False, True]
    spec = ScoreSpec("probability", "high", np.float32(0.7))
    assert isinstance(spec.threshold, float) and spec.is_match(np.float32(0.7)) is True
    # integer scores are compared as numbers
    assert ScoreSpec("distance", "low", 1.0).is_match(np.array([0, 1, 2])).tolist() == [True, True, False]


def test_similarity_is_larger_for_more_alike() -> None:
    scores = np.array([0.1, 0.5, 2.0])
    np.testing.assert_array_equal(PROB.similarity(scores), scores)
    np.testing.assert_array_equal(DIST.similarity(scores), -scores)
    # ranking by similarity puts the most alike first in both directions
    assert int(np.argmax(DIST.similarity(scores))) == 0
    assert int(np.argmax(PROB.similarity(scores))) == 2


def test_with_threshold_returns_a_new_spec() -> None:
    new = DIST.with_threshold(np.float32(1.25), "calibrated at FAR 1e-3")
    assert new == ScoreSpec("distance", "low", 1.25, "calibrated at FAR 1e-3")
    assert isinstance(new.threshold, float)
    assert DIST.threshold == 0.8 and DIST.threshold_source == "calibrated (EER)"  # unchanged
    assert new.is_match(1.2) is True and DIST.is_match(1.2) is False


def test_dict_round_trip_through_json() -> None:
    for spec in (PROB, DIST, ScoreSpec("distance", "high", -2.5, "x")):
        d = json.loads(json.dumps(spec.to_dict()))
        assert d == {
            "kind": spec.kind,
            "same_when": spec.same_when,
            "threshold": spec.threshold,
            "threshold_source": spec.threshold_source,
        }
        assert ScoreSpec.from_dict(d) == spec


def test_from_dict_defaults_the_source() -> None:
    spec = ScoreSpec.from_dict({"kind": "probability", "same_when": "high", "threshold": 0.5})
    assert spec.threshold_source == "default"


@pytest.mark.parametrize(
    "kind, same_when, fragment",
    [("logit", "high", "'logit'"), ("probability", "up", "'up'"), ("distance", "LOW", "'LOW'")],
)
def test_invalid_kind_or_direction_refused(kind: str, same_when: str, fragment: str) -> None:
    with pytest.raises(ValueError) as e:
        ScoreSpec(kind, same_when, 0.5)
    assert fragment in str(e.value)


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        PROB.threshold = 0.1  # type: ignore[misc]


def test_describe_states_direction_and_source() -> None:
    assert ">= 0.5" in PROB.describe() and "probability" in PROB.describe()
    assert "<= 0.8" in DIST.describe() and "calibrated (EER)" in DIST.describe()


@pytest.mark.parametrize(
    "kind, threshold, fragment",
    [
        ("distance", float("nan"), "expected a finite number"),
        ("distance", float("inf"), "expected a finite number"),
        ("distance", "half", "'half': expected a number"),
    ],
)
def test_a_threshold_that_decides_nothing_is_refused(kind: str, threshold, fragment: str) -> None:
    """NaN compares false with everything: every frame would be "no match" with exit 0."""
    with pytest.raises(ValueError, match=fragment):
        ScoreSpec(kind, "low", threshold)


def test_a_nan_threshold_in_a_manifest_is_refused_naming_it(tmp_path) -> None:
    import json

    from runtime.bundle.layout import BundleError
    from runtime.bundle.manifest import Manifest

    d = {
        "schema_version": 1,
        "name": "t",
        "preprocessing": {"height": 8, "width": 8},
        "embedding": {"dim": 2},
        "head": {"kind": "euclidean"},
        "files": {},
        "score": {"kind": "distance", "same_when": "low", "threshold": float("nan")},
    }
    with pytest.raises(BundleError, match="manifest.json: score threshold nan: expected a finite number"):
        Manifest.from_dict(json.loads(json.dumps(d)))


def test_a_given_probability_threshold_lies_in_0_1() -> None:
    spec = ScoreSpec("probability", "high", 0.5)
    assert spec.with_given_threshold(0.7, "--threshold").threshold == 0.7
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"a probability threshold lies in \[0, 1\]"):
            spec.with_given_threshold(bad, "--threshold")
    assert spec.with_threshold(float(np.nextafter(1.0, 2.0)), "reject all").threshold > 1.0  # computed: allowed
