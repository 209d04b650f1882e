"""Fuzz tests (Hypothesis) of the two readers that take files users bring: the manifest and the image decoder.

Whatever the input, each either gives its result or raises its own one-line error (BundleError,
ImageReadError); no other exception escapes to a command line as a traceback. Seeded (derandomize) and bounded
in examples so the suite stays within its time budget.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.bundle.layout import BundleError
from runtime.bundle.manifest import Manifest
from runtime.preprocess import ImageReadError, Preprocessing, decode_image

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)

VALID = {
    "schema_version": 1,
    "name": "fuzz",
    "preprocessing": Preprocessing(16, 16, color="gray").to_dict(),
    "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
    "embedding": {"file": "embedding.onnx", "dim": 8, "l2_normalized": True},
    "head": {"kind": "euclidean", "epsilon": 1e-7},
    "reference": {"file": "reference.npz", "source": "x", "images": 2, "pairs": 1},
    "engines": [{"file": "e.plan"}],
    "files": {"embedding.onnx": {"sha256": "0" * 64, "bytes": 3}},
}


def _read(d) -> None:
    try:
        Manifest.from_dict(d)
    except BundleError:
        pass


@FUZZ
@given(json_values)
def test_any_json_value_is_a_manifest_or_a_bundle_error(value):
    _read(value)


def _set(d: dict, path: list[str], value) -> dict:
    out = json.loads(json.dumps(d))
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if not isinstance(node, dict):
            return out
    node[path[-1]] = value
    return out


paths = st.sampled_from(
    [[k] for k in VALID]
    + [["preprocessing", k] for k in VALID["preprocessing"]]
    + [["score", k] for k in VALID["score"]]
    + [["embedding", k] for k in VALID["embedding"]]
    + [["head", k] for k in ("kind", "file", "epsilon", "inputs")]
    + [["reference", k] for k in ("file", "images", "raw")]
    + [["opencv"], ["siamese"], ["onnx"], ["training"], ["parity"], ["tools"], ["source"]]
)


@FUZZ
@given(paths, json_values)
def test_a_valid_manifest_with_any_field_replaced_is_read_or_refused_by_name(path, value):
    _read(_set(VALID, path, value))


def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(ext, rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


SEEDS = [_encoded(e) for e in (".png", ".jpg", ".bmp", ".webp", ".tiff")]


def _decode(data: bytes) -> None:
    try:
        img = decode_image(data, "fuzz")
    except ImageReadError:
        return
    assert img.dtype == np.uint8 and img.ndim in (2, 3) and img.size > 0


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_are_an_image_or_an_image_error(data):
    _decode(data)


@FUZZ
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(0, 10_000),
)
def test_corrupted_and_truncated_images_are_decoded_or_refused(seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    _decode(bytes(data[: max(1, cut % (len(data) + 1))]))
