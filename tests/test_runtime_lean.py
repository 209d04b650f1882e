"""The runtime and the camera ship to the edge: importing them must not pull in TensorFlow or Keras. And runtime.fileio."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.fileio import atomic_path, sha256_file, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "tf_keras")

_PROBE = """
import json, sys
{setup}
import {module}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(json.dumps(heavy))
"""


def _heavy_modules_after_import(module: str, setup: str = "") -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = _PROBE.format(setup=setup, module=module, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    ["runtime", "runtime.preprocess", "runtime.scoring", "runtime.fileio", "camera.cli", "camera.pipeline", "camera.sources", "camera.bench", "camera.clip"],
)
def test_runtime_import_does_not_load_tensorflow_or_keras(module: str) -> None:
    assert _heavy_modules_after_import(module) == []


def _imports_of(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """Every import (at the top or inside a function) of a package ``folder``'s modules from ``forbidden``."""
    import ast

    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in forbidden]
    return offenders


def test_camera_imports_only_the_runtime() -> None:
    """camera/ ships with the runtime: no module of it imports train/ or export/, at the top or inside a function."""
    assert _imports_of("camera", ("train", "export")) == []


def test_train_imports_neither_camera_nor_export() -> None:
    """The layers of DESIGN.md: train/ may import the runtime, not the camera or the exporter built on it."""
    assert _imports_of("train", ("camera", "export")) == []


def test_the_probe_sees_a_heavy_module() -> None:
    # a stand-in module, so the check above is known to be able to fail (without paying for a real import)
    setup = "import types; sys.modules['tf_keras'] = types.ModuleType('tf_keras')"
    assert _heavy_modules_after_import("runtime", setup) == ["tf_keras"]


# --- runtime.fileio ------------------------------------------------------------------------------------------


def test_atomic_path_replaces_on_success_and_keeps_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".keras" and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_atomic_path_explicit_suffix_and_new_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "plot"
    with atomic_path(target, suffix=".png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_atomic_path_on_error_leaves_the_original_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("original")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            seen.append(tmp)
            tmp.write_text("half written")
            raise RuntimeError("boom")
    assert target.read_text() == "original"
    assert not seen[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_atomic_path_on_error_without_an_original(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.unlink()  # the writer may have removed it already
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_write_json_atomic_handles_numpy(tmp_path: Path) -> None:
    data = {
        "f32": np.float32(1.5),
        "f64": np.float64(0.25),
        "i64": np.int64(3),
        "b": np.bool_(True),
        "arr": np.array([[1, 2], [3, 4]], np.int32),
        "farr": np.array([0.5, 1.0], np.float32),
        "path": Path("x") / "y.png",
        "nested": [np.uint8(7), {"k": np.array(2.0)}],
    }
    path = write_json_atomic(tmp_path / "d.json", data)
    assert path == tmp_path / "d.json"
    back = json.loads(path.read_text())
    assert back == {
        "f32": 1.5,
        "f64": 0.25,
        "i64": 3,
        "b": True,
        "arr": [[1, 2], [3, 4]],
        "farr": [0.5, 1.0],
        "path": str(Path("x") / "y.png"),
        "nested": [7, {"k": 2.0}],
    }
    assert path.read_text().endswith("\n")


def test_write_json_atomic_refuses_unknown_objects_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bad.json"
    target.write_text("{}\n")
    with pytest.raises(TypeError, match="object"):
        write_json_atomic(target, {"x": object()})
    assert target.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_write_text_atomic(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "t.txt", "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"


@pytest.mark.parametrize("size, chunk", [(0, 1 << 20), (1000, 7), (3 << 20, 1 << 20), (4096, 4096)])
def test_sha256_file_matches_hashlib(tmp_path: Path, size: int, chunk: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path, chunk=chunk) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_runtime_imports_no_other_layer() -> None:
    """runtime/ is the bottom layer: nothing of train/, export/ or camera/ (tools like the benchmark included)."""
    assert _imports_of("runtime", ("train", "export", "camera")) == []
