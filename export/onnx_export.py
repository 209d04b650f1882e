"""Keras -> ONNX for the bundle's three graphs: embedding.onnx, head.onnx, siamese.onnx.

Each graph goes through tf2onnx from a ``tf.function`` with an explicit input signature (batch ``None``):
Keras 3 models are not what ``tf2onnx.convert.from_keras`` expects, and the signature is what fixes the
ONNX tensor names and makes the batch dimension dynamic. Tensor names come from runtime.bundle.layout so the
runtime and the exporter cannot disagree. Before a graph is written it must pass the IO checks below, agree
with Keras in ONNX Runtime (export.onnx_verify) and pass onnx.checker; ``source`` (the model file) only
makes error messages name it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import onnx
import tensorflow as tf

from export.onnx_errors import (
    ExportError,
    describe,
    layer_for_node,
    layer_index,
    tracing_error,
    unsupported_error,
    unsupported_nodes,
    where,
)
from export.onnx_verify import ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE, disagreement, sample_inputs
from runtime import interrupts
from runtime.bundle.layout import EMBEDDING_OUTPUT, HEAD_INPUTS, INPUT_NAME, SCORE_OUTPUT, SIAMESE_INPUTS
from runtime.fileio import atomic_path

__all__ = ["BATCH_DIM", "ExportError", "export_embedding", "export_head", "export_siamese"]

BATCH_DIM = "batch"  # the symbolic name of the dynamic batch dimension on every graph input and output
GRAPH_KEY = "siamese_edge.graph"  # metadata key added to every graph: which of the three it is
MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit; larger models are checked from the file


def export_embedding(
    siamese, path: Path, opset: int = 17, metadata: dict[str, str] | None = None, source: str | Path | None = None
) -> Path:
    """embedding.onnx: ``image`` NHWC float32 [batch, H, W, C] -> ``embedding`` float32 [batch, dim]."""
    emb = siamese.embedding
    shape = tuple(emb.input_shape[1:])
    return _export(
        lambda xs: emb(xs[0], training=False),
        [(INPUT_NAME, shape)],
        EMBEDDING_OUTPUT,
        (siamese.config.embedding_dim,),
        Path(path),
        opset,
        _meta(metadata, "embedding"),
        siamese,
        _source(siamese, source),
    )


def export_head(
    siamese, path: Path, opset: int = 17, metadata: dict[str, str] | None = None, source: str | Path | None = None
) -> Path | None:
    """head.onnx: ``embedding_a``, ``embedding_b`` float32 [batch, dim] -> ``score`` float32 [batch, 1].

    Returns None (and writes nothing) for a euclidean head: it has no weights, the runtime computes the distance.
    """
    if siamese.config.head == "euclidean":
        return None
    head = siamese.head
    shapes = [tuple(s[1:]) for s in head.input_shape]
    return _export(
        lambda xs: head(list(xs), training=False),
        list(zip(HEAD_INPUTS, shapes)),
        SCORE_OUTPUT,
        (1,),
        Path(path),
        opset,
        _meta(metadata, "head"),
        siamese,
        _source(siamese, source),
    )


def export_siamese(
    siamese, path: Path, opset: int = 17, metadata: dict[str, str] | None = None, source: str | Path | None = None
) -> Path:
    """siamese.onnx: ``image_a``, ``image_b`` NHWC float32 [batch, H, W, C] -> ``score`` float32 [batch, 1].

    A model wired as ``head([embedding(a), embedding(b)])`` (every project model) is exported as one embedding
    pass over the concatenated batch: half the graph of the two-branch Keras model and one batched run;
    inference-mode layers are per-sample, so the scores are the same. Anything else is exported as it is.
    """
    shape = tuple(siamese.embedding.input_shape[1:])
    return _export(
        _siamese_call(siamese),
        [(name, shape) for name in SIAMESE_INPUTS],
        SCORE_OUTPUT,
        (1,),
        Path(path),
        opset,
        _meta(metadata, "siamese"),
        siamese,
        _source(siamese, source),
        reference=lambda xs: siamese.model(list(xs), training=False),
    )


def _siamese_call(siamese) -> Callable[[Sequence[tf.Tensor]], tf.Tensor]:
    model, emb, head = siamese.model, siamese.embedding, siamese.head
    inner = {id(layer) for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)}
    if inner != {id(emb), id(head)}:
        return lambda xs: model(list(xs), training=False)

    def call(xs: Sequence[tf.Tensor]) -> tf.Tensor:
        a, b = xs
        n = tf.shape(a)[0]
        e = emb(tf.concat([a, b], axis=0), training=False)
        return head([e[:n], e[n:]], training=False)

    return call


def _meta(metadata: dict[str, str] | None, graph: str) -> dict[str, str]:
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.setdefault(GRAPH_KEY, graph)
    return meta


def _source(siamese, source) -> str | None:
    """The model file for error messages: the caller's, else one the loader recorded on the model, if any."""
    found = source or getattr(siamese, "source", None) or getattr(siamese, "source_path", None)
    return str(found) if found else None


