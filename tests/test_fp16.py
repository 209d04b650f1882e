"""embedding.fp16.onnx (strongly typed TensorRT 11 rules) and the FP32 graph that estimates FP16 error on a CPU.

The per-architecture tests reuse the session's exports (tests/test_onnx_export.export_case); the rules
themselves are also checked on small hand-built graphs, without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.fp16 import convert_to_fp16, fp16_cpu_estimate, to_fp16
from export.fp16_check import fp32_initializers, strict_typing_issues
from export.fp16_graph import FP16_MAX, FP16_TINY, elem_types, producers, round_to_fp16
from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_ONNX, EMBEDDING_OUTPUT, FP32_NODES_KEY, INPUT_NAME
from runtime.parity import FP16_TOLERANCES
from tests.test_onnx_export import CASES, export_case

MIN_COSINE = FP16_TOLERANCES.min_cosine


@dataclass
class Fp16Case:
    name: str
    fp32: Path
    fp16: Path
    inputs: np.ndarray


def realistic_inputs(shape: tuple[int, ...], n: int = 16, seed: int = 7) -> np.ndarray:
    """scikit-learn's digits (ink = 1, as the 28x28 models see it) where the shape fits, else seeded noise."""
    h, w, c = shape
    if (h, w, c) == (28, 28, 1):
        from sklearn.datasets import load_digits

        digits = load_digits().images[:n] / 16.0
        x = np.stack([cv2.resize(d.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for d in digits])
        return np.clip(x, 0, 1)[..., None].astype(np.float32)
    return np.random.default_rng(seed).random((n, h, w, c), dtype=np.float32)


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory) -> Fp16Case:
    exported = export_case(tmp_path_factory, request.param)
    fp32 = exported.path(EMBEDDING_ONNX)
    fp16 = convert_to_fp16(fp32, exported.path(EMBEDDING_FP16_ONNX))
    return Fp16Case(request.param, fp32, fp16, realistic_inputs(exported.shape))


def run(model: Path | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run([EMBEDDING_OUTPUT], {INPUT_NAME: x})[0]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float((np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def kept_fp32(model: onnx.ModelProto) -> set[str]:
    value = {p.key: p.value for p in model.metadata_props}.get(FP32_NODES_KEY, "")
    return {n for n in value.split(",") if n}


def test_fp16_graph_is_fp16_inside_fp32_outside(case: Fp16Case):
    src, model = onnx.load(str(case.fp32)), onnx.load(str(case.fp16))
    onnx.checker.check_model(model, full_check=True)
    assert [(v.name, v.type) for v in model.graph.input] == [(v.name, v.type) for v in src.graph.input]
    assert [(v.name, v.type) for v in model.graph.output] == [(v.name, v.type) for v in src.graph.output]
    assert strict_typing_issues(model) == []
    kept = kept_fp32(model)
    # FP32 weights only where a deliberately FP32 node reads them (the L2-norm epsilon)
    readers = {n.name for n in model.graph.node for i in n.input if i in set(fp32_initializers(model))}
    assert readers <= kept
    floats = [t for t in model.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert sum(t.data_type == TensorProto.FLOAT16 for t in floats) >= len(floats) - len(kept)
    assert (case.name == "omniglot-conv") == bool(kept)  # the only registered model with an L2 norm
    # no Cast to float feeds an FP16 node (also part of strict_typing_issues, spelled out here)
    types = elem_types(model)
    casts = {n.output[0] for n in model.graph.node if n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT}
    for node in model.graph.node:
        if any(i in casts for i in node.input):
            assert TensorProto.FLOAT16 not in {types.get(t) for t in [*node.input, *node.output]}, node.name
    assert {p.key for p in src.metadata_props} <= {p.key for p in model.metadata_props}


def test_fp16_graph_runs_close_to_fp32(case: Fp16Case):
    ref = run(case.fp32, case.inputs)
    for n in (1, len(case.inputs)):
        got = run(case.fp16, case.inputs[:n])
        assert got.dtype == np.float32 and got.shape == ref[:n].shape
        assert min_cosine(got, ref[:n]) >= MIN_COSINE


def test_estimate_rounds_every_fp16_value(case: Fp16Case):
    src = onnx.load(str(case.fp32))
    estimate = fp16_cpu_estimate(case.fp32)
    onnx.checker.check_model(estimate, full_check=True)
    kept = kept_fp32(onnx.load(str(case.fp16)))
    prod = producers(estimate.graph)
    types = elem_types(src)
    for node in src.graph.node:
        if node.name in kept:
            continue
        for out in node.output:
            if types.get(out) != TensorProto.FLOAT:
                continue
            back = prod[out]
            half = prod[back.input[0]]
            assert (back.op_type, back.attribute[0].i) == ("Cast", TensorProto.FLOAT), out
            assert (half.op_type, half.attribute[0].i) == ("Cast", TensorProto.FLOAT16), out
            assert prod[half.input[0]].name == node.name
    users = [n for n in estimate.graph.node if INPUT_NAME in n.input]
    assert users and all(n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT16 for n in users)
    assert all(t.data_type != TensorProto.FLOAT16 for t in estimate.graph.initializer)  # an FP32 graph

    ref = run(case.fp32, case.inputs)
    got = run(estimate, case.inputs)
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert 0 < err < 1e-2
    assert min_cosine(got, ref) >= MIN_COSINE


# ---------------------------------------------------------------------------------------------------------------
# the rules on small hand-built graphs
# ---------------------------------------------------------------------------------------------------------------


def make_model(nodes, inits, x_shape=(None, 8), y_shape=(None, 8), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, list(y_shape))],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def l2_norm_model(eps: float = 1e-12) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, INPUT_NAME], ["sq"], name="square"),
        helper.make_node("ReduceSum", ["sq", "axes"], ["sum"], name="sum", keepdims=1),
        helper.make_node("Max", ["sum", "eps"], ["floor"], name="floor"),
        helper.make_node("Sqrt", ["floor"], ["norm"], name="sqrt"),
        helper.make_node("Div", [INPUT_NAME, "norm"], [EMBEDDING_OUTPUT], name="normalize"),
    ]
    return make_model(nodes, {"axes": np.array([1], np.int64), "eps": np.array(eps, np.float32)})


