"""A gallery of enrolled identities: enroll several images per identity, identify an image against all of them.

    import runtime
    from runtime.gallery import Gallery

    v = runtime.load("bundles/omniglot")              # or a backend: OnnxRuntimeBackend(bundle_dir)
    g = Gallery(v)
    g.enroll("alice", ["alice1.png", "alice2.png", "alice3.png"])
    g.enroll("bob", bob_embeddings)                    # (N, dim) embeddings stored earlier: not re-embedded
    r = g.identify("query.png", top_k=3)               # Identification: best first, and the decision
    print(r)                                           # "alice: distance 0.41 <= threshold 0.917 (...)"
    g.save("faces")                                    # faces.npz + faces.json, each written atomically
    g = Gallery.load("faces", v)                       # refused if made with another bundle's network

**The engine.** ``Gallery`` needs two things: embeddings of preprocessed images and scores of embedding pairs.
It takes anything with ``embed(x)`` (float32 NHWC, preprocessed per the manifest -> ``(N, dim)``) and
``score_embeddings(ea, eb)`` (``(N, dim)`` x 2 -> ``(N,)`` in the manifest's score units): every backend in
``runtime.backends``, or a verifier from ``runtime.load`` (its ``embed_preprocessed`` is used when present, and
its ``manifest``). Images are preprocessed here with ``runtime.images`` (paths, bytes, arrays in BGR unless
``rgb=True``, lists of them), so one image runs through the network once, at enrollment or identification.

**Templates and scores.** Every enrolled embedding is kept (in memory and in the saved ``.npz``); an identity's
*template* is the mean of its embeddings, re-normalised to unit length when the manifest says the embeddings are
L2-normalised (the prototype of prototypical networks). How a query is scored against an identity
(``aggregate``):

* ``"template"`` - one score: query vs the template. The default for distance heads (``head.kind ==
  "euclidean"``): one distance per identity, vectorised in numpy or a FAISS index, scales to large galleries.
* ``"mean"`` - the mean of the query's scores against each enrolled image. The default for learned heads:
  a learned head (``head.onnx``, e.g. ``|a - b|`` -> Dense -> sigmoid) was trained, and its threshold
  calibrated, on pairs of *single-image* embeddings. A mean embedding is a point such a head never saw (for
  ReLU features it is smoother and nearer to everything), so a template's P(same) is not the calibrated
  probability; the mean of per-image probabilities is. It costs one head evaluation per enrolled image
  (``head.onnx`` is a few dense layers); choose ``"template"`` for one evaluation per identity instead.
* ``"max"`` - the best per-image score (nearest neighbour).

Scores are always in the manifest's units (``ScoreSpec``: a probability or a distance, and which direction means
"same"). Candidates are ranked best first by that direction, and the decision is a match only when the best
candidate passes the threshold (the manifest's, or ``threshold=``); otherwise the answer is ``"unknown"``.

**Saving.** ``save(path)`` writes ``<path>.npz`` (the embeddings, who owns each, and the gallery's metadata) and
then ``<path>.json`` (the same metadata for people and tools: identities, the bundle's name, the sha256 of its
embedding graph, the dimension, the score spec, the aggregate, a threshold given to the gallery, and the
``.npz``'s sha256, hashed from the bytes written), each atomically, under an exclusive lock on the folder
(``load`` takes it shared), so two writers never interleave and a reader never pairs one writer's names with
another's embeddings. A save killed between the two renames leaves the new ``.npz`` beside the old ``.json``:
``load`` sees that the ``.npz`` is a later save of the same gallery (its ``id`` and ``generation``) and loads it
from the ``.npz``'s own metadata, so a crash at any instant leaves the old or the new gallery loadable.
``Gallery.load`` refuses a gallery made with a different network (another bundle, a re-exported or retrained
model: the embedding graph's sha256 differs) or dimension, and a ``.npz`` that does not belong to its ``.json``;
the message says which.

**Large galleries.** With ``faiss`` installed (optional, ``pip install faiss-cpu``), a distance head, the
``"template"`` aggregate and at least ``faiss_min_size`` identities, candidates come from a ``faiss.IndexFlatL2``
over the templates (exact search) and are re-scored with the same numpy distance as the head, so the scores do
not depend on whether FAISS was used. Without faiss, numpy does the same search.

A gallery may be shared by threads: enrollment and removal take a lock, identification reads a snapshot.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle.manifest import Manifest
from runtime.fileio import atomic_path, folder_lock, read_json, sha256_file, write_json_atomic
from runtime.heads import check_embeddings
from runtime.images import as_items, to_batch
from runtime.scoring import ScoreSpec

GALLERY_FORMAT = "siamese-edge-gallery"
GALLERY_SCHEMA = 1
AGGREGATES = ("template", "mean", "max")
UNKNOWN = "unknown"
FAISS_MIN_SIZE = 2048  # identities; below this numpy is as fast as FAISS and needs nothing extra
_SCORE_CHUNK = 8192  # pairs per call to a learned head


class GalleryError(ValueError):
    """A gallery that cannot be used with this bundle, or a bad gallery file; the message says why."""


# --- results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityScore:
    """One identity's score for a query. ``match``: whether this score alone passes the threshold."""

    identity: str
    score: float
    match: bool
    images: int  # how many images the identity has enrolled

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "score": self.score, "match": self.match, "images": self.images}


