"""The C++ TensorRT backend splits and pads batches by the rule the Python backend uses (runtime/engines.py's
plan_chunks), and reads the TensorRT version as runtime/engines.py's trt_version_from_int does: the header it
uses (runtime/cpp/src/chunks.hpp, free of TensorRT and CUDA) is compiled here and run on the same cases."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.engines import BatchProfile, plan_chunks, trt_version_from_int

ROOT = Path(__file__).resolve().parents[1]
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")

PROGRAM = r"""
#include <iostream>
#include "chunks.hpp"
int main() {
  int64_t n, lo, hi;
  while (std::cin >> n >> lo >> hi) {
    std::cout << n << ' ' << lo << ' ' << hi << ':';
    for (const auto& c : siamese::detail::plan_chunks(n, lo, hi)) std::cout << ' ' << c.start << ',' << c.stop << ',' << c.run;
    std::cout << '\n';
  }
  for (int32_t v : {100300, 101601, 110100}) std::cout << siamese::detail::trt_version_from_int(v) << '\n';
  return 0;
}
"""

PROFILES = [BatchProfile(1, 8, 32), BatchProfile(2, 4, 8), BatchProfile(4, 8, 8), BatchProfile(8, 8, 8)]
SIZES = [0, 1, 2, 3, 7, 8, 9, 20, 31, 32, 33, 70]


@pytest.fixture(scope="module")
def chunker(tmp_path_factory) -> Path:
    if CXX is None:
        pytest.skip("no C++ compiler here (the C++ build needs one: make cpp-deps)")
    folder = tmp_path_factory.mktemp("chunks")
    (folder / "main.cpp").write_text(PROGRAM)
    exe = folder / "chunks"
    cmd = [
        CXX,
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-I{ROOT / 'runtime/cpp/src'}",
        "main.cpp",
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True, text=True, timeout=120)
    return exe


def test_cpp_and_python_split_and_pad_batches_alike(chunker):
    cases = [(n, p) for p in PROFILES for n in SIZES]
    stdin = "".join(f"{n} {p.min} {p.max}\n" for n, p in cases)
    lines = subprocess.run([chunker], input=stdin, capture_output=True, text=True, check=True, timeout=60).stdout
    lines = lines.splitlines()
    for (n, p), line in zip(cases, lines):
        python = "".join(f" {c.start},{c.stop},{c.run}" for c in plan_chunks(n, p))
        assert line == f"{n} {p.min} {p.max}:{python}", (n, str(p))
    assert lines[len(cases) :] == [trt_version_from_int(v) for v in (100300, 101601, 110100)]
    assert lines[len(cases) :] == ["10.3.0", "10.16.1", "11.1.0"]
