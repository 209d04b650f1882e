"""The public API's rows: what a user's code pays per pair. ``runtime.load(bundle)`` (backend "auto"), then
``verify(path_a, path_b)`` on two image files (read, preprocessed, embedded together at batch 2, scored,
decided), one ``embed([path_a, path_b])`` of the same two files and ``score_embeddings`` of their two embeddings
(what verify adds), timed alternately (so a busy moment of a
shared machine falls on both), for the targets "verify vs Keras predict on the same pair" and "verify vs one
embed of both images".

The two files are ``--images``' first two, or the bundle's reference inputs written back as PNG files at the
network's input size (the preprocessing inverted), in a folder the caller owns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench.rows import image_files
from runtime.bundle.manifest import Manifest
from runtime.preprocess import Preprocessing
from runtime.timing import latency_stats


def to_uint8(x: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """One preprocessed HxWxC input back to the uint8 image (RGB or gray) it came from: the preprocessing's
    ``(image * scale - mean) / std`` inverted."""
    img = (np.asarray(x, np.float64) * np.asarray(spec.std) + np.asarray(spec.mean)) / spec.scale
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img[..., 0] if img.shape[-1] == 1 else img


def pair_files(
    manifest: Manifest, x: np.ndarray, ref_index: int, images_dir: str | None, folder: Path
) -> tuple[list[str], str]:
    """Two image files for the verify rows and where they came from."""
    if images_dir:
        files = image_files(images_dir, 2)
        if len(files) == 2:
            return [str(p) for p in files], f"the first two images of {images_dir}"
    import cv2

    out = []
    for k, i in enumerate((0, ref_index)):
        img = to_uint8(x[i], manifest.preprocessing)
        path = folder / f"pair_{'ab'[k]}.png"
        if not cv2.imwrite(str(path), img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the pair image")
        out.append(str(path))
    h, w, _ = manifest.preprocessing.input_shape
    return out, f"two of the bundle's reference inputs written as {w}x{h} PNG files"


def measure_api(
    bundle_dir: Path, files: Sequence[str], repeats: int, warmup: int, budget_s: float, threads: int | None
) -> dict[str, Any]:
    """``verify(a, b)``, ``embed([a, b])`` and ``score_embeddings`` through ``runtime.load(bundle_dir)``,
    alternately; {"error"} if the bundle does not load."""
    import runtime

    t0 = time.perf_counter()
    try:
        verifier = runtime.load(bundle_dir, threads=threads)
    except Exception as e:  # noqa: BLE001 - reported in the table; the backend rows stand without it
        return {"error": f"runtime.load failed: {type(e).__name__}: {e}"}
    load_s = time.perf_counter() - t0
    a, b = files
    ea, eb = verifier.embed(a), verifier.embed(b)
    calls = {  # score: what verify adds to the embedding (the head or the distance, on two embeddings)
        "verify": lambda: verifier.verify(a, b),
        "embed": lambda: verifier.embed([a, b]),
        "score": lambda: verifier.score_embeddings(ea, eb),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    start = time.perf_counter()
    for i in range(max(0, warmup) + max(1, repeats)):
        for name in sorted(calls, reverse=bool(i % 2)):  # each goes first every other time
            t = time.perf_counter()
            calls[name]()
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s and len(times["verify"]) >= min(3, repeats):
            break
    result = verifier.verify(a, b)
    info = verifier.info()
    return {
        "backend": info.get("variant") or info.get("backend"),
        "precision": info.get("precision"),
        "reason": info.get("reason"),
        "load_s": load_s,
        "files": list(files),
        "verify": latency_stats(np.asarray(times["verify"])),
        "embed_pair": latency_stats(np.asarray(times["embed"])),
        "score_embeddings": latency_stats(np.asarray(times["score"])),
        "score": float(result.score),
        "match": bool(result.match),
    }
