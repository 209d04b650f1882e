"""python -m runtime.verify: text and JSON output, --parity, exit codes, one-line errors without tracebacks."""

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

from runtime.backends.base import registered
from runtime.fileio import sha256_file
from runtime.verify import EXIT_BACKEND, EXIT_INPUT, EXIT_OK, EXIT_PARITY, main
from tests.test_runtime_verifier import digits_uint8, trained_bundle

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return trained_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Two different 0s and a 1, as PNG files, plus a corrupt file."""
    imgs, labels = digits_uint8()
    folder = tmp_path_factory.mktemp("cli_png")
    out = {}
    zeros = np.flatnonzero(labels == 0)
    for name, i in (("zero_a", zeros[0]), ("zero_b", zeros[1]), ("one", np.flatnonzero(labels == 1)[0])):
        out[name] = folder / f"{name}.png"
        cv2.imwrite(str(out[name]), imgs[i])
    out["corrupt"] = folder / "corrupt.png"
    out["corrupt"].write_bytes(out["zero_a"].read_bytes()[:30])
    return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMESE_EDGE_CACHE", str(tmp_path / "cache"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "runtime.verify", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_text_output_says_score_meaning_decision_and_backend(bundle, images, capsys):
    assert main(["--bundle", str(bundle), str(images["zero_a"]), str(images["zero_b"])]) == EXIT_OK
    out = capsys.readouterr().out
    assert "score:" in out and "distance: low means the same identity" in out
    assert "threshold:" in out and "match when score <=" in out and "calibrated" in out
    assert "decision:  MATCH" in out or "decision:  NO MATCH" in out
    assert "backend:   " in out and "why:       auto: " in out and "passes parity" in out


def test_json_is_one_object_with_the_decision(bundle, images, capsys):
    args = ["--bundle", str(bundle), str(images["zero_a"]), str(images["one"]), "--json", "--threads", "1"]
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    d = json.loads(out)
    assert d["a"] == str(images["zero_a"]) and d["b"] == str(images["one"])
    assert {"score", "match", "kind", "same_when", "threshold", "threshold_source", "meaning"} <= set(d)
    assert d["kind"] == "distance" and d["match"] == (d["score"] <= d["threshold"])
    assert d["backend"]["variant"] in {e.variant for e in registered()} and d["backend"]["reason"].startswith(
        f"auto: {d['backend']['variant']}"
    )
    assert "parity" not in d


def test_parity_prints_the_table_and_passes(bundle, images, capsys):
    fp32 = ["--backend", "onnxruntime", "--precision", "fp32"]  # the FP32 table (auto may take bf16 here)
    code = main(["--bundle", str(bundle), str(images["zero_a"]), str(images["zero_b"]), "--parity", *fp32])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "min passing" in out and "score_max_abs" in out and "parity:    PASSED" in out
    assert main(["--bundle", str(bundle), "--parity", "--json"]) == EXIT_OK  # no images: the check alone
    d = json.loads(capsys.readouterr().out)
    assert d["parity"]["status"] == "PASSED" and "score" not in d
    assert d["parity"]["backend"].startswith(d["backend"]["backend"])  # measured on the backend auto chose


def test_parity_failure_exits_1(bundle, tmp_path, capsys):
    """A bundle whose reference disagrees with its graphs (re-signed, so the hashes pass) fails --parity."""
    b = tmp_path / "drifted"
    shutil.copytree(bundle, b)
    with np.load(b / "reference.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["scores"] = arrays["scores"] + np.float32(0.01)
    np.savez_compressed(b / "reference.npz", **arrays)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["files"]["reference.npz"] = {
        "sha256": sha256_file(b / "reference.npz"),
        "bytes": (b / "reference.npz").stat().st_size,
    }
    (b / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--bundle", str(b), "--parity", "--backend", "onnxruntime", "--precision", "fp32"]) == EXIT_PARITY
    out = capsys.readouterr().out
    assert "FAILED" in out and "parity:    FAILED" in out


def test_bad_inputs_exit_2_with_one_line_naming_the_file(bundle, images, tmp_path):
    corrupt = _cli("--bundle", str(bundle), str(images["zero_a"]), str(images["corrupt"]))
    assert corrupt.returncode == EXIT_INPUT
    assert corrupt.stdout == "" and "Traceback" not in corrupt.stderr
    assert corrupt.stderr.count("\n") == 1 and str(images["corrupt"]) in corrupt.stderr
    assert corrupt.stderr.startswith("error: ")

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    with open(tampered / "embedding.onnx", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    proc = _cli("--bundle", str(tampered), str(images["zero_a"]), str(images["zero_b"]), "--json")
    assert proc.returncode == EXIT_INPUT and "Traceback" not in proc.stderr
    assert (
        proc.stderr.count("\n") == 1
        and "embedding.onnx" in proc.stderr
        and "does not match the manifest" in proc.stderr
    )
    assert proc.stdout == ""


def test_more_exit_codes_in_process(bundle, images, tmp_path, capsys):
    a, b = str(images["zero_a"]), str(images["zero_b"])
    assert main(["--bundle", str(bundle), a, str(tmp_path / "missing.png")]) == EXIT_INPUT
    assert "missing.png: no such file" in capsys.readouterr().err
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert main(["--bundle", str(bundle), a, str(tmp_path / "loop1")]) == EXIT_INPUT
    assert "loop1: cannot read (Too many levels of symbolic links)" in capsys.readouterr().err
    assert main(["--bundle", str(bundle), a, str(tmp_path)]) == EXIT_INPUT
    assert "is a directory, expected an image file" in capsys.readouterr().err
    assert main(["--bundle", str(tmp_path / "nowhere"), a, b]) == EXIT_INPUT
    assert "not a bundle folder" in capsys.readouterr().err
    assert main(["--bundle", str(bundle), a]) == EXIT_INPUT
    assert "expected two images" in capsys.readouterr().err
    assert main(["--bundle", str(bundle), a, b, "--threads", "0"]) == EXIT_INPUT
    capsys.readouterr()
    assert main(["--bundle", str(bundle), a, b, "--backend", "tensorrt"]) == EXIT_BACKEND  # no GPU on this machine
    err = capsys.readouterr().err
    assert err.startswith("error: backend='tensorrt' cannot run this bundle here") and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        main(["--bundle", str(bundle), a, b, "--backend", "cuda"])
    assert e.value.code == 2  # argparse's own usage error, also 2


def test_help_has_examples_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "python -m runtime.verify --bundle" in out and "exit codes:" in out
    assert "--parity" in out and "--json" in out