def test_round_to_fp16_clamps_instead_of_flushing():
    values = np.array([1e-12, -1e-9, 0.0, 1.5, 1e6, -7e4, np.inf], np.float32)
    half, clamped = round_to_fp16(values)
    assert half.dtype == np.float16 and clamped == 4
    assert list(half[:2]) == [FP16_TINY, -FP16_TINY] and half[2] == 0 and half[3] == 1.5
    assert list(half[4:6]) == [FP16_MAX, -FP16_MAX] and np.isinf(half[6])


def test_l2_norm_stays_fp32_where_fp16_would_overflow():
    model = l2_norm_model()
    half = to_fp16(model)
    assert kept_fp32(half) == {"square", "sum", "floor", "sqrt"}
    assert strict_typing_issues(half) == []
    eps = {t.name: numpy_helper.to_array(t) for t in half.graph.initializer}
    assert [v.dtype for v in eps.values()] == [np.int64, np.float32] and float(list(eps.values())[1]) == np.float32(
        1e-12
    )
    x = np.full((2, 8), 300.0, np.float32)  # sum of squares 720000: inf in FP16
    x[1] = np.linspace(-2, 2, 8)
    ref = run(model, x)
    for got in (run(half, x), run(fp16_cpu_estimate(model), x)):
        assert np.isfinite(got).all() and min_cosine(got, ref) >= MIN_COSINE


@pytest.mark.parametrize("scales_from", ["initializer", "constant"])
def test_float_casts_become_fp16_and_fp32_only_slots_stay_fp32(scales_from):
    # y = max(resize(x) + float(width), 1e-9): the graph's own Cast to float, Resize's FP32-only scales and
    # an epsilon floor that FP16 would flush to zero
    nodes = [
        helper.make_node("Resize", [INPUT_NAME, "", "scales"], ["up"], name="resize", mode="nearest"),
        helper.make_node("Shape", [INPUT_NAME], ["shape"], name="shape", start=1),
        helper.make_node("Cast", ["shape"], ["width"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Add", ["up", "width"], ["sum"], name="add"),
        helper.make_node("Max", ["sum", "tiny"], [EMBEDDING_OUTPUT], name="floor"),
    ]
    scales = np.array([1, 2], np.float32)
    inits = {"tiny": np.array(1e-9, np.float32)}
    if scales_from == "initializer":
        inits["scales"] = scales
    else:
        nodes.insert(
            0, helper.make_node("Constant", [], ["scales"], name="scales", value=numpy_helper.from_array(scales))
        )
    model = make_model(nodes, inits, y_shape=(None, 16))
    half = to_fp16(model)
    assert strict_typing_issues(half) == []
    to = {n.name: n.attribute[0].i for n in half.graph.node if n.op_type == "Cast"}
    assert to == {
        "to_float": TensorProto.FLOAT16,
        f"{INPUT_NAME}/as_fp16/Cast": TensorProto.FLOAT16,
        f"{EMBEDDING_OUTPUT}/to_fp32": TensorProto.FLOAT,
    }
    weights = {t.name: numpy_helper.to_array(t) for t in half.graph.initializer}
    weights.update(
        {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in half.graph.node if n.op_type == "Constant"}
    )
    assert weights["scales"].dtype == np.float32  # Resize's scales have no FP16 type: no Cast back to float
    assert weights["tiny"].dtype == np.float16 and weights["tiny"] == FP16_TINY  # clamped, not flushed to 0
    x = np.arange(16, dtype=np.float32).reshape(2, 8) - 12.0
    got, ref = run(half, x), run(model, x)
    assert np.array_equal(got == FP16_TINY, ref == np.float32(1e-9))  # the floor still floors
    assert np.allclose(got, ref, rtol=1e-3, atol=1e-7)


def test_strict_typing_issues_finds_violations():
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["h"], name="to_half", to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["h"], ["f"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Add", ["h", "f"], ["mixed"], name="mixed_add"),
        helper.make_node("Cast", ["mixed"], [EMBEDDING_OUTPUT], name="out", to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "bad",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, [None, 8])],
        value_info=[
            helper.make_tensor_value_info("f", TensorProto.FLOAT, [None, 8]),
            helper.make_tensor_value_info("mixed", TensorProto.FLOAT16, [None, 8]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    issues = strict_typing_issues(model)
    assert any("'to_float' feeds FP16 node 'mixed_add'" in i for i in issues)
    assert any("'mixed_add' (Add) mixes FLOAT, FLOAT16" in i for i in issues)


def test_control_flow_is_refused():
    branch = helper.make_graph(
        [helper.make_node("Identity", [INPUT_NAME], ["same"])],
        "b",
        [],
        [helper.make_tensor_value_info("same", TensorProto.FLOAT, [None, 8])],
    )
    nodes = [
        helper.make_node("ReduceMax", [INPUT_NAME], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["c"], to=TensorProto.BOOL),
        helper.make_node("If", ["c"], [EMBEDDING_OUTPUT], name="branch", then_branch=branch, else_branch=branch),
    ]
    model = make_model(nodes, {})
    with pytest.raises(ValueError, match="control flow.*branch"):
        to_fp16(model)
