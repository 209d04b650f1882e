"""runtime.manifest and export.bundle: hashes verified at load, bundles written atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.bundle import BundleExistsError, staged_bundle
from runtime.heads import euclidean_distance
from runtime.manifest import SCHEMA_VERSION, BundleError, load_manifest, write_manifest
from runtime.preprocess import Preprocessing
from runtime.scoring import ScoreSpec


def _fields(**over):
    d = {
        "schema_version": SCHEMA_VERSION,
        "name": "t",
        "preprocessing": Preprocessing(28, 28, color="gray").to_dict(),
        "score": ScoreSpec("distance", "low", 0.5).to_dict(),
        "embedding": {"file": "embedding.onnx", "dim": 10},
        "head": {"kind": "euclidean", "file": None, "epsilon": 1e-7},
    }
    d.update(over)
    return d


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (root / "embedding.onnx").write_bytes(b"graph bytes")
    (root / "sub").mkdir()
    (root / "sub" / "x.bin").write_bytes(b"\x00" * 10)
    write_manifest(root, _fields())
    return root


def test_round_trip_and_hashes_cover_every_file(bundle):
    m = load_manifest(bundle)
    assert set(m.files) == {"embedding.onnx", "sub/x.bin"}
    assert m.head_kind == "euclidean" and m.embedding_dim == 10 and m.head_file is None
    assert m.score.same_when == "low" and m.preprocessing.color == "gray"


def test_the_written_layout_is_what_the_reader_reads():
    from runtime.manifest import Manifest, manifest_fields

    kw = dict(
        name="w", source={"file": "m.keras", "sha256": "0" * 64, "arch": "koch"}, tools={"onnx": "1"},
        preprocessing=Preprocessing(28, 28, color="gray"), score=ScoreSpec("distance", "low", 0.5), embedding_dim=8,
        l2_normalized=True, has_fp16=True, head_kind="euclidean", head_epsilon=1e-7, loss="contrastive", margin=1.0,
        label_same=0, onnx={"opset": 17, "batch": "1:8:32", "simplified": False}, reference_source="calib-images: d",
        reference_images=4, reference_pairs=6,
    )
    m = Manifest.from_dict({**manifest_fields(**kw), "files": {}})
    assert (m.name, m.embedding_dim, m.head_kind, m.head_epsilon, m.arch) == ("w", 8, "euclidean", 1e-7, "koch")
    assert m.fp16_file == "embedding.fp16.onnx" and m.head_file is None and m.label_same == 0
    assert m.score == ScoreSpec("distance", "low", 0.5) and m.preprocessing == Preprocessing(28, 28, color="gray")
    with pytest.raises(ValueError, match="head kind"):
        manifest_fields(**{**kw, "head_kind": "cosine"})


def test_typed_fields_have_one_default_for_every_reader(bundle):
    m = load_manifest(bundle)
    assert m.fp16_file is None and m.parity_file == "parity.json" and m.arch is None and m.engines == []


def test_an_engine_is_added_through_the_manifest_module(bundle):
    from runtime.manifest import add_engine

    (bundle / "e.plan").write_bytes(b"plan")
    (bundle / "e.plan.json").write_text("{}")
    m = add_engine(bundle, {"file": "e.plan", "precision": "fp16"}, ["e.plan", "e.plan.json"])
    assert m.engines == [{"file": "e.plan", "precision": "fp16"}] and {"e.plan", "e.plan.json"} <= set(m.files)
    m = add_engine(bundle, {"file": "e.plan", "precision": "fp32"}, ["e.plan"])  # the same file: replaced
    assert load_manifest(bundle).engines == [{"file": "e.plan", "precision": "fp32"}]
    with pytest.raises(BundleError, match="inside the bundle"):
        add_engine(bundle, {"file": "x"}, ["../outside.plan"])


def test_a_changed_file_is_refused_by_name(bundle):
    (bundle / "embedding.onnx").write_bytes(b"graph bytes, edited")
    with pytest.raises(BundleError, match=r"embedding\.onnx.*does not match"):
        load_manifest(bundle)
    assert load_manifest(bundle, verify=False).name == "t"


def test_a_missing_file_is_refused_by_name(bundle):
    (bundle / "sub" / "x.bin").unlink()
    with pytest.raises(BundleError, match=r"x\.bin: listed in the manifest but missing"):
        load_manifest(bundle)


def test_entries_outside_the_bundle_are_refused(bundle):
    d = json.loads((bundle / "manifest.json").read_text())
    d["files"]["../evil"] = {"sha256": "0"}
    (bundle / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="outside the bundle"):
        load_manifest(bundle)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("score"), "missing field 'score'"),
        (lambda d: d.update(schema_version=99), "schema_version 99"),
        (lambda d: d.update(head={"kind": "cosine"}), "head kind 'cosine'"),
        (lambda d: d.update(head={"kind": "learned", "file": None}), "learned head needs head.file"),
        (lambda d: d["preprocessing"].update(color="cmyk"), "color 'cmyk'"),
    ],
)
def test_malformed_manifests_say_what_is_wrong(bundle, mutate, message):
    d = json.loads((bundle / "manifest.json").read_text())
    mutate(d)
    (bundle / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a bundle folder"):
        load_manifest(tmp_path / "nope")
    with pytest.raises(BundleError, match="manifest.json: missing"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_manifest(tmp_path)


def test_failed_export_leaves_nothing_behind(tmp_path):
    target = tmp_path / "bundles" / "demo"
    with pytest.raises(RuntimeError, match="boom"):
        with staged_bundle(target) as tmp:
            (tmp / "embedding.onnx").write_bytes(b"half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list((tmp_path / "bundles").iterdir()) == []


def test_existing_bundle_needs_force_and_is_replaced_whole(tmp_path):
    target = tmp_path / "demo"
    with staged_bundle(target) as tmp:
        (tmp / "old.txt").write_text("old")
    with pytest.raises(BundleExistsError, match="--force"):
        with staged_bundle(target):
            pass
    with staged_bundle(target, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_euclidean_distance_matches_the_keras_layer():
    from train.models.layers import EuclideanDistance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(16, 10)).astype(np.float32)
    b = a.copy()
    b[8:] += rng.normal(size=(8, 10)).astype(np.float32)
    want = np.asarray(EuclideanDistance()([a, b])).reshape(-1)
    got = euclidean_distance(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got[0] == pytest.approx(np.sqrt(1e-7))  # identical embeddings: the epsilon floor, as in Keras
    with pytest.raises(ValueError, match="shapes differ"):
        euclidean_distance(a, b[:, :5])
