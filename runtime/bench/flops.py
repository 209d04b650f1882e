"""Achieved GFLOP/s needs the embedding graph's FLOPs: counted from the ONNX graph's shapes (``onnx``, imported
on use)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

FLOP_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def count_flops(model: str | os.PathLike | Any, batch: int = 1) -> dict[str, Any]:
    """FLOPs of one forward pass at ``batch``: 2 x multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul.

    Shapes come from ``onnx.shape_inference`` (with data propagation) after fixing every graph input's
    symbolic or unknown dimensions to ``batch`` (the batch axis is the only dynamic one in a bundle). Returns
    ``{"flops", "macs", "by_op": {op: flops}, "nodes": n counted, "unknown": [nodes whose shapes were unknown]}``.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    m = (
        onnx.load(str(model))
        if not isinstance(model, onnx.ModelProto)
        else onnx.ModelProto.FromString(model.SerializeToString())
    )
    init_names = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in init_names:
            continue
        for d in inp.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                d.Clear()
                d.dim_value = int(batch)
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes: dict[str, tuple[int, ...] | None] = {}

    def record(vi) -> None:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            shapes[vi.name] = None
            return
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
        shapes[vi.name] = tuple(dims) if all(v > 0 for v in dims) or not dims else None

    for vi in (*m.graph.input, *m.graph.value_info, *m.graph.output):
        record(vi)
    for t in m.graph.initializer:
        shapes[t.name] = tuple(int(v) for v in t.dims)
    for node in m.graph.node:  # Constant nodes carry weights in some exporters
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(numpy_helper.to_array(a.t).shape)

    def attr(node, name: str, default: Any) -> Any:
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    by_op: dict[str, int] = {}
    unknown: list[str] = []
    counted = 0
    for node in m.graph.node:
        if node.op_type not in FLOP_OPS:
            continue
        ins = [shapes.get(n) for n in node.input]
        out = shapes.get(node.output[0])
        macs = None
        if node.op_type == "Conv" and out and len(ins) > 1 and ins[1]:
            macs = int(np.prod(out)) * int(np.prod(ins[1][1:]))  # per output element: C/group x kH x kW
        elif node.op_type == "ConvTranspose" and ins and ins[0] and len(ins) > 1 and ins[1]:
            macs = int(np.prod(ins[0])) * int(np.prod(ins[1][1:]))  # per input element: M/group x kH x kW
        elif node.op_type == "Gemm" and out and ins and ins[0]:
            k = ins[0][0] if attr(node, "transA", 0) else ins[0][-1]
            macs = int(np.prod(out)) * int(k)
        elif node.op_type == "MatMul" and out and ins and ins[0]:
            macs = int(np.prod(out)) * int(ins[0][-1])
        if macs is None:
            unknown.append(node.name or node.output[0])
            continue
        counted += 1
        by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    total = sum(by_op.values())
    return {
        "flops": int(total),
        "macs": int(total // 2),
        "by_op": by_op,
        "nodes": counted,
        "unknown": unknown,
        "batch": int(batch),
    }
