"""``make gpu-smoke`` (tools/gpu_smoke.py): one JSON report, every step passed, skipped with its reason, or
failed; on a machine without TensorRT and a GPU every GPU step is skipped and says why. The step that needs no
GPU to decide (a plan for another compute capability is refused) is run here on a real bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runtime.backends.tensorrt_backend import probe
from tools.gpu_smoke import STEPS, _other_gpu_plan_refused, main, write_l2_bundle

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
