"""train.models: every architecture saves and reloads in safe mode, the project structure, the VGG16 layer
order bubbliiiing's weights need, Siamese embed/score, SiameseConfig, the registry and the distance layers."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from train.models import (
    AbsDifference,
    EuclideanDistance,
    L2Normalize,
    Siamese,
    SiameseConfig,
    create_model,
    get_entry,
    list_models,
    register_model,
)

# small inputs where the factory allows them; vgg16 keeps 105x105x3 (the 4608 Flatten is checked below)
BUILD_KWARGS: dict[str, dict] = {
    "vgg16-siamese": {},
    "koch": {"input_shape": (65, 65, 1)},  # 65 is the smallest input the 10/7/4/4 conv stack accepts
    "resnet-pairs": {"input_shape": (32, 32, 3)},
    "pyimagesearch": {},
    "keras-contrastive": {},
}


class _Built:
    """Each architecture built once per module, on first use."""

    def __init__(self) -> None:
        self._cache: dict[str, Siamese] = {}

    def __call__(self, name: str) -> Siamese:
        if name not in self._cache:
            keras.utils.set_random_seed(0)
            self._cache[name] = create_model(name, **BUILD_KWARGS.get(name, {}))
        return self._cache[name]


@pytest.fixture(scope="module")
def built() -> _Built:
    return _Built()


def _pair_batch(s: Siamese, n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n, *s.config.preprocessing.input_shape)
    return rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)


def _walk(layer: keras.layers.Layer):
    """Every layer inside ``layer``, recursing into nested models."""
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _walk(sub)


def _weighted(model: keras.Model) -> list[keras.layers.Layer]:
    """Leaf layers with weights, in model order (the order a weights-only HDF5 file is read in)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += _weighted(layer)
        elif layer.weights:
            out.append(layer)
    return out


def test_registry_lists_every_architecture() -> None:
    assert set(list_models()) >= set(BUILD_KWARGS)
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", list_models())
def test_save_and_reload_in_safe_mode(name: str, built: _Built, tmp_path: Path) -> None:
    s = built(name)
    xa, xb = _pair_batch(s)
    ref = keras.ops.convert_to_numpy(s.model([xa, xb], training=False))
    assert ref.shape == (3, 1)
    assert np.all(np.isfinite(ref))
    path = tmp_path / f"{name}.keras"
    s.model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [w.shape for w in loaded.weights] == [w.shape for w in s.model.weights]
    for w0, w1 in zip(s.model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w0), keras.ops.convert_to_numpy(w1))
    out = keras.ops.convert_to_numpy(loaded([xa, xb], training=False))
    np.testing.assert_array_equal(out, ref)
    # the reloaded model still has the project's structure
    again = Siamese(loaded, s.config)
    np.testing.assert_array_equal(again.score(xa, xb), ref.reshape(-1))


@pytest.mark.parametrize("name", list_models())
def test_structure_nested_models_and_no_lambda(name: str, built: _Built) -> None:
    s = built(name)
    model = s.model
    assert isinstance(model.get_layer("embedding"), keras.Model)
    assert isinstance(model.get_layer("head"), keras.Model)
    assert [i.name for i in model.inputs] == ["image_a", "image_b"]
    assert s.embedding.output_shape == (None, s.config.embedding_dim)
    assert tuple(s.embedding.input_shape[1:]) == s.config.preprocessing.input_shape
    everything = list(_walk(model))
    assert len(everything) > 5
    lambdas = [layer.name for layer in everything if isinstance(layer, keras.layers.Lambda)]
    assert lambdas == []
    assert not any(type(layer).__name__ == "Lambda" for layer in everything)
    # the score semantics follow the loss
    cfg = s.config
    if cfg.loss == "bce":
        assert (cfg.score.kind, cfg.score.same_when, cfg.label_same) == ("probability", "high", 1)
    else:
        assert (cfg.score.same_when, cfg.label_same) == ("low", 0)


def test_the_lambda_walk_finds_a_lambda() -> None:
    inp = keras.Input((4,))
    inner = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp), name="inner")
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, inner(outer_in))
    assert any(isinstance(layer, keras.layers.Lambda) for layer in _walk(outer))


