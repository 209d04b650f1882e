"""train.load.load_model: what a file is decides how it loads; every path ends in a project ``Siamese``."""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np
import pytest
from keras import ops

from train.legacy.errors import LoadWarning, ModelLoadError
from train.load import load_model
from train.models import EuclideanDistance, Siamese, create_model
from train.models.siamese import assemble


def pairs(n: int = 4, shape=(28, 28, 1), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((2, n, *shape), dtype=np.float32)


def randomize(s: Siamese, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    s.model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in s.model.get_weights()])


# ---------------------------------------------------------------- .keras written by the project


def test_keras_with_model_card(tmp_path):
    s = create_model("pyimagesearch")
    randomize(s)
    s.config.score = s.config.score.with_threshold(0.42, "calibrated on test pairs (EER)")
    path = tmp_path / "model.keras"
    s.model.save(path)
    (tmp_path / "model_card.json").write_text(json.dumps({"model": "model.keras", "config": s.config.to_dict()}))
    loaded = load_model(path)
    assert loaded.config.to_dict() == s.config.to_dict()
    xa, xb = pairs()
    np.testing.assert_allclose(loaded.score(xa, xb), s.score(xa, xb), rtol=1e-6, atol=1e-6)


def test_keras_without_card_takes_the_registry_config(tmp_path):
    s = create_model("pyimagesearch", loss="contrastive")
    randomize(s, seed=2)
    path = tmp_path / "contrastive.keras"
    s.model.save(path)
    (tmp_path / "model_card.json").write_text(json.dumps({"model": "other.keras", "config": {}}))
    with pytest.warns(LoadWarning, match="describes 'other.keras'"):
        loaded = load_model(path)
    assert loaded.config.to_dict() == s.config.to_dict()  # loss 'contrastive' found from the head's shapes
    xa, xb = pairs(seed=3)
    np.testing.assert_allclose(loaded.score(xa, xb), s.score(xa, xb), rtol=1e-6, atol=1e-6)


def test_keras_unknown_name_without_card_asks_for_arch(tmp_path):
    s = create_model("keras-contrastive")
    path = tmp_path / "mine.keras"
    assemble(s.embedding, s.head, name="my_net").save(path)
    with pytest.raises(ModelLoadError, match=r"'my_net'.*--arch"):
        load_model(path)
    loaded = load_model(path, arch="keras-contrastive")
    assert loaded.config.to_dict() == s.config.to_dict()


