"""``make gpu-smoke`` (tools/gpu_smoke.py): one JSON report, every step passed, skipped with its reason, or
failed; on a machine without TensorRT and a GPU every GPU step is skipped and says why. The step that needs no
GPU to decide (a plan for another compute capability is refused) is run here on a real bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.backends.tensorrt_backend import probe
from runtime.bundle.layout import EMBEDDING_INT8_ONNX
from tools.gpu_smoke import STEPS, Skip, _other_gpu_plan_refused, int8_case, int8_parity, main, write_l2_bundle

ROOT = Path(__file__).resolve().parents[1]


def test_the_report_has_every_step_and_says_why_one_did_not_run(tmp_path, capsys):
    out = tmp_path / "gpu-smoke.json"
    rc = main(["--out", str(out), "--work", str(tmp_path / "work")])
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert [s["step"] for s in report["steps"]] == [name for name, _ in STEPS]
    assert rc == (1 if report["failed"] else 0)
    for step in report["steps"]:
        assert step["status"] in ("passed", "skipped", "failed"), step
        if step["status"] == "skipped":
            assert step["reason"] and "\n" not in step["reason"], step
    installed = report["steps"][0]
    assert installed["status"] == "passed" and installed["details"]["probe"] == probe()
    if probe()["reason"]:  # no TensorRT or GPU here: nothing on the GPU ran, and each step says why
        by_name = {s["step"]: s for s in report["steps"]}
        assert by_name["tensorrt"]["status"] == "skipped" and by_name["cuda"]["status"] == "skipped"
        assert by_name["tensorrt-int8"]["status"] == "skipped"
        assert by_name["tensorrt-int8"]["reason"] == probe()["reason"]
        assert report["failed"] == 0 and report["passed"] == 1


def test_a_plan_for_another_compute_capability_is_refused(tmp_path):
    bundle = write_l2_bundle(tmp_path)
    orin = {"tensorrt": "10.3.0.30", "gpu": "Orin", "compute_capability": (8, 7), "reason": None}
    result = _other_gpu_plan_refused(bundle, orin)
    assert result["refused"] and "built for sm88 (another GPU), this GPU is sm87 (Orin)" in result["why"]


def test_make_target_runs_the_script():
    text = (ROOT / "Makefile").read_text()
    assert "gpu-smoke:" in text and "-m tools.gpu_smoke" in text
    proc = subprocess.run([sys.executable, "-m", "tools.gpu_smoke", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "GPU smoke check" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# the INT8 step's inputs and its parity compare, on the CPU (the INT8 graph run by ONNX Runtime's CPU provider here;
# the step itself runs the TensorRT plan)
# ---------------------------------------------------------------------------------------------------------------


def test_the_int8_case_of_the_tiny_bundle_and_its_parity_compare(tmp_path):
    import onnx

    from runtime.backends.onnxruntime_backend import CPU_PROVIDER, OnnxRuntimeBackend
    from runtime.bundle.manifest import load_manifest

    case = int8_case({"work": tmp_path})
    assert load_manifest(case.bundle).embedding.int8_file == EMBEDDING_INT8_ONNX  # listed and hash-checked
    ops = {n.op_type for n in onnx.load(str(case.bundle / EMBEDDING_INT8_ONNX)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "ONNX Runtime's CPU provider" in case.label and "no Keras model" in case.label
    ref = case.reference
    assert ref.inputs.shape[0] == len(ref.embeddings) == 20 and len(ref.pair_a) == len(ref.scores) == 10

    int8 = OnnxRuntimeBackend(case.bundle, providers=[CPU_PROVIDER], precision="int8")
    result = int8_parity(case, int8)
    assert result.precision == "int8" and result.note == case.label
    assert [c.metric for c in result.checks] == ["min_cosine", "flips_outside", "flip_rate"]  # the INT8 gates (no labels)
    assert result.passed, result.to_dict()


def test_the_int8_case_of_a_users_bundle_is_a_copy_against_its_keras_reference(tmp_path):
    from runtime.bundle.layout import REFERENCE_NPZ
    from runtime.bundle.manifest import load_manifest, write_manifest

    made = int8_case({"work": tmp_path / "made"})  # a bundle with an INT8 graph, and a reference saved in it
    user = tmp_path / "user" / "l2"
    shutil.copytree(made.bundle, user)
    made.reference.save(user / REFERENCE_NPZ)
    write_manifest(user, load_manifest(user))
    case = int8_case({"work": tmp_path / "work", "int8_bundle": user})
    assert case.bundle == tmp_path / "work" / "int8" / "l2" and case.bundle != user
    assert case.label == f"the Keras reference of {user} (reference.npz)"
    np.testing.assert_array_equal(case.reference.embeddings, made.reference.embeddings)
    assert (case.bundle / REFERENCE_NPZ).read_bytes() == (user / REFERENCE_NPZ).read_bytes()

    (user / EMBEDDING_INT8_ONNX).unlink()
    with pytest.raises(Skip, match=r"has no embedding.int8.onnx: export it with python -m export.build .* --int8"):
        int8_case({"work": tmp_path / "work", "int8_bundle": user})
