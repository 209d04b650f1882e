"""The edge install: the wheel with its core dependencies only (numpy, OpenCV, ONNX Runtime, tqdm), in a fresh
virtual environment, runs bundles and cameras, and every command that needs more says which extra, in one line.

Builds the wheel from a copy of the sources, installs it into a new venv (pip fetches the core dependencies
from the package index, or its cache) and runs the commands there as a user would, from outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.extras import PROVIDERS, install_command
from tests import test_runtime_verify_cli
from tests.test_runtime_verifier import digits_uint8

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "train", "export", "runtime", "camera")
NOT_IN_CORE = ("tensorflow", "keras", "tf2onnx", "scikit-learn", "matplotlib", "h5py", "onnx", "openvino")
bundle = test_runtime_verify_cli.bundle  # fixtures: the session's digits bundle, and two 0s and a 1 as PNG files
images = test_runtime_verify_cli.images
SIZE_CEILING_MB = 400  # measured 337 MB (OpenCV 4.14 162, ONNX Runtime 78, numpy 73, pip + setuptools 24): see README


def _run(cmd: list[str], cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=timeout)


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


@pytest.fixture(scope="module")
def lean(tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel and its core dependencies; returns its python."""
    work = tmp_path_factory.mktemp("lean")
    src = work / "src"
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "cpp"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(p, src / name)
    wheel = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(src)], work)
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    assert "deprecat" not in (wheel.stdout + wheel.stderr).lower(), wheel.stderr[-3000:]  # the license form
    (whl,) = (work / "dist").glob("siamese_edge-*.whl")
    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], work)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    install = _run([str(python), "-m", "pip", "install", "-q", str(whl)], work)
    if install.returncode != 0 and "Could not find a version" in install.stderr:
        pytest.skip(f"the core dependencies cannot be installed here (no package index): {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-3000:]
    return python


@pytest.fixture(scope="module")
def clip(images, tmp_path_factory) -> dict[str, Path]:
    """Two digit PNGs and a 24-frame clip of digits (written here, read in the lean venv)."""
    digits, labels = digits_uint8()
    zeros = np.flatnonzero(labels == 0)
    out = {"a": images["zero_a"], "b": images["zero_b"], "clip": tmp_path_factory.mktemp("lean_clip") / "clip.mp4"}
    writer = cv2.VideoWriter(str(out["clip"]), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 64))
    assert writer.isOpened()
    for k in range(24):
        frame = cv2.resize(digits[zeros[k % 4]], (64, 64), interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return out


def test_core_install_has_no_training_stack(lean, tmp_path):
    code = "import importlib.metadata as m, json, sys; print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"
    proc = _run([str(lean), "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    installed = set(json.loads(proc.stdout))
    assert {"siamese-edge", "numpy", "opencv-python-headless", "onnxruntime"} <= installed
    assert not installed & set(NOT_IN_CORE), sorted(installed & set(NOT_IN_CORE))
    size = _du_mb(lean.parents[1])
    print(f"lean venv: {size:.0f} MB, {len(installed)} distributions")
    assert size < SIZE_CEILING_MB, f"the core install grew to {size:.0f} MB"


def test_verify_runs_a_bundle_in_the_core_install(lean, bundle, clip, tmp_path):
    proc = _run([str(lean), "-m", "runtime.verify", "--bundle", str(bundle), "--parity", "--json",
                 str(clip["a"]), str(clip["b"])], tmp_path, SIAMESE_EDGE_CACHE=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["backend"]["variant"] == "onnxruntime-cpu"  # the only backend of the core install
    assert out["parity"]["status"] == "PASSED"
    assert out["kind"] == "distance" and isinstance(out["match"], bool)


def test_camera_runs_a_clip_in_the_core_install(lean, bundle, clip, tmp_path):
    events = tmp_path / "events.jsonl"
    proc = _run([str(lean), "-m", "camera", "--bundle", str(bundle), "--source", str(clip["clip"]),
                 "--reference", str(clip["a"]), "--center-crop", "--headless", "--events", str(events)],
                tmp_path, SIAMESE_EDGE_CACHE=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = [json.loads(line) for line in events.read_text().splitlines()]
    decided = [e for e in frames if e["event"] == "frame"]
    assert len(decided) == 24 and all(isinstance(e["match"], bool) for e in decided), frames[:3]
    assert frames[0]["event"] == "start" and frames[0]["backend"].startswith("onnxruntime")


@pytest.mark.parametrize(
    "argv, extra",
    [
        (["-m", "train", "--arch", "koch", "--data", "digits", "--out", "run"], "train"),
        (["-m", "train.evaluate", "--model", "model.keras", "--data", "digits"], "train"),
        (["-m", "export.build", "--model", "model.keras", "--out", "bundles"], "export"),
    ],
)
def test_commands_without_their_extra_say_which_to_install(lean, tmp_path, argv, extra):
    proc = _run([str(lean), *argv], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines[0].startswith("error: ") and install_command(extra) in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "bundles").exists()  # nothing half-written


def test_tensorrt_build_needs_no_tensorflow(lean, bundle, tmp_path):
    """Building a plan on a Jetson is the core install plus TensorRT: here it gets as far as asking for TensorRT."""
    proc = _run([str(lean), "-m", "export.tensorrt_build", "--bundle", str(bundle)], tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "TensorRT is not installed" in proc.stderr
    assert install_command("gpu") in proc.stderr


def test_extras_table_matches_pyproject():
    """runtime.extras names, for each optional import, the extra that installs it: pyproject.toml must agree."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = {d.split(">")[0].split("=")[0].split("[")[0].lower() for d in project["dependencies"]}

    def closure(name: str) -> set[str]:
        out: set[str] = set()
        for dep in extras[name]:
            dist = dep.split(">")[0].split("=")[0].split("<")[0].strip().lower()
            if dist == "siamese-edge":
                for inner in dep.split("[", 1)[1].rstrip("]").split(","):
                    out |= closure(inner.strip())
            else:
                out.add(dist.split("[")[0])
        return out

    for module, (dist, extra) in PROVIDERS.items():
        assert extra in extras, f"{module}: extra [{extra}] is not in pyproject.toml"
        assert dist in closure(extra), f"{module}: {dist} is not installed by [{extra}]"
        assert dist not in core, f"{dist} is a core dependency, not an extra's"
    assert core == {"numpy", "opencv-python-headless", "onnxruntime", "tqdm", "jsonschema", "imagesize"}
