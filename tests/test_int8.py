"""export.build --int8: a QDQ INT8 graph calibrated on real images, checked, recorded, run by precision="int8"."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from export.build import EXIT_INPUT, ExportOptions, build_bundle, main
from runtime.bundle import Bundle
from runtime.bundle.layout import EMBEDDING_INT8_ONNX
from tests.quick_models import train_quick_digits


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    return train_quick_digits(tmp_path_factory.mktemp("int8") / "demo")


@pytest.fixture(scope="module")
def int8_bundle(digits_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8-bundles")
    result = build_bundle(digits_model, ExportOptions(out=out, int8=True, int8_images=64, opencv=False, quiet=True))
    assert result.passed
    return result.bundle


def test_the_int8_graph_is_qdq_symmetric_and_recorded(int8_bundle):
    import onnx
    from onnx import numpy_helper

    b = Bundle.open(int8_bundle)  # every file hash-checked, the INT8 graph included
    m = b.manifest
    assert m.embedding.int8_file == EMBEDDING_INT8_ONNX and EMBEDDING_INT8_ONNX in m.files
    assert m.int8.source.startswith("model card data") and m.int8.images >= 60
    graph = onnx.load(str(int8_bundle / EMBEDDING_INT8_ONNX))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    zero_points = [inits[n.input[2]] for n in graph.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric: TensorRT's form


def test_parity_reports_int8_and_the_runtime_runs_it(int8_bundle):
    import runtime

    report = Bundle.open(int8_bundle).parity()
    row = report.row("onnxruntime-cpu", "int8")
    assert row is not None and row.passed and row.metrics["min_cosine"] >= 0.99
    assert report.passed  # FP32 gates the bundle; INT8 is reported
    ref = Bundle.open(int8_bundle).reference()
    v8 = runtime.load(int8_bundle, backend="onnxruntime", precision="int8")
    v32 = runtime.load(int8_bundle, backend="onnxruntime", precision="fp32")
    assert v8.info()["precision"] == "int8"
    e8, e32 = np.asarray(v8.embed_preprocessed(ref.inputs)), np.asarray(v32.embed_preprocessed(ref.inputs))
    cos = np.sum(e8 * e32, axis=1) / (np.linalg.norm(e8, axis=1) * np.linalg.norm(e32, axis=1))
    assert cos.min() >= 0.99 and not np.array_equal(e8, e32)  # close, and really a different graph
    # the export judged INT8 on the task too (the reference pairs are labelled: the model card's data)
    assert {"auc_drop", "eer_rise", "flips_outside"} <= {c.metric for c in row.checks}
    assert row.metrics["auc_reference"] - row.metrics["auc"] <= 0.005
    # auto weighs the INT8 options with the others (whatever it takes here), and decides at the INT8 threshold
    auto = runtime.load(int8_bundle)
    info = auto.info()
    assert {"onnxruntime-cpu:int8", "openvino:int8"} & set(info["timings"])
    if info["precision"] == "int8":
        taken = report.row(info["parity_label"], "int8")
        assert taken.passed and auto.spec.threshold == (taken.threshold or auto.manifest.score.threshold)
    assert "INT8" in (int8_bundle / "BUILD_ENGINE.md").read_text()  # and how to build its TensorRT plan


def test_calibration_needs_enough_real_images(digits_model, tmp_path, capsys):
    few = tmp_path / "few"
    few.mkdir()
    for i in range(5):
        cv2.imwrite(str(few / f"{i}.png"), np.full((8, 8), i * 40, np.uint8))
    args = ["--model", str(digits_model), "--out", str(tmp_path / "o"), "--int8", "--no-opencv"]
    assert main([*args, "--calib-images", str(few)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "INT8 calibration needs at least 16 images, got 5" in err and not (tmp_path / "o" / "demo").exists()
    assert main([*args, "--int8-images", "0"]) == EXIT_INPUT
    assert "--int8-images 0: expected a positive number" in capsys.readouterr().err


def test_a_bundle_without_an_int8_graph_says_so(digits_model, tmp_path):
    import runtime
    from runtime.select import BackendUnavailable

    bundle = build_bundle(digits_model, ExportOptions(out=tmp_path, opencv=False, quiet=True)).bundle
    with pytest.raises(BackendUnavailable, match=r"no INT8 graph \(export it with --int8\)"):
        runtime.load(bundle, backend="onnxruntime", precision="int8")
