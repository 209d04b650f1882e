"""The bundle's names: its files, the tensors of its graphs, the metadata keys of its FP16 graphs, the schema version.

Every module that names a bundle file or tensor imports it from here. ``SCHEMA_VERSION`` is read from
``manifest.schema.json``, the file the C++ runtime's build reads it from too, so the two readers cannot disagree.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

SCHEMA_FILE = "manifest.schema.json"


@cache
def manifest_schema() -> dict:
    """The JSON Schema of manifest.json (a package data file of runtime.bundle), read once; do not modify it."""
    return json.loads(resources.files("runtime.bundle").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


SCHEMA_VERSION: int = manifest_schema()["properties"]["schema_version"]["const"]
MANIFEST_NAME = "manifest.json"

# the names of a bundle's files (manifest.json lists each one present with its sha256 and size)
EMBEDDING_ONNX = "embedding.onnx"
EMBEDDING_FP16_ONNX = "embedding.fp16.onnx"
EMBEDDING_INT8_ONNX = "embedding.int8.onnx"  # QDQ: ONNX Runtime, OpenVINO and TensorRT read it as INT8
HEAD_ONNX = "head.onnx"
SIAMESE_ONNX = "siamese.onnx"
REFERENCE_NPZ = "reference.npz"
PARITY_JSON = "parity.json"
BUILD_ENGINE_MD = "BUILD_ENGINE.md"  # how to build the TensorRT plan, when the export did not
# for the C++ runtime: graphs OpenCV's DNN importer reads (export.opencv_variant), and the Keras reference as
# raw little-endian arrays (runtime.bundle.reference.write_raw) listed under the manifest's reference.raw
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
