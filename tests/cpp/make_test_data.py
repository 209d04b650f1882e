"""Test data for the C++ ctest suite, written by the Python side it is compared with.

    python tests/cpp/make_test_data.py --out build/cpp/test-data

* ``bundles/omniglot``: ``python -m export.build`` on the committed models/omniglot/model.keras (euclidean head),
  with its INT8 (QDQ) graph, the reference and the INT8 calibration both on ``calib/``; with ``--engine`` (ctest passes it when the C++ TensorRT backend is built) each also gets a plan for this GPU
* ``bundles/digits``: a quick keras-contrastive model on sklearn's digits (tests/quick_models.py, learned head)
* ``images/``: image files of every kind the preprocessing reads (8/16-bit, gray, RGBA, JPEG, BMP, odd sizes)
* ``preprocess/``: runtime/preprocess.py's tensors for each image under several preprocessing specs, as raw
  little-endian float32, listed in ``index.json`` (the C++ test preprocesses the same files and compares)
* ``python_scores.json``: the Python runtime's (ONNX Runtime) scores for image pairs, end to end from the files
* ``calib/<digit>/*.png``: real handwriting, sklearn's digits drawn dark on white as Omniglot's characters are
  (the Omniglot bundle's reference and INT8 calibration images, so neither depends on the Omniglot zips)
* ``parity_cases.json``: runtime.parity.compare's results on synthetic backend outputs (refitted and kept thresholds,
  flips inside and outside the noise band), which the C++ compare_parity must reproduce exactly
* ``plans/omniglot``: the Omniglot bundle with a plan file named, keyed and described (sidecar) by runtime/engines.py
  for TensorRT 10.3.0.30 on sm87: for the C++ plan matching only (its bytes are no engine; nothing runs it)

Bundles are rebuilt only when missing or older than the model or the exporter's code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from runtime.preprocess import Preprocessing, preprocess_image, read_image  # noqa: E402

SPECS = [  # one per resize mode and interpolation, with the project's real settings among them
    {"height": 28, "width": 28, "color": "gray", "resize": "stretch", "interpolation": "area"},
    {"height": 40, "width": 40, "color": "gray", "interpolation": "area", "mean": [1.0], "std": [-1.0]},
    {"height": 105, "width": 105, "color": "rgb", "resize": "shorter-side+center-crop", "interpolation": "bilinear"},
    {
        "height": 64,
        "width": 48,
        "color": "rgb",
        "resize": "letterbox",
        "interpolation": "bicubic",
        "letterbox_fill": 114,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    },
    {"height": 32, "width": 32, "color": "rgb", "resize": "stretch", "interpolation": "nearest"},
]


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    """A BGR uint8 picture with gradients, shapes, edges and noise (what resizing filters treat differently)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(h + w - 2, 1)], -1)
    img = img.astype(np.uint8)
    cv2.circle(img, (w // 2, h // 2), max(2, min(h, w) // 4), (30, 200, 90), -1)
    cv2.rectangle(img, (w // 6, h // 6), (w // 3, h // 2), (250, 20, 120), 2)
    noise = rng.integers(-20, 21, size=img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def write_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    scene = _scene(97, 131, 0)
    files = {
        "rgb.png": scene,
        "gray.png": cv2.cvtColor(_scene(60, 45, 1), cv2.COLOR_BGR2GRAY),
        "rgba.png": np.dstack([_scene(50, 70, 2), np.full((50, 70), 200, np.uint8)]),
        "rgb16.png": _scene(40, 33, 3).astype(np.uint16) * 257 + 100,
        "tiny.bmp": _scene(5, 7, 4),
        "photo.jpg": _scene(90, 120, 5),
        "same_as_rgb.png": scene.copy(),
    }
    out = []
    for name, img in files.items():
        p = folder / name
        if not cv2.imwrite(str(p), img):
            raise RuntimeError(f"{p}: OpenCV could not write it")
        out.append(p)
    return out


def write_preprocessed(images: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for s, spec in enumerate(SPECS):
        pre = Preprocessing.from_dict(spec)
        for image in images:
            x = np.ascontiguousarray(preprocess_image(read_image(image), pre), dtype="<f4")
            name = f"spec{s}_{image.stem}.f32"
            (folder / name).write_bytes(x.tobytes())
            cases.append({"image": str(image), "spec": pre.to_dict(), "tensor": name, "shape": list(x.shape)})
    (folder / "index.json").write_text(json.dumps({"opencv_python": cv2.__version__, "cases": cases}, indent=1))


def write_calibration_images(folder: Path, per_class: int = 8) -> Path:
    """sklearn's digits (real handwriting), 32x32, dark strokes on white, one folder per digit (identity)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            ink = cv2.resize(digits.images[i] * (255.0 / 16.0), (32, 32), interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(folder / str(label) / f"{k}.png"), np.clip(255.0 - ink, 0, 255).astype(np.uint8))
    return folder


def write_parity_cases(path: Path) -> None:
    """runtime.parity.compare on synthetic reference/backend pairs, with every rule of the reduced-precision gate
    exercised: a shifted backend (threshold refitted), symmetric noise (threshold kept), flips inside and outside the band."""
    from runtime.parity import compare
    from runtime.scoring import ScoreSpec

    rng = np.random.default_rng(7)
    distance = ScoreSpec("distance", "low", 0.8, "test")
    probability = ScoreSpec("probability", "high", 0.5, "test")
    cases = []
    for name, precision, spec, noise, shift, decimals in (
        ("fp32", "fp32", distance, 1e-7, 0.0, None),
        ("int8_shifted", "int8", distance, 0.004, -0.03, None),
        ("bf16_noisy", "bf16", distance, 0.03, 0.0, None),
        ("fp16_ties", "fp16", probability, 0.02, 0.0, 2),
        ("fp16_outliers", "fp16", probability, 0.001, 0.0, None),
        ("int8_zero_embedding", "int8", probability, 0.002, 0.0, None),
    ):
        ref_e = rng.normal(size=(24, 16)).astype(np.float32)
        if name == "int8_zero_embedding":
            ref_e[3] = 0
        got_e = (ref_e + rng.normal(scale=noise, size=ref_e.shape)).astype(np.float32)
        if name == "int8_zero_embedding":
            got_e[3] = 0
        low, high = (0.3, 1.3) if spec.kind == "distance" else (0.0, 1.0)
        ref_s = rng.uniform(low, high, size=300)
        got_s = ref_s + shift + rng.normal(scale=noise, size=300)
        if decimals is not None:
            ref_s, got_s = np.round(ref_s, decimals), np.round(got_s, decimals)
        if name == "fp16_outliers":  # three pairs decided the other way, far from the threshold: real changes
            got_s[:3] = 1.0 - ref_s[:3]
        ref_s, got_s = ref_s.astype(np.float32), got_s.astype(np.float32)
        r = compare(name, precision, ref_e, got_e, ref_s, got_s, spec).to_dict()
        cases.append(
            {
                "name": name,
                "precision": precision,
                "spec": {"kind": spec.kind, "same_when": spec.same_when, "threshold": spec.threshold},
                "ref_embeddings": ref_e.tolist(),
                "got_embeddings": got_e.tolist(),
                "ref_scores": ref_s.tolist(),
                "got_scores": got_s.tolist(),
                "result": {k: r[k] for k in ("status", "threshold", "metrics", "checks")},
            }
        )
    path.write_text(json.dumps(cases))


def _stale(bundle: Path, model: Path, int8: bool) -> bool:
    manifest = bundle / "manifest.json"
    if not manifest.is_file():
        return True
    if int8 and not json.loads(manifest.read_text())["embedding"].get("int8_file"):
        return True
    code = [*ROOT.joinpath("export").glob("*.py"), *ROOT.joinpath("runtime").glob("*.py")]
    newest = max(p.stat().st_mtime for p in [model, *code])
    return manifest.stat().st_mtime < newest


def export(model: Path, name: str, out: Path, engine: bool, calib: Path | None = None) -> Path:
    """The bundle of ``model``; with ``calib``, its reference and an INT8 graph calibrated on those images."""
    from export.build import main as build

    bundle = out / name
    if _stale(bundle, model, calib is not None):
        args = ["--model", str(model), "--name", name, "--out", str(out), "--force", "--no-fp16"]
        if calib is not None:
            args += ["--calib-images", str(calib), "--int8"]
        if engine:  # a plan for this GPU, for the C++ TensorRT backend
            args += ["--engine", "--require-engine"]
        code = build(args)
        if code != 0:
            raise SystemExit(f"export of {model} failed with exit code {code}")
    return bundle


def write_python_scores(bundles: dict[str, Path], images: list[Path], path: Path) -> None:
    import runtime

    pairs = [(a, b) for a in images for b in images if a.name < b.name]
    out = {}
    for name, bundle in bundles.items():
        v = runtime.load(bundle, backend="onnxruntime", precision="fp32")
        out[name] = [{"a": str(a), "b": str(b), "score": float(v.score(a, b))} for a, b in pairs]
    path.write_text(json.dumps(out, indent=1))


PLAN_TRT, PLAN_CC = "10.3.0.30", (8, 7)


def write_plan_fixture(bundle: Path, folder: Path, precisions: tuple[str, ...] = ("fp16",)) -> None:
    """A copy of ``bundle`` with a plan file and its sidecar per precision, exactly as export.tensorrt_build names and
    describes them (runtime/engines.py), so the C++ plan matching is checked against the Python side's format."""
    import shutil

    from runtime.bundle.layout import EMBEDDING_INT8_ONNX, EMBEDDING_ONNX
    from runtime.bundle.manifest import load_manifest
    from runtime.engines import BatchProfile, engine_cache_key, engine_file_name, engine_sidecar, sidecar_name
    from runtime.fileio import sha256_file

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(bundle, folder)
    shape = load_manifest(folder).preprocessing.input_shape
    profile = BatchProfile(1, 8, 32)
    for precision in precisions:
        source = EMBEDDING_INT8_ONNX if precision == "int8" else EMBEDDING_ONNX
        source_sha = sha256_file(folder / source)
        key = engine_cache_key(source_sha, PLAN_TRT, PLAN_CC, precision, profile, shape)
        plan = folder / engine_file_name(PLAN_TRT, PLAN_CC, precision, key)
        plan.write_bytes(b"not a TensorRT engine: plan-matching fixture")
        side = engine_sidecar(plan, key, PLAN_TRT, PLAN_CC, precision, source, source_sha, shape, profile, gpu="Orin")
        (folder / sidecar_name(plan.name)).write_text(json.dumps(side))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--engine", action="store_true", help="also build a TensorRT plan per bundle (needs a GPU)")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = args.out.resolve()
    images = write_images(out / "images")
    write_preprocessed(images, out / "preprocess")
    write_parity_cases(out / "parity_cases.json")
    calib = write_calibration_images(out / "calib")

    quick = out / "quick-digits"
    model = quick / "model.keras"
    if not model.is_file():
        from tests.quick_models import train_quick_digits

        model = train_quick_digits(quick)
    bundles = {
        "omniglot": export(
            ROOT / "models" / "omniglot" / "model.keras", "omniglot", out / "bundles", args.engine, calib
        ),
        "digits": export(model, "digits", out / "bundles", args.engine),
    }
    write_python_scores(bundles, images, out / "python_scores.json")
    write_plan_fixture(bundles["omniglot"], out / "plans" / "omniglot")
    write_plan_fixture(bundles["omniglot"], out / "plans" / "omniglot-int8", ("int8", "fp16"))
    print(f"test data in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
