"""runtime.bench: FLOPs from an ONNX graph (checked by hand), a quick real run on a small bundle (JSON keys, table,
PNG, Keras next to the runtime with the same scores), the runtime-only process (no TensorFlow), the target logic."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import bench
from runtime.bench.cli import parse_backends
from runtime.bench.flops import count_flops
from runtime.bench.peaks import measure_peak
from runtime.bench.process import measure_runtime_process, runtime_probe_code
from runtime.bench.report import TARGETS, summarize
from runtime.bench.rows import DEFAULT_BACKENDS
from runtime.timing import latency_stats, throughput_stats, time_calls

ROOT = Path(__file__).resolve().parents[1]


def _small_graph(path: Path) -> Path:
    """NHWC (N, 8, 8, 3) -> Transpose -> Conv 4@3x3 pad 1 -> Relu -> Reshape (N, 256) -> Gemm 10 -> MatMul 5."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w_conv"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b_conv"),
        numpy_helper.from_array(np.array([-1, 256], np.int64), "shape"),
        numpy_helper.from_array(rng.standard_normal((256, 10)).astype(np.float32), "w_gemm"),
        numpy_helper.from_array(rng.standard_normal((10, 5)).astype(np.float32), "w_mm"),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w_conv", "b_conv"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Reshape", ["relu", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w_gemm"], ["dense"], name="gemm"),
        helper.make_node("MatMul", ["dense", "w_mm"], ["embedding"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_count_flops_matches_a_hand_count(tmp_path):
    path = _small_graph(tmp_path / "small.onnx")
    conv = 4 * 8 * 8 * (3 * 3 * 3)  # output elements x (C_in x kH x kW) multiply-accumulates
    gemm = 256 * 10
    mm = 10 * 5
    got = count_flops(path)
    assert got["by_op"] == {"Conv": 2 * conv, "Gemm": 2 * gemm, "MatMul": 2 * mm}
    assert got["flops"] == 2 * (conv + gemm + mm) == 19044 and got["macs"] == conv + gemm + mm
    assert got["nodes"] == 3 and got["unknown"] == []
    assert count_flops(path, batch=4)["flops"] == 4 * 19044


def test_timing_helpers():
    calls = []
    t = time_calls(calls.append, repeats=5, warmup=2)
    assert len(t) == 5 and calls == [0, 1, 0, 1, 2, 3, 4]
    s = latency_stats(np.array([0.001, 0.002, 0.003, 0.004]))
    assert s["p50_ms"] == pytest.approx(2.5) and s["n"] == 4 and s["min_ms"] == pytest.approx(1.0)
    assert throughput_stats(np.array([0.5, 0.5, 1.0]), 8)["images_per_s"] == pytest.approx(16.0)
    peak = measure_peak(n=256, repeats=2)
    assert peak["gflops"] > 0 and "numpy float32 matmul 256x256" in peak["method"]


def test_summary_ratios_and_targets():
    def row(name, backend, p50, frac=None):
        r = {"name": name, "backend": backend, "status": "ok", "latency_b1": {"p50_ms": p50}}
        if frac is not None:
            r.update(peak_fraction_b32=frac, gflops_b32=frac * 100)
        return r

    rows = [
        row("onnxruntime", "onnxruntime", 10.0, 0.6),
        row("openvino-fp32", "openvino", 8.0, 0.4),
        row("keras-predict", "keras", 200.0, 0.1),
        row("keras-call", "keras", 50.0),
        {"name": "tensorrt", "backend": "tensorrt", "status": "skipped", "reason": "no GPU"},
    ]
    s = summarize(rows, {"rss_mb_after_pair": 120.0, "hwm_mb": 130.0})
    assert s["best_b1_backend"] == "openvino-fp32" and s["pair_b1_vs_keras_predict"] == pytest.approx(25.0)
    assert s["pair_b1_vs_keras_call"] == pytest.approx(6.25)
    assert s["best_b32_backend"] == "onnxruntime" and s["best_b32_peak_fraction"] == pytest.approx(0.6)
    assert {k: v["met"] for k, v in s["targets"].items()} == {
        "pair_b1_vs_keras_predict": True,
        "best_b32_peak_fraction": True,
        "runtime_rss_mb": True,
    }
    s = summarize(rows[:2], {"error": "failed"})
    assert s["targets"]["pair_b1_vs_keras_predict"]["met"] is None and s["targets"]["runtime_rss_mb"]["met"] is None
    # a missed target is a plain False (what --check tests with `is False`), also when the value is a numpy float
    low = [{**rows[0], "peak_fraction_b32": np.float64(0.1)}]
    assert summarize(low, {"rss_mb_after_pair": 900.0})["targets"]["best_b32_peak_fraction"]["met"] is False


def test_backend_names():
    assert parse_backends(None) == list(DEFAULT_BACKENDS)
    assert parse_backends(["onnxruntime,openvino", "onnxruntime"]) == ["onnxruntime", "openvino-fp32"]
    with pytest.raises(SystemExit):
        parse_backends(["cuda"])


def test_runtime_only_process_never_imports_tensorflow(tmp_path_factory):
    from quick_models import omniglot_bundle

    bundle = omniglot_bundle(tmp_path_factory)
    p = measure_runtime_process(bundle)
    assert "error" not in p, p
    assert p["heavy_modules"] == [] and p["tensorflow_imported"] is False
    assert 0 < p["rss_mb_start"] < p["rss_mb_loaded"] <= p["hwm_mb"] and p["rss_mb_after_pair"] < 300
    assert p["import_runtime_s"] > 0 and p["load_bundle_s"] > 0
    # the probe can see a heavy module when one sneaks in (a stand-in, not a real TensorFlow import)
    code = "import sys, types; sys.modules['keras'] = types.ModuleType('keras')\n" + runtime_probe_code()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["heavy_modules"] == ["keras"]


def test_quick_run_writes_table_json_and_chart(tmp_path_factory, tmp_path, capsys):
    from quick_models import OMNIGLOT_MODEL, omniglot_bundle

    bundle = omniglot_bundle(tmp_path_factory)
    out = tmp_path / "bench"
    argv = ["--bundle", str(bundle), "--out", str(out), "--quick", "-q", "--backends", "onnxruntime", "tensorrt"]
    keras_wanted = OMNIGLOT_MODEL.is_file()
    if keras_wanted:
        argv += ["--model", str(OMNIGLOT_MODEL)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "runtime bench: bundle 'omniglot'" in printed and "pair b1 p50" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "runtime_bench_omniglot.json",
        "runtime_bench_omniglot.png",
        "runtime_bench_omniglot.txt",
    ]  # no temp files left
    assert (out / "runtime_bench_omniglot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = json.loads((out / "runtime_bench_omniglot.json").read_text())
    for key in (
        "schema",
        "bundle",
        "machine",
        "versions",
        "images",
        "settings",
        "peak",
        "flops",
        "results",
        "keras",
        "runtime_process",
        "summary",
        "files",
    ):
        assert key in r, key
    assert r["flops"]["flops"] > 0 and r["peak"]["fp32"]["gflops"] > 0
    rows = {x["name"]: x for x in r["results"]}
    ort = rows["onnxruntime"]
    assert ort["status"] == "ok" and ort["precision"] == "fp32"
    assert set(ort["latency_b1"]) >= {"p50_ms", "p90_ms", "p99_ms", "n"}
    assert set(ort["throughput"]) == {"8", "32"} and ort["throughput"]["32"]["images_per_s"] > 0
    assert ort["gflops_b32"] > 0 and ort["peak_fraction_b32"] > 0
    assert rows["tensorrt"]["status"] == "skipped" and rows["tensorrt"]["reason"]  # no GPU here: said why
    assert r["runtime_process"]["heavy_modules"] == []
    assert set(r["summary"]["targets"]) == set(TARGETS)
    if keras_wanted and importlib.util.find_spec("tensorflow") is not None:
        assert r["keras"]["error"] is None, r["keras"]
        assert rows["keras-predict"]["status"] == "ok" and rows["keras-call"]["status"] == "ok"
        assert r["keras"]["check_max_abs_diff"] < 1e-4  # Keras and the runtime score the same pairs alike
        assert r["summary"]["pair_b1_vs_keras_predict"] > 1


def test_importing_the_bench_and_the_gallery_loads_no_tensorflow():
    code = (
        "import json, sys, runtime.bench, runtime.gallery; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'train', 'export'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_a_missing_model_or_an_unwritable_out_fails_before_any_timing(tmp_path_factory, tmp_path, capsys):
    """Exit 2 with the option named, at once: not 0, and not after minutes of timing."""
    from quick_models import omniglot_bundle

    bundle = omniglot_bundle(tmp_path_factory)
    base = ["--bundle", str(bundle), "--quick", "-q", "--backends", "onnxruntime"]
    assert bench.main([*base, "--out", str(tmp_path / "o"), "--model", str(tmp_path / "missing.keras")]) == 2
    assert "--model " in capsys.readouterr().err and not (tmp_path / "o").exists()
    (tmp_path / "a-file").write_text("x")
    assert bench.main([*base, "--out", str(tmp_path / "a-file" / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'a-file' / 'sub'}: cannot write there" in err
