"""The bundle's graphs in a form OpenCV's DNN importer reads (the C++ runtime's always-built backend).

OpenCV 4.6 (Debian 12) cannot import what tf2onnx writes at opset 17: ``ReduceSum`` with its axes as an input
(opset 13+), the ``Shape -> Gather -> Concat -> Reshape`` chain Keras' ``Flatten`` becomes under a dynamic batch,
and ``Max`` against a constant. The variant is the same Keras function converted at opset 11, with the batch fixed
to 1 so onnxslim folds every shape computation into constants, and ``Max(x, c)`` rewritten as ``Relu(x - c) + c``
(the same function). Before it is written, ONNX Runtime must give the same outputs as the bundle's FP32 graph on
the reference inputs; the C++ runtime runs it one image (or pair) at a time and reads its name from the manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from runtime.bundle import layout as mf
from runtime.bundle.manifest import OpenCVGraphs

OPENCV_OPSET = 11  # the newest opset whose ReduceSum (axes as an attribute) OpenCV 4.6 imports
OPENCV_BATCH = 1
# the variant must compute what the bundle's FP32 graph computes (same function, other opset); max abs difference
# allowed relative to max|output|, as tight as the FP32 parity tolerance (runtime.parity)
AGREEMENT_REL = 1e-5


class OpenCVVariantError(RuntimeError):
    """The variant could not be written or does not compute what the bundle's graph computes."""


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


def max_to_relu(model: onnx.ModelProto) -> int:
    """Rewrite ``Max(x, c)`` with a scalar constant ``c`` as ``Relu(x - c) + c`` (OpenCV 4.6 imports neither ``Max``
    against a constant nor ``Clip`` with its bounds as inputs); returns how many were rewritten."""
    consts = _constants(model)
    nodes, changed = [], 0
    for node in model.graph.node:
        if node.op_type == "Max" and len(node.input) == 2:
            var = [i for i in node.input if i not in consts]
            const = [i for i in node.input if i in consts and consts[i].size == 1]
            if len(var) == 1 and len(const) == 1:
                c = numpy_helper.from_array(consts[const[0]].reshape(()).astype(np.float32), node.name + "_c")
                model.graph.initializer.append(c)
                shifted, relu = node.name + "_shifted", node.name + "_relu"
                nodes.append(helper.make_node("Sub", [var[0], c.name], [shifted], name=shifted))
                nodes.append(helper.make_node("Relu", [shifted], [relu], name=relu))
                nodes.append(helper.make_node("Add", [relu, c.name], list(node.output), name=node.name))
                changed += 1
                continue
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[v.name] = [d.dim_value for d in dims]
    return out


def expand_last_axis(model: onnx.ModelProto) -> int:
    """``a (1, D) op b (1, 1)`` for two computed tensors (OpenCV 4.6 cannot broadcast them): ``b`` is first widened
    to (1, D) by ``MatMul(b, ones(1, D))`` (multiplying by 1 is exact). Returns how many were rewritten."""
    consts, shapes = _constants(model), _shapes(model)
    nodes, changed = [], 0
    for node in model.graph.node:
        if node.op_type in ("Div", "Mul", "Add", "Sub") and not any(i in consts for i in node.input):
            sa, sb = shapes.get(node.input[0]), shapes.get(node.input[1])
            if sa and sb and len(sa) == len(sb) == 2 and sa[0] == sb[0] == 1 and sorted((sa[1], sb[1]))[0] == 1:
                narrow = 0 if sa[1] == 1 else 1
                width = max(sa[1], sb[1])
                if width > 1:
                    ones = numpy_helper.from_array(np.ones((1, width), np.float32), node.name + "_ones")
                    model.graph.initializer.append(ones)
                    wide = node.name + "_wide"
                    nodes.append(helper.make_node("MatMul", [node.input[narrow], ones.name], [wide], name=wide))
                    inputs = list(node.input)
                    inputs[narrow] = wide
                    node = helper.make_node(node.op_type, inputs, list(node.output), name=node.name)
                    changed += 1
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def fix_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fix every graph input's batch to ``OPENCV_BATCH`` and fold the shape computations onnxslim can fold."""
    import onnxslim

    shapes = []
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim[1:]]
        shapes.append(f"{value.name}:{','.join(str(d) for d in [OPENCV_BATCH, *dims])}")
    return onnxslim.slim(model, input_shapes=shapes)


