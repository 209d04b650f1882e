"""Legacy model files: bubbliiiing's weights-only VGG file, Keras 2 whole-model HDF5 with Lambda bytecode.

Every file is written for real with h5py in the exact layout of the Keras version that wrote the seed's
files; Lambda bytecode is compiled by this Python and must never be unmarshaled (``marshal.loads`` is
patched to fail) unless the test asks for unsafe loading.
"""

from __future__ import annotations

import base64
import codecs
import json
import marshal

import h5py
import keras
import numpy as np
import pytest

from tests.legacy_files import vgg_file_weights, vgg_layer_names, write_keras215_weights
from train.legacy.errors import LoadWarning, ModelLoadError
from train.legacy.graph import leaf_layers
from train.legacy.lambdas import classify_lambda, classify_names, names_in_code
from train.legacy.weights_only import load_weights_by_order
from train.load import load_model
from train.models import EuclideanDistance, create_model

PYIMAGESEARCH_SOURCE = """
def euclidean_distance(vectors):
    (featsA, featsB) = vectors
    sumSquared = K.sum(K.square(featsA - featsB), axis=1, keepdims=True)
    return K.sqrt(K.maximum(sumSquared, K.epsilon()))
"""


def compiled(source: str, name: str):
    """The code object of function ``name`` in ``source``, compiled (never run) by this Python."""
    module = compile(source, "seed.py", "exec")
    return next(c for c in module.co_consts if getattr(c, "co_name", None) == name)


def keras_func_dump(code) -> str:
    """Base64 of the marshaled code, as Keras 2's func_dump writes it."""
    return codecs.encode(marshal.dumps(code), "base64").decode("ascii")


@pytest.fixture
def no_unmarshal(monkeypatch):
    """Fail if any seed function's bytecode is unmarshaled or loaded as a function (imports still work)."""
    from keras.src.utils import python_utils

    real_loads = marshal.loads

    def guarded_loads(data, *args, **kwargs):
        if b"featsA" in bytes(data):
            raise AssertionError("marshal.loads was called on Lambda bytecode")
        return real_loads(data, *args, **kwargs)

    def refuse(*_a, **_k):
        raise AssertionError("keras func_load was called: Lambda bytecode must not be loaded")

    monkeypatch.setattr(marshal, "loads", guarded_loads)
    monkeypatch.setattr(python_utils, "func_load", refuse)


# ---------------------------------------------------------------- bubbliiiing's Omniglot_vgg.h5 (Keras 2.1.5)


@pytest.fixture(scope="module")
def vgg_weights():
    return vgg_file_weights()


def test_bubbliiiing_weights_load_by_order_without_arch(tmp_path, vgg_weights, no_unmarshal):
    path = tmp_path / "Omniglot_vgg.h5"
    write_keras215_weights(path, vgg_layer_names(), vgg_weights)
    with pytest.warns(LoadWarning, match="vgg16-siamese"):
        s = load_model(path)
    assert s.config.arch == "vgg16-siamese"
    assert s.config.preprocessing.input_shape == (105, 105, 3)
    # the head got the file's weights (a silent by_name skip would leave them random)
    np.testing.assert_array_equal(s.head.get_layer("dense_1").get_weights()[0], vgg_weights["dense_1"][0])
    np.testing.assert_array_equal(s.head.get_layer("dense_2").get_weights()[0], vgg_weights["dense_2"][0])
    np.testing.assert_array_equal(
        s.embedding.get_layer("block5_conv3").get_weights()[1], vgg_weights["block5_conv3"][1]
    )

    reference = create_model("vgg16-siamese")
    order = [name for name in vgg_layer_names() if name in vgg_weights]
    layers = leaf_layers(reference.model)
    assert [la.name for la in layers] == order
    for layer in layers:
        layer.set_weights(vgg_weights[layer.name])
    rng = np.random.default_rng(1)
    xa, xb = rng.random((2, 2, 105, 105, 3), dtype=np.float32)
    got = s.score(xa, xb)
    want = reference.score(xa, xb)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.embed(xa), reference.embed(xa), rtol=1e-5, atol=1e-5)
    assert 0.01 < float(got.min()) and float(got.max()) < 0.99  # not saturated: the comparison means something