def test_resnet_backbone_is_nested_and_frozen(built: _Built) -> None:
    s = built("resnet-pairs")
    inner = [layer for layer in s.embedding.layers if isinstance(layer, keras.Model)]
    assert len(inner) == 1 and not inner[0].trainable
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in _walk(inner[0]))
    trainable = {w.path.split("/")[0] for w in s.model.trainable_weights}
    assert trainable == {"fc"}  # only the Dense 512 learns; the distance head has no weights


VGG_NAMES = [
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "dense_1",
    "dense_2",
]
VGG_FILTERS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_vgg16_keeps_bubbliiiings_weighted_layer_order(built: _Built) -> None:
    s = built("vgg16-siamese")
    assert s.config.preprocessing.input_shape == (105, 105, 3)
    weighted = _weighted(s.model)
    assert [layer.name for layer in weighted] == VGG_NAMES
    assert len(weighted) == 15
    cin = 3
    for layer, filters in zip(weighted[:13], VGG_FILTERS):
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
        assert kernel.shape == (3, 3, cin, filters) and bias.shape == (filters,)
        cin = filters
    assert [tuple(w.shape) for w in weighted[13].weights] == [(4608, 512), (512,)]
    assert [tuple(w.shape) for w in weighted[14].weights] == [(512, 1), (1,)]
    assert weighted[13].activation.__name__ == "relu" and weighted[14].activation.__name__ == "sigmoid"
    assert s.embedding.get_layer("flatten").output.shape[-1] == 4608
    assert s.config.embedding_dim == 4608
    pools = [layer.name for layer in s.embedding.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == [f"block{b}_pool" for b in range(1, 6)]
    # the head is |a-b| -> dense_1 -> dense_2
    assert [type(layer).__name__ for layer in s.head.layers[2:]] == ["AbsDifference", "Dense", "Dense"]


def test_koch_default_is_the_papers_105x105_stack() -> None:
    s = create_model("koch")
    assert s.config.preprocessing.input_shape == (105, 105, 1)
    emb = s.embedding
    # 105 -conv10-> 96 -pool-> 48 -conv7-> 42 -pool-> 21 -conv4-> 18 -pool-> 9 -conv4-> 6: 6 * 6 * 256 = 9216
    assert emb.get_layer("flatten").output.shape[-1] == 9216
    assert emb.output_shape == (None, 4096) and s.config.embedding_dim == 4096
    with pytest.raises(ValueError):
        create_model("koch", input_shape=(64, 64, 1))  # below 65 the last conv has nothing left


def test_vgg16_refuses_gray_input() -> None:
    with pytest.raises(ValueError, match="RGB"):
        create_model("vgg16-siamese", input_shape=(105, 105, 1))


@pytest.mark.parametrize("name", list_models())
def test_siamese_embed_and_score(name: str, built: _Built) -> None:
    s = built(name)
    xa, xb = _pair_batch(s, n=5, seed=1)
    ea, eb = s.embed(xa), s.embed(xb)
    dim = s.config.embedding_dim
    assert ea.shape == (5, dim) and ea.dtype == np.float32
    # chunking does not change the result
    np.testing.assert_allclose(s.embed(xa, batch_size=2), ea, rtol=1e-5, atol=1e-6)
    assert s.embed(xa[:0]).shape == (0, dim)
    scores = s.score_embeddings(ea, eb)
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert s.score_embeddings(ea[:0], eb[:0]).shape == (0,)
    head = keras.ops.convert_to_numpy(s.head([ea, eb], training=False)).reshape(-1)
    np.testing.assert_allclose(scores, head, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s.score(xa, xb), head, rtol=1e-5, atol=1e-6)
    whole = keras.ops.convert_to_numpy(s.model([xa, xb], training=False)).reshape(-1)
    np.testing.assert_allclose(s.score(xa, xb), whole, rtol=1e-5, atol=1e-6)
    if s.config.score.kind == "probability":
        assert np.all((scores >= 0) & (scores <= 1))
    if s.config.head == "euclidean":  # the score is the distance between the embeddings
        np.testing.assert_allclose(scores, np.linalg.norm(ea - eb, axis=1), rtol=1e-4, atol=1e-5)


def test_siamese_refuses_a_model_without_the_structure() -> None:
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    cfg = create_model("pyimagesearch").config
    with pytest.raises(ValueError, match="embedding"):
        Siamese(model, cfg)


@pytest.mark.parametrize("name", list_models())
def test_config_dict_round_trip(name: str, built: _Built) -> None:
    cfg = built(name).config
    d = json.loads(json.dumps(cfg.to_dict()))
    assert "label_convention" in d
    back = SiameseConfig.from_dict(d)
    assert back.to_dict() == json.loads(json.dumps(cfg.to_dict()))
    assert back.preprocessing == cfg.preprocessing and back.score == cfg.score
    assert (back.arch, back.loss, back.label_same, back.embedding_dim) == (
        cfg.arch,
        cfg.loss,
        cfg.label_same,
        cfg.embedding_dim,
    )
    # the recorded build arguments rebuild the same architecture
    assert create_model(cfg.arch, **back.build_kwargs).config.to_dict() == cfg.to_dict()


def test_config_targets_both_conventions() -> None:
    same = np.array([True, False, True])
    bce = create_model("pyimagesearch").config
    contrastive = create_model("keras-contrastive").config
    assert bce.label_same == 1 and contrastive.label_same == 0
    t1, t0 = bce.targets(same), contrastive.targets(same)
    assert t1.dtype == np.float32 and t0.dtype == np.float32
    np.testing.assert_array_equal(t1, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(t0, [0.0, 1.0, 0.0])


def test_config_validation() -> None:
    d = create_model("pyimagesearch").config.to_dict()
    for key, bad in (("head", "cosine"), ("loss", "triplet"), ("label_same", 2)):
        with pytest.raises(ValueError, match=str(bad)):
            SiameseConfig.from_dict({**d, key: bad})


def test_pyimagesearch_contrastive_outputs_the_distance() -> None:
    s = create_model("pyimagesearch", loss="contrastive", margin=2.0)
    assert s.config.head == "euclidean" and s.config.score.kind == "distance"
    assert s.config.score.threshold == 1.0 and s.config.margin == 2.0
    xa, xb = _pair_batch(s, n=4)
    np.testing.assert_allclose(s.score(xa, xb), np.linalg.norm(s.embed(xa) - s.embed(xb), axis=1), rtol=1e-4, atol=1e-5)


def test_registry_refuses_unknown_names_listing_known_ones() -> None:
    with pytest.raises(ValueError) as e:
        create_model("vgg19-siamese")
    msg = str(e.value)
    assert "vgg19-siamese" in msg
    for known in list_models():
        assert known in msg
    with pytest.raises(ValueError, match="vgg19-siamese"):
        get_entry("vgg19-siamese")


def test_registry_refuses_duplicate_registration() -> None:
    before = {name: get_entry(name) for name in list_models()}
    with pytest.raises(ValueError, match="'koch' is already registered"):

        @register_model("koch", "another koch", "test")
        def _another_koch(**_):  # pragma: no cover - never registered
            raise AssertionError

    assert {name: get_entry(name) for name in list_models()} == before


# --- distance layers ---------------------------------------------------------------------------------------


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def test_abs_difference_against_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 7)).astype(np.float32), rng.normal(size=(4, 7)).astype(np.float32)
    layer = AbsDifference()
    np.testing.assert_allclose(_np(layer([a, b])), np.abs(a - b), rtol=1e-6)
    assert layer.compute_output_shape([(None, 7), (None, 7)]) == (None, 7)


