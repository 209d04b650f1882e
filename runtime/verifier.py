"""The verifier: load a bundle on the best backend here, embed images, score and verify pairs.

    import runtime
    v = runtime.load("bundles/demo")                 # backend="auto": see runtime.select
    r = v.verify("a.png", "b.png")                    # VerifyResult: score, kind, threshold, match
    print(r)                                          # "match: distance 0.21 <= threshold 0.68 (...)"

Embed once, score many: ``embed`` returns an ``Embedding`` (a float32 numpy array: ``(dim,)`` for one image,
``(N, dim)`` for a list), and every method that takes images also takes embeddings in their place, so a
reference image runs through the network once:

    ref = v.embed(cv2.imread("reference.png"))       # (dim,)
    for frame in frames:
        r = v.verify(ref, frame)                      # only the frame is embedded

What counts as an embedding: an ``Embedding`` (from ``embed``, or ``v.as_embedding(array)`` for vectors you
stored yourself), or any 1-D numpy array of length ``dim`` (an image is never 1-D). A plain 2-D array is
an image (a gray HxW one), so wrap stored ``(N, dim)`` matrices with ``as_embedding``. Embeddings remember
the network they came from and are refused by a verifier of another one.

One verifier may be shared by many threads: it holds no mutable state after ``load``, preprocessing is pure,
ONNX Runtime sessions are safe to ``run`` concurrently, and a backend that says it is not thread-safe
(``thread_safe = False``, e.g. a TensorRT execution context) is called under a lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime import select as sel
from runtime.bundle.layout import MANIFEST_NAME, REFERENCE_NPZ, BundleError
from runtime.bundle.manifest import Manifest, load_manifest
from runtime.bundle.parity_report import read_report
from runtime.bundle.reference import Reference
from runtime.heads import check_embeddings
from runtime.images import as_items, to_batch
from runtime.machine import cpu_name, package_version
from runtime.parity import ParityResult, TaskMetrics, compare, tolerances_for
from runtime.scoring import ScoreSpec
from runtime.speed import Speed, library_versions, machine_id, read_cached, speed_cache_path, timing_enabled

PARITY_CACHE_SCHEMA = 1


class BackendWarning(UserWarning):
    """A backend present here was not used (stale TensorRT plan, failed parity, failed to load)."""


# --- results and embeddings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """One pair's verdict, with everything needed to read the number.

    score: the model's output for the pair; kind: "probability" (P(same), a sigmoid) or "distance";
    same_when: "high" or "low" (which side of the threshold means the same identity); threshold and
    threshold_source: the decision boundary and where it came from; match: the decision.
    """

    score: float
    match: bool
    kind: str
    same_when: str
    threshold: float
    threshold_source: str

    @classmethod
    def from_score(cls, score: float, spec: ScoreSpec) -> VerifyResult:
        s = float(score)
        return cls(s, bool(spec.is_match(s)), spec.kind, spec.same_when, spec.threshold, spec.threshold_source)

    @property
    def meaning(self) -> str:
        """What the number means, in words (after its kind: "distance: low means the same identity")."""
        if self.kind == "probability" and self.same_when == "high":
            return "the probability that both show the same identity"
        return f"{'low' if self.same_when == 'low' else 'high'} means the same identity"

    def __str__(self) -> str:
        word = "match" if self.match else "no match"
        what = ScoreSpec(self.kind, self.same_when, self.threshold).comparison(self.score)
        return f"{word}: {what} ({self.meaning}; threshold {self.threshold_source})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "meaning": self.meaning}


class Embedding(np.ndarray):
    """float32 embeddings from ``Verifier.embed``: ``(dim,)`` for one image, ``(N, dim)`` for several.

    A plain numpy array in every other respect; ``model`` (the sha256 of the bundle's embedding graph) and
    ``bundle`` (its name) say where it came from, so embeddings of another network are refused, not compared.
    """

    model: str | None
    bundle: str | None

    def __new__(cls, data: Any, model: str | None = None, bundle: str | None = None) -> Embedding:
        obj = np.asarray(data, dtype=np.float32).view(cls)
        obj.model = model
        obj.bundle = bundle
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.model = getattr(obj, "model", None)
        self.bundle = getattr(obj, "bundle", None)

    def __reduce__(self):  # pickling keeps the provenance
        base = super().__reduce__()
        return (_rebuild_embedding, (base, self.model, self.bundle))


def _rebuild_embedding(base: Any, model: str | None, bundle: str | None) -> Embedding:
    fn, args, state = base[0], base[1], base[2]
    arr = fn(*args)
    arr.__setstate__(state)
    return Embedding(np.asarray(arr), model, bundle)


# --- the bundle's reference and the parity check ------------------------------------------------------------


def measure_parity(
    backend: Any,
    label: str,
    precision: str,
    ref: Reference,
    spec: ScoreSpec,
    note: str = "",
    task: TaskMetrics | None = None,
    estimate: bool = False,
) -> ParityResult:
    """Run the reference inputs through ``backend`` and compare with the Keras reference (runtime.parity); with
    ``task`` (AUC/EER, the exporter's) the labelled reference pairs are judged on verification too."""
    emb = np.asarray(backend.embed(ref.inputs), np.float32)
    scores = np.asarray(backend.score_embeddings(emb[ref.pair_a], emb[ref.pair_b]), np.float32)
    return compare(
        label,
        precision,
        ref.embeddings,
        emb,
        ref.scores,
        scores,
        spec,
        note=note,
        estimate=estimate,
        same=ref.same,
        task=task,
    )


def cache_dir() -> Path:
    """``$SIAMESE_EDGE_CACHE`` when set, else ``~/.cache/siamese-edge`` (the project's one cache)."""
    env = os.environ.get("SIAMESE_EDGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "siamese-edge"


def _library_version(backend_name: str) -> str:
    from runtime.backends.base import registered

    for dist in next((e.distributions for e in registered() if e.backend == backend_name), ()):
        version = package_version(dist)
        if version is not None:
            return f"{dist} {version}"
    return "unknown"


def parity_cache_key(manifest_sha256: str, label: str, precision: str, info: dict[str, Any]) -> str:
    """Everything a load-time parity result depends on: the bundle (its manifest hashes every file), the backend,
    provider, device and library version, the precision and the tolerances. Change any and the check reruns."""
    parts = {
        "schema": PARITY_CACHE_SCHEMA,
        "manifest": manifest_sha256,
        "label": label,
        "precision": precision,
        "backend": {k: str(info.get(k)) for k in ("backend", "provider", "device", "version", "engine", "plan")},
        "library": _library_version(str(info.get("backend", ""))),
        "tolerances": asdict(tolerances_for(precision)),
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _read_cache(key: str) -> dict[str, Any] | None:
    try:
        d = json.loads((cache_dir() / "parity" / f"{key}.json").read_text(encoding="utf-8"))
        return d if isinstance(d, dict) and d.get("status") in ("PASSED", "FAILED") else None
    except (OSError, ValueError):
        return None


def _write_cache(key: str, result: ParityResult) -> None:
    from runtime.fileio import write_json_atomic

    try:
        write_json_atomic(cache_dir() / "parity" / f"{key}.json", result.to_dict())
    except OSError:
        pass  # a read-only home is fine: the check reruns next time


# --- the verifier ------------------------------------------------------------------------------------------------


class Verifier:
    """A loaded bundle on one backend. Make it with ``runtime.load``; see the module docstring."""

    def __init__(self, bundle_dir: Path, manifest: Manifest, selection: sel.Selection, threads: int | None = None):
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.backend = selection.backend
        self.selection = selection
        self.threads = threads
        # a precision whose scores shift gets the threshold parity refitted for it (the user's --threshold still wins)
        refit = selection.verdict.threshold
        self.spec: ScoreSpec = manifest.score
        if refit is not None:
            self.spec = manifest.score.with_threshold(
                refit, f"refitted for {selection.precision} by parity (manifest: {manifest.score.threshold:.4g})"
            )
        self.preprocessing = manifest.preprocessing
        self.dim = int(manifest.embedding_dim)
        self.model_id: str = manifest.embedding_sha256 or f"bundle:{manifest.name}"
        self._lock = None if self.backend.thread_safe else threading.Lock()  # the Backend contract says which
        self._info = self._make_info()

    # -- embeddings --

    @property
    def name(self) -> str:
        return self.manifest.name

    def preprocess(self, images: Any, rgb: bool = False) -> np.ndarray:
        """Images (any accepted form) -> the network's float32 NHWC input, per the manifest."""
        return to_batch(images, self.preprocessing, rgb=rgb).x

    def embed(self, images: Any, rgb: bool = False) -> Embedding:
        """Images -> ``Embedding``: ``(dim,)`` for one image, ``(N, dim)`` for a list or an NxHxWxC array.

        ``rgb=True`` says in-memory 3/4-channel arrays are RGB(A); by default they are BGR(A) as OpenCV reads.
        """
        batch = to_batch(images, self.preprocessing, rgb=rgb)
        e = self.embed_preprocessed(batch.x)
        return e[0] if batch.single else e

    def embed_preprocessed(self, x: np.ndarray) -> Embedding:
        """Already preprocessed float32 NHWC (``preprocess``'s output) -> ``(N, dim)`` Embedding."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.preprocessing.input_shape):
            raise ValueError(
                f"preprocessed batch of shape {x.shape}: expected (N, {', '.join(map(str, self.preprocessing.input_shape))})"
            )
        if len(x) == 0:
            return self._wrap(np.zeros((0, self.dim), np.float32))
        out = self._call(self.backend.embed, x)
        if not np.all(np.isfinite(out)):  # e.g. an FP16 overflow: every decision would silently be "no match"
            rows = np.flatnonzero(~np.all(np.isfinite(np.asarray(out).reshape(len(x), -1)), axis=1)).tolist()
            raise ValueError(
                f"{self._info.get('variant', self.backend)} {self._info.get('precision', '')} computed NaN or infinity "
                f"for batch rows {rows[:8]}: this backend cannot run this bundle at this precision"
            )
        return self._wrap(out)

    def as_embedding(self, array: Any) -> Embedding:
        """Mark stored vectors (``(dim,)`` or ``(N, dim)``, e.g. from ``np.load``) as this model's embeddings."""
        if isinstance(array, Embedding):
            self._check_model(array)
        return self._wrap(check_embeddings(array, self.dim, self.name, what="embedding"))

    def _wrap(self, a: Any) -> Embedding:
        return Embedding(a, self.model_id, self.name)

    def _check_model(self, e: Embedding) -> None:
        if e.model is not None and e.model != self.model_id:
            raise ValueError(
                f"embedding from bundle {e.bundle!r} (model {str(e.model)[:12]}...) given to a verifier of bundle "
                f"{self.name!r} (model {self.model_id[:12]}...): embeddings only compare within one network"
            )

    def _is_embedding(self, item: Any) -> bool:
        return isinstance(item, Embedding) or (isinstance(item, np.ndarray) and item.ndim == 1)

    def _embeddings(self, x: Any, rgb: bool) -> tuple[np.ndarray, bool]:
        """Images and/or embeddings -> ((N, dim) float32, single). Images are embedded in one batch."""
        if self._is_embedding(x):
            e = self.as_embedding(x)
            return (e[None] if e.ndim == 1 else e), e.ndim == 1
        if isinstance(x, (list, tuple)) and any(self._is_embedding(i) for i in x):
            rows: list[np.ndarray | None] = []
            images: list[Any] = []
            for item in x:
                if self._is_embedding(item):
                    e = self.as_embedding(item)
                    rows.extend(e[None] if e.ndim == 1 else e)
                else:
                    sub, _ = as_items(item)
                    rows.extend([None] * len(sub))
                    images.extend(sub)
            embedded = iter(self.embed(images, rgb=rgb)) if images else iter(())
            return np.stack([r if r is not None else next(embedded) for r in rows]).astype(np.float32), False
        e = self.embed(x, rgb=rgb)
        return (e[None] if e.ndim == 1 else e), e.ndim == 1

    # -- scores and decisions --

    def score_embeddings(self, ea: Any, eb: Any) -> np.ndarray:
        """(N, dim) x (N, dim) -> (N,) float32 scores in the manifest's units; one side may have N = 1."""
        a = np.asarray(self.as_embedding(ea), np.float32).reshape(-1, self.dim)
        b = np.asarray(self.as_embedding(eb), np.float32).reshape(-1, self.dim)
        if len(a) != len(b):
            if len(a) == 1:
                a = np.broadcast_to(a, b.shape)
            elif len(b) == 1:
                b = np.broadcast_to(b, a.shape)
            else:
                raise ValueError(f"cannot pair {len(a)} with {len(b)}: give equal counts, or one against many")
        if len(a) == 0:
            return np.zeros(0, np.float32)
        out = self._call(self.backend.score_embeddings, np.ascontiguousarray(a), np.ascontiguousarray(b))
        return np.asarray(out, np.float32).reshape(-1)

    def score(self, a: Any, b: Any, rgb: bool = False) -> float | np.ndarray:
        """The model's score for pairs: a float for one image/embedding against one, else an (N,) array.

        Each side is one image or embedding, or a list of them (equal lengths, or one against many).
        """
        if not (self._holds_embedding(a) or self._holds_embedding(b)):
            # images on both sides go through the network together: verify(a, b) is one call at batch 2
            items_a, single_a = as_items(a)
            items_b, single_b = as_items(b)
            both = self.embed([*items_a, *items_b], rgb=rgb)
            ea, eb = both[: len(items_a)], both[len(items_a) :]
        else:
            ea, single_a = self._embeddings(a, rgb)
            eb, single_b = self._embeddings(b, rgb)
        s = self.score_embeddings(ea, eb)
        return float(s[0]) if single_a and single_b else s

    def _holds_embedding(self, x: Any) -> bool:
        return self._is_embedding(x) or (isinstance(x, (list, tuple)) and any(self._is_embedding(i) for i in x))

    def decide(self, score: float) -> VerifyResult:
        """A raw score -> VerifyResult with the bundle's threshold (for scores computed elsewhere)."""
        return VerifyResult.from_score(score, self.spec)

    def verify(self, a: Any, b: Any, rgb: bool = False) -> VerifyResult | list[VerifyResult]:
        """Is it the same identity? One ``VerifyResult`` for one pair, a list for lists (as ``score``)."""
        s = self.score(a, b, rgb=rgb)
        if isinstance(s, float):
            return self.decide(s)
        return [self.decide(v) for v in s]

    def _call(self, fn, *args):
        if self._lock is None:
            return fn(*args)
        with self._lock:
            return fn(*args)

    # -- what runs, and proof --

    def check_parity(self, note: str = "") -> ParityResult:
        """Re-run the bundle's reference.npz on this backend and compare with Keras (no cache)."""
        ref = Reference.load(self.bundle_dir / REFERENCE_NPZ)
        info = self._info
        spec = self.manifest.score  # parity judges against the manifest's threshold (and refits from it)
        return self._call(measure_parity, self.backend, info["parity_label"], info["precision"], ref, spec, note)

    def _make_info(self) -> dict[str, Any]:
        s = self.selection
        raw = dict(self.backend.info())
        provider = raw.get("provider")
        device = raw.get("device") or s.candidate.entry.device  # the backend says, else its registry entry
        info = {
            **raw,
            "backend": raw.get("backend", s.candidate.backend),
            "variant": s.candidate.variant,
            "provider": provider,
            "precision": raw.get("precision", s.precision),
            "device": device,
            "threads": self.threads,
            "bundle": self.name,
            "bundle_dir": str(self.bundle_dir),
            "embedding_dim": self.dim,
            "score": self.spec.describe(),
            "parity": s.verdict.describe(),
            "parity_status": {True: "PASSED", False: "FAILED", None: "unknown"}[s.verdict.passed],
            "parity_label": sel.parity_label(s.candidate.variant, raw),
            "requested": s.requested,
            "reason": s.reason,
            "attempts": [asdict(a) for a in s.attempts],
            "timings": dict(s.timings),  # ms per pair by option key ("openvino:bf16") when auto ranked by speed
            "timing_source": s.timing_source,
        }
        if device == "cpu":
            info.setdefault("device_name", cpu_name())
        return info

    def info(self) -> dict[str, Any]:
        """backend, provider, precision, device, bundle, and why this backend (``reason``); a copy."""
        return json.loads(json.dumps(self._info, default=str))

    def __repr__(self) -> str:
        i = self._info
        return f"Verifier(bundle={self.name!r}, backend={i['variant']!r}, precision={i['precision']!r})"


# --- load --------------------------------------------------------------------------------------------------------


def load(
    bundle_dir: str | os.PathLike,
    backend: str = "auto",
    precision: str | None = None,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> Verifier:
    """Load a bundle (every file's sha256 checked against the manifest) on a backend; see ``runtime.select``.

    backend: "auto" (the fastest present that passes parity), "onnxruntime", "openvino" or "tensorrt".
    precision: "fp32", "fp16" or "bf16"; None lets the backend pick its fastest precision that passes parity.
    threads: intra-op threads for CPU backends. providers: ONNX Runtime execution providers (implies it).

    Raises BundleError (bad or tampered bundle, naming the file), BackendUnavailable (nothing can run it here,
    with every candidate's reason) or ValueError (bad arguments).
    """
    sel.check_request(backend, precision)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads {threads!r}: expected a positive integer")
    root = Path(bundle_dir)
    manifest = load_manifest(root)  # refuses a tampered bundle, naming the file
    report = read_report(root / manifest.parity_file)
    manifest_sha = hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()
    cands = sel.candidates(backend, precision, providers)
    if precision is None and manifest.embedding.int8_file:
        # the bundle's INT8 graph competes too: auto takes it only when it passes its gates and is fastest here
        cands = [
            replace(c, precisions=(*c.precisions, "int8"))
            if "int8" in c.entry.precisions and "int8" not in c.precisions and None not in c.precisions
            else c
            for c in cands
        ]

    def warn(msg: str) -> None:
        warnings.warn(msg, BackendWarning, stacklevel=4)

    def probe(cand: sel.Candidate) -> tuple[bool, str]:
        asked = cand.precisions[0] if len(cand.precisions) == 1 else None
        presence = cand.entry.present(root, asked, cand.providers)
        if presence.warning:
            warn(presence.warning)
        return presence.ok, presence.why

    def build(cand: sel.Candidate, prec: str | None) -> Any:
        return cand.entry.build(root, manifest, precision=prec, threads=threads, providers=cand.providers)

    ref_holder: list[Reference] = []

    def reference() -> Reference:
        """reference.npz, read once per load and only when a parity check or a timing needs it (BundleError)."""
        if not ref_holder:
            ref_holder.append(Reference.load(root / REFERENCE_NPZ))
        return ref_holder[0]

    # the runtime chose the precision (or the backend): it must be proven; the user named both: report only
    gate = backend == "auto" or precision is None

    def judge(cand: sel.Candidate, prec: str, b: Any) -> sel.Verdict:
        info = dict(b.info())
        label = sel.parity_label(cand.variant, info)
        row = report.row(label, prec) if report is not None else None
        if row is not None:
            return sel.verdict_from_row(row)
        key = parity_cache_key(manifest_sha, label, prec, info)
        cached = _read_cache(key)
        if cached is not None:
            refit = cached.get("threshold")
            return sel.Verdict(
                cached["status"] == "PASSED",
                "checked at load (cached)",
                ParityResult.from_dict(cached).brief(),
                cached,
                refit,
            )
        if not gate:
            return sel.Verdict(None, "not checked", f"parity.json has no {label} {prec} row; run with --parity")
        try:
            ref = reference()
        except BundleError as e:  # nothing to check against: unknown, so auto moves on
            return sel.Verdict(None, "not checked", str(e))
        result = measure_parity(b, label, prec, ref, manifest.score, note="checked at load")
        _write_cache(key, result)
        d = result.to_dict()
        return sel.Verdict(result.passed, "checked at load", result.brief(), d, result.threshold)

    speed = _speed(manifest, report, manifest_sha, reference) if gate and timing_enabled() else None
    selection = sel.select(cands, backend, probe, build, judge, gate=gate, warn=warn, speed=speed)
    if selection.verdict.passed is False:
        warn(
            f"{selection.candidate.variant} {selection.precision} was asked for but fails parity for this bundle "
            f"({selection.verdict.describe()})"
        )
    return Verifier(root, manifest, selection, threads)


def _speed(manifest: Manifest, report: Any, manifest_sha: str, reference: Callable[[], Reference]) -> Speed:
    """auto's timings for this bundle here: parity.json's when it was exported on this machine with these
    libraries, else the cache's, else none yet (``runtime.select`` times the candidates, on two of the reference's
    inputs, and saves them)."""
    from runtime.backends.base import registered

    machine = machine_id()
    libraries = library_versions(d for e in registered() for d in e.distributions)
    shape = (2, *manifest.preprocessing.input_shape)

    def pair() -> np.ndarray:
        try:
            inputs = reference().inputs[:2].astype(np.float32)
        except BundleError:
            inputs = np.zeros((0, *shape[1:]), np.float32)
        return np.resize(inputs, shape) if len(inputs) else np.zeros(shape, np.float32)

    recorded = getattr(report, "speed", None)
    path = speed_cache_path(manifest_sha, machine, libraries)
    if recorded is not None and recorded.matches(machine, libraries):
        return Speed(dict(recorded.pair_ms), pair, machine, libraries, path, "timed at export on this machine")
    cached = read_cached(path)
    if cached is not None:
        return Speed(cached, pair, machine, libraries, path, "timed at an earlier load (cached)")
    return Speed({}, pair, machine, libraries, path, "timed at this load")
