"""manifest.json, typed: the single source of truth for a deployed model's preprocessing, scoring and files.

Each section of the file is a dataclass with ``from_dict`` and ``to_dict``; ``Manifest.from_dict`` checks the
file against ``manifest.schema.json`` first (types and ranges, the message names the field), then builds them.
``write_manifest`` is the one writer (the exporter calls it on its staging folder, ``runtime.bundle.Bundle``
when it adds an engine or a graph); ``load_manifest`` the one reader, and it refuses a bundle whose files do not
match their recorded sha256, or that uses a file it does not list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from runtime.bundle.files import FileEntry, check_files, inside, listing
from runtime.bundle.layout import (
    EMBEDDING_ONNX,
    EMBEDDING_OUTPUT,
    HEAD_INPUTS,
    HEAD_KINDS,
    HEAD_ONNX,
    INPUT_NAME,
    MANIFEST_NAME,
    PARITY_JSON,
    REFERENCE_NPZ,
    SCHEMA_VERSION,
    SCORE_OUTPUT,
    SIAMESE_INPUTS,
    SIAMESE_ONNX,
    BundleError,
    manifest_schema,
)
from runtime.fileio import read_json, write_json_atomic
from runtime.heads import DEFAULT_EPSILON
from runtime.preprocess import Preprocessing
from runtime.scoring import ScoreSpec


@dataclass(frozen=True)
class Source:
    """The Keras model the bundle was exported from."""

    file: str | None = None
    sha256: str | None = None
    arch: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Source:
        return cls(d.get("file"), d.get("sha256"), d.get("arch"))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "arch": self.arch}


@dataclass(frozen=True)
class Embedding:
    """The embedding graph (FP32), its FP16 twin (--fp16) and its INT8 QDQ twin (--int8)."""

    dim: int
    file: str = EMBEDDING_ONNX
    output: str = EMBEDDING_OUTPUT
    l2_normalized: bool = False
    fp16_file: str | None = None
    int8_file: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Embedding:
        return cls(
            int(d["dim"]),
            d.get("file") or EMBEDDING_ONNX,
            d.get("output") or EMBEDDING_OUTPUT,
            bool(d.get("l2_normalized", False)),
            d.get("fp16_file") or None,
            d.get("int8_file") or None,
        )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "file": self.file,
            "output": self.output,
            "dim": self.dim,
            "l2_normalized": self.l2_normalized,
            "fp16_file": self.fp16_file,
        }
        return d | ({"int8_file": self.int8_file} if self.int8_file else {})


@dataclass(frozen=True)
class Int8Calibration:
    """How the INT8 graph was calibrated: on which images (real ones only), how many, with what scheme."""

    source: str
    images: int
    method: str = "minmax"
    scheme: str = "QDQ, per-channel symmetric int8 weights, symmetric int8 activations"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Int8Calibration:
        return cls(str(d["source"]), int(d["images"]), str(d.get("method", "minmax")), str(d.get("scheme", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "images": self.images, "method": self.method, "scheme": self.scheme}


class MissingGraph(FileNotFoundError):
    """The bundle has no embedding graph for a precision (not a broken bundle: another backend or precision may
    still run it, so the selection moves on)."""


MISSING_GRAPH_HINT = {
    "fp32": "re-export the bundle",
    "fp16": "re-export without --no-fp16",
    "int8": "export it with --int8",
}


@dataclass(frozen=True)
class Head:
    """How two embeddings become a score: a learned graph (``file``) or the euclidean distance (``epsilon``)."""

    kind: str
    file: str | None = None
    inputs: tuple[str, str] = HEAD_INPUTS
    output: str = SCORE_OUTPUT
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise BundleError(f"head kind {self.kind!r}: expected one of {HEAD_KINDS}")
        if self.kind == "learned" and not self.file:
            raise BundleError("a learned head needs head.file")

    @classmethod
    def of(cls, kind: str, epsilon: float | None = None) -> Head:
        """The head as the exporter writes it: head.onnx for a learned head, the model's epsilon for euclidean."""
        return cls(kind, HEAD_ONNX if kind == "learned" else None, epsilon=epsilon if kind == "euclidean" else None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Head:
        eps = d.get("epsilon")
        return cls(
            d["kind"],
            d.get("file"),
            tuple(d.get("inputs") or HEAD_INPUTS),
            d.get("output") or SCORE_OUTPUT,
            None if eps is None else float(eps),
        )

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "file": self.file, "inputs": list(self.inputs), "output": self.output}
        return d | ({"epsilon": self.epsilon} if self.epsilon is not None else {})