@dataclass(frozen=True)
class Identification:
    """The answer for one query: candidates best first, and the decision.

    identity: the best candidate when it passes the threshold, else None; label: that identity or "unknown".
    score: the best candidate's score (None for an empty gallery), in the units ``kind``/``same_when`` say.
    """

    identity: str | None
    score: float | None
    candidates: tuple[IdentityScore, ...]
    kind: str
    same_when: str
    threshold: float
    threshold_source: str
    aggregate: str

    @property
    def match(self) -> bool:
        return self.identity is not None

    @property
    def label(self) -> str:
        return self.identity if self.identity is not None else UNKNOWN

    def __str__(self) -> str:
        if not self.candidates:
            return f"{UNKNOWN}: the gallery is empty"
        best = self.candidates[0]
        what = ScoreSpec(self.kind, self.same_when, self.threshold).comparison(best.score)
        side = self.same_when
        tail = f"({self.aggregate} score; {side} means the same identity; threshold {self.threshold_source})"
        if self.match:
            return f"{best.identity}: {what} {tail}"
        return f"{UNKNOWN}: best {best.identity!r} {what} {tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "label": self.label,
            "match": self.match,
            "score": self.score,
            "kind": self.kind,
            "same_when": self.same_when,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "aggregate": self.aggregate,
            "candidates": [c.to_dict() for c in self.candidates],
        }


# --- the engine: a backend or a verifier -----------------------------------------------------------------------


