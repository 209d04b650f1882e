"""runtime.gallery: enroll real Omniglot characters, identify held-out drawings, reject unknown characters,
save/load (atomic, identical results, refused for another network), and score directions with stand-in heads.

The bundle is the committed one-shot model (models/omniglot) exported once per session by export.build
(``omniglot_bundle``, shared with test_runtime_bench.py); the images are the official evaluation alphabets,
which the model never trained on.
"""

from __future__ import annotations

import collections
import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from quick_models import omniglot_bundle

from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from runtime.bundle.manifest import Manifest, load_manifest
from runtime.gallery import UNKNOWN, Gallery, GalleryError, identification_rate
from runtime.images import to_batch

ROOT = Path(__file__).resolve().parents[1]
EVALUATION_ZIP = ROOT.parent / "shared" / "data" / "omniglot" / "images_evaluation.zip"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return omniglot_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def backend(bundle) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(bundle, load_manifest(bundle), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def characters() -> dict[str, list[bytes]]:
    """20 evaluation characters (fixed choice), 20 drawings each, as encoded PNG bytes."""
    if not EVALUATION_ZIP.is_file():
        pytest.skip(f"{EVALUATION_ZIP} not found (the shared data folder is absent)")
    with zipfile.ZipFile(EVALUATION_ZIP) as z:
        names = collections.defaultdict(list)
        for n in sorted(z.namelist()):
            if n.endswith(".png"):
                names["/".join(n.split("/")[1:3])].append(n)
        keys = sorted(names)
        pick = np.random.default_rng(0).choice(len(keys), 20, replace=False)
        return {keys[i]: [z.read(n) for n in names[keys[i]]] for i in pick}


@pytest.fixture(scope="module")
def enrolled(backend, characters) -> tuple[Gallery, list, list, list]:
    """10 characters enrolled with 5 drawings each; held-out drawings of them, and drawings of 10 others."""
    keys = list(characters)
    known, unknown = keys[:10], keys[10:]
    g = Gallery(backend)
    for c in known:
        assert g.enroll(c, characters[c][:5]) == 5
    queries = [d for c in known for d in characters[c][10:15]]
    truth = [c for c in known for _ in range(5)]
    strangers = [d for c in unknown for d in characters[c][10:13]]
    return g, queries, truth, strangers


def test_identify_held_out_drawings_and_reject_unknown_characters(enrolled):
    g, queries, truth, strangers = enrolled
    assert len(g) == 10 and g.size == 50 and g.aggregate == "template"  # distance head: templates
    results = g.identify(queries, top_k=3)
    assert len(results) == len(queries)
    top1 = np.mean([r.candidates[0].identity == t for r, t in zip(results, truth)])
    assert top1 >= 0.95, top1
    assert identification_rate(results, truth) >= 0.85  # right identity AND under the threshold
    rejected = g.identify(strangers)
    rate = identification_rate(rejected, [None] * len(rejected))
    assert rate >= 0.7, rate  # at the manifest's pair-level (EER) threshold; open-set use wants a stricter one
    r = results[0]
    assert r.kind == "distance" and r.same_when == "low" and len(r.candidates) == 3
    scores = [c.score for c in r.candidates]
    assert scores == sorted(scores)  # distances: best (smallest) first
    assert r.match == (scores[0] <= r.threshold) and r.label == (r.identity or UNKNOWN)
    assert str(r).startswith(f"{r.label}:") and "distance" in str(r)
    miss = next(x for x in rejected if not x.match)
    assert miss.identity is None and miss.label == UNKNOWN and str(miss).startswith("unknown: best")
    assert json.loads(json.dumps(r.to_dict()))["candidates"][0]["identity"] == r.candidates[0].identity


def test_templates_are_renormalised_means_and_embeddings_skip_the_network(backend, enrolled, characters):
    g, queries, truth, _ = enrolled
    c = truth[0]
    e = g.embeddings(c)
    assert e.shape == (5, backend.manifest.embedding_dim)
    mean = e.astype(np.float64).mean(0)
    np.testing.assert_allclose(g.template(c), mean / np.linalg.norm(mean), rtol=1e-6, atol=1e-7)
    assert abs(np.linalg.norm(g.template(c)) - 1) < 1e-6  # the manifest says L2-normalised
    # a 1-D embedding is taken as one, not as an image; the same answer as the image
    q = backend.embed(to_batch(queries[0], backend.manifest.preprocessing).x)[0]
    by_image = g.identify(queries[0])
    by_embedding = g.identify(q)
    assert by_embedding.candidates == by_image.candidates
    assert g.identify(embeddings=q[None]) == [by_embedding]  # (N, dim) explicitly: a list
    scores = g.scores(queries[:2])
    assert scores.shape == (2, len(g))
    assert scores[0].min() == pytest.approx(by_image.candidates[0].score)


def test_aggregates_mean_and_max_also_identify(backend, characters):
    keys = list(characters)[:10]
    for agg in ("mean", "max"):
        g = Gallery(backend, aggregate=agg)
        g.enroll_many({c: characters[c][:5] for c in keys})
        assert g.counts() == {c: 5 for c in keys}
        res = g.identify([d for c in keys for d in characters[c][15:17]])
        truth = [c for c in keys for _ in range(2)]
        assert np.mean([r.candidates[0].identity == t for r, t in zip(res, truth)]) >= 0.9
        assert res[0].aggregate == agg


def test_save_load_round_trip_identical_and_atomic(enrolled, backend, tmp_path):
    g, queries, _, strangers = enrolled
    npz, js = g.save(tmp_path / "people")
    assert (npz.name, js.name) == ("people.npz", "people.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.json", "people.npz"]  # no temp files left
    meta = json.loads(js.read_text())
    assert meta["bundle"]["name"] == "omniglot" and meta["bundle"]["dim"] == backend.manifest.embedding_dim
    assert meta["bundle"]["embedding_sha256"] == backend.manifest.files["embedding.onnx"].sha256
    g2 = Gallery.load(tmp_path / "people.json", backend)
    assert g2.identities == g.identities and g2.counts() == g.counts()
    some = queries[:8] + strangers[:4]
    assert g2.identify(some, top_k=4) == g.identify(some, top_k=4)
    # saving again replaces both files atomically; a failing write leaves the old ones
    g2.remove(g2.identities[0])
    g2.save(tmp_path / "people")
    assert len(Gallery.load(tmp_path / "people", backend)) == len(g) - 1

    def boom(*a, **k):
        raise OSError("disk full")

    before = (npz.read_bytes(), js.read_bytes())
    mp = pytest.MonkeyPatch()
    mp.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        g.save(tmp_path / "people")
    mp.undo()
    assert (npz.read_bytes(), js.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.json", "people.npz"]


def test_load_refuses_another_network_and_a_foreign_npz(enrolled, backend, bundle, tmp_path):
    g, *_ = enrolled
    g.save(tmp_path / "g")
    raw = json.loads((bundle / "manifest.json").read_text())
    raw["name"] = "retrained"
    raw["files"]["embedding.onnx"] = {**raw["files"]["embedding.onnx"], "sha256": "0" * 64}
    other = Manifest.from_dict(raw)
    with pytest.raises(GalleryError, match=r"made with bundle 'omniglot'.*runs bundle 'retrained'.*enroll"):
        Gallery.load(tmp_path / "g", backend, manifest=other)
    # an npz that is not the one the json lists (replaced, or an interrupted save)
    h = Gallery(backend)
    dim = backend.manifest.embedding_dim
    h.enroll("x", embeddings=np.ones((1, dim), np.float32) / np.sqrt(dim))
    h.save(tmp_path / "h")
    (tmp_path / "g.npz").write_bytes((tmp_path / "h.npz").read_bytes())
    with pytest.raises(GalleryError, match="sha256 does not match g.json"):
        Gallery.load(tmp_path / "g", backend)
    with pytest.raises(GalleryError, match="no such gallery"):
        Gallery.load(tmp_path / "nothing", backend)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(GalleryError, match="not a siamese-edge gallery"):
        Gallery.load(tmp_path / "bad", backend)
    with pytest.raises(GalleryError, match="expected float"):
        h.enroll("y", embeddings=np.zeros((2, 64), np.float32))


def test_remove_and_bad_arguments(backend):
    g = Gallery(backend)
    e = np.eye(backend.manifest.embedding_dim, dtype=np.float32)
    g.enroll("a", embeddings=e[:2])
    g.enroll("a", embeddings=e[2:3])
    g.enroll("b", embeddings=e[3:4])
    assert g.counts() == {"a": 3, "b": 1}
    assert g.enroll("a", embeddings=e[5:6], replace=True) == 1
    assert g.remove("a") == 1 and g.identities == ["b"] and "a" not in g
    with pytest.raises(KeyError):
        g.remove("a")
    with pytest.raises(ValueError, match="reserved"):
        g.enroll(UNKNOWN, embeddings=e[:1])
    with pytest.raises(ValueError, match="not both"):
        g.identify(e[0], embeddings=e[0])
    with pytest.raises(ValueError, match="aggregate"):
        Gallery(backend, aggregate="median")
    g.clear()
    r = g.identify(e[0])
    assert r.identity is None and r.candidates == () and str(r) == "unknown: the gallery is empty"


def test_works_on_a_verifier_too(bundle, enrolled):
    import runtime

    g, queries, *_ = enrolled
    v = runtime.load(bundle, backend="onnxruntime")
    gv = Gallery(v)
    for c in g.identities:
        gv.enroll(c, embeddings=g.embeddings(c))
    for a, b in zip(gv.identify(queries[:5]), g.identify(queries[:5])):
        assert [c.identity for c in a.candidates] == [c.identity for c in b.candidates] and a.match == b.match
        np.testing.assert_allclose([c.score for c in a.candidates], [c.score for c in b.candidates], atol=1e-5)
    ref = v.embed(queries[0])  # the verifier's Embedding (knows its network) is taken as an embedding
    assert gv.identify(ref).candidates[0].identity == g.identify(queries[0]).candidates[0].identity
    foreign = type(ref)(np.asarray(ref), model="f" * 64, bundle="other")
    with pytest.raises(GalleryError, match="another network"):
        gv.identify(foreign)


# --- score directions with stand-in heads ----------------------------------------------------------------------


def _manifest(kind: str, same_when: str, threshold: float, head: str = "learned") -> Manifest:
    return Manifest.from_dict(
        {
            "schema_version": 1,
            "name": f"stub-{kind}-{same_when}",
            "preprocessing": {"height": 4, "width": 4, "color": "gray"},
            "score": {"kind": kind, "same_when": same_when, "threshold": threshold},
            "embedding": {"dim": 2, "l2_normalized": False},
            "head": {"kind": head, "file": "head.onnx" if head == "learned" else None},
            "files": {"embedding.onnx": {"sha256": "ab" * 32}},
        }
    )


class StubHead:
    """A duck-typed engine: embeddings are the first two pixels; the 'learned head' is a function of distance."""

    def __init__(self, manifest: Manifest, fn):
        self.manifest = manifest
        self.fn = fn
        self.pairs_scored = 0

    def embed(self, x, batch_size=32):
        return np.asarray(x, np.float32).reshape(len(x), -1)[:, :2]

    def score_embeddings(self, ea, eb):
        self.pairs_scored += len(ea)
        return self.fn(np.linalg.norm(np.asarray(ea, np.float64) - eb, axis=1)).astype(np.float32)


def _stub_gallery(manifest: Manifest, fn, **kw) -> tuple[Gallery, StubHead]:
    eng = StubHead(manifest, fn)
    g = Gallery(eng, **kw)
    g.enroll("near", embeddings=np.array([[0.0, 0.0], [0.2, 0.0]], np.float32))
    g.enroll("mid", embeddings=np.array([[3.0, 0.0]], np.float32))
    g.enroll("far", embeddings=np.array([[10.0, 0.0]], np.float32))
    return g, eng


@pytest.mark.parametrize(
    ("kind", "same_when", "fn", "threshold"),
    [
        ("probability", "high", lambda d: np.exp(-d), 0.5),  # bubbliiiing / PyImageSearch: P(same)
        ("probability", "low", lambda d: 1 - np.exp(-d), 0.5),  # keras.io contrastive: label 0 = same
        ("distance", "low", lambda d: d, 1.0),  # a distance through a learned head
    ],
)
def test_ranking_and_decision_follow_the_score_direction(kind, same_when, fn, threshold):
    g, eng = _stub_gallery(_manifest(kind, same_when, threshold), fn)
    assert g.aggregate == "mean"  # learned head: the mean of per-image scores (calibrated), see the module doc
    r = g.identify(np.array([0.1, 0.0], np.float32), top_k=3)
    assert [c.identity for c in r.candidates] == ["near", "mid", "far"]
    assert r.identity == "near" and r.match and r.kind == kind and r.same_when == same_when
    assert r.score == pytest.approx(float(fn(np.array([0.1]))[0]), abs=1e-6)  # mean of two per-image scores
    assert [c.match for c in r.candidates] == [True, False, False]
    assert eng.pairs_scored == 4  # every enrolled image, through the head
    far = g.identify(np.array([12.0, 0.0], np.float32), top_k=2)
    assert far.identity is None and far.label == UNKNOWN and far.candidates[0].identity == "far"
    cmp = ">" if same_when == "low" else "<"
    assert f"{kind} " in str(far) and f" {cmp} threshold" in str(far)
    # the gallery's own threshold: strict enough that nothing matches
    strict = Gallery(eng, threshold=1e-9 if same_when == "low" else 0.999999)
    strict.enroll("near", embeddings=np.array([[0.0, 0.0]], np.float32))
    r2 = strict.identify(np.array([0.1, 0.0], np.float32))
    assert r2.identity is None and r2.threshold_source == "given to the gallery"


def test_template_and_max_aggregates_with_a_learned_head():
    g, eng = _stub_gallery(_manifest("probability", "high", 0.5), lambda d: np.exp(-d), aggregate="template")
    r = g.identify(np.array([0.1, 0.0], np.float32))
    assert r.score == pytest.approx(1.0, abs=1e-6)  # query == the template (0.1, 0)
    assert eng.pairs_scored == 3  # one per identity
    g, _ = _stub_gallery(_manifest("probability", "high", 0.5), lambda d: np.exp(-d), aggregate="max")
    r = g.identify(np.array([0.2, 0.0], np.float32))
    assert r.score == pytest.approx(1.0, abs=1e-6)  # the nearest enrolled image
    g, _ = _stub_gallery(_manifest("probability", "low", 0.5), lambda d: 1 - np.exp(-d), aggregate="max")
    assert g.identify(np.array([0.2, 0.0], np.float32)).score == pytest.approx(0.0, abs=1e-6)  # best = lowest


def test_distance_head_is_the_numpy_distance_and_faiss_is_optional(monkeypatch):
    m = _manifest("distance", "low", 1.0, head="euclidean")
    eng = StubHead(m, lambda d: d)
    plain = Gallery(eng, use_faiss=False)
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((60, 2)).astype(np.float32)
    for i in range(30):
        plain.enroll(f"id{i}", embeddings=emb[2 * i : 2 * i + 2])
    q = rng.standard_normal((5, 2)).astype(np.float32)
    want = plain.identify(embeddings=q, top_k=4)
    assert eng.pairs_scored == 0  # distances are computed here, as runtime.heads does
    for r, row in zip(want, q):
        t = plain.template(r.candidates[0].identity)
        assert r.candidates[0].score == pytest.approx(max(np.linalg.norm(row - t), 1e-7**0.5), rel=1e-6)

    class FlatL2:  # a stand-in for faiss.IndexFlatL2 (exact squared-L2 search), to exercise the glue
        def __init__(self, d):
            self.d, self.x = d, np.zeros((0, d), np.float32)

        def add(self, x):
            assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1] == self.d
            self.x = np.concatenate([self.x, x])

        def search(self, q, k):
            d2 = ((q[:, None, :] - self.x[None]) ** 2).sum(-1)
            idx = np.argsort(d2, axis=1)[:, :k]
            return np.take_along_axis(d2, idx, 1), idx

    monkeypatch.setitem(sys.modules, "faiss", types.SimpleNamespace(IndexFlatL2=FlatL2))
    fast = Gallery(eng, faiss_min_size=10)
    for i in range(30):
        fast.enroll(f"id{i}", embeddings=emb[2 * i : 2 * i + 2])
    assert fast.uses_faiss() and fast.info()["search"] == "faiss IndexFlatL2"
    assert fast.identify(embeddings=q, top_k=4) == want  # the same scores, re-computed exactly
    small = Gallery(eng)  # below faiss_min_size: numpy
    small.enroll("a", embeddings=emb[:1])
    assert not small.uses_faiss()
    with pytest.raises(GalleryError, match="distance head"):
        Gallery(StubHead(_manifest("probability", "high", 0.5), np.exp), use_faiss=True)


def test_real_faiss_when_installed():
    faiss = pytest.importorskip("faiss")
    assert hasattr(faiss, "IndexFlatL2")
    m = _manifest("distance", "low", 1.0, head="euclidean")
    eng = StubHead(m, lambda d: d)
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((40, 2)).astype(np.float32)
    a, b = Gallery(eng, use_faiss=False), Gallery(eng, use_faiss=True)
    for g in (a, b):
        for i in range(40):
            g.enroll(f"id{i}", embeddings=emb[i : i + 1])
    q = rng.standard_normal((6, 2)).astype(np.float32)
    assert b.uses_faiss() and b.identify(embeddings=q, top_k=3) == a.identify(embeddings=q, top_k=3)


def test_enroll_many_with_batches_and_a_saved_gallery_threshold(tmp_path):
    eng = StubHead(_manifest("probability", "high", 0.5), lambda d: np.exp(-d))
    g = Gallery(eng, threshold=0.9)
    batch = np.zeros((3, 4, 4, 1), np.uint8)  # an NxHxWxC batch: three images
    batch[:, 0, 0, 0] = [0, 51, 102]
    single = np.full((4, 4), 255, np.uint8)  # one gray image
    assert g.enroll_many({"batch": batch, "single": single, "list": [single, single]}) == {
        "batch": 3,
        "single": 1,
        "list": 2,
    }
    np.testing.assert_allclose(g.embeddings("batch")[:, 0], [0.0, 0.2, 0.4], atol=1e-6)
    np.testing.assert_allclose(g.embeddings("single"), [[1.0, 1.0]], atol=1e-6)
    g.save(tmp_path / "g")
    g2 = Gallery.load(tmp_path / "g", eng)
    assert g2.spec.threshold == 0.9 and g2.threshold_given == 0.9  # the gallery's own threshold travels with it
    assert Gallery.load(tmp_path / "g", eng, threshold=0.6).spec.threshold == 0.6
    assert g2.identify(single) == g.identify(single)


def _gallery_of(backend, names: list[str], value: float) -> Gallery:
    """A gallery whose every embedding encodes which save it came from (``value``), to catch mixed pairs."""
    g = Gallery(backend)
    dim = backend.manifest.embedding_dim
    for k, name in enumerate(names):
        e = np.full((1, dim), value, np.float32)
        e[0, k % dim] += 1.0
        g.enroll(name, embeddings=e)
    return g


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_save_killed_at_any_rename_leaves_the_old_or_the_new_gallery(backend, tmp_path, monkeypatch, fail_at):
    """Fault injection: the save dies at its first or second rename (npz, then json); the gallery still loads,
    as the old version or the new one, never neither, and no staging file is left."""
    import os

    old = _gallery_of(backend, ["alice"], 0.0)
    old.save(tmp_path / "g")
    new = Gallery.load(tmp_path / "g", backend)
    new.enroll("bob", embeddings=np.ones((1, backend.manifest.embedding_dim), np.float32))
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise KeyboardInterrupt("killed")  # what SIGTERM becomes at the CLI boundary
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "g")
    monkeypatch.setattr(os, "replace", real_replace)
    with __import__("warnings").catch_warnings(record=True) as caught:
        __import__("warnings").simplefilter("always")
        loaded = Gallery.load(tmp_path / "g", backend)
    want = ["alice"] if fail_at == 1 else ["alice", "bob"]
    assert loaded.identities == want
    assert (fail_at == 2) == any("a save was interrupted" in str(w.message) for w in caught)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.npz"]
    loaded.save(tmp_path / "g")  # and it saves again normally
    assert Gallery.load(tmp_path / "g", backend).identities == want


