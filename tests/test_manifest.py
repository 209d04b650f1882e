"""runtime.bundle (the bundle's one owner) and export.bundle: hashes verified at load, bundles written atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.bundle import BundleExistsError, staged_bundle
from runtime.bundle import Bundle
from runtime.bundle.layout import SCHEMA_VERSION, BundleError
from runtime.bundle.manifest import Manifest, load_manifest, write_manifest
from runtime.heads import euclidean_distance
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
        "files": {},
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
    write_manifest(root, Manifest.from_dict(_fields()))
    return root


def test_round_trip_and_hashes_cover_every_file(bundle):
    m = load_manifest(bundle)
    assert set(m.files) == {"embedding.onnx", "sub/x.bin"}
    assert m.head_kind == "euclidean" and m.embedding_dim == 10 and m.head_file is None
    assert m.score.same_when == "low" and m.preprocessing.color == "gray"
    assert Manifest.from_dict(m.to_dict()) == m  # every section reads back what it wrote


def _exported(**over):
    from runtime.bundle import manifest as mf

    kw = dict(
        name="w",
        preprocessing=Preprocessing(28, 28, color="gray"),
        score=ScoreSpec("distance", "low", 0.5),
        embedding=mf.Embedding(8, l2_normalized=True, fp16_file="embedding.fp16.onnx"),
        head=mf.Head.of("euclidean", 1e-7),
        siamese=mf.Siamese(),
        source=mf.Source("m.keras", "0" * 64, "koch"),
        tools={"onnx": "1"},
        training=mf.Training("contrastive", 1.0, 0),
        onnx=mf.OnnxExport(17, "1:8:32", False),
        reference=mf.ReferenceInfo(source="calib-images: d", images=4, pairs=6),
    )
    return mf.new_manifest(**{**kw, **over})


def test_the_written_layout_is_what_the_reader_reads():
    from runtime.bundle import manifest as mf

    d = _exported().to_dict()
    assert d["training"]["label_convention"] == "label 0 = same, 1 = different"
    assert d["input"] == {
        "name": "image",
        "height": 28,
        "width": 28,
        "channels": 1,
        "layout": "NHWC",
        "dtype": "float32",
    }
    m = Manifest.from_dict(d)
    assert (m.name, m.embedding_dim, m.head_kind, m.head_epsilon, m.arch) == ("w", 8, "euclidean", 1e-7, "koch")
    assert m.fp16_file == "embedding.fp16.onnx" and m.head_file is None and m.label_same == 0
    assert m.score == ScoreSpec("distance", "low", 0.5) and m.preprocessing == Preprocessing(28, 28, color="gray")
    assert m.onnx == mf.OnnxExport(17, "1:8:32", False) and m.reference.pairs == 6 and m.created
    with pytest.raises(BundleError, match="head kind"):
        mf.Head.of("cosine")
    assert mf.Head.of("learned").file == "head.onnx"


def test_fields_this_version_does_not_model_survive_a_rewrite(bundle):
    d = json.loads((bundle / "manifest.json").read_text())
    d["deployment"] = {"site": "door 3"}
    (bundle / "manifest.json").write_text(json.dumps(d))
    (bundle / "e.plan").write_bytes(b"plan")
    b = Bundle.open(bundle).add_engine({"file": "e.plan", "precision": "fp16"}, ["e.plan"])
    assert json.loads((bundle / "manifest.json").read_text())["deployment"] == {"site": "door 3"}
    assert b.manifest.extra == {"deployment": {"site": "door 3"}}


def test_typed_fields_have_one_default_for_every_reader(bundle):
    m = load_manifest(bundle)
    assert m.fp16_file is None and m.parity_file == "parity.json" and m.arch is None and m.engines == []
    assert m.siamese is None and m.reference is None and m.opencv is None and m.head_epsilon == 1e-7


def test_an_engine_is_added_through_the_bundle(bundle):
    (bundle / "e.plan").write_bytes(b"plan")
    (bundle / "e.plan.json").write_text("{}")
    (bundle / "other.plan").write_bytes(b"a plan for another GPU, not registered")
    m = Bundle.open(bundle).add_engine({"file": "e.plan", "precision": "fp16"}, ["e.plan", "e.plan.json"]).manifest
    assert m.engines == [{"file": "e.plan", "precision": "fp16"}] and {"e.plan", "e.plan.json"} <= set(m.files)
    assert "other.plan" not in m.files  # only what was added is listed
    Bundle.open(bundle).add_engine({"file": "e.plan", "precision": "fp32"}, ["e.plan"])  # the same file: replaced
    assert load_manifest(bundle).engines == [{"file": "e.plan", "precision": "fp32"}]
    with pytest.raises(BundleError, match="inside it"):
        Bundle.open(bundle).add_engine({"file": "x"}, ["../outside.plan"])
    with pytest.raises(BundleError, match="no such file"):
        Bundle.open(bundle).add_engine({"file": "gone.plan"}, ["gone.plan"])


def test_a_graph_is_added_through_the_bundle(bundle):
    (bundle / "embedding.fp16.onnx").write_bytes(b"half graph")
    b = Bundle.open(bundle).add_graph("fp16", "embedding.fp16.onnx")
    assert load_manifest(bundle).fp16_file == "embedding.fp16.onnx" == b.manifest.fp16_file
    (bundle / "embedding.fp16.onnx").write_bytes(b"edited")
    with pytest.raises(BundleError, match=r"embedding\.fp16\.onnx.*does not match"):
        Bundle.open(bundle)
    with pytest.raises(ValueError, match="precision 'int4'"):
        Bundle.open(bundle, verify=False).add_graph("int4", "x.onnx")


def test_a_file_the_manifest_uses_must_be_listed(bundle):
    """A graph the manifest points to but does not hash would be loaded unchecked: refused, naming it."""
    (bundle / "head.onnx").write_bytes(b"unlisted head")
    d = json.loads((bundle / "manifest.json").read_text())
    d["head"] = {"kind": "learned", "file": "head.onnx"}
    (bundle / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=r"head\.onnx: the manifest uses it but does not list"):
        load_manifest(bundle)
    d["head"] = {"kind": "learned", "file": "../../etc/passwd"}
    (bundle / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="points outside the bundle"):
        load_manifest(bundle, verify=False)
    (bundle / "parity.json").write_text('{"results": [], "status": "PASSED"}')  # present, unlisted: refused too
    d["head"] = {"kind": "euclidean"}
    (bundle / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=r"parity\.json: the manifest uses it"):
        load_manifest(bundle)


def test_the_parity_report_round_trips(tmp_path):
    from runtime.bundle.parity_report import read_report, write_report
    from runtime.parity import compare

    spec = ScoreSpec("distance", "low", 0.5)
    emb = np.eye(4, dtype=np.float32)
    good = compare("onnxruntime-cpu", "fp32", emb, emb, np.zeros(3), np.zeros(3), spec)
    bad16 = compare("openvino-cpu", "bf16", emb, -emb, np.zeros(3), np.ones(3), spec)
    est = compare("fp16 emulated", "fp16", emb, emb, np.zeros(3), np.zeros(3), spec, estimate=True)
    write_report(tmp_path / "parity.json", [good, bad16, est], "calib-images: d")
    report = read_report(tmp_path / "parity.json")
    assert report.passed and report.estimated_on_cpu and report.reference == "calib-images: d"
    assert report.row("onnxruntime-cpu", "fp32").to_dict() == good.to_dict()
    assert report.row("openvino-cpu", "bf16").passed is False and report.row("fp16 emulated", "fp16") is None
    assert json.loads((tmp_path / "parity.json").read_text())["status"] == "PASSED"
    assert read_report(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match=r"bad\.json: not a readable parity report"):
        read_report(tmp_path / "bad.json")


def test_the_schema_version_is_the_one_the_cpp_runtime_is_built_with():
    """One statement of the version: manifest.schema.json, read by runtime.bundle.layout and by CMake."""
    from pathlib import Path

    from runtime.bundle.layout import SCHEMA_FILE, manifest_schema

    assert manifest_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    cmake = (Path(__file__).resolve().parents[1] / "runtime" / "cpp" / "CMakeLists.txt").read_text()
    assert SCHEMA_FILE in cmake and "SIAMESE_SCHEMA_VERSION" in cmake
    header = (
        Path(__file__).resolve().parents[1] / "runtime" / "cpp" / "include" / "siamese" / "manifest.hpp"
    ).read_text()
    assert "kSchemaVersion = SIAMESE_SCHEMA_VERSION" in header


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
        (lambda d: d["embedding"].update(dim="ten"), r"embedding\.dim: 'ten' is not of type 'integer'"),
        (lambda d: d["embedding"].pop("dim"), "missing field 'embedding.dim'"),
        (lambda d: d.update(files=["embedding.onnx"]), r"files: \['embedding.onnx'\] is not of type 'object'"),
        (lambda d: d["head"].update(epsilon=-1), r"head\.epsilon: -1 is less than the minimum of 0"),
        (
            lambda d: d["preprocessing"].update(scale=0),
            r"preprocessing\.scale: 0 is less than or equal to the minimum of 0",
        ),
        (lambda d: d["score"].pop("kind"), "missing field 'score.kind'"),
    ],
)
def test_malformed_manifests_say_what_is_wrong(bundle, mutate, message):
    d = json.loads((bundle / "manifest.json").read_text())
    mutate(d)
    (bundle / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle)


def test_a_manifest_that_is_not_an_object(bundle):
    (bundle / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="expected a JSON object, found list"):
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
        (tmp / "manifest.json").write_text("{}")  # what makes it a bundle --force may replace
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
