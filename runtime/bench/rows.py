"""The runtime's rows of the table: the images they are timed on, one backend per row of the registry
(``bench_rows()``), and its pair latency at batch 1 and throughput at each of ``BATCHES``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import bench_rows
from runtime.bundle.layout import REFERENCE_NPZ
from runtime.bundle.manifest import Manifest
from runtime.timing import latency_stats, throughput_stats, time_calls

BATCHES = (8, 32)
DEFAULT_BACKENDS = tuple(row for row, _, _ in bench_rows())  # the registry's rows: onnxruntime, openvino-bf16, ...


def image_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The image files under ``folder``, sorted (what ``--images`` times on)."""
    from runtime.preprocess import IMAGE_SUFFIXES

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


def bench_images(bundle_dir: Path, manifest: Manifest, images_dir: str | None, n: int = 32) -> tuple[np.ndarray, str]:
    """At least ``n`` preprocessed images (NHWC float32) and where they came from; repeated when fewer exist."""
    if images_dir:
        from runtime.images import preprocess_many

        files = image_files(images_dir, max(n, 64))
        if not files:
            raise SystemExit(f"--images {images_dir}: no image files found")
        x = preprocess_many([str(p) for p in files], manifest.preprocessing)
        source = f"{len(files)} images from {images_dir}"
    else:
        ref = bundle_dir / REFERENCE_NPZ
        if ref.is_file():
            with np.load(ref, allow_pickle=False) as z:
                x = np.asarray(z["inputs"], np.float32)
            source = f"{len(x)} preprocessed inputs from {REFERENCE_NPZ}"
        else:
            rng = np.random.default_rng(0)
            x = rng.random((n, *manifest.preprocessing.input_shape), dtype=np.float32)
            source = f"{n} random inputs (the bundle has no {REFERENCE_NPZ})"
    if len(x) < n:
        x = np.concatenate([x] * (-(-n // len(x))))
    return np.ascontiguousarray(x, np.float32), source


def make_backend(name: str, bundle_dir: Path, manifest: Manifest, threads: int | None) -> tuple[Any | None, str]:
    """(backend, "") or (None, why it is skipped here), for one of the registry's benchmark rows."""
    rows = {row: (e, precision) for row, e, precision in bench_rows()}
    if name not in rows:
        raise ValueError(f"backend {name!r}: expected one of {', '.join(DEFAULT_BACKENDS)}")
    e, precision = rows[name]
    presence = e.present(bundle_dir, precision, None)
    if not presence.ok:
        return None, presence.why
    try:
        return e.build(bundle_dir, manifest, precision=precision, threads=threads), ""
    except Exception as exc:  # noqa: BLE001 - e.g. a GPU provider present without a usable GPU
        return None, f"did not load: {exc}"


def bench_backend(
    backend: Any, x: np.ndarray, ref_index: int, repeats: int, batch_repeats: int, warmup: int, budget_s: float
) -> dict[str, Any]:
    """Pair latency at batch 1 (embed one image + score against the cached reference) and throughput."""
    ref = np.asarray(backend.embed(x[ref_index : ref_index + 1]), np.float32)  # computed once
    n = len(x)

    def pair(i: int) -> Any:
        j = i % n
        return backend.score_embeddings(backend.embed(x[j : j + 1]), ref)

    out: dict[str, Any] = {"latency_b1": latency_stats(time_calls(pair, repeats, warmup, budget_s)), "throughput": {}}
    for b in BATCHES:
        xb = np.ascontiguousarray(x[:b])
        t = time_calls(lambda _i, xb=xb, b=b: backend.embed(xb, batch_size=b), batch_repeats, min(warmup, 2), budget_s)
        out["throughput"][str(b)] = throughput_stats(t, b)
    # the pair scores on the check pairs (x[i], reference), to compare with Keras
    m = min(8, n)
    e = np.asarray(backend.embed(x[:m]), np.float32)
    out["check_scores"] = np.asarray(backend.score_embeddings(e, np.repeat(ref, m, axis=0)), np.float32).tolist()
    return out
