"""What a strongly typed TensorRT 11 parser needs from embedding.fp16.onnx, checked without TensorRT.

Used by the tests and usable by the build: every violation is a sentence naming the node.
"""

from __future__ import annotations

from collections import defaultdict

import onnx

from export.fp16_graph import FLOAT, FLOAT16, accepts_fp16, consumers, elem_types, opset_of, slot_types

FLOATS = {FLOAT, FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def strict_typing_issues(model: onnx.ModelProto) -> list[str]:
    """Violations: non-FP32 graph IO, a Cast to float feeding an FP16 node (in a slot that takes FP16), mixed
    float types bound to one type parameter of an op."""
    types = elem_types(model)
    opset = opset_of(model)
    g = model.graph
    issues = []
    for value in [*g.input, *g.output]:
        if value.type.tensor_type.elem_type != FLOAT:
            issues.append(f"graph IO {value.name!r} is not FP32")
    cons = consumers(g)
    for node in g.node:
        if node.op_type == "Cast" and _attr(node, "to") == FLOAT:
            for user in cons.get(node.output[0], []):
                fp16_node = FLOAT16 in {types.get(t) for t in [*user.input, *user.output] if t}
                # an input the op has no FP16 type for (Resize scales) is FP32 by necessity, not a leftover
                fp16_slot = any(n == node.output[0] and accepts_fp16(user, k, opset) for k, n in enumerate(user.input))
                if fp16_node and fp16_slot:
                    issues.append(f"Cast to float {node.name!r} feeds FP16 node {user.name!r} ({user.op_type})")
        bound: dict[str, set[int]] = defaultdict(set)
        for output, names in ((False, node.input), (True, node.output)):
            for k, name in enumerate(names):
                t = types.get(name) if name else None
                param = slot_types(node, k, opset, output)[0]
                if t in FLOATS and param and not param.startswith("tensor("):
                    bound[param].add(t)
        for param, seen in bound.items():
            if len(seen) > 1:
                names = ", ".join(onnx.TensorProto.DataType.Name(t) for t in sorted(seen))
                issues.append(f"node {node.name!r} ({node.op_type}) mixes {names} in type {param}")
    return issues


def fp32_initializers(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in model.graph.initializer if t.data_type == FLOAT]


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None
