"""embedding.fp16.onnx for strongly typed TensorRT 11, and the FP32 graph that estimates its error on a CPU.

TensorRT 11 has no FP16 builder flag: the precision of every layer is the type of its tensors in the ONNX
graph, and its parser wants those types explicit and consistent. So the conversion here writes a graph that
is FP16 inside and FP32 only at its inputs and outputs (one Cast each), turns the graph's own
``Cast(to=FLOAT)`` into ``Cast(to=FLOAT16)`` (no Cast to float is left feeding an FP16 node), feeds FP32
only to op slots whose schema has no FP16 type, keeps the L2-norm islands of fp16_plan in FP32 with
explicit casts, and leaves no elementwise op with mixed input types. Weights round to nearest FP16, with
values that would flush to zero or overflow clamped (fp16_graph.round_to_fp16).

ONNX Runtime's CPU provider computes FP16 graphs in FP32, so running embedding.fp16.onnx there checks that
it is valid and wired right, not its precision; ``fp16_cpu_estimate`` emulates FP16 storage instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.fp16_graph import FLOAT, FLOAT16, accepts_fp16, elem_types, has_subgraphs, opset_of, round_to_fp16
from export.fp16_plan import fp32_nodes
from runtime.bundle.layout import CLAMPED_KEY, FP32_NODES_KEY, PRECISION_KEY
from runtime.fileio import atomic_path

__all__ = ["convert_to_fp16", "fp16_cpu_estimate", "to_fp16"]


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """Write the FP16 version of the FP32 graph ``src`` to ``dst`` (checked with onnx.checker)."""
    model = to_fp16(onnx.load(str(src)))
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(dst, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return Path(dst)


class _Plan:
    """What both graphs are built from: tensor types, the FP32 nodes, the type each input slot gets."""

    def __init__(self, model: onnx.ModelProto):
        _refuse_subgraphs(model)
        self.graph = model.graph
        self.types = elem_types(model)
        self.opset = opset_of(model)
        self.keep = fp32_nodes(model)
        self.weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == FLOAT}
        fp16_reads = {
            name
            for i, node in enumerate(model.graph.node)
            for k, name in enumerate(node.input)
            if self.is_float(name) and self.slot(i, node, k) == FLOAT16
        }
        self.fp16_weights = fp16_reads & set(self.weights)
        # float Constant nodes only FP32 slots read (e.g. Resize scales) stay FP32: no Cast back to float needed
        self.fp32_constants = {
            i
            for i, node in enumerate(model.graph.node)
            if node.op_type == "Constant" and self.is_float(node.output[0]) and node.output[0] not in fp16_reads
        }

    def is_float(self, name: str) -> bool:
        return bool(name) and self.types.get(name) == FLOAT

    def slot(self, i: int, node: onnx.NodeProto, k: int) -> int:
        """Input slot ``k`` of node ``i`` reads FP16 unless the node is kept FP32 or the op has no FP16 there."""
        return FLOAT if i in self.keep or not accepts_fp16(node, k, self.opset) else FLOAT16

    def output(self, i: int, node: onnx.NodeProto, k: int) -> int:
        fp32 = i in self.keep or i in self.fp32_constants
        return FLOAT if fp32 or not accepts_fp16(node, k, self.opset, output=True) else FLOAT16

    def empty_copy(self, model: onnx.ModelProto) -> onnx.ModelProto:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        del out.graph.node[:], out.graph.initializer[:], out.graph.value_info[:]
        return out


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP16 graph of an FP32 ``model`` (see the module docstring for the rules)."""
    plan = _Plan(model)
    out = plan.empty_copy(model)
    current: dict[str, int] = {i.name: FLOAT for i in plan.graph.input if plan.is_float(i.name)}
    clamped = 0
    for t in plan.graph.initializer:
        if t.name in plan.fp16_weights:  # weights read only by FP32 slots keep their exact values
            half, n = round_to_fp16(plan.weights[t.name])
            clamped += n
            out.graph.initializer.append(numpy_helper.from_array(half, t.name))
            current[t.name] = FLOAT16
        else:
            out.graph.initializer.append(t)
            current[t.name] = t.data_type

    variants: dict[tuple[str, int], str] = {}

    def as_type(name: str, want: int) -> str:
        """``name`` as a tensor of type ``want``: itself, an FP32 copy of a weight, or one shared Cast."""
        if current.get(name) == want:
            return name
        if (name, want) not in variants:
            new = f"{name}/{_suffix(want)}"
            if want == FLOAT and name in plan.weights:
                out.graph.initializer.append(numpy_helper.from_array(plan.weights[name], new))
            else:
                out.graph.node.append(helper.make_node("Cast", [name], [new], name=f"{new}/Cast", to=want))
            variants[(name, want)] = new
            current[new] = want
        return variants[(name, want)]

    for i, node in enumerate(plan.graph.node):
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for k, name in enumerate(node.input):
            if plan.is_float(name):
                new.input[k] = as_type(name, plan.slot(i, node, k))
        if i not in plan.keep and i not in plan.fp32_constants:
            _retype_attributes(new)
        for k, name in enumerate(node.output):
            if plan.is_float(name):
                current[name] = plan.output(i, node, k)
        out.graph.node.append(new)

    _cast_outputs_back(out.graph, current)
    _drop_unused_initializers(out.graph)
    names = [n.name or n.output[0] for i, n in enumerate(plan.graph.node) if i in plan.keep]
    _set_props(out, {PRECISION_KEY: "fp16", FP32_NODES_KEY: ",".join(names), CLAMPED_KEY: str(clamped)})
    return onnx.shape_inference.infer_shapes(out, check_type=True, strict_mode=True)