def test_bubbliiiing_wrong_shape_is_refused_naming_layer_and_shapes(tmp_path, vgg_weights):
    bad = dict(vgg_weights)
    bad["block2_conv1"] = [np.zeros((3, 3, 32, 128), np.float32), vgg_weights["block2_conv1"][1]]
    path = tmp_path / "wrong.h5"
    write_keras215_weights(path, vgg_layer_names(), bad)
    for arch in (None, "vgg16-siamese"):
        with pytest.raises(ModelLoadError) as err:
            load_model(path, arch=arch)
        msg = str(err.value)
        assert "block2_conv1" in msg and "(3, 3, 64, 128)" in msg and "(3, 3, 32, 128)" in msg, msg


def test_bubbliiiing_missing_layer_is_refused(tmp_path, vgg_weights):
    names = [n for n in vgg_layer_names() if n != "dense_1"]
    path = tmp_path / "missing.h5"
    write_keras215_weights(path, names, vgg_weights)
    with pytest.raises(ModelLoadError) as err:
        load_model(path, arch="vgg16-siamese")
    msg = str(err.value)
    assert "expected 15 weighted layers, found 14" in msg, msg
    assert "lacks the model's 'dense_1'" in msg, msg
    assert "'dense_1'" in msg and "(4608, 512)" in msg and "(512, 1)" in msg, msg


def test_input_size_is_inferred_from_the_dense_after_flatten(tmp_path):
    """4608 = 3x3x512 means 96..127 pixels; a 4x4x512 Flatten means 128 (no weights are built to find out)."""
    from train.legacy.archs import describe, recognise

    leaves = describe("vgg16-siamese", input_shape=(128, 128, 3))[1]
    assert leaves[13][1][0] == (8192, 512)
    assert recognise(leaves, None, {}, "x.h5") == ("vgg16-siamese", (128, 128, 3))


def pyimagesearch_weights_file(path, model: keras.Model, break_last: bool = False) -> list[np.ndarray]:
    layers = leaf_layers(model)
    rng = np.random.default_rng(3)
    weights = {la.name: [rng.normal(0, 0.1, w.shape).astype(np.float32) for w in la.weights] for la in layers}
    if break_last:
        last = layers[-1].name
        weights[last] = [np.zeros((2, 1), np.float32), weights[last][1]]
    write_keras215_weights(path, ["input_1", *weights], weights)
    return [a for la in layers for a in weights[la.name]]


