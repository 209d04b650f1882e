"""The C++ runtime's parity tolerances are runtime/parity.py's: CMake generates siamese/tolerances.hpp from
runtime/parity_tolerances.json, the file runtime.parity reads. The generator runs here alone (``cmake -P``, the
same function the configure step calls), so the check costs milliseconds and needs no C++ build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

from runtime import parity
from runtime.parity import NOISE_BAND_QUANTILE, REFIT_MIN_FLIPS, REFIT_MIN_RATE, Tolerances, tolerances_for

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cmake" / "SiameseTolerances.cmake"

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (make cpp-deps)")


def _generate(json_file: Path, header: Path) -> subprocess.CompletedProcess:
    cmd = [
        "cmake",
        f"-DSIAMESE_TOLERANCES_JSON={json_file}",
        f"-DSIAMESE_TOLERANCES_HEADER={header}",
        "-P",
        str(SCRIPT),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _value(text: str) -> float | None:
    return None if text == "std::nullopt" else float(text)


def test_generated_header_equals_runtime_parity(tmp_path):
    header = tmp_path / "tolerances.hpp"
    proc = _generate(parity.TOLERANCES_FILE, header)
    assert proc.returncode == 0, proc.stderr
    text = header.read_text()
    struct = re.search(r"struct Tolerances \{[^\n]*\n(.*?)\};", text, re.S).group(1)
    order = re.findall(r"std::optional<double> (\w+);", struct)
    assert order == [f.name for f in fields(Tolerances)]
    rows = re.findall(r'\{"(\w+)", \{([^}]*)\}\}', text)
    table = json.loads(parity.TOLERANCES_FILE.read_text())["precisions"]
    assert sorted(p for p, _ in rows) == sorted(table)
    for precision, values in rows:
        got = dict(zip(order, (_value(v.strip()) for v in values.split(","))))
        assert got == {f.name: getattr(tolerances_for(precision), f.name) for f in fields(Tolerances)}, precision
    rules = dict(re.findall(r"inline constexpr double (k\w+) = ([-+.0-9e]+);", text))
    assert {k: float(v) for k, v in rules.items()} == {
        "kNoiseBandQuantile": NOISE_BAND_QUANTILE,
        "kRefitMinFlips": REFIT_MIN_FLIPS,
        "kRefitMinRate": REFIT_MIN_RATE,
    }


def test_no_hand_copied_tolerances_in_the_cpp_sources():
    sources = [*ROOT.joinpath("runtime", "cpp").rglob("*.[ch]pp"), *ROOT.joinpath("runtime", "cpp").rglob("*.h")]
    for path in sources:
        assert not re.search(r"\b(1e-4|1e-5|0\.999)\b", path.read_text()), f"{path}: a tolerance written by hand"


def test_unknown_tolerance_is_refused_as_in_python(tmp_path):
    doc = json.loads(parity.TOLERANCES_FILE.read_text())
    doc["precisions"]["fp32"]["max_typo"] = 1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    proc = _generate(bad, tmp_path / "out.hpp")
    assert proc.returncode != 0 and "unknown tolerance max_typo" in proc.stderr