def test_keras3_keras_io_model_with_lambda_is_converted(tmp_path):
    """keras.io's contrastive example in Keras 3: a def stored by name in a Lambda, BN -> Dense sigmoid head."""

    def euclidean_distance(vects):
        x, y = vects
        return ops.sqrt(ops.maximum(ops.sum(ops.square(x - y), axis=1, keepdims=True), keras.backend.epsilon()))

    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 5, activation="tanh")(inp)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10, activation="tanh")(x)
    tower = keras.Model(inp, x)
    a, b = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    d = keras.layers.Lambda(euclidean_distance, output_shape=(1,))([tower(a), tower(b)])
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.BatchNormalization()(d))
    model = keras.Model([a, b], out)
    model.layers[-2].set_weights([np.array([1.5]), np.array([0.2]), np.array([0.7]), np.array([2.0])])
    xa, xb = pairs(seed=4)
    want = keras.ops.convert_to_numpy(model([xa, xb])).reshape(-1)
    for name in ("keras_io.keras", "keras_io.h5"):
        path = tmp_path / name
        model.save(path)
        with pytest.warns(LoadWarning, match="preprocessed"):
            s = load_model(path)
        assert isinstance(s.head.layers[2], EuclideanDistance)
        assert (s.config.label_same, s.config.score.kind, s.config.score.same_when) == (0, "distance", "low")
        assert s.config.preprocessing.color == "gray" and s.config.preprocessing.resize == "stretch"
        np.testing.assert_allclose(s.score(xa, xb), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Keras 3 .weights.h5


def test_keras3_weights_file_is_recognised(tmp_path):
    s = create_model("pyimagesearch")
    randomize(s, seed=5)
    path = tmp_path / "pyimagesearch.weights.h5"
    s.model.save_weights(path)
    with pytest.warns(LoadWarning, match="pyimagesearch"):
        loaded = load_model(path)
    xa, xb = pairs(seed=6)
    np.testing.assert_allclose(loaded.score(xa, xb), s.score(xa, xb), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- what is not a model


def test_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match=r"expected a Keras model.*b'hello'"):
        load_model(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.png").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"SavedModel folder.*a\.png"):
        load_model(tmp_path / "folder")


def test_savedmodel_without_keras_metadata(tmp_path):
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self):
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return x * self.w

    tf.saved_model.save(Scale(), str(tmp_path / "module"))
    with pytest.raises(ModelLoadError, match="without Keras metadata"):
        load_model(tmp_path / "module")


# ---------------------------------------------------------------- files written by a real Keras 2


@pytest.fixture
def keras2(monkeypatch):
    """The Keras 2 that TensorFlow still ships internally (tensorflow.python.keras), to write genuine files."""
    k2 = pytest.importorskip("tensorflow.python.keras")
    try:
        from tensorflow.python.keras import backend, layers
    except ImportError as e:  # pragma: no cover - depends on the TensorFlow build
        pytest.skip(f"tensorflow.python.keras is incomplete: {e}")
    monkeypatch.setattr(k2, "__version__", "2.6.0", raising=False)
    monkeypatch.setitem(globals(), "K", backend)  # the seed's ``K`` (a global: Keras 2 cannot save closures)
    return k2, layers, backend


K: Any = None  # keras.backend of Keras 2, set by the keras2 fixture


def euclidean_distance(vectors):
    """PyImageSearch's distance function, verbatim."""
    (featsA, featsB) = vectors
    sumSquared = K.sum(K.square(featsA - featsB), axis=1, keepdims=True)
    return K.sqrt(K.maximum(sumSquared, K.epsilon()))


def keras2_pyimagesearch(k2, layers):
    """PyImageSearch's siamese network (tf.keras 2): nested embedding, euclidean Lambda, Dense sigmoid.

    (This internal Keras 2 has no BatchNormalization, so keras.io's BN head is covered by the Keras 3 test.)
    """

    inp = layers.Input((28, 28, 1))
    x = layers.Conv2D(64, (2, 2), padding="same", activation="relu")(inp)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Conv2D(64, (2, 2), padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Dropout(0.3)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(48)(x)
    tower = k2.Model(inp, x)
    a, b = layers.Input((28, 28, 1)), layers.Input((28, 28, 1))
    distance = layers.Lambda(euclidean_distance)([tower(a), tower(b)])
    model = k2.Model([a, b], layers.Dense(1, activation="sigmoid")(distance))
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    return model


def test_keras2_savedmodel_and_h5_from_a_real_keras2(tmp_path, keras2):
    k2, layers, _ = keras2
    xa, xb = pairs(seed=12)
    try:  # TensorFlow's leftover Keras 2 is not maintained: skip (with the reason) if it cannot write files
        model = keras2_pyimagesearch(k2, layers)
        want = np.asarray(model([xa, xb])).reshape(-1)
        model.save(str(tmp_path / "saved"))
        model.save(str(tmp_path / "model.h5"))
    except (AttributeError, ImportError) as e:  # pragma: no cover - depends on the TensorFlow build
        pytest.skip(f"tensorflow.python.keras cannot write Keras 2 files here: {e!r}")
    for path in (tmp_path / "saved", tmp_path / "model.h5"):
        with pytest.warns(LoadWarning, match="pyimagesearch"):
            s = load_model(path)
        assert isinstance(s.head.layers[2], EuclideanDistance), path
        assert (s.config.arch, s.config.label_same, s.config.loss) == ("pyimagesearch", 1, "bce")
        np.testing.assert_allclose(s.score(xa, xb), want, rtol=1e-5, atol=1e-5, err_msg=str(path))
