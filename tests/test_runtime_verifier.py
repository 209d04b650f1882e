"""runtime.load / Verifier on a real bundle: a digits model trained here, exported by export.build, real PNGs.

Decisions, parity of the file path with export's reference, BGR/RGB/alpha, lists, embed-once-score-many,
threads, tampered bundles, bad images, backend="auto" with stand-in backend modules, and the lean import.
The bundle is built once per session (``trained_bundle``, shared with test_runtime_verify_cli.py).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

import runtime
from runtime import select as sel
from runtime.backends.base import BackendEntry, backend_names, entry, register, registry
from runtime.bundle.layout import BundleError
from runtime.bundle.parity_report import ParityReport, read_report
from runtime.bundle.reference import Reference
from runtime.preprocess import ImageReadError
from runtime.scoring import ScoreSpec
from runtime.speed import TIE_RATIO, option_key
from runtime.verifier import BackendWarning, Embedding, Verifier, VerifyResult

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "tf_keras")


# --- the shared bundle -----------------------------------------------------------------------------------------


def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keras-contrastive digits model (2 quick epochs) exported by export.build; built once per session."""
    bundle = tmp_path_factory.getbasetemp() / "runtime-bundle" / "bundles" / "digits"
    if (bundle / "manifest.json").is_file():
        return bundle
    from export.build import EXIT_OK, main
    from tests.quick_models import train_quick_digits

    model = train_quick_digits(bundle.parent.parent / "run" / "digits")
    assert main(["--model", str(model), "--out", str(bundle.parent), "--name", "digits"]) == EXIT_OK
    return bundle


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    from train.data.digits import digits_uint8 as load

    return load()


@pytest.fixture(scope="module", autouse=True)
def _parity_cache(tmp_path_factory):
    """Load-time parity results go to a private cache, never ~/.cache."""
    old = os.environ.get("SIAMESE_EDGE_CACHE")
    os.environ["SIAMESE_EDGE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SIAMESE_EDGE_CACHE", None)
    else:
        os.environ["SIAMESE_EDGE_CACHE"] = old


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return trained_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def verifier(bundle) -> Verifier:
    """The FP32 path, named: tests that compare outputs exactly or to FP32 tolerances must not run on whatever
    auto takes on this CPU (OpenVINO bf16 where bf16 is native)."""
    return runtime.load(bundle, backend="onnxruntime", precision="fp32")


@pytest.fixture(scope="module")
def auto_verifier(bundle) -> Verifier:
    """backend="auto": what it takes depends on the machine, so tests of it assert nothing precision-bound."""
    return runtime.load(bundle)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """200 digits written as PNG files: (paths, uint8 images, labels)."""
    images, labels = digits_uint8()
    idx = np.random.default_rng(5).choice(len(images), size=200, replace=False)
    folder = tmp_path_factory.mktemp("digits_png")
    paths = []
    for i in idx:
        p = folder / f"{i:04d}_{labels[i]}.png"
        assert cv2.imwrite(str(p), images[i])
        paths.append(p)
    return paths, images[idx], labels[idx]


# --- loading and what it says ----------------------------------------------------------------------------------


def _check_auto_info(verifier: Verifier, bundle: Path) -> dict:
    """What must hold of auto's choice on any machine: a backend present here, that passed parity by the source it
    names, and every option tried before it says why it was not taken."""
    info = verifier.info()
    variant, precision = info["variant"], info["precision"]
    entries = {e.variant: e for e in registry()}
    assert variant in entries and info["backend"] == entries[variant].backend
    assert precision in entries[variant].precisions and info["provider"]
    assert info["device"] == entries[variant].device
    assert info["bundle"] == "digits" and info["bundle_dir"] == str(bundle)
    assert info["parity_status"] == "PASSED"
    report = read_report(bundle / "parity.json")
    if report.row(info["parity_label"], precision) is not None:
        assert info["parity"].startswith("parity.json: PASSED")  # export measured exactly this backend
    else:
        assert info["parity"].startswith("checked at load")  # export did not: checked against reference.npz
    order = info["reason"].split("keep the order " if info["timings"] else "(order ", 1)[1].split(";", 1)[0]
    assert set(order.split(" > ")) == set(entries)
    attempts = info["attempts"]
    assert attempts[-1]["variant"] == variant and attempts[-1]["outcome"] == "chosen"
    for a in attempts[:-1]:  # every option tried first says why not
        assert a["outcome"] in ("not present", "failed to load", "parity failed", "parity unknown") and a["detail"]
    assert "distance" in info["score"] and info["embedding_dim"] == verifier.dim
    json.dumps(info)  # JSON-able as is
    assert "digits" in repr(verifier)
    return info