def test_two_writers_and_a_reader_never_mix_galleries(backend, tmp_path):
    """Two writers save different galleries to one path while a reader loads it: every load is one writer's
    gallery whole (its names with its embeddings), never a mix, never a failure."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "shared"
    writers = {v: _gallery_of(backend, [f"w{int(v)}-{k}" for k in range(4)], v) for v in (1.0, 2.0)}
    writers[1.0].save(path)

    def write(value: float) -> None:
        for _ in range(25):
            writers[value].save(path)

    def read() -> list[str]:
        bad = []
        for _ in range(60):
            g = Gallery.load(path, backend)
            tag = g.identities[0].split("-")[0]
            value = float(tag[1:])
            rows = np.concatenate([g._rows[n][0] for n in g.identities])
            if not all(n.startswith(tag) for n in g.identities) or not np.allclose(np.median(rows), value):
                bad.append(",".join(g.identities))
        return bad

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(write, 1.0), pool.submit(write, 2.0), pool.submit(read)]
        results = [f.result(timeout=120) for f in futures]
    assert results[2] == []


def test_nan_embeddings_get_one_rule_in_the_verifier_and_the_gallery(backend, tmp_path):
    """NaN compares false with every threshold: refused the same way wherever embeddings enter, a saved
    gallery's .npz included."""
    from runtime.heads import check_embeddings

    dim = backend.manifest.embedding_dim
    bad = np.ones((3, dim), np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="embeddings: 1 of 3 contain NaN or infinity"):
        check_embeddings(bad, dim, "b")
    g = Gallery(backend)
    with pytest.raises(GalleryError, match="1 of 3 contain NaN or infinity"):
        g.enroll("x", embeddings=bad)
    g.enroll("x", embeddings=np.ones((1, dim), np.float32))
    npz, _ = g.save(tmp_path / "g")
    with np.load(npz) as z:
        arrays = dict(z)
    arrays["embeddings"] = np.full_like(arrays["embeddings"], np.inf)
    np.savez(npz, **arrays)  # a tampered .npz: also wrong sha256, so give the json the new hash to reach the check
    meta = json.loads((tmp_path / "g.json").read_text())
    meta["npz"]["sha256"] = __import__("hashlib").sha256(npz.read_bytes()).hexdigest()
    (tmp_path / "g.json").write_text(json.dumps(meta))
    with pytest.raises(GalleryError, match=r"g\.npz: embeddings: 1 of 1 contain NaN or infinity"):
        Gallery.load(tmp_path / "g", backend)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (
            lambda m: m.update(identities=[{"name": "x", "images": 1}, {"name": "x", "images": 0}]),
            r"\['x'\] appear more than once",
        ),
        (lambda m: m.update(identities="x"), "identities must be a list"),
        (lambda m: m.update(identities=[{"name": 3, "images": 1}]), "names must be non-empty strings"),
        (lambda m: m.update(identities=[{"name": "x", "images": "one"}]), "identities must be a list"),
    ],
)
def test_a_tampered_gallery_json_is_refused_naming_it(backend, tmp_path, mutate, fragment):
    g = Gallery(backend)
    g.enroll("x", embeddings=np.ones((1, backend.manifest.embedding_dim), np.float32))
    g.save(tmp_path / "g")
    meta = json.loads((tmp_path / "g.json").read_text())
    mutate(meta)
    (tmp_path / "g.json").write_text(json.dumps(meta))
    with pytest.raises(GalleryError, match=r"g\.json: .*" + fragment):
        Gallery.load(tmp_path / "g", backend)