def test_nothing_is_half_loaded(tmp_path):
    s = create_model("pyimagesearch")
    before = [w.copy() for w in s.model.get_weights()]
    path = tmp_path / "bad_last.h5"
    pyimagesearch_weights_file(path, s.model, break_last=True)
    with pytest.raises(ModelLoadError, match=r"'score'.*\(1, 1\).*\(2, 1\)"):
        load_weights_by_order(s.model, str(path))
    for a, b in zip(before, s.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    good = tmp_path / "good.h5"
    arrays = pyimagesearch_weights_file(good, s.model)
    load_weights_by_order(s.model, str(good))
    for a, b in zip(arrays, [v.numpy() for la in leaf_layers(s.model) for v in la.weights]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- PyImageSearch, Keras 2 whole-model HDF5


def dense(name: str, units: int, activation: str = "linear") -> dict:
    return {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "units": units,
        "activation": activation,
        "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }


def conv(name: str, filters: int) -> dict:
    return {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "filters": filters,
        "kernel_size": [2, 2],
        "strides": [1, 1],
        "padding": "same",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "groups": 1,
        "activation": "relu",
        "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }


def layer(class_name: str, config: dict, inbound: list) -> dict:
    return {"class_name": class_name, "config": config, "name": config["name"], "inbound_nodes": inbound}


def after(name: str, node: int = 0) -> list:
    return [[[name, node, 0, {}]]]


def pyimagesearch_keras2_config(function: list, extra_lambda: list | None = None) -> dict:
    """PyImageSearch's siamese model as tf.keras 2.4 writes it: a nested Functional embedding, a Lambda."""

    def inp(name):
        return layer(
            "InputLayer",
            {
                "batch_input_shape": [None, 28, 28, 1],
                "dtype": "float32",
                "sparse": False,
                "ragged": False,
                "name": name,
            },
            [],
        )

    def pool(name):
        return {
            "name": name,
            "trainable": True,
            "dtype": "float32",
            "pool_size": [2, 2],
            "padding": "valid",
            "strides": [2, 2],
            "data_format": "channels_last",
        }

    def drop(name):
        return {"name": name, "trainable": True, "dtype": "float32", "rate": 0.3, "noise_shape": None, "seed": None}

    emb_layers = [
        inp("input_1"),
        layer("Conv2D", conv("conv2d", 64), after("input_1")),
        layer("MaxPooling2D", pool("max_pooling2d"), after("conv2d")),
        layer("Dropout", drop("dropout"), after("max_pooling2d")),
        layer("Conv2D", conv("conv2d_1", 64), after("dropout")),
        layer("MaxPooling2D", pool("max_pooling2d_1"), after("conv2d_1")),
        layer("Dropout", drop("dropout_1"), after("max_pooling2d_1")),
        layer(
            "GlobalAveragePooling2D",
            {
                "name": "global_average_pooling2d",
                "trainable": True,
                "dtype": "float32",
                "data_format": "channels_last",
                "keepdims": False,
            },
            after("dropout_1"),
        ),
        layer("Dense", dense("dense", 48), after("global_average_pooling2d")),
    ]
    emb_out = "dense"
    if extra_lambda is not None:
        emb_layers.append(
            layer(
                "Lambda",
                {
                    "name": "scale",
                    "trainable": True,
                    "dtype": "float32",
                    "function": extra_lambda,
                    "function_type": "lambda",
                    "module": "__main__",
                    "output_shape": None,
                    "output_shape_type": "raw",
                    "output_shape_module": None,
                    "arguments": {},
                },
                after("dense"),
            )
        )
        emb_out = "scale"
    embedding = layer(
        "Functional",
        {
            "name": "model",
            "layers": emb_layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [[emb_out, 0, 0]],
        },
        after("input_2") + after("input_3"),
    )
    distance = layer(
        "Lambda",
        {
            "name": "lambda",
            "trainable": True,
            "dtype": "float32",
            "function": function,
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "output_shape_module": None,
            "arguments": {},
        },
        [[["model", 1, 0, {}], ["model", 2, 0, {}]]],
    )
    return {
        "class_name": "Functional",
        "config": {
            "name": "model_1",
            "layers": [
                inp("input_2"),
                inp("input_3"),
                embedding,
                distance,
                layer("Dense", dense("dense_1", 1, "sigmoid"), after("lambda")),
            ],
            "input_layers": [["input_2", 0, 0], ["input_3", 0, 0]],
            "output_layers": [["dense_1", 0, 0]],
        },
    }


def pyimagesearch_weights(seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv2d/kernel:0": rng.normal(0, 0.5, (2, 2, 1, 64)),
        "conv2d/bias:0": rng.normal(0, 0.1, (64,)),
        "conv2d_1/kernel:0": rng.normal(0, 0.1, (2, 2, 64, 64)),
        "conv2d_1/bias:0": rng.normal(0, 0.1, (64,)),
        "dense/kernel:0": rng.normal(0, 0.3, (64, 48)),
        "dense/bias:0": rng.normal(0, 0.1, (48,)),
        "dense_1/kernel:0": rng.normal(0, 1.0, (1, 1)),
        "dense_1/bias:0": np.array([0.5]),
    }


def write_keras2_model_h5(path, config: dict, weights: dict[str, np.ndarray]) -> None:
    """The layout of tf.keras 2.x ``model.save('m.h5')``."""
    groups = {
        "input_2": [],
        "input_3": [],
        "lambda": [],
        "dense_1": ["dense_1/kernel:0", "dense_1/bias:0"],
        "model": [k for k in weights if not k.startswith("dense_1/")],
    }
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.4.0"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"input_2", b"input_3", b"model", b"lambda", b"dense_1"])
        mw.attrs["backend"] = b"tensorflow"
        mw.attrs["keras_version"] = b"2.4.0"
        for name, wnames in groups.items():
            g = mw.create_group(name)
            g.attrs["weight_names"] = [w.encode() for w in wnames]
            for w in wnames:
                g.create_dataset(w, data=weights[w].astype(np.float32))


def numpy_pyimagesearch(xa: np.ndarray, xb: np.ndarray, w: dict[str, np.ndarray], scale: float = 1.0) -> np.ndarray:
    """The PyImageSearch siamese model in numpy (inference: dropout is the identity)."""

    def conv_same(x, k, b):
        n, h, wd, _ = x.shape
        xp = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # TF 'same' for an even kernel pads after
        out = sum(xp[:, i : i + h, j : j + wd, :] @ k[i, j] for i in range(2) for j in range(2)) + b
        return np.maximum(out, 0)

    def pool(x):
        n, h, wd, c = x.shape
        return x[:, : h // 2 * 2, : wd // 2 * 2].reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))

    def embed(x):
        x = pool(conv_same(x.astype(np.float64), w["conv2d/kernel:0"], w["conv2d/bias:0"]))
        x = pool(conv_same(x, w["conv2d_1/kernel:0"], w["conv2d_1/bias:0"]))
        return (x.mean(axis=(1, 2)) @ w["dense/kernel:0"] + w["dense/bias:0"]) * scale

    d = np.sqrt(np.maximum(((embed(xa) - embed(xb)) ** 2).sum(axis=1, keepdims=True), 1e-7))
    z = d @ w["dense_1/kernel:0"] + w["dense_1/bias:0"]
    return (1 / (1 + np.exp(-z))).reshape(-1)


def images(n: int = 4, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((2, n, 28, 28, 1), dtype=np.float32)


EUCLID_CODE = compiled(PYIMAGESEARCH_SOURCE, "euclidean_distance")


def test_keras2_whole_model_loads_safely(tmp_path, no_unmarshal):
    path = tmp_path / "siamese_model.h5"
    weights = pyimagesearch_weights()
    write_keras2_model_h5(path, pyimagesearch_keras2_config([keras_func_dump(EUCLID_CODE), None, None]), weights)
    with pytest.warns(LoadWarning, match="pyimagesearch"):
        s = load_model(path)
    distance = s.head.get_layer("lambda")
    assert isinstance(distance, EuclideanDistance)
    assert not any(isinstance(la, keras.layers.Lambda) for la in s.embedding.layers + s.head.layers)
    assert (s.config.arch, s.config.loss, s.config.label_same, s.config.score.kind) == (
        "pyimagesearch",
        "bce",
        1,
        "probability",
    )
    xa, xb = images()
    np.testing.assert_allclose(s.score(xa, xb), numpy_pyimagesearch(xa, xb, weights), rtol=1e-4, atol=1e-5)


def test_model_weights_group_without_config_loads_by_order(tmp_path):
    """Only the ``model_weights`` group of a Keras 2 whole-model file: the nested group is split per layer."""
    path = tmp_path / "weights_part.h5"
    weights = pyimagesearch_weights(seed=4)
    write_keras2_model_h5(path, {}, weights)
    with h5py.File(path, "a") as f:
        del f.attrs["model_config"]
    with pytest.warns(LoadWarning, match="pyimagesearch"):
        s = load_model(path)
    xa, xb = images(seed=5)
    np.testing.assert_allclose(s.score(xa, xb), numpy_pyimagesearch(xa, xb, weights), rtol=1e-4, atol=1e-5)


def test_foreign_python_bytecode_is_recognised_by_names(tmp_path, no_unmarshal):
    raw = marshal.dumps(EUCLID_CODE)
    foreign = b"\xff" + raw[1:]  # a type code this Python's marshal does not know
    with pytest.raises(AssertionError):  # the guard is active (test_foreign_bytes_really_do_not_unmarshal)
        marshal.loads(foreign)
    code = base64.b64encode(foreign).decode("ascii")
    path = tmp_path / "py36.h5"
    weights = pyimagesearch_weights(seed=6)
    write_keras2_model_h5(path, pyimagesearch_keras2_config([code, None, None]), weights)
    with pytest.warns(LoadWarning):
        s = load_model(path)
    assert isinstance(s.head.get_layer("lambda"), EuclideanDistance)
    xa, xb = images(seed=8)
    np.testing.assert_allclose(s.score(xa, xb), numpy_pyimagesearch(xa, xb, weights), rtol=1e-4, atol=1e-5)


def test_foreign_bytes_really_do_not_unmarshal():
    with pytest.raises(ValueError):
        marshal.loads(b"\xff" + marshal.dumps(EUCLID_CODE)[1:])


def test_unknown_lambda_is_refused_then_allowed(tmp_path):
    times_two = compiled("f = lambda x: x * 2\n", "<lambda>")
    weights = pyimagesearch_weights(seed=9)
    config = pyimagesearch_keras2_config(
        [keras_func_dump(EUCLID_CODE), None, None], [keras_func_dump(times_two), None, None]
    )
    path = tmp_path / "with_scale.h5"
    write_keras2_model_h5(path, config, weights)
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    msg = str(err.value)
    assert "'model/scale'" in msg and "--allow-unsafe-lambda" in msg and "allow_unsafe=True" in msg, msg
    with pytest.warns(LoadWarning):
        s = load_model(path, allow_unsafe=True)  # bytecode of this very Python: it deserializes
    assert isinstance(s.head.get_layer("lambda"), EuclideanDistance)
    xa, xb = images(seed=10)
    np.testing.assert_allclose(s.score(xa, xb), numpy_pyimagesearch(xa, xb, weights, scale=2.0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("source", "name", "kind"),
    [
        ("f = lambda tensors: K.abs(tensors[0] - tensors[1])\n", "<lambda>", "abs"),
        (PYIMAGESEARCH_SOURCE, "euclidean_distance", "euclidean"),
        ("def d(v):\n    return tf.sqrt(tf.reduce_sum((v[0] - v[1]) ** 2, 1, keepdims=True))\n", "d", "euclidean"),
        ("f = lambda v: K.sum(K.abs(v[0] - v[1]), axis=1)\n", "<lambda>", None),  # Manhattan: a scalar
        ("f = lambda v: K.mean(K.square(v[0] - v[1]))\n", "<lambda>", None),
        ("f = lambda x: x * 2\n", "<lambda>", None),
    ],
)
def test_distance_recognition_by_names(source, name, kind):
    raw = marshal.dumps(compiled(source, name))
    assert classify_names(names_in_code(raw)) == kind


def test_keras3_lambda_formats_are_recognised():
    tensor = {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, 8], "dtype": "float32", "keras_history": ["functional", 0, 0]},
    }
    node = [{"args": [[tensor, tensor]], "kwargs": {}}]
    by_name = {
        "class_name": "Lambda",
        "name": "lambda",
        "inbound_nodes": node,
        "config": {
            "name": "lambda",
            "function": {
                "module": "builtins",
                "class_name": "function",
                "config": "euclidean_distance",
                "registered_name": "function",
            },
            "output_shape": [1],
        },
    }
    assert classify_lambda(by_name)[0] == "euclidean"
    code = base64.b64encode(marshal.dumps(compiled("f = lambda t: ops.abs(t[0] - t[1])\n", "<lambda>"))).decode()
    lam = {
        "class_name": "Lambda",
        "name": "l1",
        "inbound_nodes": node,
        "config": {
            "name": "l1",
            "function": {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}},
        },
    }
    assert classify_lambda(lam)[0] == "abs"
    one_input = dict(lam, inbound_nodes=[{"args": [tensor], "kwargs": {}}])
    assert classify_lambda(one_input)[0] is None