@dataclass(frozen=True)
class Siamese:
    """The two-input graph (both towers and the head), for servers that take a pair."""

    file: str = SIAMESE_ONNX
    inputs: tuple[str, str] = SIAMESE_INPUTS
    output: str = SCORE_OUTPUT

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Siamese:
        return cls(
            d.get("file") or SIAMESE_ONNX, tuple(d.get("inputs") or SIAMESE_INPUTS), d.get("output") or SCORE_OUTPUT
        )

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "inputs": list(self.inputs), "output": self.output}


@dataclass(frozen=True)
class Training:
    """What the model was trained with; ``label_same`` is the label of a same pair in its training data."""

    loss: str | None = None
    margin: float | None = None
    label_same: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Training:
        return cls(d.get("loss"), d.get("margin"), d.get("label_same"))

    def to_dict(self) -> dict[str, Any]:
        convention = None
        if self.label_same is not None:
            convention = f"label {self.label_same} = same, {1 - self.label_same} = different"
        return {"loss": self.loss, "margin": self.margin, "label_same": self.label_same, "label_convention": convention}


@dataclass(frozen=True)
class OnnxExport:
    """How the graphs were exported: opset, the batch profile asked for, whether onnxslim simplified them."""

    opset: int | None = None
    batch: str | None = None
    simplified: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OnnxExport:
        batch = d.get("batch")
        return cls(d.get("opset"), None if batch is None else str(batch), bool(d.get("simplified", False)))

    def to_dict(self) -> dict[str, Any]:
        return {"opset": self.opset, "batch": self.batch, "simplified": self.simplified}


@dataclass(frozen=True)
class RawArray:
    """One array of the reference as a raw little-endian file (what the C++ runtime reads)."""

    file: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ReferenceInfo:
    """The Keras reference (``reference.npz``, and its raw copy): where its images came from, how many."""

    file: str = REFERENCE_NPZ
    source: str = "unknown"
    images: int = 0
    pairs: int = 0
    raw: dict[str, RawArray] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceInfo:
        raw = {
            k: RawArray(v["file"], v["dtype"], tuple(int(s) for s in v["shape"]))
            for k, v in (d.get("raw") or {}).items()
        }
        return cls(
            d.get("file") or REFERENCE_NPZ,
            str(d.get("source", "unknown")),
            int(d.get("images", 0)),
            int(d.get("pairs", 0)),
            raw,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "source": self.source, "images": self.images, "pairs": self.pairs}
        return d | ({"raw": {k: v.to_dict() for k, v in self.raw.items()}} if self.raw else {})


@dataclass(frozen=True)
class OpenCVGraphs:
    """The graphs OpenCV's DNN importer reads (the C++ OpenCV backend), or why the exporter could not make them."""

    embedding_file: str | None = None
    head_file: str | None = None
    error: str | None = None
    batch: int | None = None  # the graphs' fixed batch size
    opset: int | None = None
    note: str | None = None  # how they differ from the bundle's own graphs

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenCVGraphs:
        return cls(
            d.get("embedding_file"), d.get("head_file"), d.get("error"), d.get("batch"), d.get("opset"), d.get("note")
        )

    def to_dict(self) -> dict[str, Any]:
        d = {"embedding_file": self.embedding_file, "head_file": self.head_file}
        optional = {"error": self.error, "batch": self.batch, "opset": self.opset, "note": self.note}
        return d | {k: v for k, v in optional.items() if v is not None}


