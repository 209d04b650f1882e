"""Which nodes of an FP32 graph stay FP32 when the rest runs in FP16, and why.

FP16 tops out at 65504. An L2 norm squares and sums its input, so an embedding whose entries reach ~23 over
128 dims already overflows to inf, and x / inf turns every embedding into zeros. The sum of squares, its
epsilon floor and the square root are therefore kept FP32 (explicit casts in and out); the result, a norm,
is back in FP16 range. Their epsilon constants stay FP32 too, so they never underflow.

Everything else runs in FP16. Op slots whose schema has no FP16 type (e.g. Resize scales) are handled per
slot by the converter, not here.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from export.fp16_graph import consumers, producers

SQUARE_SUMS = {"ReduceSumSquare", "ReduceL2", "LpNormalization"}
SUMS = {"ReduceSum", "ReduceMean"}
FLOORS = {"Max", "Add", "Clip"}  # max(s, eps), s + eps, clip(s, eps, ...): the epsilon floor of a norm
ROOTS = {"Sqrt"}

REASON = "L2 norm (sum of squares overflows FP16)"


def fp32_nodes(model: onnx.ModelProto) -> dict[int, str]:
    """Index in ``model.graph.node`` -> why the node stays FP32."""
    g = model.graph
    index = {n.output[0]: i for i, n in enumerate(g.node) if n.output}  # (proto wrappers have no stable id)
    prod = producers(g)
    cons = consumers(g)
    consts = _constant_names(g)
    keep: dict[int, str] = {}
    # a chain is: [square] -> sum -> floor(s) -> sqrt
    for node in g.node:
        start = _norm_start(node, prod, consts)
        if start is None:
            continue
        chain = [*start, node]
        tail = node
        while True:
            nxt = cons.get(tail.output[0], [])
            if len(nxt) != 1 or not _is_floor_or_root(nxt[0], tail.output[0], consts):
                break
            tail = nxt[0]
            chain.append(tail)
            if tail.op_type in ROOTS:
                break
        for n in chain:
            keep[index[n.output[0]]] = REASON
    return keep


def _norm_start(node: onnx.NodeProto, prod: dict, consts: dict[str, np.ndarray]) -> list[onnx.NodeProto] | None:
    """[] for a node that squares and sums itself; [square] for a sum over a square; None otherwise."""
    if node.op_type in SQUARE_SUMS:
        return []
    if node.op_type not in SUMS or not node.input:
        return None
    sq = prod.get(node.input[0])
    if sq is None:
        return None
    if sq.op_type == "Mul" and len(sq.input) == 2 and sq.input[0] == sq.input[1]:
        return [sq]
    if sq.op_type == "Pow" and len(sq.input) == 2:
        exponent = consts.get(sq.input[1])
        if exponent is not None and exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0:
            return [sq]
    return None


def _is_floor_or_root(node: onnx.NodeProto, value: str, consts: dict[str, np.ndarray]) -> bool:
    if node.op_type in ROOTS:
        return True
    if node.op_type not in FLOORS:
        return False
    others = [i for i in node.input if i and i != value]
    return all(i in consts for i in others)


def _constant_names(g: onnx.GraphProto, max_size: int = 16) -> dict[str, np.ndarray]:
    """Small constants (epsilons, exponents) by name; weights are never needed here."""
    out = {t.name: numpy_helper.to_array(t) for t in g.initializer if int(np.prod(t.dims)) <= max_size}
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and int(np.prod(a.t.dims)) <= max_size:
                    out[node.output[0]] = numpy_helper.to_array(a.t)
    return out
