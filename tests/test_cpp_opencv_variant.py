"""export/opencv_variant.py: the graph rewrites for OpenCV's DNN importer compute the same function, and a model
the variant cannot be made for still exports, with the reason in the manifest (what the C++ runtime reports)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.opencv_variant import OPENCV_BATCH, OPENCV_OPSET, expand_last_axis, max_to_relu, opencv_ready


def _l2norm_graph(dim: int = 6, eps: float = 1e-3) -> onnx.ModelProto:
    """x / sqrt(max(sum(x^2), eps)) at opset 11 with a dynamic batch: Max against a constant, a (N, 1) divisor."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", dim])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dim])
    eps_t = numpy_helper.from_array(np.array(eps, np.float32), "eps")
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceSum", ["sq"], ["sum"], axes=[1], keepdims=1),
        helper.make_node("Max", ["sum", "eps"], ["clamped"], name="max"),
        helper.make_node("Sqrt", ["clamped"], ["norm"]),
        helper.make_node("Div", ["x", "norm"], ["y"], name="div"),
    ]
    graph = helper.make_graph(nodes, "l2norm", [x], [y], [eps_t])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPENCV_OPSET)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_rewrites_keep_the_function_and_remove_what_opencv_cannot_import():
    model = _l2norm_graph()
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.normal(size=(3, 6)), np.full((1, 6), 1e-3)]).astype(np.float32)  # one row under eps
    want = _run(model, rows)
    variant = opencv_ready(model)
    ops = [n.op_type for n in variant.graph.node]
    assert "Max" not in ops and ops.count("MatMul") == 1, ops
    assert [d.dim_value for d in variant.graph.input[0].type.tensor_type.shape.dim] == [OPENCV_BATCH, 6]
    got = np.concatenate([_run(variant, r[None]) for r in rows])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_max_to_relu_only_rewrites_max_against_a_scalar_constant():
    model = _l2norm_graph()
    two_inputs = helper.make_node("Max", ["x", "x"], ["x2"], name="max2")
    model.graph.node.append(two_inputs)
    assert max_to_relu(model) == 1
    assert [n.name for n in model.graph.node if n.op_type == "Max"] == ["max2"]


def test_expand_last_axis_needs_known_shapes():
    model = _l2norm_graph()  # dynamic batch: the (batch, 1) divisor is not known to be (1, 1), nothing changes
    assert expand_last_axis(model) == 0
