"""auto by measurement (runtime.speed, runtime.select): the fastest option that passes its gates, ties to the
registry's order, timings from the export on this machine, else timed once at load and cached."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

import runtime
from runtime import select as sel
from runtime import verifier as verifier_module
from runtime.speed import TIE_RATIO, Speed, SpeedRecord, fastest_first, machine_id, option_key, time_pair
from tests.test_runtime_verifier import trained_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return trained_bundle(tmp_path_factory)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMESE_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SIAMESE_EDGE_AUTO_TIMING", raising=False)


def test_fastest_first_keeps_the_order_within_the_tie_ratio():
    opts = ["a", "b", "c", "d"]
    assert fastest_first(opts, {"a": 3.0, "b": 1.0, "c": 2.0, "d": None}) == ["b", "c", "a", "d"]
    # b is within 10% of c: a tie, so b (earlier in the order) goes first although c measured faster
    assert fastest_first(opts, {"a": 5.0, "b": 1.05, "c": 1.0}) == ["b", "c", "a", "d"]
    assert fastest_first(opts, {"a": 5.0, "b": 1.0 * TIE_RATIO * 1.01, "c": 1.0})[0] == "c"
    assert fastest_first(opts, {}) == opts


class _Timed(Speed):
    """Speed with the measurement replaced by given numbers: the ranking is what is tested, not the clock."""

    def __init__(self, known, times):
        super().__init__(dict(known), np.zeros((2, 1, 1, 1), np.float32), {}, {}, None, "given")
        self.times, self.timed, self.saved = times, [], None

    def time(self, backend):
        self.timed.append(backend.key)
        return self.times[backend.key]

    def save(self, timings):
        self.saved = dict(timings)


def _walk(speed, fail=frozenset(), present=None):
    cands = sel.candidates(module_precisions={"openvino": ("bf16", "fp32")})
    present = present or {"tensorrt": (False, "no GPU"), "onnxruntime-gpu": (False, "no CUDA")}
    built = []

    def build(c, p):
        built.append(option_key(c.variant, p))
        return types.SimpleNamespace(key=option_key(c.variant, p), info=lambda: {"precision": p}, close=lambda: None)

    def judge(c, p, b):
        return sel.Verdict(b.key not in fail, "checked at load")

    s = sel.select(cands, "auto", lambda c: present.get(c.variant, (True, "")), build, judge, speed=speed)
    return s, built


def test_select_takes_the_fastest_option_that_passes():
    times = {"openvino:bf16": 9.0, "openvino:fp32": 2.0, "onnxruntime-cpu:fp32": 4.0}
    speed = _Timed({}, times)
    s, built = _walk(speed)
    assert (s.candidate.variant, s.precision) == ("openvino", "fp32")
    assert sorted(speed.timed) == sorted(times) and speed.saved == times
    assert s.timings == times and "openvino:fp32 2 ms" in s.reason and s.reason.startswith("auto: openvino fp32")
    # the fastest fails parity: the next fastest that passes is taken, and the failure is not timed
    speed = _Timed({}, times)
    s, _ = _walk(speed, fail={"openvino:fp32"})
    assert (s.candidate.variant, s.precision) == ("onnxruntime-cpu", "fp32")
    assert "openvino:fp32" not in speed.timed and speed.saved["openvino:fp32"] is None
    assert any(a.outcome == "parity failed" and a.precision == "fp32" for a in s.attempts)


def test_select_with_known_timings_builds_only_the_fastest():
    known = {"openvino:bf16": 9.0, "openvino:fp32": 2.0, "onnxruntime-cpu:fp32": 4.0}
    speed = _Timed(known, {})
    s, built = _walk(speed)
    assert built == ["openvino:fp32"] and speed.timed == [] and s.precision == "fp32"
    # it fails now: the next fastest is tried, still without timing
    s, built = _walk(_Timed(known, {}), fail={"openvino:fp32"})
    assert built == ["openvino:fp32", "onnxruntime-cpu:fp32"] and s.candidate.variant == "onnxruntime-cpu"
    # an option present here that the known timings lack (a new backend): everything is timed again
    speed = _Timed({"onnxruntime-cpu:fp32": 4.0}, {"openvino:bf16": 1.0, "openvino:fp32": 2.0})
    s, _ = _walk(speed)
    assert (s.candidate.variant, s.precision) == ("openvino", "bf16")
    assert sorted(speed.timed) == ["openvino:bf16", "openvino:fp32"]  # the known one is not timed again


def test_time_pair_times_real_embed_calls(bundle):
    v = runtime.load(bundle, backend="onnxruntime", precision="fp32")
    pair = np.zeros((2, *v.preprocessing.input_shape), np.float32)
    calls = []
    backend = types.SimpleNamespace(embed=lambda x: calls.append(x.shape) or v.backend.embed(x))
    ms = time_pair(backend, pair)
    assert ms > 0 and len(calls) >= 5 and calls[0] == pair.shape


def test_export_times_every_backend_it_checks_on_this_machine(bundle):
    d = json.loads((bundle / "parity.json").read_text())
    record = SpeedRecord.from_dict(d["speed"])
    assert record.machine == machine_id() and record.libraries["onnxruntime"]
    assert "onnxruntime-cpu:fp32" in record.pair_ms and all(v is None or v > 0 for v in record.pair_ms.values())
    v = runtime.load(bundle)
    assert v.info()["timing_source"] == "timed at export on this machine"
    assert v.info()["timings"] == record.pair_ms


def test_another_machine_times_at_first_load_and_caches(bundle, monkeypatch, tmp_path):
    other = {**machine_id(), "cpu": "another CPU"}
    monkeypatch.setattr(verifier_module, "machine_id", lambda: other)
    first = runtime.load(bundle)
    info = first.info()
    assert info["timing_source"] == "timed at this load"
    taken = option_key(info["variant"], info["precision"])
    assert info["timings"][taken] > 0
    cached = list((tmp_path / "cache" / "speed").glob("*.json"))
    assert len(cached) == 1 and SpeedRecord.from_dict(json.loads(cached[0].read_text())).machine == other
    again = runtime.load(bundle)
    assert again.info()["timing_source"] == "timed at an earlier load (cached)"
    assert again.info()["timings"] == info["timings"]
    assert (again.info()["variant"], again.info()["precision"]) == (info["variant"], info["precision"])


def test_timing_off_walks_the_registry_order(bundle, monkeypatch):
    monkeypatch.setenv("SIAMESE_EDGE_AUTO_TIMING", "off")
    v = runtime.load(bundle)
    assert v.info()["timings"] == {} and v.info()["timing_source"] is None and "timing off" in v.info()["reason"]


def test_a_refitted_threshold_decides_at_its_precision(bundle):
    """parity refitted the threshold for a precision: the verifier decides with it, and says where it came from."""
    base = runtime.load(bundle, backend="onnxruntime", precision="fp32")
    s = base.selection
    moved = base.manifest.score.threshold * 0.5
    refit = sel.Selection(s.backend, s.candidate, s.precision, sel.Verdict(True, "parity.json", threshold=moved), "auto")
    v = verifier_module.Verifier(base.bundle_dir, base.manifest, refit)
    assert v.spec.threshold == moved and "refitted for fp32 by parity" in v.spec.threshold_source
    assert v.decide(moved * 0.99).match == (v.spec.same_when == "low")
    assert base.spec.threshold == base.manifest.score.threshold
