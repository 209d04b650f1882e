"""Computing the Keras reference a bundle is checked against: real images, their embeddings and pair scores
(``runtime.bundle.reference.Reference`` is the file, read and written there).

Images come from ``--calib-images``, else from the data named in the model card, else (and the report
says so) random inputs in the preprocessed value range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.bundle.reference import Reference
from runtime.preprocess import IMAGE_SUFFIXES, read_image
from train.models import Siamese
from train.sampling import PairSampler


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _from_calib_dir(siamese: Siamese, folder: Path, n: int, seed: int):
    if not folder.is_dir():
        raise FileNotFoundError(f"--calib-images {folder}: not a folder of images")
    files = _images_in(folder)
    if len(files) < 2:
        raise ValueError(f"--calib-images {folder}: found {len(files)} image files, expected at least 2")
    rng = np.random.default_rng(seed)
    if len(files) > n:
        files = [files[i] for i in sorted(rng.choice(len(files), size=n, replace=False))]
    pre = siamese.config.preprocessing
    x = np.stack([pre(read_image(f)) for f in files])
    parents = [f.parent for f in files]
    labels = None
    if len(set(parents)) > 1 and all(p != folder for p in parents):
        names = sorted(set(parents))
        labels = np.array([names.index(p) for p in parents])
    return x, [str(f) for f in files], labels, f"calib-images: {folder}"


def _from_card_data(siamese: Siamese, card: dict, n: int, seed: int, per_class: int = 4):
    """About ``n`` images of the card's data, ``per_class`` of each identity picked (the reference wants pairs of
    several identities; calibration wants ``n`` images spread over every identity)."""
    from train import data as datasets

    spec = card.get("options", {}).get("data")
    if not spec:
        return None
    try:
        ds = datasets.open_dataset(spec, split=card.get("options", {}).get("split", "background"))
    except (ValueError, OSError):
        return None
    if not isinstance(ds, datasets.ImageSet):
        return None
    rng = np.random.default_rng(seed)
    classes = [c for c, idx in enumerate(ds.indices_by_class()) if len(idx) >= 2]
    picked_classes = rng.choice(classes, size=min(len(classes), max(2, n // per_class)), replace=False)
    by_class = ds.indices_by_class()
    idx = []
    for c in picked_classes:
        members = by_class[c]
        idx.extend(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    sub = ds.subset(np.array(sorted(idx)))
    x, sub = datasets.load_images(sub, siamese.config.preprocessing, progress=False)
    return x, list(sub.items), np.asarray(sub.labels), f"model card data: {ds.name}"


def _random_inputs(siamese: Siamese, n: int, seed: int):
    pre = siamese.config.preprocessing
    u8 = np.random.default_rng(seed).integers(0, 256, size=(n, pre.height, pre.width, pre.channels), dtype=np.uint8)
    x = np.stack([pre(img) for img in u8])
    return x, [f"random-{i}" for i in range(n)], None, "random inputs (no real images available)"


def _real_images(siamese: Siamese, calib_images, card: dict | None, n_images: int, seed: int, per_class: int = 4):
    """``--calib-images``, else the model card's data: (inputs, items, labels, source), or None without either."""
    if calib_images:
        return _from_calib_dir(siamese, Path(calib_images), n_images, seed)
    if card:
        return _from_card_data(siamese, card, n_images, seed, per_class)
    return None


def calibration_inputs(
    siamese: Siamese, calib_images: str | Path | None, card: dict | None, n_images: int, seed: int
) -> tuple[np.ndarray, str]:
    """Real images for INT8 calibration, preprocessed: ``--calib-images``, else the model card's training data;
    (inputs, where they came from). Random inputs calibrate nothing, so without real images this is an error."""
    from export.int8 import Int8Error

    classes = max(1, int((card or {}).get("data", {}).get("classes") or 1))  # spread over every identity
    got = _real_images(siamese, calib_images, card, n_images, seed, per_class=max(4, -(-n_images // classes)))
    if got is None:
        raise Int8Error(
            "INT8 calibration needs real images and none were found: pass --calib-images DIR (a folder of the "
            "images the model will see), or export a model whose model card names its training data"
        )
    x, _, _, source = got
    return x.astype(np.float32), source


def build_reference(
    siamese: Siamese,
    calib_images: str | Path | None = None,
    card: dict | None = None,
    n_images: int = 64,
    n_pairs: int = 256,
    seed: int = 0,
) -> Reference:
    """Pick reference images (see the module docstring), run Keras on them, and score pairs."""
    got = _real_images(siamese, calib_images, card, n_images, seed) or _random_inputs(siamese, n_images, seed)
    x, items, labels, source = got
    x = x.astype(np.float32)
    rng = np.random.default_rng([seed, 1])
    if labels is not None and len(np.unique(labels)) >= 2:
        pairs = PairSampler(labels).sample(n_pairs, rng)
        a, b, same = pairs.a, pairs.b, pairs.same.astype(np.int8)
    else:
        # unknown identities: random pairs, plus each image with itself (a known "same" the scores must keep)
        half = n_pairs // 2
        a = np.concatenate([rng.integers(len(x), size=half), np.arange(n_pairs - half) % len(x)])
        b = np.concatenate([rng.integers(len(x), size=half), np.arange(n_pairs - half) % len(x)])
        same = np.concatenate([np.full(half, -1, np.int8), np.ones(n_pairs - half, np.int8)])
    emb = siamese.embed(x)
    scores = siamese.score_embeddings(emb[a], emb[b])
    return Reference(x, emb, a.astype(np.int64), b.astype(np.int64), scores, same, items, source)