def fp16_cpu_estimate(src: Path | onnx.ModelProto) -> onnx.ModelProto:
    """An FP32 graph that computes what the FP16 graph stores: for estimating FP16 error on a CPU.

    Weights are rounded to FP16 (stored as FP32); graph inputs and every FP16 node's float outputs pass
    through Cast(FP16) then Cast(FP32). What ``to_fp16`` keeps FP32 stays exact here too; an FP32 node's
    output is rounded only where an FP16 node reads it.
    """
    model = src if isinstance(src, onnx.ModelProto) else onnx.load(str(src))
    plan = _Plan(model)
    out = plan.empty_copy(model)
    for t in plan.graph.initializer:
        if t.name in plan.fp16_weights:
            half, _ = round_to_fp16(plan.weights[t.name])
            out.graph.initializer.append(numpy_helper.from_array(half.astype(np.float32), t.name))
        else:
            out.graph.initializer.append(t)

    rounded = set(plan.fp16_weights)  # float tensors whose value, under their own name, is FP16-rounded
    variants: dict[str, str] = {}

    def pair(src_name: str, dst_name: str) -> None:
        half = f"{dst_name}/fp16"
        out.graph.node.append(helper.make_node("Cast", [src_name], [half], name=f"{dst_name}/to_fp16", to=FLOAT16))
        out.graph.node.append(helper.make_node("Cast", [half], [dst_name], name=f"{dst_name}/to_fp32", to=FLOAT))

    def version(name: str, want: int) -> str:
        """``name`` as an FP16 slot (rounded) or an FP32 slot (exact) reads it in the FP16 graph."""
        if want == FLOAT16 and name not in rounded:
            if name not in variants:
                variants[name] = f"{name}/rounded"
                pair(name, variants[name])
            return variants[name]
        if want == FLOAT and name in plan.weights and name in rounded:
            exact = f"{name}/exact"
            if exact not in variants:
                out.graph.initializer.append(numpy_helper.from_array(plan.weights[name], exact))
                variants[exact] = exact
            return exact
        return name

    for i, node in enumerate(plan.graph.node):
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for k, name in enumerate(node.input):
            if plan.is_float(name):
                new.input[k] = version(name, plan.slot(i, node, k))
        stored = [k for k, name in enumerate(node.output) if plan.is_float(name) and plan.output(i, node, k) == FLOAT16]
        for k in stored:
            new.output[k] = f"{node.output[k]}/raw"
        out.graph.node.append(new)  # (append copies: the node is complete before it)
        for k in stored:
            pair(new.output[k], node.output[k])
            rounded.add(node.output[k])
    _drop_unused_initializers(out.graph)
    _set_props(out, {PRECISION_KEY: "fp16-emulated-fp32"})
    return out


def _suffix(t: int) -> str:
    return "as_fp32" if t == FLOAT else "as_fp16"


def _refuse_subgraphs(model: onnx.ModelProto) -> None:
    bad = [n.name or n.op_type for n in model.graph.node if has_subgraphs(n)]
    if bad:
        raise ValueError(f"FP16 conversion does not handle control flow (If/Loop/Scan): {', '.join(bad[:5])}")


def _retype_attributes(node: onnx.NodeProto) -> None:
    """FP32 produced by the node itself (Cast to float, float constants, dtype=float) becomes FP16."""
    for a in node.attribute:
        if node.op_type == "Cast" and a.name == "to" and a.i == FLOAT:
            a.i = FLOAT16
        elif a.name == "dtype" and a.type == onnx.AttributeProto.INT and a.i == FLOAT:
            a.i = FLOAT16
        elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT:
            half, _ = round_to_fp16(numpy_helper.to_array(a.t))
            a.t.CopyFrom(numpy_helper.from_array(half, a.t.name))
    if node.op_type == "Constant":
        for a in list(node.attribute):
            if a.name in ("value_float", "value_floats"):
                values = np.array(a.f if a.name == "value_float" else list(a.floats), dtype=np.float32)
                node.attribute.remove(a)
                node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(round_to_fp16(values)[0])))


def _cast_outputs_back(graph: onnx.GraphProto, current: dict[str, int]) -> None:
    """Graph outputs stay FP32: the FP16 tensor gets a new name and one Cast(to=FLOAT) writes the output."""
    for value in graph.output:
        if current.get(value.name) != FLOAT16:
            continue
        half = f"{value.name}/fp16"
        for node in graph.node:
            for seq in (node.input, node.output):
                for k, name in enumerate(seq):
                    if name == value.name:
                        seq[k] = half
        graph.node.append(helper.make_node("Cast", [half], [value.name], name=f"{value.name}/to_fp32", to=FLOAT))


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _set_props(model: onnx.ModelProto, props: dict[str, str]) -> None:
    merged = {p.key: p.value for p in model.metadata_props}
    merged.update(props)
    del model.metadata_props[:]
    helper.set_model_props(model, merged)
