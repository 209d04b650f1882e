"""Project commands keep TensorFlow's start-up chatter off stderr (train.quiet); SIAMESE_EDGE_VERBOSE brings it back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHATTER = ("absl::InitializeLog", "oneDNN", "cuInit", "cudart_stub", "cpu_feature_guard", "I0000 ", "E0000 ", "W0000 ")

FAKE_TF = """
import os
os.write(2, b"CHATTER AT IMPORT\\n")
if os.environ.get("FAKE_TF_FAILS"):
    raise ImportError("fake tensorflow is broken")


class config:
    @staticmethod
    def list_physical_devices():
        os.write(2, b"CHATTER AT DEVICE DISCOVERY\\n")
        return []
"""


def _python(code: str, *paths: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SIAMESE_EDGE_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    pythonpath = os.pathsep.join(str(p) for p in (*paths, ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, "PYTHONPATH": pythonpath, **env},
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def fake_tf(tmp_path) -> Path:
    """A stand-in ``tensorflow`` that writes to file descriptor 2 at import and at device discovery, as TF's C++ does."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TF)
    return tmp_path


CODE = """
import sys
import train  # installs the hook, imports nothing heavy
assert "tensorflow" not in sys.modules
import tensorflow
print("project line", file=sys.stderr)
print(type(tensorflow.__loader__).__name__, tensorflow.__spec__.loader is tensorflow.__loader__)
"""


def test_import_and_device_discovery_are_silenced_and_nothing_else(fake_tf):
    proc = _python(CODE, fake_tf)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "project line\n"  # the project's own output still shows, after the import
    assert proc.stdout.split() == ["SourceFileLoader", "True"]  # the module keeps its real loader


def test_verbose_brings_the_chatter_back(fake_tf):
    proc = _python(CODE, fake_tf, SIAMESE_EDGE_VERBOSE="1")
    assert proc.returncode == 0, proc.stderr
    assert "CHATTER AT IMPORT" in proc.stderr and "project line" in proc.stderr


def test_a_failing_import_still_raises_and_stderr_comes_back(fake_tf):
    code = "import sys, train\ntry:\n    import tensorflow\nexcept ImportError as e:\n    print('caught:', e, file=sys.stderr)"
    proc = _python(code, fake_tf, FAKE_TF_FAILS="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "caught: fake tensorflow is broken\n"


def test_real_tensorflow_import_prints_nothing():
    """The real thing: Keras on TensorFlow, a model built and run, tf2onnx imported; stderr stays empty."""
    code = (
        "import numpy as np, train, keras, tf2onnx\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "print(m.predict(np.zeros((1, 3), np.float32), verbose=0).shape)"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "(1, 2)"
    found = [marker for marker in CHATTER if marker in proc.stderr]
    assert not found and proc.stderr.strip() == "", proc.stderr[-3000:]