def test_load_auto_takes_the_fastest_that_passes(auto_verifier, bundle):
    """auto times the options that pass (or reads the export's timings from this machine) and takes the fastest;
    an option measured clearly faster than the one taken was tried first and says why it was not taken."""
    info = _check_auto_info(auto_verifier, bundle)
    timings = info["timings"]
    assert timings and info["timing_source"]
    taken = option_key(info["variant"], info["precision"])
    assert timings[taken] is not None and timings[taken] > 0
    assert info["reason"].startswith(f"auto: {info['variant']} {info['precision']} is the fastest backend here")
    absent = {a["variant"] for a in info["attempts"] if a["outcome"] == "not present"}
    refused = {option_key(a["variant"], a["precision"]) for a in info["attempts"][:-1] if a["precision"]}
    refused |= {k for k in timings if k.split(":")[0] in absent}
    for key, ms in timings.items():
        if ms is not None and ms * TIE_RATIO < timings[taken]:
            assert key in refused, f"{key} ({ms:.3g} ms) is faster than {taken} ({timings[taken]:.3g} ms) yet not taken"


def test_load_auto_without_timing_follows_the_registry_order(bundle, monkeypatch):
    monkeypatch.setenv("SIAMESE_EDGE_AUTO_TIMING", "0")
    verifier = runtime.load(bundle)
    info = _check_auto_info(verifier, bundle)
    assert info["timings"] == {} and "timing off" in info["reason"]
    variant = info["variant"]
    order = info["reason"].split("(order ", 1)[1].split(";", 1)[0].split(" > ")
    tried = list(dict.fromkeys(a["variant"] for a in info["attempts"] if a["outcome"] != "not present"))
    present_before = [v for v in order[: order.index(variant) + 1] if v in tried]
    assert tried == present_before  # in the stated order, up to the one taken


def test_what_auto_takes_passes_parity_measured_again(bundle):
    """Whatever auto takes here passes the parity gate of its precision, re-measured now on reference.npz."""
    v = runtime.load(bundle)
    result = v.check_parity()
    assert result.passed and result.precision == v.info()["precision"]


def test_runtime_exports_load_lazily():
    assert runtime.load is runtime.verifier.load
    assert runtime.VerifyResult is VerifyResult and runtime.Embedding is Embedding
    assert runtime.BundleError is BundleError and runtime.BackendUnavailable is sel.BackendUnavailable
    with pytest.raises(AttributeError):
        runtime.no_such_thing  # noqa: B018
    assert {"load", "Verifier"} <= set(dir(runtime))


def test_bad_load_arguments(bundle):
    with pytest.raises(ValueError, match="backend 'cuda'"):
        runtime.load(bundle, backend="cuda")
    with pytest.raises(ValueError, match="precision 'int4'"):
        runtime.load(bundle, precision="int4")
    with pytest.raises(ValueError, match="threads"):
        runtime.load(bundle, threads=0)
    with pytest.raises(ValueError, match="providers"):
        runtime.load(bundle, backend="openvino", providers=["CPUExecutionProvider"])
    with pytest.raises(sel.BackendUnavailable, match="backend='tensorrt' cannot run this bundle here: tensorrt"):
        runtime.load(bundle, backend="tensorrt")  # no GPU on this machine; the reason is in the message


def test_explicit_onnxruntime_threads_and_providers(bundle, pngs):
    paths = pngs[0][:4]
    v1 = runtime.load(bundle, backend="onnxruntime", threads=1)
    v2 = runtime.load(bundle, providers=["CPUExecutionProvider"])
    assert v1.info()["threads"] == 1 and v1.info()["requested"] == "onnxruntime"
    assert v2.info()["variant"] == "onnxruntime-cpu"
    np.testing.assert_allclose(v1.embed(paths), v2.embed(paths), rtol=0, atol=1e-6)


# --- parity of the runtime path with export's reference -------------------------------------------------------


