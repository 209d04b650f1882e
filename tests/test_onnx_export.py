"""Keras -> ONNX for every registered architecture: names, dtypes, dynamic batch, metadata, parity with Keras.

Each case is exported once per session (``export_case``, shared with tests/test_fp16.py through the session's
temporary folder); the exports are the slow part, the checks are fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf
from onnx import numpy_helper

from export.onnx_export import BATCH_DIM, ExportError, export_embedding, export_head, export_siamese
from runtime.bundle.layout import (
    EMBEDDING_ONNX,
    EMBEDDING_OUTPUT,
    HEAD_INPUTS,
    HEAD_ONNX,
    INPUT_NAME,
    SCORE_OUTPUT,
    SIAMESE_INPUTS,
    SIAMESE_ONNX,
)
from runtime.parity import FP32_TOLERANCES
from train.models import EuclideanDistance, Siamese, create_model, list_models
from train.models.siamese import assemble, make_head

SEED = 1234
OPSET = 17
# small inputs where the factory allows them (the export cost is the weights, not the image size)
SMALL = {"koch": {"input_shape": (65, 65, 1)}, "resnet-pairs": {"input_shape": (32, 32, 3)}}
EXTRA = {"pyimagesearch-contrastive": ("pyimagesearch", {"loss": "contrastive"})}  # a euclidean head
CASES = {**{name: (name, SMALL.get(name, {})) for name in list_models()}, **EXTRA}
META = {"siamese_edge.bundle": "test", "siamese_edge.note": "α, β"}


@dataclass
class Case:
    name: str
    siamese: Siamese
    folder: Path

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.siamese.embedding.input_shape[1:])

    def path(self, file: str) -> Path:
        return self.folder / file


def export_case(tmp_path_factory: pytest.TempPathFactory, name: str) -> Case:
    """Build case ``name`` (seeded) and export its three graphs, or reuse an earlier export in this session."""
    arch, kwargs = CASES[name]
    folder = tmp_path_factory.getbasetemp() / "onnx-export" / name
    weights = folder / "model.weights.h5"
    keras.utils.set_random_seed(SEED)
    siamese = create_model(arch, **kwargs)
    if weights.exists():
        siamese.model.load_weights(weights)
        return Case(name, siamese, folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**META, "siamese_edge.arch": arch}
    export_embedding(siamese, folder / EMBEDDING_ONNX, OPSET, meta)
    export_head(siamese, folder / HEAD_ONNX, OPSET, meta)
    export_siamese(siamese, folder / SIAMESE_ONNX, OPSET, meta)
    siamese.model.save_weights(weights)
    return Case(name, siamese, folder)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory) -> Case:
    return export_case(tmp_path_factory, request.param)


def test_every_registered_architecture_is_a_case():
    assert set(list_models()) <= set(CASES)
    assert "input_shape" not in CASES["vgg16-siamese"][1]  # VGG16 at its native 105x105x3


def test_graphs_are_valid_onnx_with_metadata(case: Case):
    files = [EMBEDDING_ONNX, SIAMESE_ONNX] + ([HEAD_ONNX] if case.siamese.config.head == "learned" else [])
    for file in files:
        model = onnx.load(str(case.path(file)))
        onnx.checker.check_model(model, full_check=True)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["siamese_edge.arch"] == case.siamese.config.arch
        assert props["siamese_edge.note"] == META["siamese_edge.note"]
        assert props["siamese_edge.graph"] == file.split(".")[0]
        for value in [*model.graph.input, *model.graph.output]:
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            assert value.type.tensor_type.shape.dim[0].dim_param == BATCH_DIM


def test_embedding_matches_keras(case: Case):
    rng = np.random.default_rng(SEED)
    x = rng.random((5, *case.shape), dtype=np.float32)
    ref = case.siamese.embed(x)
    sess = session(case.path(EMBEDDING_ONNX))
    assert [i.name for i in sess.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in sess.get_outputs()] == [EMBEDDING_OUTPUT]
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_outputs()[0].type == "tensor(float)"
    assert sess.get_outputs()[0].shape[1:] == [case.siamese.config.embedding_dim]
    for n in (1, 5):
        (got,) = sess.run(None, {INPUT_NAME: x[:n]})
        assert got.shape == (n, case.siamese.config.embedding_dim) and got.dtype == np.float32
        assert rel_err(got, ref[:n]) <= FP32_TOLERANCES.embedding_rel


def test_head_matches_keras_or_is_none(case: Case, tmp_path):
    cfg = case.siamese.config
    if cfg.head == "euclidean":
        assert not case.path(HEAD_ONNX).exists()
        assert export_head(case.siamese, tmp_path / HEAD_ONNX) is None
        assert not (tmp_path / HEAD_ONNX).exists()
        return
    rng = np.random.default_rng(SEED + 1)
    ea, eb = (rng.standard_normal((5, cfg.embedding_dim)).astype(np.float32) for _ in range(2))
    ref = case.siamese.score_embeddings(ea, eb)
    sess = session(case.path(HEAD_ONNX))
    assert [i.name for i in sess.get_inputs()] == list(HEAD_INPUTS)
    assert [o.name for o in sess.get_outputs()] == [SCORE_OUTPUT]
    for n in (1, 5):
        (got,) = sess.run(None, {HEAD_INPUTS[0]: ea[:n], HEAD_INPUTS[1]: eb[:n]})
        assert got.shape == (n, 1) and got.dtype == np.float32
        assert np.abs(got.reshape(-1) - ref[:n]).max() <= FP32_TOLERANCES.score_abs


def test_siamese_matches_keras(case: Case):
    rng = np.random.default_rng(SEED + 2)
    xa, xb = (rng.random((5, *case.shape), dtype=np.float32) for _ in range(2))
    ref = keras.ops.convert_to_numpy(case.siamese.model([xa, xb], training=False)).reshape(-1)
    sess = session(case.path(SIAMESE_ONNX))
    assert [i.name for i in sess.get_inputs()] == list(SIAMESE_INPUTS)
    assert [o.name for o in sess.get_outputs()] == [SCORE_OUTPUT]
    for n in (1, 5):
        (got,) = sess.run(None, {SIAMESE_INPUTS[0]: xa[:n], SIAMESE_INPUTS[1]: xb[:n]})
        assert got.shape == (n, 1) and got.dtype == np.float32
        assert np.abs(got.reshape(-1) - ref[:n]).max() <= FP32_TOLERANCES.score_abs


# ---------------------------------------------------------------------------------------------------------------
# models tf2onnx cannot convert: the error names the layer (and the model file, when given)
# ---------------------------------------------------------------------------------------------------------------


class PyFunctionLayer(keras.layers.Layer):
    """Calls back into Python at run time: tf2onnx leaves an EagerPyFunc op it cannot convert."""

    def call(self, x):
        y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
        y.set_shape(x.shape)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape


class NumpyLayer(keras.layers.Layer):
    """Works eagerly, but numpy cannot see the symbolic tensors of a traced graph."""

    def call(self, x):
        return keras.ops.convert_to_tensor(np.sort(np.asarray(x), axis=-1))

    def compute_output_shape(self, input_shape):
        return input_shape


def custom_siamese(layer: keras.layers.Layer) -> Siamese:
    keras.utils.set_random_seed(SEED)
    base = create_model("pyimagesearch", loss="contrastive")
    inp = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Flatten(name="flatten")(inp)
    x = keras.layers.Dense(8, name="fc")(x)
    emb = keras.Model(inp, layer(x), name="embedding")
    head = make_head(8, EuclideanDistance(name="distance"), [])
    config = dataclasses.replace(base.config, arch="custom", embedding_dim=8)
    return Siamese(assemble(emb, head, "custom"), config)


@pytest.mark.parametrize("export", [export_embedding, export_siamese])
def test_py_function_layer_is_named(tmp_path, export):
    siamese = custom_siamese(PyFunctionLayer(name="py_callback"))
    target = tmp_path / "graph.onnx"
    with pytest.raises(ExportError) as err:
        export(siamese, target, source="my_model.keras")
    msg = str(err.value)
    assert "'py_callback'" in msg and "PyFunctionLayer" in msg and "EagerPyFunc" in msg
    assert msg.startswith("my_model.keras: graph.onnx")
    assert not target.exists() and not list(tmp_path.iterdir())


def test_numpy_layer_is_named(tmp_path):
    siamese = custom_siamese(NumpyLayer(name="numpy_sort"))
    with pytest.raises(ExportError, match=r"layer 'numpy_sort' \(NumpyLayer\)") as err:
        export_embedding(siamese, tmp_path / EMBEDDING_ONNX)
    assert "symbolic" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_export_error_is_a_value_error():
    assert issubclass(ExportError, ValueError)


def test_a_graph_that_disagrees_with_keras_is_not_written(tmp_path, monkeypatch):
    from export import onnx_export

    convert = onnx_export._convert

    def mis_convert(*args, **kwargs) -> onnx.ModelProto:
        model = convert(*args, **kwargs)
        for t in model.graph.initializer:
            if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 4:  # conv kernels, off by 10%
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 1.1, t.name))
        return model

    monkeypatch.setattr(onnx_export, "_convert", mis_convert)
    keras.utils.set_random_seed(SEED)
    siamese = create_model("pyimagesearch")
    with pytest.raises(ExportError, match="ONNX Runtime and Keras disagree"):
        export_embedding(siamese, tmp_path / EMBEDDING_ONNX, source="m.keras")
    assert not list(tmp_path.iterdir())