def test_euclidean_distance_against_numpy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 9)).astype(np.float32), rng.normal(size=(5, 9)).astype(np.float32)
    layer = EuclideanDistance()
    out = _np(layer([a, b]))
    assert out.shape == (5, 1)
    np.testing.assert_allclose(out[:, 0], np.linalg.norm(a - b, axis=1), rtol=1e-5)
    # identical inputs: the epsilon floor, sqrt(1e-7), not 0
    np.testing.assert_allclose(_np(layer([a, a]))[:, 0], np.full(5, np.sqrt(1e-7)), rtol=1e-4)
    assert layer.compute_output_shape([(None, 9), (None, 9)]) == (None, 1)
    clone = EuclideanDistance.from_config(EuclideanDistance(epsilon=1e-3).get_config())
    np.testing.assert_allclose(_np(clone([a, a]))[:, 0], np.full(5, np.sqrt(1e-3)), rtol=1e-5)


def test_l2_normalize_against_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 11)).astype(np.float32) * 5
    x[3] = 0.0
    layer = L2Normalize()
    out = _np(layer(x))
    expected = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
    norms = np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(np.delete(norms, 3), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # the zero vector stays zero, no NaN
    assert L2Normalize.from_config(L2Normalize(epsilon=1e-4).get_config()).epsilon == 1e-4