def test_reference_images_from_files_reproduce_the_keras_reference(verifier, bundle, tmp_path):
    """Export's reference images, written to PNG and fed as files, give export's inputs, embeddings and scores
    (on ONNX Runtime FP32, named: these are the FP32 tolerances, whatever auto would take on this CPU)."""
    ref = Reference.load(bundle / "reference.npz")
    items = [str(s) for s in np.load(bundle / "reference.npz")["items"]]
    images, _ = digits_uint8()
    paths = []
    for k, item in enumerate(items):
        i = int(item.rsplit("[", 1)[1].rstrip("]"))  # "sklearn.datasets.load_digits[465]"
        p = tmp_path / f"ref{k}.png"
        cv2.imwrite(str(p), images[i])
        paths.append(p)
    np.testing.assert_array_equal(verifier.preprocess(paths), ref.inputs)  # the one preprocessing, bit for bit
    emb = verifier.embed(paths)
    assert emb.shape == ref.embeddings.shape
    assert np.max(np.abs(emb - ref.embeddings)) <= 1e-4 * np.max(np.abs(ref.embeddings))
    scores = verifier.score([paths[i] for i in ref.pair_a], [paths[i] for i in ref.pair_b])
    assert np.max(np.abs(scores - ref.scores)) <= 1e-5
    spec = verifier.spec
    assert np.array_equal(spec.is_match(scores), spec.is_match(ref.scores))
    assert verifier.check_parity().passed


def test_same_and_different_digits_get_sensible_decisions(verifier, pngs):
    paths, _, labels = pngs
    rng = np.random.default_rng(11)
    a = rng.integers(len(paths), size=120)
    same_b = [int(rng.choice(np.flatnonzero((labels == labels[i]) & (np.arange(len(paths)) != i)))) for i in a]
    diff_b = [int(rng.choice(np.flatnonzero(labels != labels[i]))) for i in a]
    same = verifier.verify([paths[i] for i in a], [paths[j] for j in same_b])
    diff = verifier.verify([paths[i] for i in a], [paths[j] for j in diff_b])
    same_rate = np.mean([r.match for r in same])
    diff_rate = np.mean([r.match for r in diff])
    # a 2-epoch model (0.82 and 0.23 here): most same-digit pairs match, most different-digit pairs do not; the
    # bounds leave room for another CPU's training numerics
    assert same_rate >= 0.6, same_rate
    assert diff_rate <= 0.4, diff_rate
    r = same[0]
    assert isinstance(r, VerifyResult) and r.kind == "distance" and r.same_when == "low"
    assert r.threshold == verifier.spec.threshold and "calibrated" in r.threshold_source
    assert r.match == (r.score <= r.threshold)


# --- input forms --------------------------------------------------------------------------------------------------


def _color_image() -> np.ndarray:
    """A BGR image whose red and blue differ everywhere (so a swapped channel order changes the gray value)."""
    rng = np.random.default_rng(3)
    img = np.zeros((36, 30, 3), np.uint8)
    img[..., 0] = rng.integers(0, 60, img.shape[:2])  # blue low
    img[..., 2] = rng.integers(150, 256, img.shape[:2])  # red high
    img[8:28, 10:20, 1] = 255
    return img


def test_bgr_rgb_alpha_gray_files_and_bytes_agree(verifier, tmp_path):
    bgr = _color_image()
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    path = tmp_path / "color.png"
    cv2.imwrite(str(path), bgr)
    e = verifier.embed(bgr)  # default: BGR, as cv2.imread gives
    assert isinstance(e, Embedding) and e.shape == (verifier.dim,) and e.dtype == np.float32
    np.testing.assert_array_equal(verifier.embed(rgb, rgb=True), e)
    np.testing.assert_array_equal(verifier.embed(path), e)
    np.testing.assert_array_equal(verifier.embed(str(path)), e)
    np.testing.assert_array_equal(verifier.embed(path.read_bytes()), e)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)])
    np.testing.assert_array_equal(verifier.embed(bgra), e)
    np.testing.assert_array_equal(verifier.embed(np.ascontiguousarray(bgra[..., [2, 1, 0, 3]]), rgb=True), e)
    rgba_path = tmp_path / "color_alpha.png"
    cv2.imwrite(str(rgba_path), bgra)
    np.testing.assert_array_equal(verifier.embed(rgba_path), e)
    assert not np.array_equal(verifier.preprocess(rgb), verifier.preprocess(bgr))  # the flag matters
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(verifier.embed(gray), verifier.embed(gray[:, :, None]))


