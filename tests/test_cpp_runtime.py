"""The C++ runtime (runtime/cpp): configure, build and run its ctest suite, as ``make test`` does.

ctest makes its own test data with this Python (bundles from the committed Omniglot model and a quick digits
model, Python's preprocessed tensors and scores), then checks parity per backend and precision (OpenVINO: fp32,
bf16 where the CPU has it natively, int8), the C++ parity rules against runtime.parity.compare, preprocessing against Python,
the C ABI from C, bad input, the installed library from examples/cpp and an ASan+UBSan build. The build's
system packages are listed once, in cmake/system-deps.sh; ``make test`` installs them when it can (as root or
through sudo), and where they are missing these tests skip with one line naming them and the install command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "cpp-test"
SYSTEM_DEPS = ROOT / "cmake" / "system-deps.sh"
EXPECTED = {
    "test_data",
    "parity_opencv_omniglot",
    "parity_opencv_digits",
    "scores_match_python_opencv",
    "parity_compare_matches_python",
    "cli_fp32_backend_refuses_int8",
    "preprocess_matches_python",
    "c_api",
    "bad_input",
    "cli_verify",
    "cli_bench",
    "example_run",
    "sanitizers",
}


def _run(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def missing_system_packages() -> list[str]:
    """The C++ build's packages not installed here, by cmake/system-deps.sh (the one list of them)."""
    proc = subprocess.run(["bash", str(SYSTEM_DEPS), "missing"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    missing = proc.stdout.split()
    tools = [tool for tool in ("cmake", "ctest", "g++", "cc", "pkg-config") if shutil.which(tool) is None]
    return missing or (["tools: " + ", ".join(tools)] if tools else [])


@pytest.fixture(scope="module")
def ctest() -> dict:
    missing = missing_system_packages()
    if missing:
        pytest.skip(
            f"C++ build dependencies missing: {' '.join(missing)}; install them with `make cpp-deps` "
            f"(sudo apt-get install -y {' '.join(missing)})"
        )
    configure = _run(["cmake", "-S", ".", "-B", str(BUILD), f"-DSIAMESE_PYTHON={sys.executable}"], 300)
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    build = _run(["nice", "cmake", "--build", str(BUILD), "-j2"], 900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    warnings = [line for line in build.stdout.splitlines() + build.stderr.splitlines() if "warning:" in line]
    run = _run(["nice", "ctest", "--test-dir", str(BUILD), "--output-on-failure", "-j2"], 1500)
    results = dict(re.findall(r"Test\s+#\d+: (\S+) \.+\**\s*(Passed|Failed|Not Run|Skipped|Timeout|\S+)", run.stdout))
    return {"configure": configure.stdout, "run": run, "results": results, "warnings": warnings}


def test_ctest_suite_passes(ctest):
    run = ctest["run"]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert EXPECTED <= set(ctest["results"]), f"tests that did not run: {sorted(EXPECTED - set(ctest['results']))}"
    # only the bf16 parity may skip (ctest's SKIP_REGULAR_EXPRESSION: the CPU has no native bf16)
    bad = {k: v for k, v in ctest["results"].items() if v != "Passed" and not (v == "Skipped" and "_bf16_" in k)}
    assert not bad, bad


def test_builds_without_warnings(ctest):
    assert not ctest["warnings"], "\n".join(ctest["warnings"][:20])


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "tensorrt"])
def test_optional_backend_parity(ctest, backend):
    built = re.search(r"siamese_runtime: backends (\S+)", ctest["configure"]).group(1).split(",")
    if backend not in built:
        pytest.skip(f"the {backend} backend was not built here (not found at configure time; see the CMake log)")
    assert ctest["results"].get(f"parity_{backend}_omniglot") == "Passed"
    assert ctest["results"].get(f"parity_{backend}_digits") == "Passed"


def test_openvino_reduced_precisions(ctest):
    """OpenVINO int8 always runs where the backend is built; bf16 runs exactly where OpenVINO lists native BF16."""
    built = re.search(r"siamese_runtime: backends (\S+)", ctest["configure"]).group(1).split(",")
    if "openvino" not in built:
        pytest.skip("the OpenVINO backend was not built here (not found at configure time; see the CMake log)")
    from runtime.backends.openvino_backend import bf16_support

    assert ctest["results"].get("parity_openvino_int8_omniglot") == "Passed"
    assert ctest["results"].get("openvino_int8_needs_the_graph") == "Passed"
    want = "Passed" if bf16_support() == "native" else "Skipped"
    assert ctest["results"].get("parity_openvino_bf16_omniglot") == want
    assert ctest["results"].get("parity_openvino_bf16_digits") == want


def test_raw_reference_equals_npz(ctest):
    """The raw files the C++ parity reads hold exactly reference.npz's arrays (dtype, shape, values)."""
    from runtime.bundle.layout import REFERENCE_NPZ
    from runtime.bundle.manifest import load_manifest
    from runtime.bundle.reference import read_raw

    bundle = BUILD / "test-data" / "bundles" / "digits"
    manifest = load_manifest(bundle)
    raw = read_raw(bundle, manifest.reference.raw)
    with np.load(bundle / REFERENCE_NPZ) as z:
        for name, array in raw.items():
            assert array.dtype == z[name].dtype.newbyteorder("<") and np.array_equal(array, z[name]), name


def test_manifest_names_the_opencv_graphs(ctest):
    from runtime.bundle.layout import EMBEDDING_OPENCV_ONNX, HEAD_OPENCV_ONNX

    for name, head in (("digits", HEAD_OPENCV_ONNX), ("omniglot", None)):
        m = json.loads((BUILD / "test-data" / "bundles" / name / "manifest.json").read_text())
        assert m["opencv"]["embedding_file"] == EMBEDDING_OPENCV_ONNX and m["opencv"]["head_file"] == head
        assert m["opencv"]["embedding_file"] in m["files"]
