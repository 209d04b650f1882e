"""Turning tf2onnx failures into errors a user can act on: which Keras layer, which op, which model file.

tf2onnx does not raise on an op it cannot map: it logs it and leaves the TensorFlow op in the ONNX graph,
so the failure would surface later as an opaque checker or ONNX Runtime error. Python code that cannot be
traced (a numpy call inside ``call``) fails earlier, at tracing. Both are traced back to the layer here.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType

import keras
import onnx

_SUFFIX = re.compile(r"_\d+$")


class ExportError(ValueError):
    """A model that cannot be exported; the message names the layer/op and the model file when known."""


def layer_index(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer of ``model`` by name, nested models (and their layers) included."""
    index: dict[str, keras.layers.Layer] = {}
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        index.setdefault(layer.name, layer)
        stack.extend(getattr(layer, "layers", []))
    return index


def layer_for_node(node_name: str, index: dict[str, keras.layers.Layer]) -> keras.layers.Layer | None:
    """The innermost Keras layer in a TF/ONNX node name such as ``embedding_1/weird_1/EagerPyFunc``.

    Keras 3 opens a name scope per layer call; TensorFlow de-duplicates scopes with ``_<n>`` suffixes.
    """
    found = None
    for part in node_name.split("/")[:-1] or node_name.split("/"):
        layer = index.get(part) or index.get(_SUFFIX.sub("", part))
        if layer is not None:
            found = layer
    return found


def layer_from_traceback(tb: TracebackType | None) -> keras.layers.Layer | None:
    """The innermost Keras layer whose ``call`` was running when tracing failed (plain layers before models)."""
    plain = model = None
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, keras.Model):
            model = obj
        elif isinstance(obj, keras.layers.Layer):
            plain = obj
        tb = tb.tb_next
    return plain or model


def describe(layer: keras.layers.Layer | None) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})" if layer is not None else "a layer"


def where(source: str | Path | None, graph: str) -> str:
    return f"{source}: {graph}" if source else graph


def unsupported_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes with no ONNX schema: TensorFlow ops tf2onnx left in the graph because it could not convert them."""
    imports = {o.domain or "": o.version for o in model.opset_import}
    bad = []
    for node in model.graph.node:
        domain = node.domain or ""
        if domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type, imports.get(domain, 1), domain):
            bad.append(node)
    return bad


def unsupported_error(
    nodes: list[onnx.NodeProto], index: dict[str, keras.layers.Layer], source: str | Path | None, graph: str, opset: int
) -> ExportError:
    parts = []
    for node in nodes:
        parts.append(f"{describe(layer_for_node(node.name, index))} uses TensorFlow op {node.op_type} ({node.name})")
    return ExportError(
        f"{where(source, graph)}: tf2onnx cannot convert to ONNX opset {opset}: {'; '.join(parts)}. "
        "Rewrite the layer with keras.ops / TensorFlow ops that have ONNX equivalents "
        "(no tf.py_function, numpy or Python-side computation in call())"
    )


def tracing_error(exc: BaseException, source: str | Path | None, graph: str) -> ExportError:
    return ExportError(
        f"{where(source, graph)}: {describe(layer_from_traceback(exc.__traceback__))} cannot be traced into a "
        f"TensorFlow graph for tf2onnx ({type(exc).__name__}: {_reason(exc)}). Its call() must use "
        "keras.ops / TensorFlow ops only (no numpy or Python-side computation on tensor values)"
    )


def _reason(exc: BaseException, limit: int = 300) -> str:
    """The original message: Keras wraps it (bold, between its own lines) inside TensorFlow's "in user code"."""
    text = str(exc)
    bold = re.search(r"\x1b\[1m(.*?)\x1b\[0m", text, re.S)
    if bold:
        text = bold.group(1)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return (" ".join(lines) if bold else lines[-1])[:limit]