def test_lists_batches_and_one_against_many(verifier, pngs):
    paths, images, _ = pngs
    batch = verifier.embed(paths[:6])
    assert isinstance(batch, Embedding) and batch.shape == (6, verifier.dim)
    singles = np.stack([verifier.embed(p) for p in paths[:6]])
    np.testing.assert_allclose(batch, singles, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(verifier.embed(np.stack(images[:6])[..., None]), verifier.embed(list(images[:6])))
    with pytest.raises(ImageReadError, match=r"shape \(6, 8, 8\).*NxHxWx1 array or a list"):
        verifier.embed(np.stack(images[:6]))  # 3-D is one image; a stack of gray images needs its channel axis
    mixed = verifier.embed([paths[0], images[1], paths[2].read_bytes()])
    np.testing.assert_allclose(mixed, batch[:3], rtol=0, atol=1e-6)
    many = verifier.score(paths[0], paths[:5])  # one against many
    assert many.shape == (5,)
    np.testing.assert_allclose(many, [verifier.score(paths[0], p) for p in paths[:5]], rtol=0, atol=1e-6)
    assert isinstance(verifier.score(paths[0], paths[1]), float)
    results = verifier.verify(paths[:3], paths[3:6])
    assert isinstance(results, list) and len(results) == 3
    assert verifier.embed([]).shape == (0, verifier.dim)
    with pytest.raises(ValueError, match="cannot pair 2 with 3"):
        verifier.score(paths[:2], paths[:3])


def test_embed_once_score_many_gives_identical_scores(verifier, pngs, tmp_path):
    paths, _, _ = pngs
    ref = verifier.embed(paths[0])
    for p in paths[1:6]:
        assert verifier.score(ref, p) == verifier.score(paths[0], p)  # exactly: the same computation
        assert verifier.verify(ref, p) == verifier.verify(paths[0], p)
    gallery = verifier.embed(paths[1:6])
    np.testing.assert_array_equal(verifier.score(ref, gallery), verifier.score(paths[0], paths[1:6]))
    np.testing.assert_array_equal(
        verifier.score([ref, paths[2]], [gallery[0], paths[3]]), verifier.score([paths[0], paths[2]], paths[1:4:2])
    )
    # stored and reloaded: a 1-D vector is an embedding; a matrix is wrapped with as_embedding
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "gallery.npy", gallery)
    back = np.load(tmp_path / "ref.npy")
    assert type(back) is np.ndarray
    assert verifier.score(back, paths[1]) == verifier.score(ref, paths[1])
    stored = verifier.as_embedding(np.load(tmp_path / "gallery.npy"))
    np.testing.assert_array_equal(verifier.score_embeddings(ref, stored), verifier.score(ref, gallery))
    np.testing.assert_array_equal(verifier.score_embeddings(ref[None], stored), verifier.score(ref, gallery))
    import pickle

    again = pickle.loads(pickle.dumps(ref))
    assert isinstance(again, Embedding) and again.model == ref.model and np.array_equal(again, ref)
    # embeddings of another network, or of the wrong size, are refused
    foreign = Embedding(np.asarray(ref), model="0" * 64, bundle="other")
    with pytest.raises(ValueError, match="bundle 'other'"):
        verifier.score(foreign, paths[1])
    with pytest.raises(ValueError, match=f"expected float \\({verifier.dim},\\)"):
        verifier.score(np.zeros(verifier.dim + 1, np.float32), paths[1])
    with pytest.raises(ValueError, match="expected float"):
        verifier.as_embedding(np.zeros((2, 3, verifier.dim)))


def test_one_verifier_many_threads_same_results(verifier, pngs):
    paths, images, _ = pngs
    pairs = [(paths[i], images[(i * 7 + 3) % len(images)]) for i in range(48)]
    alone = [verifier.verify(a, b) for a, b in pairs]
    embeds_alone = [verifier.embed(paths[i : i + 3]) for i in range(0, 24, 3)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda ab: verifier.verify(*ab), pairs))
        embeds_threaded = list(pool.map(lambda i: verifier.embed(paths[i : i + 3]), range(0, 24, 3)))
    assert threaded == alone
    for x, y in zip(embeds_alone, embeds_threaded):
        np.testing.assert_array_equal(x, y)


# --- bad input ----------------------------------------------------------------------------------------------------


