"""The C++ runtime's default parity tolerances (siamese-cli parity) are runtime/parity.py's, the only statement of
them; a change there must be made in runtime/cpp/include/siamese/reference.hpp too."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.parity import FP16_TOLERANCES, FP32_TOLERANCES

HEADER = Path(__file__).resolve().parents[1] / "runtime" / "cpp" / "include" / "siamese" / "reference.hpp"


def test_cpp_tolerances_equal_runtime_parity():
    found = dict(re.findall(r"constexpr double (k\w+) = ([-+.0-9e]+);", HEADER.read_text()))
    assert {k: float(v) for k, v in found.items()} == {
        "kFp32EmbeddingRel": FP32_TOLERANCES.embedding_rel,
        "kFp32ScoreAbs": FP32_TOLERANCES.score_abs,
        "kFp16MinCosine": FP16_TOLERANCES.min_cosine,
        "kFp16MaxFlipRate": FP16_TOLERANCES.max_flip_rate,
    }