@dataclass
class Manifest:
    """The parsed manifest. ``extra`` keeps the fields this version does not model, so a rewrite keeps them."""

    name: str
    preprocessing: Preprocessing
    score: ScoreSpec
    embedding: Embedding
    head: Head
    siamese: Siamese | None = None
    source: Source = field(default_factory=Source)
    tools: dict[str, str] = field(default_factory=dict)
    training: Training = field(default_factory=Training)
    onnx: OnnxExport | None = None
    reference: ReferenceInfo | None = None
    opencv: OpenCVGraphs | None = None
    int8: Int8Calibration | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)  # TensorRT plans: their sidecars (runtime.engines)
    parity: dict[str, str] = field(default_factory=dict)  # parity.json's status per row label, at a glance
    parity_file: str = PARITY_JSON
    created: str | None = None
    files: dict[str, FileEntry] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # shorthands for the facts every backend reads
    @property
    def embedding_dim(self) -> int:
        return self.embedding.dim

    @property
    def l2_normalized(self) -> bool:
        return self.embedding.l2_normalized

    @property
    def embedding_file(self) -> str:
        return self.embedding.file

    @property
    def embedding_sha256(self) -> str | None:
        """The embedding graph's recorded sha256: what identifies the model (a gallery records it)."""
        entry = self.files.get(self.embedding.file)
        return entry.sha256 if entry else None

    def graph_path(self, bundle_dir: str | Path, precision: str) -> Path:
        """The embedding graph ``precision`` runs from (fp32: embedding.onnx; fp16, int8: their twins); MissingGraph
        saying how to export it when the bundle has none."""
        name = {"fp16": self.embedding.fp16_file, "int8": self.embedding.int8_file}.get(precision, self.embedding.file)
        path = Path(bundle_dir) / name if name else None
        if path is None or not path.is_file():  # a loaded bundle's named files are listed and hash-checked
            hint = MISSING_GRAPH_HINT.get(precision, MISSING_GRAPH_HINT["fp32"])
            raise MissingGraph(f"the bundle has no {precision.upper()} graph ({hint})")
        return path

    @property
    def fp16_file(self) -> str | None:
        """The FP16 embedding graph, when the bundle has one (exported with --fp16)."""
        return self.embedding.fp16_file

    @property
    def head_kind(self) -> str:
        return self.head.kind

    @property
    def head_file(self) -> str | None:
        return self.head.file

    @property
    def head_epsilon(self) -> float:
        """The euclidean head's epsilon under the square root (the exporter records the model's own)."""
        return DEFAULT_EPSILON if self.head.epsilon is None else self.head.epsilon

    @property
    def arch(self) -> str | None:
        """The architecture the bundle was exported from (``source.arch``)."""
        return self.source.arch

    @property
    def label_same(self) -> int | None:
        return self.training.label_same

    def named_files(self) -> list[str]:
        """Every bundle file a section of the manifest points to (each must be listed under ``files``; the parity
        report is optional, and listed when present)."""
        names = [self.embedding.file, self.embedding.fp16_file, self.embedding.int8_file, self.head.file]
        if self.siamese is not None:
            names.append(self.siamese.file)
        if self.reference is not None:
            names += [self.reference.file, *(a.file for a in self.reference.raw.values())]
        if self.opencv is not None:
            names += [self.opencv.embedding_file, self.opencv.head_file]
        names += [e["file"] for e in self.engines]
        return [n for n in names if n]

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of manifest.json (the C++ runtime reads the same keys)."""
        pre = self.preprocessing
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "created": self.created,
            "source": self.source.to_dict(),
            "tools": dict(self.tools),
            "input": {
                "name": INPUT_NAME,
                "height": pre.height,
                "width": pre.width,
                "channels": pre.channels,
                "layout": "NHWC",
                "dtype": "float32",
            },
            "preprocessing": pre.to_dict(),
            "embedding": self.embedding.to_dict(),
            "head": self.head.to_dict(),
            "siamese": None if self.siamese is None else self.siamese.to_dict(),
            "score": self.score.to_dict(),
            "training": self.training.to_dict(),
            "onnx": None if self.onnx is None else self.onnx.to_dict(),
            "reference": None if self.reference is None else self.reference.to_dict(),
            "opencv": None if self.opencv is None else self.opencv.to_dict(),
            "int8": None if self.int8 is None else self.int8.to_dict(),
            "engines": [dict(e) for e in self.engines] or None,  # none built: no key
            "parity": dict(self.parity),
            "parity_file": self.parity_file,
        }
        d = {k: v for k, v in d.items() if v is not None}
        return {**self.extra, **d, "files": {k: v.to_dict() for k, v in self.files.items()}}

    @classmethod
    def from_dict(cls, d: Any, where: str = MANIFEST_NAME) -> Manifest:
        """Check ``d`` against the schema and build the sections; BundleError naming ``where`` and the field."""
        _check(d, where)
        try:
            sections = {
                "siamese": Siamese.from_dict(d["siamese"]) if d.get("siamese") else None,
                "onnx": OnnxExport.from_dict(d["onnx"]) if d.get("onnx") else None,
                "reference": ReferenceInfo.from_dict(d["reference"]) if d.get("reference") else None,
                "opencv": OpenCVGraphs.from_dict(d["opencv"]) if d.get("opencv") else None,
                "int8": Int8Calibration.from_dict(d["int8"]) if d.get("int8") else None,
            }
            m = cls(
                name=d["name"],
                preprocessing=Preprocessing.from_dict(d["preprocessing"]),
                score=ScoreSpec.from_dict(d["score"]),
                embedding=Embedding.from_dict(d["embedding"]),
                head=Head.from_dict(d["head"]),
                source=Source.from_dict(d.get("source") or {}),
                tools=dict(d.get("tools") or {}),
                training=Training.from_dict(d.get("training") or {}),
                engines=[dict(e) for e in d.get("engines") or []],
                parity=dict(d.get("parity") or {}),
                parity_file=d.get("parity_file") or PARITY_JSON,
                created=d.get("created"),
                files={k: FileEntry.from_dict(v) for k, v in d["files"].items()},
                extra={k: v for k, v in d.items() if k not in _MODELLED},
                **sections,
            )
        except BundleError as e:
            raise BundleError(f"{where}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise BundleError(f"{where}: {e}") from None
        except KeyError as e:
            raise BundleError(f"{where}: missing field {e.args[0]!r}") from None
        for name in [*m.named_files(), m.parity_file]:
            inside(name, where)
        return m


_MODELLED = frozenset(
    "schema_version name created source tools input preprocessing embedding head siamese score training onnx "
    "reference opencv int8 engines parity parity_file files".split()
)


@cache
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(manifest_schema())


def _check(d: Any, where: str) -> None:
    """The schema's verdict as one line: the first error, with the field's path and what was expected."""
    if not isinstance(d, dict):
        raise BundleError(f"{where}: expected a JSON object, found {type(d).__name__}")
    version = d.get("schema_version")
    if "schema_version" in d and version != SCHEMA_VERSION:
        raise BundleError(
            f"{where}: schema_version {version}, this runtime reads {SCHEMA_VERSION}; re-export the bundle"
        )
    if isinstance(d.get("files"), dict):  # a path escape is named as such, before its entry's other faults
        for name in d["files"]:
            inside(name, where)
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(d))
    if error is None:
        return
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        field_path = ".".join(str(p) for p in (*error.absolute_path, missing))
        raise BundleError(f"{where}: missing field {field_path!r}")
    field_path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    raise BundleError(f"{where}: {field_path}: {error.message}")


def new_manifest(**sections: Any) -> Manifest:
    """A manifest for a bundle being written (``created`` now, ``files`` filled in by ``write_manifest``)."""
    return Manifest(created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **sections)


def write_manifest(bundle_dir: str | Path, manifest: Manifest, relist: bool = True) -> Manifest:
    """Write ``manifest.json`` and return the manifest as written. ``relist``: list the sha256 and size of every
    other file in the bundle (recursively), hashed from the files as they are now (a new bundle); else keep
    ``manifest.files`` as given (``Bundle`` adding a file). What is written is first read back through
    ``from_dict`` and its files checked, so it is what every reader accepts."""
    root = Path(bundle_dir)
    written = replace(manifest, files=listing(root)) if relist else manifest
    d = written.to_dict()
    Manifest.from_dict(d, where=str(root / MANIFEST_NAME))
    for name in written.named_files():
        if name not in written.files:
            raise BundleError(f"{root / name}: the manifest uses it but the bundle has no such file")
    write_json_atomic(root / MANIFEST_NAME, d)
    return written


def load_manifest(bundle_dir: str | Path, verify: bool = True) -> Manifest:
    """Read ``<bundle_dir>/manifest.json`` and (by default) check every listed file's sha256."""
    root = Path(bundle_dir)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder (expected a folder with {MANIFEST_NAME})")
    d = read_json(path, BundleError, f"missing; is {root} a bundle written by python -m export.build?")
    m = Manifest.from_dict(d, where=str(path))
    if verify:
        check_files(root, m.files, m.named_files(), [m.parity_file])
    return m