def test_bad_images_name_the_file(verifier, pngs, tmp_path):
    good = pngs[0][0]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageReadError, match="corrupt.png"):
        verifier.verify(good, corrupt)
    with pytest.raises(ImageReadError, match="missing.png: no such file"):
        verifier.embed([good, tmp_path / "missing.png"])
    with pytest.raises(ImageReadError, match=r"image\[1\]: float image with values outside"):
        verifier.embed([np.zeros((8, 8), np.uint8), np.full((8, 8), 3.0)])
    with pytest.raises(ImageReadError, match=r"image\[0\]: shape \(8, 8, 2\)"):
        verifier.embed([np.zeros((8, 8, 2), np.uint8)])
    with pytest.raises(ImageReadError, match="not an image"):
        verifier.embed(42)
    with pytest.raises(ImageReadError, match="shape"):
        verifier.embed(np.zeros((2, 2, 2, 2, 2), np.uint8))


def _copy(bundle: Path, dst: Path) -> Path:
    shutil.copytree(bundle, dst)
    return dst


def test_tampered_bundle_is_refused_naming_the_file(bundle, tmp_path):
    b = _copy(bundle, tmp_path / "tampered")
    data = bytearray((b / "head.onnx").read_bytes())
    data[-5] ^= 0xFF
    (b / "head.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="head.onnx: sha256 .* does not match the manifest"):
        runtime.load(b)
    (b / "head.onnx").unlink()
    with pytest.raises(BundleError, match="head.onnx: listed in the manifest but missing"):
        runtime.load(b)
    with pytest.raises(BundleError, match="not a bundle folder"):
        runtime.load(tmp_path / "nowhere")


# --- backend="auto": parity at load, stand-in backends ----------------------------------------------------------


def test_unmeasured_precision_is_checked_at_load_then_cached(bundle):
    # ONNX Runtime with the FP16 graph: parity.json has no real fp16 row (only the CPU estimate)
    v = runtime.load(bundle, backend="onnxruntime")  # the runtime picks the precision: proven
    assert v.info()["precision"] == "fp32" and v.info()["parity"].startswith("parity.json: PASSED")
    v = runtime.load(bundle, providers=["CPUExecutionProvider"], precision="fp16")
    info = v.info()
    assert info["precision"] == "fp16" and info["parity"].startswith("checked at load: PASSED")
    again = runtime.load(bundle, providers=["CPUExecutionProvider"], precision="fp16")
    assert again.info()["parity"].startswith("checked at load (cached): PASSED")
    explicit = runtime.load(bundle, backend="onnxruntime", precision="fp16")  # named by the user: reported only
    assert explicit.info()["parity_status"] == "PASSED"  # known from the cache
    assert v.check_parity().passed


def _stand_in(monkeypatch, name: str, *, flip: set[str] = frozenset(), precisions=None, available=None):
    """Make the registry's ``name`` backend (its module's backend class, and optionally its ``precisions`` and
    ``available``) a stand-in that runs ONNX Runtime underneath; ``flip`` precisions negate embeddings. The entry
    itself is the real one: what the registry does with a present, failing or stale backend is what is tested."""
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    module = importlib.import_module(f"runtime.backends.{name}_backend")

    class FakeBackend:
        thread_safe = True

        def __init__(self, bundle_dir, manifest, precision=None, threads=None):
            self.precision = precision or "fp32"
            self._ort = OnnxRuntimeBackend(bundle_dir, manifest, providers=["CPUExecutionProvider"], threads=threads)

        def embed(self, x):
            e = self._ort.embed(x)
            return -e if self.precision in flip else e

        def score_embeddings(self, ea, eb):
            return self._ort.score_embeddings(ea, eb)

        def close(self):
            pass

        def info(self):
            # the provider names the behaviour, so cached load-time parity of one stand-in never serves another
            provider = f"fake-{name}-flips-{'-'.join(sorted(flip)) or 'none'}"
            # a device export never measured (parity.json holds the real OpenVINO CPU): parity is checked at load
            return {"backend": name, "provider": provider, "precision": self.precision, "device": "GPU.0"}

    cls = {"openvino": "OpenVINOBackend", "tensorrt": "TensorRTBackend"}[name]
    monkeypatch.setattr(module, cls, FakeBackend)
    # a stand-in's speed is ONNX Runtime's, and the export timed the real backend: these tests walk auto's gates in
    # the registry's order (test_auto_ranks_by_speed tests the ranking)
    monkeypatch.setenv("SIAMESE_EDGE_AUTO_TIMING", "0")
    if precisions is not None:
        monkeypatch.setattr(module, "precisions", lambda: precisions)
    monkeypatch.setattr(module, "available", available or (lambda bundle_dir=None, precision=None: (True, "")))
    return FakeBackend


def test_auto_prefers_openvino_when_it_passes_parity(bundle, monkeypatch):
    _stand_in(monkeypatch, "openvino", flip={"bf16"}, precisions=("bf16", "fp32"))
    with pytest.warns(BackendWarning, match="openvino bf16 fails parity"):
        v = runtime.load(bundle)
    info = v.info()
    assert info["variant"] == "openvino" and info["precision"] == "fp32"
    assert info["parity"].startswith("checked at load: PASSED") and info["parity_label"] == "openvino-gpu"
    outcomes = [(a["variant"], a["precision"], a["outcome"]) for a in info["attempts"]]
    assert ("openvino", "bf16", "parity failed") in outcomes and outcomes[-1] == ("openvino", "fp32", "chosen")
    assert "openvino bf16: parity failed" in info["reason"]
    # a user who names backend and precision gets them, with a warning that parity fails
    with pytest.warns(BackendWarning, match="fails parity"):
        bad = runtime.load(bundle, backend="openvino", precision="bf16")
    assert bad.info()["parity_status"] == "FAILED"


def test_auto_skips_a_backend_that_fails_parity_everywhere(bundle, monkeypatch):
    _stand_in(monkeypatch, "openvino", flip={"bf16", "fp32"}, precisions=("bf16", "fp32"))
    with pytest.warns(BackendWarning):
        v = runtime.load(bundle)
    assert v.info()["variant"] == "onnxruntime-cpu"
    with pytest.warns(BackendWarning), pytest.raises(sel.BackendUnavailable, match="openvino fp32: parity failed"):
        runtime.load(bundle, backend="openvino")  # the runtime picks the precision, so it must be proven


def test_stale_tensorrt_plan_warns_with_the_rebuild_command(bundle, tmp_path, monkeypatch):
    why = "no plan matches: built for sm87, this GPU is sm86 ; rebuild with: python -m export.tensorrt_build --bundle B"
    seen = {}

    def available(bundle_dir, precision=None):
        seen["args"] = (Path(bundle_dir), precision)
        return False, why

    _stand_in(monkeypatch, "tensorrt", available=available)
    with warnings.catch_warnings():  # (only TensorRT's: whether a reduced precision passes parity is the CPU's)
        warnings.filterwarnings("error", message=".*TensorRT.*", category=BackendWarning)
        runtime.load(bundle)  # no plan in the bundle: nothing to warn about
    b = _copy(bundle, tmp_path / "with_plan")
    (b / "embedding.trt10.8.sm87.fp16.0123456789ab.plan").write_bytes(b"plan")
    with pytest.warns(BackendWarning, match="rebuild with: python -m export.tensorrt_build"):
        v = runtime.load(b)
    assert seen["args"] == (b, None)
    assert v.info()["variant"] != "tensorrt" and "sm87" in v.info()["reason"]


def test_a_present_backend_that_fails_to_load_is_reported(bundle, monkeypatch):
    fake = _stand_in(monkeypatch, "tensorrt")

    def broken(*args, **kwargs):
        raise RuntimeError("deserialize_cuda_engine failed")

    monkeypatch.setattr(fake, "__init__", broken)
    with pytest.warns(BackendWarning, match="tensorrt is present but did not load: deserialize_cuda_engine failed"):
        v = runtime.load(bundle)
    assert v.info()["variant"] != "tensorrt"
    assert [a["outcome"] for a in v.info()["attempts"]][0] == "failed to load"


# --- the lean import ----------------------------------------------------------------------------------------------


def test_import_load_and_verify_never_import_tensorflow(bundle, pngs):
    a, b = pngs[0][:2]
    code = f"""
import json, sys
import runtime
v = runtime.load({str(bundle)!r})
r = v.verify({str(a)!r}, {str(b)!r})
e = v.embed({str(a)!r})
v.score(e, {str(b)!r})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"heavy": heavy, "match": r.match}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []


# --- pure parts ---------------------------------------------------------------------------------------------------


def test_verify_result_reads_both_conventions():
    prob = VerifyResult.from_score(0.91, ScoreSpec("probability", "high", 0.5, "default"))
    assert prob.match and str(prob).startswith("match: probability 0.91 >= threshold 0.5")
    assert "probability that both show the same identity" in str(prob)
    dist = VerifyResult.from_score(1.3, ScoreSpec("distance", "low", 0.7, "calibrated (EER)"))
    assert not dist.match and str(dist).startswith("no match: distance 1.3 > threshold 0.7")
    assert "low means the same identity" in str(dist) and "calibrated (EER)" in str(dist)
    d = dist.to_dict()
    assert d == {
        "score": 1.3,
        "match": False,
        "kind": "distance",
        "same_when": "low",
        "threshold": 0.7,
        "threshold_source": "calibrated (EER)",
        "meaning": "low means the same identity",
    }
    assert VerifyResult.from_score(0.7, ScoreSpec("distance", "low", 0.7)).match  # at the threshold: a match


def test_candidate_order_and_precisions():
    native = {"openvino": ("bf16", "fp32")}  # a CPU with AMX / AVX512-bf16: OpenVINO bf16 leads ONNX Runtime
    auto = sel.candidates(module_precisions=native)
    assert [c.variant for c in auto] == ["tensorrt", "onnxruntime-gpu", "openvino", "onnxruntime-cpu"]
    assert auto[0].precisions == (None,) and auto[-1].precisions == ("fp32",)
    # without native bf16 (or in fp32) ONNX Runtime CPU is the faster CPU backend and comes first (the machine's own
    # answer is the OpenVINO entry's, so each case states the CPU it stands for)
    for kw in ({"module_precisions": {"openvino": ("fp32",)}}, {"module_precisions": native, "precision": "fp32"}):
        assert [c.variant for c in sel.candidates(**kw)][2:] == ["onnxruntime-cpu", "openvino"]
    assert [c.variant for c in sel.candidates("onnxruntime")] == ["onnxruntime-gpu", "onnxruntime-cpu"]
    bf16 = {c.variant: c.precisions for c in sel.candidates(precision="bf16")}
    assert bf16 == {"tensorrt": (), "onnxruntime-gpu": (), "openvino": ("bf16",), "onnxruntime-cpu": ()}
    pinned = sel.candidates(providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert [(c.variant, c.providers) for c in pinned] == [
        ("onnxruntime-gpu", ("CUDAExecutionProvider", "CPUExecutionProvider"))
    ]
    assert sel.candidates("openvino", module_precisions={"openvino": ("fp32",)})[0].precisions == ("fp32",)
    assert [c.variant for c in sel.candidates(providers=["CPUExecutionProvider"])] == ["onnxruntime-cpu"]
    with pytest.raises(ValueError, match=r"taken by onnxruntime; backend='openvino' does not take them"):
        sel.candidates("openvino", providers=["CPUExecutionProvider"])
    from runtime.backends.onnxruntime_backend import gpu_providers

    assert gpu_providers(["CPUExecutionProvider"]) is None
    assert gpu_providers(["CUDAExecutionProvider", "CPUExecutionProvider", "TensorrtExecutionProvider"]) == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    )


def test_parity_rows_ignore_cpu_estimates():
    report = ParityReport.from_dict({
        "results": [
            {"backend": "onnxruntime-cpu", "precision": "fp32", "status": "PASSED", "note": "", "metrics": {}},
            {"backend": "fp16 emulated", "precision": "fp16", "status": "PASSED", "note": "estimated on CPU"},
            {"backend": "tensorrt", "precision": "fp16", "status": "PASSED", "note": "estimated on CPU"},
            {"backend": "openvino-cpu", "precision": "bf16", "status": "FAILED", "note": ""},
            {"backend": "openvino-cpu", "precision": "fp16", "status": "PASSED", "note": "", "estimate": True},
        ]
    })
    assert report.row("openvino-cpu", "fp16") is None  # the flag, whatever the note says
    assert report.row("onnxruntime-cpu", "fp32").passed
    assert report.row("onnxruntime-cpu", "fp16") is None
    assert report.row("tensorrt", "fp16") is None  # an estimate is not a measurement
    assert sel.verdict_from_row(report.row("openvino-cpu", "bf16")).passed is False
    assert report.passed  # every FP32 row passed; the failed bf16 row is reported, not gating
    assert sel.parity_label("onnxruntime-gpu", {"provider": "CUDAExecutionProvider"}) == "onnxruntime-cuda"
    assert sel.parity_label("onnxruntime-cpu", {"provider": "CPUExecutionProvider"}) == "onnxruntime-cpu"
    assert sel.parity_label("tensorrt", {"provider": "TensorRT 10.8"}) == "tensorrt"


def test_select_walks_the_order_with_injected_parts():
    cands = sel.candidates(module_precisions={"openvino": ("bf16", "fp32")})
    present = {
        "tensorrt": (False, "no GPU"),
        "onnxruntime-gpu": (True, ""),
        "openvino": (True, ""),
        "onnxruntime-cpu": (True, ""),
    }
    built, warned = [], []

    def build(c, p):
        built.append((c.variant, p))
        if c.variant == "onnxruntime-gpu":
            raise RuntimeError("CUDA out of memory")
        return types.SimpleNamespace(info=lambda: {"precision": p or "fp16"})

    def judge(c, p, b):
        return sel.Verdict(c.variant == "onnxruntime-cpu" or p == "fp32", "checked at load")

    s = sel.select(cands, "auto", lambda c: present[c.variant], build, judge, warn=warned.append)
    assert (s.candidate.variant, s.precision) == ("openvino", "fp32")
    assert built == [
        ("onnxruntime-gpu", "fp16"),
        ("onnxruntime-gpu", "fp32"),
        ("openvino", "bf16"),
        ("openvino", "fp32"),
    ]
    assert [a.outcome for a in s.attempts] == [
        "not present",
        "failed to load",
        "failed to load",
        "parity failed",
        "chosen",
    ]
    assert any("CUDA out of memory" in w for w in warned) and any("openvino bf16 fails parity" in w for w in warned)
    assert "tensorrt: not present (no GPU)" in s.reason
    # nothing passes: one error listing everything; gate off: the first that loads
    with pytest.raises(
        sel.BackendUnavailable, match="no backend can run this bundle here: tensorrt fp32: parity failed"
    ):
        sel.select(cands, "auto", lambda c: (True, ""), lambda c, p: object(), lambda c, p, b: sel.Verdict(False, "x"))
    s = sel.select(
        cands[2:],
        "openvino",
        lambda c: (True, ""),
        lambda c, p: object(),
        lambda c, p, b: sel.Verdict(None, "not checked"),
        gate=False,
    )
    assert s.verdict.passed is None and s.reason.startswith("asked for backend='openvino'")


def test_the_registry_is_the_one_table():
    """Every variant says its backend, device, precisions, presence here and parity label; the CLIs' choices and the
    candidates come from it."""
    entries = registry()
    assert {e.variant for e in entries} == {"tensorrt", "onnxruntime-gpu", "openvino", "onnxruntime-cpu"}
    assert backend_names() == ("auto", "onnxruntime", "openvino", "tensorrt")
    assert all(isinstance(e, BackendEntry) and set(e.precisions) <= set(sel.PRECISIONS) for e in entries)
    cpu = entry("onnxruntime-cpu")
    assert cpu.present(None, "fp32", None).ok and cpu.parity_label({"provider": "CPUExecutionProvider"}) == "onnxruntime-cpu"
    assert not entry("tensorrt").present(None, None, None).ok  # no GPU on this kind of machine: and it says why
    assert entry("tensorrt").present(None, None, None).why
    assert str(entries).count("\n") == len(entries) - 1 and "onnxruntime-cpu" in str(entries)
    with pytest.raises(ValueError, match="expected one of"):
        entry("cuda")
    with pytest.raises(ValueError, match="already registered"):
        register(BackendEntry(**{**cpu.__dict__, "bench": ()}))


def test_nan_embeddings_are_refused_by_the_verifier(verifier):
    bad = np.zeros(verifier.dim, np.float32)
    bad[0] = np.inf
    with pytest.raises(ValueError, match="embedding: 1 of 1 contain NaN or infinity"):
        verifier.score_embeddings(bad, np.zeros(verifier.dim, np.float32))


def test_verify_of_two_images_is_one_network_call(verifier, pngs):
    """Both sides go through the network in one batch (not two calls at batch 1), with the same scores."""
    a, b = pngs[0][0], pngs[0][1]
    separate = verifier.score_embeddings(verifier.embed(a), verifier.embed(b))[0]
    calls = []
    real = verifier.backend.embed

    class Counting:
        def __getattr__(self, name):
            return getattr(real.__self__, name)

        def embed(self, x):
            calls.append(len(x))
            return real(x)

    verifier.backend = Counting()
    try:
        together = verifier.score(a, b)
        many = verifier.score([a, b, a], b)
    finally:
        verifier.backend = real.__self__
    assert calls == [2, 4]
    assert together == pytest.approx(float(separate), abs=1e-6) and many.shape == (3,)