def opencv_ready(model: onnx.ModelProto) -> onnx.ModelProto:
    """An opset-11 graph -> the OpenCV-importable variant (fixed batch, folded shapes, Max -> Relu)."""
    slim = fix_batch(model)
    max_to_relu(slim)
    expand_last_axis(slim)
    onnx.checker.check_model(slim)
    return slim


def _agreement(variant: onnx.ModelProto, reference: Path, feeds: dict[str, np.ndarray]) -> float:
    """Max |variant - reference| / max|reference| over ``feeds`` run one row at a time through the variant."""
    import onnxruntime as ort

    from runtime.backends.onnxruntime_backend import CPU_PROVIDER

    ref = ort.InferenceSession(str(reference), providers=[CPU_PROVIDER])
    var = ort.InferenceSession(variant.SerializeToString(), providers=[CPU_PROVIDER])
    want = ref.run(None, feeds)[0]
    n = len(next(iter(feeds.values())))
    got = np.concatenate([var.run(None, {k: v[i : i + 1] for k, v in feeds.items()})[0] for i in range(n)])
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got - want))) / scale


def write_variant(
    export_fn, siamese, bundle_dir: Path, source: Path, target: str, feeds: dict[str, np.ndarray], meta: dict
) -> str | None:
    """Export with ``export_fn`` at opset 11, make it OpenCV-ready, check it against ``bundle_dir/source`` on
    ``feeds`` and save it as ``bundle_dir/target``; returns ``target`` (None when ``export_fn`` writes nothing)."""
    tmp = bundle_dir / (target + ".opset11")
    if export_fn(siamese, tmp, OPENCV_OPSET, meta) is None:
        return None
    try:
        variant = opencv_ready(onnx.load(str(tmp)))
    finally:
        tmp.unlink(missing_ok=True)
    rel = _agreement(variant, bundle_dir / source, feeds)
    if not rel <= AGREEMENT_REL:
        raise OpenCVVariantError(
            f"{target}: the OpenCV variant differs from {source} by {rel:.3g} (relative), allowed {AGREEMENT_REL:g}"
        )
    onnx.save(variant, str(bundle_dir / target))
    return target


def write_opencv_variants(siamese, bundle_dir: Path, ref, meta: dict) -> OpenCVGraphs:
    """embedding.opencv.onnx (+ head.opencv.onnx for a learned head); returns the manifest's ``opencv`` entry."""
    from export.onnx_export import export_embedding, export_head

    inputs = ref.inputs[:8]
    emb = write_variant(
        export_embedding,
        siamese,
        bundle_dir,
        Path(mf.EMBEDDING_ONNX),
        mf.EMBEDDING_OPENCV_ONNX,
        {mf.INPUT_NAME: inputs},
        meta,
    )
    head = None
    if siamese.config.head == "learned":
        ea, eb = ref.embeddings[ref.pair_a[:8]], ref.embeddings[ref.pair_b[:8]]
        head = write_variant(
            export_head,
            siamese,
            bundle_dir,
            Path(mf.HEAD_ONNX),
            mf.HEAD_OPENCV_ONNX,
            {mf.HEAD_INPUTS[0]: ea, mf.HEAD_INPUTS[1]: eb},
            meta,
        )
    return OpenCVGraphs(
        emb,
        head,
        batch=OPENCV_BATCH,
        opset=OPENCV_OPSET,
        note="opset 11, batch fixed to 1, shapes folded, Max(x, c) as Relu(x - c) + c: for OpenCV's DNN importer (>= 4.6)",
    )
