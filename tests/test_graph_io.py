"""A graph that does not belong to its manifest is refused at load by every backend, naming the file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from runtime.bundle.graph_io import check_embedding_io, check_head_io
from runtime.bundle.layout import BundleError
from runtime.bundle.manifest import Manifest, write_manifest
from runtime.preprocess import Preprocessing

DIM = 4


def _embedding_graph(path: Path, hwc: tuple[int, int, int], dim: int = DIM) -> None:
    """image [N,H,W,C] -> embedding [N,dim]: flatten and a MatMul, a real ONNX graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w, c = hwc
    weights = np.random.default_rng(0).normal(size=(h * w * c, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "emb",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", h, w, c])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        [numpy_helper.from_array(weights, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def _bundle(root: Path, graph_hwc: tuple[int, int, int], manifest_hwc: tuple[int, int, int], dim: int = DIM) -> Path:
    root.mkdir(parents=True)
    _embedding_graph(root / "embedding.onnx", graph_hwc, dim)
    h, w, c = manifest_hwc
    pre = Preprocessing(h, w, color="rgb" if c == 3 else "gray")
    fields = {
        "schema_version": 1,
        "name": root.name,
        "preprocessing": pre.to_dict(),
        "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
        "embedding": {"dim": DIM},
        "head": {"kind": "euclidean"},
        "files": {},
    }
    write_manifest(root, Manifest.from_dict(fields))
    return root


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs onnx (the [export] extra)")
@pytest.mark.parametrize(
    "graph_hwc, manifest_hwc, dim, fragment",
    [
        ((8, 8, 3), (8, 8, 1), DIM, r"input image\['N', 8, 8, 3\]|input image\[None, 8, 8, 3\]"),
        ((8, 8, 1), (10, 10, 1), DIM, r"expects image\[None, 10, 10, 1\]"),
        ((8, 8, 1), (8, 8, 1), 6, r"output embedding\[None, 6\], but the manifest expects embedding\[None, 4\]"),
    ],
)
def test_a_graph_that_disagrees_with_its_manifest_is_refused_at_load(tmp_path, graph_hwc, manifest_hwc, dim, fragment):
    import runtime
    from runtime.backends.base import entry

    bundle = _bundle(tmp_path / "b", graph_hwc, manifest_hwc, dim)
    with pytest.raises(BundleError, match=r"embedding\.onnx: "):
        runtime.load(bundle, backend="onnxruntime", precision="fp32")
    e = entry("openvino")
    if e.present(None, "fp32", None).ok:
        with pytest.raises(BundleError, match=r"embedding\.onnx: (input|output)"):
            e.build(bundle, None, precision="fp32")
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    with pytest.raises(BundleError, match=fragment):
        OnnxRuntimeBackend(bundle)


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs onnx (the [export] extra)")
def test_a_graph_that_fits_loads_and_runs(tmp_path):
    import runtime

    bundle = _bundle(tmp_path / "ok", (8, 8, 1), (8, 8, 1))
    v = runtime.load(bundle, backend="onnxruntime", precision="fp32")
    assert v.embed(np.zeros((3, 8, 8, 1), np.float32)).shape == (3, DIM)


def test_the_rules_on_shapes_as_libraries_report_them():
    m = Manifest.from_dict(
        {
            "schema_version": 1,
            "name": "t",
            "preprocessing": Preprocessing(8, 8, color="gray").to_dict(),
            "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
            "embedding": {"dim": 4},
            "head": {"kind": "learned", "file": "head.onnx"},
            "files": {},
        }
    )
    check_embedding_io("e.onnx", m, [("image", [None, 8, 8, 1])], [("embedding", [None, 4])])
    check_embedding_io("e.onnx", m, [("image", [None, None, None, 1])], [("embedding", [None, None])])  # dynamic
    with pytest.raises(BundleError, match=r"e\.onnx: input input_1\[None, 8, 8, 1\]"):
        check_embedding_io("e.onnx", m, [("input_1", [None, 8, 8, 1])], [("embedding", [None, 4])])
    with pytest.raises(BundleError, match="e.onnx: input image"):
        check_embedding_io("e.onnx", m, [("image", [None, 8, 1])], [("embedding", [None, 4])])  # rank 3
    check_head_io("h.onnx", m, [("embedding_b", [None, 4]), ("embedding_a", [None, 4])], [("score", [None, 1])])
    with pytest.raises(BundleError, match=r"h\.onnx: inputs"):
        check_head_io("h.onnx", m, [("embedding_a", [None, 5]), ("embedding_b", [None, 5])], [("score", [None, 1])])
