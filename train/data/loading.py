"""Decode and preprocess a whole dataset into arrays, through ``runtime.preprocess`` (what the edge runs).

A thread pool does the work: OpenCV releases the GIL while decoding and resizing. Unreadable images are
skipped with one warning (count and first names) or, with ``skip_bad=False``, raise ``ImageReadError``
naming the file, before anything reaches TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np
from tqdm.auto import tqdm

from runtime.preprocess import ImageReadError, Preprocessing, preprocess_image
from train.data.errors import DatasetError, check_most_kept, warn_names
from train.data.imageset import ImageSet, PairSet

CHUNK = 64


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def preprocess_items(
    items: Sequence[str],
    read: Callable[[str], np.ndarray],
    preprocessing: Preprocessing,
    *,
    progress: bool = True,
    skip_bad: bool = True,
    desc: str = "images",
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (float32 N x H x W x C with unreadable rows left zero, bool mask of readable rows, error messages)."""
    n = len(items)
    out = np.zeros((n, *preprocessing.input_shape), dtype=np.float32)
    ok = np.ones(n, dtype=np.bool_)
    errors: list[str] = []

    def work(start: int) -> list[tuple[int, str]]:
        bad = []
        for i in range(start, min(start + CHUNK, n)):
            try:
                out[i] = preprocess_image(read(items[i]), preprocessing)
            except ImageReadError as e:
                if not skip_bad:
                    raise
                bad.append((i, str(e)))
        return bad

    workers = workers or default_workers()
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        if workers == 1 or n <= CHUNK:
            results = []
            for start in range(0, n, CHUNK):
                results.append(work(start))
                bar.update(min(CHUNK, n - start))
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="load-images") as pool:
                futures = {pool.submit(work, s): s for s in range(0, n, CHUNK)}
                results = []
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in done:
                        if f.exception() is not None:
                            for p in pending:
                                p.cancel()
                            raise f.exception()
                        results.append(f.result())
                        bar.update(min(CHUNK, n - futures[f]))
    for bad in results:
        for i, msg in bad:
            ok[i] = False
            errors.append((i, msg))
    errors.sort()
    return out, ok, [m for _, m in errors]


def load_images(
    ds: ImageSet,
    preprocessing: Preprocessing,
    *,
    progress: bool = True,
    skip_bad: bool = True,
    workers: int | None = None,
) -> tuple[np.ndarray, ImageSet]:
    """-> (float32 N x H x W x C network inputs, the ``ImageSet`` of the items kept, aligned with them)."""
    x, ok, errors = preprocess_items(
        ds.items, ds._source.read, preprocessing, progress=progress, skip_bad=skip_bad, desc=ds.name, workers=workers
    )
    if errors:
        warn_names(f"{ds.name}: unreadable images skipped", errors, total=len(ds))
        if not ok.any():
            raise DatasetError(f"{ds.source}: none of its {len(ds)} images could be read (first: {errors[0]})")
        return x[ok], ds.subset(ok)
    return x, ds


def pair_index(ps: PairSet) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each image of a pair set once: (unique item ids, indices of every pair's a and b among them)."""
    unique = list(dict.fromkeys(ps.items_a + ps.items_b))
    index = {item: i for i, item in enumerate(unique)}
    ia = np.array([index[i] for i in ps.items_a], dtype=np.int64)
    ib = np.array([index[i] for i in ps.items_b], dtype=np.int64)
    return unique, ia, ib


def decode_pairs(
    ps: PairSet,
    preprocessing: Preprocessing,
    *,
    progress: bool = True,
    skip_bad: bool = True,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> (x: each image once, a, b: indices into x, same); pairs with an unreadable image dropped with one
    warning."""
    unique, ia, ib = pair_index(ps)
    x, ok, errors = preprocess_items(
        unique, ps.read, preprocessing, progress=progress, skip_bad=skip_bad, desc=ps.name, workers=workers
    )
    keep = ok[ia] & ok[ib]
    if errors:
        check_most_kept(ps.source, int(keep.sum()), len(ps), "pairs hold an unreadable image", errors)
        warn_names(
            f"{ps.name}: unreadable images skipped ({int((~keep).sum())} of {len(ps)} pairs dropped)",
            errors,
            total=len(unique),
            stacklevel=4,
        )
    return x, ia[keep], ib[keep], ps.same[keep].copy()


def load_pairs(
    ps: PairSet,
    preprocessing: Preprocessing,
    *,
    progress: bool = True,
    skip_bad: bool = True,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (xa, xb, same): each image read once; pairs with an unreadable image dropped with one warning."""
    x, ia, ib, same = decode_pairs(ps, preprocessing, progress=progress, skip_bad=skip_bad, workers=workers)
    return x[ia], x[ib], same