class _Engine:
    """Adapts a backend (``embed`` on preprocessed batches) or a verifier (``embed_preprocessed``) and a manifest."""

    def __init__(self, engine: Any, manifest: Manifest | None):
        manifest = manifest if manifest is not None else getattr(engine, "manifest", None)
        if not isinstance(manifest, Manifest):
            raise TypeError(
                f"{type(engine).__name__} has no manifest: pass manifest=runtime.bundle.manifest.load_manifest(bundle_dir)"
            )
        embed = getattr(engine, "embed_preprocessed", None) or getattr(engine, "embed", None)
        if not callable(embed) or not callable(getattr(engine, "score_embeddings", None)):
            raise TypeError(
                f"{type(engine).__name__}: a gallery needs an engine with embed(x) and score_embeddings(ea, eb) "
                "(a runtime backend or runtime.load's verifier)"
            )
        self.obj = engine
        self.manifest = manifest
        self._embed = embed
        self.dim = int(manifest.embedding_dim)
        self.epsilon = manifest.head_epsilon

    def embed_images(self, images: Any, rgb: bool) -> tuple[np.ndarray, bool]:
        batch = to_batch(images, self.manifest.preprocessing, rgb=rgb)
        if len(batch.x) == 0:
            return np.zeros((0, self.dim), np.float32), batch.single
        e = np.asarray(self._embed(batch.x), dtype=np.float32).reshape(len(batch.x), self.dim)
        return e, batch.single

    def score(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        out = [
            np.asarray(
                self.obj.score_embeddings(
                    np.ascontiguousarray(ea[i : i + _SCORE_CHUNK]), np.ascontiguousarray(eb[i : i + _SCORE_CHUNK])
                ),
                np.float32,
            ).reshape(-1)
            for i in range(0, len(ea), _SCORE_CHUNK)
        ]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def _import_faiss():
    try:
        import faiss  # optional: pip install faiss-cpu
    except ImportError:
        return None
    return faiss


@dataclass(frozen=True)
class _Snapshot:
    names: tuple[str, ...]
    embeddings: np.ndarray  # (N, D) float32, every enrolled image
    owner: np.ndarray  # (N,) int64 index into names
    counts: np.ndarray  # (K,) images per identity
    templates: np.ndarray  # (K, D) float32
    templates64: np.ndarray  # (K, D) float64 (the distance is computed in float64, as runtime.heads does)
    index: Any  # a faiss index over the templates, or None


# --- the gallery -----------------------------------------------------------------------------------------------


class Gallery:
    """Identities enrolled with one bundle's network. See the module docstring.

    engine: a runtime backend or a verifier (``runtime.load``); manifest: the bundle's, when the engine has none.
    aggregate: "template", "mean" or "max" (None: "template" for distance heads, "mean" for learned heads).
    threshold: overrides the manifest's decision threshold (e.g. one calibrated for identification).
    use_faiss: None = when installed and worthwhile, True = required (error otherwise), False = never.
    """

    def __init__(
        self,
        engine: Any,
        manifest: Manifest | None = None,
        *,
        aggregate: str | None = None,
        threshold: float | None = None,
        use_faiss: bool | None = None,
        faiss_min_size: int = FAISS_MIN_SIZE,
    ):
        self._engine = _Engine(engine, manifest)
        m = self._engine.manifest
        self.manifest = m
        self.dim = self._engine.dim
        self.bundle = m.name
        self.model_id = m.embedding_sha256
        self.head_kind = m.head_kind
        self.l2_normalized = bool(m.l2_normalized)
        if aggregate is None:
            aggregate = "template" if m.head_kind == "euclidean" else "mean"
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate {aggregate!r}: expected one of {AGGREGATES}")
        self.aggregate = aggregate
        spec = m.score
        self.threshold_given = None if threshold is None else float(threshold)
        if threshold is not None:
            spec = spec.with_threshold(float(threshold), "given to the gallery")
        self.spec: ScoreSpec = spec
        self.faiss_min_size = int(faiss_min_size)
        self._faiss = None
        if use_faiss is not False:
            self._faiss = _import_faiss()
            if use_faiss and self._faiss is None:
                raise GalleryError("use_faiss=True but faiss is not installed (pip install faiss-cpu)")
            if use_faiss and (m.head_kind != "euclidean" or aggregate != "template"):
                raise GalleryError(
                    "use_faiss=True needs a distance head (head kind 'euclidean') and aggregate='template'; "
                    f"this gallery has head {m.head_kind!r}, aggregate {aggregate!r}"
                )
        self._force_faiss = bool(use_faiss)
        self._lock = threading.RLock()
        self._saved_as: tuple[str, int] = (uuid.uuid4().hex, 0)  # (id, generation) of the last save or load
        self._rows: dict[str, list[np.ndarray]] = {}  # identity -> list of (n_i, D) float32 blocks
        self._snapshot: _Snapshot | None = None

    # -- what is enrolled --

    @property
    def identities(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, identity: object) -> bool:
        return identity in self._rows

    def counts(self) -> dict[str, int]:
        """Images enrolled per identity."""
        with self._lock:
            return {k: int(sum(len(b) for b in v)) for k, v in self._rows.items()}

    @property
    def size(self) -> int:
        """Total enrolled images."""
        return sum(self.counts().values())

    def embeddings(self, identity: str) -> np.ndarray:
        """Every enrolled embedding of ``identity``, (n, dim) float32 (a copy)."""
        with self._lock:
            if identity not in self._rows:
                raise KeyError(f"{identity!r} is not enrolled")
            return np.concatenate(self._rows[identity]).copy()

    def template(self, identity: str) -> np.ndarray:
        """``identity``'s template: the mean embedding (unit length when the bundle's embeddings are)."""
        snap = self._state()
        try:
            return snap.templates[snap.names.index(identity)].copy()
        except ValueError:
            raise KeyError(f"{identity!r} is not enrolled") from None

    def uses_faiss(self) -> bool:
        """Whether identification currently searches a FAISS index."""
        return self._state().index is not None

    def info(self) -> dict[str, Any]:
        snap = self._state()
        return {
            "bundle": self.bundle,
            "embedding_sha256": self.model_id,
            "dim": self.dim,
            "head": self.head_kind,
            "aggregate": self.aggregate,
            "identities": len(snap.names),
            "images": int(len(snap.embeddings)),
            "score": self.spec.to_dict(),
            "search": "faiss IndexFlatL2" if snap.index is not None else "numpy",
        }

    def __repr__(self) -> str:
        i = self.info()
        return (
            f"Gallery(bundle={i['bundle']!r}, identities={i['identities']}, images={i['images']}, "
            f"aggregate={i['aggregate']!r}, search={i['search']!r})"
        )

    # -- inputs --

    def _as_embeddings(self, x: Any) -> tuple[np.ndarray, bool] | None:
        """(N, dim) float32 and whether it was one vector, if ``x`` is embeddings; None if it is images."""
        model = getattr(x, "model", None)
        is_emb = isinstance(x, np.ndarray) and (x.ndim == 1 or (x.ndim == 2 and hasattr(x, "model")))
        if not is_emb:
            return None
        if model is not None and self.model_id is not None and model != self.model_id:
            raise GalleryError(
                f"embeddings from another network (model {str(model)[:12]}..., bundle "
                f"{getattr(x, 'bundle', None)!r}) given to a gallery of bundle {self.bundle!r} "
                f"(model {self.model_id[:12]}...)"
            )
        return self._check_embeddings(x), x.ndim == 1

    def _check_embeddings(self, x: Any) -> np.ndarray:
        try:
            a = check_embeddings(x, self.dim, self.bundle)
        except ValueError as e:
            raise GalleryError(str(e)) from None
        return a.reshape(-1, self.dim).astype(np.float32)

    def _embed(self, images: Any, embeddings: Any, rgb: bool) -> tuple[np.ndarray, bool]:
        if (images is None) == (embeddings is None):
            raise ValueError("give images or embeddings=, not both")
        if embeddings is not None:
            got = self._as_embeddings(embeddings)
            if got is None:  # e.g. an (N, dim) plain array passed explicitly as embeddings
                return self._check_embeddings(embeddings), np.asarray(embeddings).ndim == 1
            return got
        got = self._as_embeddings(images)
        if got is not None:
            return got
        return self._engine.embed_images(images, rgb)

    # -- enrollment --

    def enroll(
        self, identity: str, images: Any = None, *, embeddings: Any = None, rgb: bool = False, replace: bool = False
    ) -> int:
        """Add images (paths, arrays, bytes or a list; or embeddings) to ``identity``; returns its image count.

        A 1-D array of length ``dim``, or a verifier's ``Embedding``, is taken as an embedding (an image is never
        1-D); pass stored ``(N, dim)`` matrices as ``embeddings=``. ``replace=True`` drops what was enrolled.
        """
        if not isinstance(identity, str) or not identity.strip():
            raise ValueError(f"identity {identity!r}: expected a non-empty string")
        if identity == UNKNOWN:
            raise ValueError(f"identity {UNKNOWN!r} is reserved for rejected queries")
        e, _ = self._embed(images, embeddings, rgb)
        if len(e) == 0:
            raise ValueError(f"enroll {identity!r}: no images given")
        with self._lock:
            if replace or identity not in self._rows:
                self._rows[identity] = []
            self._rows[identity].append(e)
            self._snapshot = None
            return int(sum(len(b) for b in self._rows[identity]))

    def enroll_many(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]], rgb: bool = False) -> dict[str, int]:
        """``{identity: images}`` (or pairs) -> image count per identity; images of all identities in one batch."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        flat: list[Any] = []
        spans: list[tuple[str, int, int]] = []
        for identity, imgs in pairs:
            n0 = len(flat)
            flat.extend(as_items(imgs)[0])  # one image, a list, or an NxHxWxC batch
            spans.append((identity, n0, len(flat)))
        e, _ = self._engine.embed_images(flat, rgb) if flat else (np.zeros((0, self.dim), np.float32), False)
        return {identity: self.enroll(identity, embeddings=e[a:b]) for identity, a, b in spans}

    def remove(self, identity: str) -> int:
        """Forget ``identity``; returns how many images it had. KeyError when it is not enrolled."""
        with self._lock:
            if identity not in self._rows:
                raise KeyError(f"{identity!r} is not enrolled")
            n = int(sum(len(b) for b in self._rows.pop(identity)))
            self._snapshot = None
            return n

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._snapshot = None

    # -- the search structures --

    def _state(self) -> _Snapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._build_snapshot()
            return self._snapshot

    def _build_snapshot(self) -> _Snapshot:
        names = tuple(self._rows)
        blocks = [np.concatenate(self._rows[n]) for n in names]
        counts = np.array([len(b) for b in blocks], dtype=np.int64)
        if blocks:
            emb = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
            owner = np.repeat(np.arange(len(names), dtype=np.int64), counts)
            t64 = np.stack([b.astype(np.float64).mean(axis=0) for b in blocks])
            if self.l2_normalized:
                t64 /= np.maximum(np.linalg.norm(t64, axis=1, keepdims=True), 1e-12)
            templates = t64.astype(np.float32)
            t64 = templates.astype(np.float64)  # the template *is* the float32 vector (as saved, as a backend sees it)
        else:
            emb = np.zeros((0, self.dim), np.float32)
            owner = np.zeros(0, np.int64)
            templates = np.zeros((0, self.dim), np.float32)
            t64 = np.zeros((0, self.dim), np.float64)
        index = None
        if self._wants_faiss(len(names)):
            index = self._faiss.IndexFlatL2(self.dim)
            index.add(np.ascontiguousarray(templates))
        return _Snapshot(names, emb, owner, counts, templates, t64, index)

    def _wants_faiss(self, n_identities: int) -> bool:
        if self._faiss is None or self.head_kind != "euclidean" or self.aggregate != "template" or not n_identities:
            return False
        return self._force_faiss or n_identities >= self.faiss_min_size

    # -- scoring and identification --

    def _distances(self, rows64: np.ndarray, q: np.ndarray) -> np.ndarray:
        """runtime.heads.euclidean_distance of one query against many rows (float64, rounded once to float32)."""
        sq = np.sum(np.square(rows64 - q.astype(np.float64)), axis=-1)
        return np.sqrt(np.maximum(sq, self._engine.epsilon)).astype(np.float32)

    def _pair_scores(self, snap: _Snapshot, rows: np.ndarray, rows64: np.ndarray | None, q: np.ndarray) -> np.ndarray:
        if self.head_kind == "euclidean":
            return self._distances(rows64 if rows64 is not None else rows.astype(np.float64), q)
        return self._engine.score(rows, np.broadcast_to(q, rows.shape))

    def scores(self, query: Any = None, *, embeddings: Any = None, rgb: bool = False) -> np.ndarray:
        """Every identity's score for each query: ``(Q, K)`` in ``identities`` order (manifest units)."""
        q, _ = self._embed(query, embeddings, rgb)
        snap = self._state()
        return np.stack([self._identity_scores(snap, row) for row in q]) if len(q) else np.zeros((0, len(snap.names)))

    def _identity_scores(self, snap: _Snapshot, q: np.ndarray) -> np.ndarray:
        """(K,) scores of one query against every identity, by the gallery's aggregate."""
        k = len(snap.names)
        if k == 0:
            return np.zeros(0, np.float32)
        if self.aggregate == "template":
            return self._pair_scores(snap, snap.templates, snap.templates64, q)
        per_image = self._pair_scores(snap, snap.embeddings, None, q).astype(np.float64)
        if self.aggregate == "mean":
            return (np.bincount(snap.owner, weights=per_image, minlength=k) / snap.counts).astype(np.float32)
        sim = self.spec.similarity(per_image)  # "max": the best per-image score, by the score's direction
        best = np.full(k, -np.inf)
        np.maximum.at(best, snap.owner, sim)
        return (best if self.spec.same_when == "high" else -best).astype(np.float32)

    def _ranked(self, snap: _Snapshot, q: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        k = len(snap.names)
        if k == 0:
            return []
        top_k = max(1, min(int(top_k), k))
        if snap.index is not None:
            _, ids = snap.index.search(np.ascontiguousarray(q[None], dtype=np.float32), top_k)
            idx = np.array([i for i in ids[0] if i >= 0], dtype=np.int64)
            s = self._distances(snap.templates64[idx], q)  # exact, as without FAISS
        else:
            idx = np.arange(k)
            s = self._identity_scores(snap, q)
        sim = self.spec.similarity(s)
        order = np.lexsort((idx, -sim))[:top_k]  # best first; ties by enrollment order
        return [(int(idx[i]), float(s[i])) for i in order]

    def identify(
        self, query: Any = None, *, embeddings: Any = None, top_k: int = 5, rgb: bool = False
    ) -> Identification | list[Identification]:
        """Rank the enrolled identities for a query image (or embedding); one ``Identification`` for one query,
        a list for a list (or an ``(N, dim)`` ``embeddings=``). The decision: the best candidate if it passes the
        threshold, else "unknown"."""
        if top_k < 1:
            raise ValueError(f"top_k {top_k}: expected >= 1")
        q, single = self._embed(query, embeddings, rgb)
        snap = self._state()
        out = [self._identification(snap, self._ranked(snap, row, top_k)) for row in q]
        return out[0] if single else out

    def _identification(self, snap: _Snapshot, ranked: list[tuple[int, float]]) -> Identification:
        spec = self.spec
        cands = tuple(IdentityScore(snap.names[i], s, bool(spec.is_match(s)), int(snap.counts[i])) for i, s in ranked)
        best = cands[0] if cands else None
        return Identification(
            identity=best.identity if best is not None and best.match else None,
            score=best.score if best is not None else None,
            candidates=cands,
            kind=spec.kind,
            same_when=spec.same_when,
            threshold=spec.threshold,
            threshold_source=spec.threshold_source,
            aggregate=self.aggregate,
        )

    # -- save and load --

    @staticmethod
    def paths(path: str | os.PathLike) -> tuple[Path, Path]:
        """(``.npz``, ``.json``) for a gallery path given with or without either suffix."""
        p = Path(path)
        stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p
        return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``<path>.npz`` then ``<path>.json`` (see the module docstring: atomic as a pair, locked against
        other writers); returns both paths."""
        npz_path, json_path = self.paths(path)
        with self._lock:
            snap = self._state()
            gallery_id, generation = self._saved_as
            meta = self._metadata(snap, npz_path.name, gallery_id, generation + 1)
            with folder_lock(npz_path.parent, exclusive=True):
                with atomic_path(npz_path) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(
                            f,
                            embeddings=snap.embeddings,
                            owner=snap.owner.astype(np.int32),
                            meta=np.array(json.dumps(meta)),
                        )
                    digest = sha256_file(tmp)  # the bytes written, not whatever the path holds after the rename
                write_json_atomic(json_path, {**meta, "npz": {"file": npz_path.name, "sha256": digest}})
            self._saved_as = (gallery_id, generation + 1)
        return npz_path, json_path

    def _metadata(self, snap: _Snapshot, npz_name: str, gallery_id: str, generation: int) -> dict[str, Any]:
        return {
            "format": GALLERY_FORMAT,
            "schema": GALLERY_SCHEMA,
            "id": gallery_id,
            "generation": generation,
            "bundle": {
                "name": self.bundle,
                "embedding_file": self.manifest.embedding_file,
                "embedding_sha256": self.model_id,
                "dim": self.dim,
                "l2_normalized": self.l2_normalized,
                "head": self.head_kind,
            },
            "score": self.spec.to_dict(),
            "threshold_given": self.threshold_given,
            "aggregate": self.aggregate,
            "identities": [{"name": n, "images": int(c)} for n, c in zip(snap.names, snap.counts)],
        }

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        engine: Any,
        manifest: Manifest | None = None,
        *,
        aggregate: str | None = None,
        threshold: float | None = None,
        use_faiss: bool | None = None,
        faiss_min_size: int = FAISS_MIN_SIZE,
    ) -> Gallery:
        """Read a gallery saved by ``save`` for ``engine`` (the same bundle's network, or GalleryError).

        ``aggregate`` defaults to the saved one; ``threshold`` to the one given when the gallery was made (if any),
        else the engine's manifest's."""
        npz_path, json_path = cls.paths(path)
        with folder_lock(npz_path.parent, exclusive=False):
            meta, emb, owner = _read_saved(npz_path, json_path)
        gallery = cls(
            engine,
            manifest,
            aggregate=aggregate or meta.get("aggregate"),
            threshold=threshold if threshold is not None else meta.get("threshold_given"),
            use_faiss=use_faiss,
            faiss_min_size=faiss_min_size,
        )
        b = meta.get("bundle", {})
        if b.get("embedding_sha256") != gallery.model_id or int(b.get("dim", -1)) != gallery.dim:
            raise GalleryError(
                f"{json_path}: made with bundle {b.get('name')!r} (embedding graph sha256 "
                f"{str(b.get('embedding_sha256'))[:12]}..., dim {b.get('dim')}), but this engine runs bundle "
                f"{gallery.bundle!r} (sha256 {str(gallery.model_id)[:12]}..., dim {gallery.dim}); embeddings of "
                "different networks do not compare: enroll the identities again with this bundle"
            )
        names, images = _identities(meta, json_path)
        if emb.ndim != 2 or emb.shape[1] != gallery.dim or owner.shape != (len(emb),):
            raise GalleryError(f"{npz_path}: embeddings {emb.shape} / owner {owner.shape} do not fit dim {gallery.dim}")
        try:
            check_embeddings(emb, gallery.dim, gallery.bundle, what=f"{npz_path}: embeddings")
        except ValueError as e:
            raise GalleryError(str(e)) from None
        counts = np.bincount(owner, minlength=len(names)) if len(owner) else np.zeros(len(names), np.int64)
        if len(counts) != len(names) or [int(c) for c in counts] != images:
            raise GalleryError(f"{npz_path}: image counts do not match {json_path.name}")
        for k, name in enumerate(names):
            gallery._rows[name] = [emb[owner == k]]
        if isinstance(meta.get("id"), str):
            gallery._saved_as = (meta["id"], int(meta.get("generation", 0)))
        return gallery


def _identities(meta: dict[str, Any], json_path: Path) -> tuple[list[str], list[int]]:
    """The saved identities' names and image counts; GalleryError naming the file when they are malformed or a
    name repeats (a repeated name would silently drop an identity)."""
    idents = meta.get("identities")
    try:
        names = [i["name"] for i in idents]
        images = [int(i["images"]) for i in idents]
    except (TypeError, KeyError, ValueError):
        raise GalleryError(
            f'{json_path}: identities must be a list of {{"name": str, "images": int}}, found {str(idents)[:80]}'
        ) from None
    if not all(isinstance(n, str) and n for n in names):
        raise GalleryError(f"{json_path}: identity names must be non-empty strings")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GalleryError(f"{json_path}: identities {repeated} appear more than once")
    return names, images


def _read_saved(npz_path: Path, json_path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The gallery's metadata, embeddings and owners: from the ``.json`` when the ``.npz`` is the one it lists;
    from the ``.npz``'s own metadata when it is a later save of the same gallery (a save killed between its two
    renames); else GalleryError naming the file."""
    meta = read_json(json_path, GalleryError, "no such gallery file")
    if not isinstance(meta, dict) or meta.get("format") != GALLERY_FORMAT:
        raise GalleryError(f"{json_path}: not a siamese-edge gallery (format {GALLERY_FORMAT!r} expected)")
    if meta.get("schema") != GALLERY_SCHEMA:
        raise GalleryError(f"{json_path}: gallery schema {meta.get('schema')}, this runtime reads {GALLERY_SCHEMA}")
    if not npz_path.is_file():
        raise GalleryError(f"{npz_path}: missing (the gallery's embeddings; {json_path.name} lists it)")
    listed = (meta.get("npz") or {}).get("sha256")
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            emb = np.asarray(z["embeddings"], np.float32)
            owner = np.asarray(z["owner"], np.int64)
            own = json.loads(str(z["meta"])) if "meta" in z.files else None
    except (OSError, ValueError, KeyError) as e:
        raise GalleryError(f"{npz_path}: not a gallery's embeddings ({e})") from None
    if sha256_file(npz_path) == listed:
        return meta, emb, owner
    later = (
        isinstance(own, dict)
        and own.get("id") is not None
        and own.get("id") == meta.get("id")
        and int(own.get("generation", 0)) > int(meta.get("generation", 0))
    )
    if not later:
        raise GalleryError(f"{npz_path}: sha256 does not match {json_path.name} (replaced or from an interrupted save)")
    warnings.warn(
        f"{json_path}: older than {npz_path.name} (a save was interrupted); loaded the newer save from the .npz",
        stacklevel=3,
    )
    return own, emb, owner


def identification_rate(results: Sequence[Identification], truth: Sequence[str | None]) -> float:
    """Share of queries answered correctly: the right identity, or "unknown" where ``truth`` is None."""
    if len(results) != len(truth):
        raise ValueError(f"{len(results)} results for {len(truth)} truths")
    if not results:
        return float("nan")
    return float(np.mean([r.identity == t for r, t in zip(results, truth)]))