def _export(
    call: Callable[[Sequence[tf.Tensor]], tf.Tensor],
    inputs: list[tuple[str, tuple]],
    output: str,
    output_shape: tuple,
    path: Path,
    opset: int,
    metadata: dict[str, str],
    siamese,
    source: str | None,
    reference: Callable[[Sequence[tf.Tensor]], tf.Tensor] | None = None,
) -> Path:
    """Convert ``call``, check it (IO contract, ONNX Runtime against ``reference`` or ``call``), save it."""
    graph = path.name
    index = layer_index(siamese.model)
    with interrupts.deferred(f"converting {graph}"):  # tf2onnx's tracing mangles an exception raised inside it
        model = _convert(call, inputs, output, opset, index, source, graph)
    bad = unsupported_nodes(model)
    if bad:
        raise unsupported_error(bad, index, source, graph, opset)
    _check_io(model, [n for n, _ in inputs], output, output_shape, where(source, graph))
    with interrupts.deferred(f"checking {graph} against Keras"):
        _check_against_keras(model, reference or call, inputs, where(source, graph))
    name_batch_dim(model)
    onnx.helper.set_model_props(model, metadata)
    return save_checked(model, path, where(source, graph))


def _convert(call, inputs, output, opset, index, source, graph) -> onnx.ModelProto:
    """Trace ``call`` with an explicit signature and hand it to tf2onnx; failures become ExportError."""
    import tf2onnx

    specs = [tf.TensorSpec((None, *shape), tf.float32, name=name) for name, shape in inputs]

    def fn(*xs):
        return {output: tf.cast(call(xs), tf.float32)}

    function = tf.function(fn, input_signature=specs)
    try:
        function.get_concrete_function()
    except Exception as e:
        raise tracing_error(e, source, graph) from e
    try:
        model, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=opset)
    except Exception as e:
        node = _tf2onnx_node(e)
        layer = describe(layer_for_node(node, index)) if node else "the model"
        at = f" at node {node}" if node else ""
        raise ExportError(
            f"{where(source, graph)}: tf2onnx could not convert {layer}{at} to ONNX opset {opset}: "
            f"{type(e).__name__}: {str(e)[:300]}"
        ) from e
    return model


def _check_against_keras(model: onnx.ModelProto, call, inputs: list[tuple[str, tuple]], label: str) -> None:
    """ONNX Runtime must compute what Keras computes (see export.onnx_verify) before the graph is written."""
    if model.ByteSize() >= MAX_PROTO_BYTES:
        return
    feeds = sample_inputs(dict(inputs))

    def keras_fn(*xs):
        return keras.ops.convert_to_numpy(call([tf.constant(x) for x in xs]))

    ratio = disagreement(model, keras_fn, feeds)
    if not ratio <= 1.0:  # (also catches NaN)
        raise ExportError(
            f"{label}: ONNX Runtime and Keras disagree on the converted graph ({ratio:.3g}x the allowed "
            f"{ABSOLUTE_TOLERANCE:g} + {RELATIVE_TOLERANCE:g} * max|output|): the graph does not compute what "
            "the Keras model computes"
        )


def _tf2onnx_node(exc: BaseException) -> str | None:
    """The name of the graph node tf2onnx was converting when it failed (its handlers keep it in ``node``)."""
    name = None
    tb = exc.__traceback__
    while tb is not None:
        node = tb.tb_frame.f_locals.get("node")
        if isinstance(getattr(node, "name", None), str):
            name = node.name
        tb = tb.tb_next
    return name


def _check_io(model: onnx.ModelProto, inputs: list[str], output: str, output_shape: tuple, label: str) -> None:
    """The contract the runtime relies on: names, float32, a dynamic batch, the expected trailing dims."""
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != inputs or got_out != [output]:
        raise ExportError(f"{label}: graph IO {got_in} -> {got_out}, expected {inputs} -> [{output!r}]")
    for value in [*model.graph.input, *model.graph.output]:
        t = value.type.tensor_type
        if t.elem_type != onnx.TensorProto.FLOAT:
            raise ExportError(f"{label}: {value.name} is {onnx.TensorProto.DataType.Name(t.elem_type)}, not FLOAT")
        if t.shape.dim and t.shape.dim[0].HasField("dim_value"):
            raise ExportError(f"{label}: {value.name} has a fixed batch {t.shape.dim[0].dim_value}, expected dynamic")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in model.graph.output[0].type.tensor_type.shape.dim]
    if dims and tuple(dims[1:]) != tuple(output_shape):
        raise ExportError(f"{label}: {output} has shape [batch, {dims[1:]}], expected [batch, {list(output_shape)}]")


def name_batch_dim(model: onnx.ModelProto, name: str = BATCH_DIM) -> None:
    """Give every graph input and output the same symbolic batch dim (tf2onnx writes ``unk__<n>``)."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = name


def save_checked(model: onnx.ModelProto, path: Path, label: str) -> Path:
    """onnx.checker (with shape inference), then an atomic save: no half-written graph is ever left."""
    try:
        if model.ByteSize() < MAX_PROTO_BYTES:
            onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"{label}: the ONNX graph is not valid: {str(e)[:500]}") from e
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return Path(path)
