"""The bundle manifest: the single source of truth for a deployed model's preprocessing and scoring.

``export.build`` writes it (``write_manifest``), ``export.tensorrt_build`` adds plans to it (``add_engine``); the
Python runtime, the C++ runtime and the camera read it (``load_manifest``). Nothing else writes manifest.json. The manifest lists
the sha256 of every other file in the bundle, and ``load_manifest`` refuses a bundle whose files do not
match, naming the file, so a stale or corrupted model is never silently used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.fileio import read_json, sha256_file, write_json_atomic
from runtime.heads import DEFAULT_EPSILON
from runtime.preprocess import Preprocessing
from runtime.scoring import ScoreSpec

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"

# the names of a bundle's files (manifest.json lists each one present with its sha256 and size)
EMBEDDING_ONNX = "embedding.onnx"
EMBEDDING_FP16_ONNX = "embedding.fp16.onnx"
HEAD_ONNX = "head.onnx"
SIAMESE_ONNX = "siamese.onnx"
REFERENCE_NPZ = "reference.npz"
PARITY_JSON = "parity.json"
# for the C++ runtime: graphs OpenCV's DNN importer reads (export.opencv_variant), and the Keras reference as
# raw little-endian arrays (export.reference_raw) listed under the manifest's reference.raw with dtype and shape
EMBEDDING_OPENCV_ONNX = "embedding.opencv.onnx"
HEAD_OPENCV_ONNX = "head.opencv.onnx"
REFERENCE_RAW_DIR = "reference"
REFERENCE_RAW_ARRAYS = {  # name in reference.npz -> (file in REFERENCE_RAW_DIR, little-endian dtype)
    "inputs": ("inputs.f32", "float32"),
    "embeddings": ("embeddings.f32", "float32"),
    "scores": ("scores.f32", "float32"),
    "pair_a": ("pair_a.i64", "int64"),
    "pair_b": ("pair_b.i64", "int64"),
}

# tensor names in the ONNX graphs
INPUT_NAME = "image"
EMBEDDING_OUTPUT = "embedding"
HEAD_INPUTS = ("embedding_a", "embedding_b")
SCORE_OUTPUT = "score"
SIAMESE_INPUTS = ("image_a", "image_b")

HEAD_KINDS = ("learned", "euclidean")

# metadata_props of the bundle's FP16 graphs (export.fp16 writes them; export.tensorrt_build reads them)
PRECISION_KEY = "siamese_edge.precision"
FP32_NODES_KEY = "siamese_edge.fp16.fp32_nodes"  # nodes deliberately kept FP32 (a TensorRT 10 build can pin them)
CLAMPED_KEY = "siamese_edge.fp16.clamped_values"


class BundleError(ValueError):
    """A bundle that cannot be used: missing, malformed, or files that do not match the manifest."""


@dataclass
class Manifest:
    """The parsed manifest. ``raw`` keeps every field, also those this version does not model."""

    name: str
    preprocessing: Preprocessing
    score: ScoreSpec
    embedding_dim: int
    l2_normalized: bool
    head_kind: str
    files: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def head_file(self) -> str | None:
        return self.raw.get("head", {}).get("file")

    @property
    def head_epsilon(self) -> float:
        """The euclidean head's epsilon under the square root (the exporter records the model's own)."""
        return float(self.raw.get("head", {}).get("epsilon", DEFAULT_EPSILON))

    @property
    def embedding_file(self) -> str:
        return self.raw.get("embedding", {}).get("file", EMBEDDING_ONNX)

    @property
    def fp16_file(self) -> str | None:
        """The FP16 embedding graph, when the bundle has one (exported with --fp16)."""
        return self.raw.get("embedding", {}).get("fp16_file") or None

    @property
    def parity_file(self) -> str:
        return self.raw.get("parity_file") or PARITY_JSON

    @property
    def arch(self) -> str | None:
        """The architecture the bundle was exported from (``source.arch``)."""
        return self.raw.get("source", {}).get("arch")

    @property
    def engines(self) -> list[dict[str, Any]]:
        """The TensorRT plans recorded in the bundle (their sidecar entries)."""
        return list(self.raw.get("engines") or [])

    @property
    def label_same(self) -> int | None:
        return self.raw.get("training", {}).get("label_same")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MANIFEST_NAME) -> Manifest:
        try:
            version = d["schema_version"]
            if version != SCHEMA_VERSION:
                raise BundleError(
                    f"{where}: schema_version {version}, this runtime reads {SCHEMA_VERSION}; re-export the bundle"
                )
            head = d["head"]
            if head["kind"] not in HEAD_KINDS:
                raise BundleError(f"{where}: head kind {head['kind']!r}, expected one of {HEAD_KINDS}")
            if head["kind"] == "learned" and not head.get("file"):
                raise BundleError(f"{where}: a learned head needs head.file")
            return cls(
                name=d["name"],
                preprocessing=Preprocessing.from_dict(d["preprocessing"]),
                score=ScoreSpec.from_dict(d["score"]),
                embedding_dim=int(d["embedding"]["dim"]),
                l2_normalized=bool(d["embedding"].get("l2_normalized", False)),
                head_kind=head["kind"],
                files=dict(d["files"]),
                raw=d,
            )
        except KeyError as e:
            raise BundleError(f"{where}: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            if isinstance(e, BundleError):
                raise
            raise BundleError(f"{where}: {e}") from None


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def verify_files(bundle_dir: str | Path, files: dict[str, dict[str, Any]]) -> None:
    """Raise BundleError naming the first file that is missing or whose sha256 differs from the manifest."""
    root = Path(bundle_dir)
    for name, entry in files.items():
        p = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{root / MANIFEST_NAME}: file entry {name!r} points outside the bundle")
        if not p.is_file():
            raise BundleError(f"{p}: listed in the manifest but missing")
        actual = sha256_file(p)
        if actual != entry.get("sha256"):
            raise BundleError(
                f"{p}: sha256 {actual[:12]}... does not match the manifest ({str(entry.get('sha256'))[:12]}...); "
                "the file was changed or truncated after export: re-export the bundle"
            )


def manifest_fields(
    *,
    name: str,
    source: dict[str, Any],
    tools: dict[str, str],
    preprocessing: Preprocessing,
    score: ScoreSpec,
    embedding_dim: int,
    l2_normalized: bool,
    has_fp16: bool,
    head_kind: str,
    head_epsilon: float | None,
    loss: str | None,
    margin: float | None,
    label_same: int,
    onnx: dict[str, Any],
    reference_source: str,
    reference_images: int,
    reference_pairs: int,
) -> dict[str, Any]:
    """The manifest's fields (all but ``files``, which ``write_manifest`` adds): the one statement of its layout
    on the writing side, next to ``Manifest.from_dict`` on the reading side. ``source``: file, sha256, arch;
    ``onnx``: opset, batch, simplified."""
    if head_kind not in HEAD_KINDS:
        raise ValueError(f"head kind {head_kind!r}: expected one of {HEAD_KINDS}")
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": dict(source),
        "tools": dict(tools),
        "input": {
            "name": INPUT_NAME,
            "height": preprocessing.height,
            "width": preprocessing.width,
            "channels": preprocessing.channels,
            "layout": "NHWC",
            "dtype": "float32",
        },
        "preprocessing": preprocessing.to_dict(),
        "embedding": {
            "file": EMBEDDING_ONNX,
            "output": EMBEDDING_OUTPUT,
            "dim": int(embedding_dim),
            "l2_normalized": bool(l2_normalized),
            "fp16_file": EMBEDDING_FP16_ONNX if has_fp16 else None,
        },
        "head": {
            "kind": head_kind,
            "file": HEAD_ONNX if head_kind == "learned" else None,
            "inputs": list(HEAD_INPUTS),
            "output": SCORE_OUTPUT,
            **({"epsilon": head_epsilon} if head_kind == "euclidean" and head_epsilon is not None else {}),
        },
        "siamese": {"file": SIAMESE_ONNX, "inputs": list(SIAMESE_INPUTS), "output": SCORE_OUTPUT},
        "score": score.to_dict(),
        "training": {
            "loss": loss,
            "margin": margin,
            "label_same": label_same,
            "label_convention": f"label {label_same} = same, {1 - label_same} = different",
        },
        "onnx": dict(onnx),
        "reference": {
            "file": REFERENCE_NPZ,
            "source": reference_source,
            "images": int(reference_images),
            "pairs": int(reference_pairs),
        },
        "parity_file": PARITY_JSON,
    }


def write_manifest(bundle_dir: str | Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` from ``fields`` with the sha256 and size of every other file in the bundle
    (recursively): the one writer of the format (the exporter calls it on its staging folder)."""
    root = Path(bundle_dir)
    files = {
        str(p.relative_to(root).as_posix()): file_entry(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }
    manifest = {**fields, "files": files}
    write_json_atomic(root / MANIFEST_NAME, manifest)
    return manifest


def add_engine(bundle_dir: str | Path, engine: dict[str, Any], files: list[str]) -> Manifest:
    """Record a TensorRT plan built after export: ``engine`` under ``engines`` (replacing one for the same file)
    and the sha256 of ``files`` (the plan and its sidecar, inside the bundle) under ``files``, so the hash check
    covers them like every other file. The manifest is re-read (and its hashes checked) first."""
    root = Path(bundle_dir)
    m = load_manifest(root)
    raw = dict(m.raw)
    raw["engines"] = [e for e in raw.get("engines", []) if e.get("file") != engine["file"]] + [dict(engine)]
    listed = dict(m.files)
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{name}: an engine file must lie inside the bundle {root}")
        listed[name] = file_entry(root / name)
    raw["files"] = listed
    write_json_atomic(root / MANIFEST_NAME, raw)
    return Manifest.from_dict(raw, where=str(root / MANIFEST_NAME))


def load_manifest(bundle_dir: str | Path, verify: bool = True) -> Manifest:
    """Read ``<bundle_dir>/manifest.json`` and (by default) check every listed file's sha256."""
    root = Path(bundle_dir)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder (expected a folder with {MANIFEST_NAME})")
    d = read_json(path, BundleError, f"missing; is {root} a bundle written by python -m export.build?")
    m = Manifest.from_dict(d, where=str(path))
    if verify:
        verify_files(root, m.files)
    return m
