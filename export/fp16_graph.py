"""What the FP16 converter, its CPU estimate and its checks need to know about an ONNX graph.

Tensor element types (from ONNX shape inference), which input/output slots of an op accept FLOAT16 (from the
op schemas, so no list of ops is hand-kept), who consumes a tensor, and how FP32 values become FP16 values.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = float(np.finfo(np.float16).max)  # 65504
FP16_TINY = float(2.0**-24)  # the smallest positive (subnormal) FP16


def round_to_fp16(values: np.ndarray) -> tuple[np.ndarray, int]:
    """FP32 -> FP16 without silent zeros or infinities; returns (array, how many values were clamped).

    Non-zero magnitudes below FP16's smallest subnormal (6e-8, e.g. an epsilon of 1e-12) would flush to 0,
    turning an epsilon floor into a division by zero: they are clamped to +-6e-8 instead. Magnitudes above
    65504 would become inf: they are clamped to +-65504. Everything else rounds to nearest.
    """
    a = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):
        h = a.astype(np.float16)
    tiny = (a != 0) & (h == 0)
    huge = np.isfinite(a) & np.isinf(h)
    h[tiny] = np.copysign(FP16_TINY, a[tiny]).astype(np.float16)
    h[huge] = np.copysign(FP16_MAX, a[huge]).astype(np.float16)
    return h, int(tiny.sum() + huge.sum())


def opset_of(model: onnx.ModelProto, domain: str = "") -> int:
    for o in model.opset_import:
        if (o.domain or "") in (domain, "ai.onnx" if domain == "" else domain):
            return o.version
    return 1


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor name in the graph (inputs, initializers, node outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
                elif attr.name in ("value_float", "value_floats"):
                    types[node.output[0]] = FLOAT
    return {k: v for k, v in types.items() if v}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                out[name].append(node)
    return out


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output if name}


def _schema(node: onnx.NodeProto, opset: int):
    try:
        return onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except onnx.defs.SchemaError:
        return None


def slot_types(node: onnx.NodeProto, index: int, opset: int, output: bool = False) -> tuple[str, set[str]]:
    """(type parameter or fixed type, allowed type strings) of input/output slot ``index``; empty when unknown."""
    schema = _schema(node, opset)
    if schema is None:
        return "", set()
    params = schema.outputs if output else schema.inputs
    if not params:
        return "", set()
    param = params[min(index, len(params) - 1)]
    for c in schema.type_constraints:
        if c.type_param_str == param.type_str:
            return param.type_str, set(c.allowed_type_strs)
    return param.type_str, {param.type_str}


def accepts_fp16(node: onnx.NodeProto, index: int, opset: int, output: bool = False) -> bool:
    return "tensor(float16)" in slot_types(node, index, opset, output)[1]


def has_subgraphs(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
