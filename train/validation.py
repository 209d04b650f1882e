"""Fixed validation pairs over a store: scored through one embedding per image, never held as pair arrays.

Every unique validation image is embedded once per scoring and pairs are scored from the embeddings, so
streamed data is read once per epoch and memory holds embeddings, not images. With a streamed store the
images are read once up front: pairs with an unreadable image are dropped with one warning, before any
epoch relies on their labels.
"""

from __future__ import annotations

import warnings

import numpy as np
from tqdm.auto import tqdm

from train.data.errors import DatasetWarning, check_most_kept
from train.data.store import ImageStore, SubsetImages
from train.pair_dataset import FixedPairs, ItemBatches, as_tf_dataset

# validation batches hold at most this many input pixels (16 images at 105x105; between 8 and 128 images): the
# activations of an eager VGG16 pass grow with the batch (measured: +115 MB at 16 images, +720 MB at 64)
BATCH_PIXELS = 16 * 105 * 105


def batch_images(input_shape: tuple[int, int, int]) -> int:
    """Images per validation batch for inputs of ``input_shape``."""
    return max(8, min(128, BATCH_PIXELS // (input_shape[0] * input_shape[1])))


class ValidationPairs:
    """Pairs ``(a[k], b[k])`` of the items of ``images``; ``same[k]`` is True for one identity."""

    def __init__(self, images: ImageStore, a: np.ndarray, b: np.ndarray, same: np.ndarray, workers: int) -> None:
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        self.items, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
        self.images = SubsetImages(images, self.items)
        self.a, self.b = inverse[: len(a)], inverse[len(a) :]
        self.same = np.asarray(same, bool)
        self.workers = workers
        self.batch = batch_images(self.images.input_shape)

    def __len__(self) -> int:
        return len(self.same)

    def drop_unreadable(self, name: str, progress: bool = True) -> None:
        """For a streamed store: read every image once and drop the pairs that hold an unreadable one (the
        store names the files; one warning here counts the pairs)."""
        batches = ItemBatches(self.images, self.batch)
        ok = np.ones(len(self.images), bool)
        start = 0
        bar = tqdm(total=len(self.images), desc="validation images", unit="img", disable=not progress)
        for _, batch_ok in as_tf_dataset(batches, self.workers).as_numpy_iterator():
            ok[start : start + len(batch_ok)] = batch_ok
            start += len(batch_ok)
            bar.update(len(batch_ok))
        bar.close()
        keep = ok[self.a] & ok[self.b]
        if keep.all():
            return
        warnings.warn(
            f"{name}: {int((~keep).sum())} of {len(self)} validation pairs dropped: {int((~ok).sum())} of their "
            f"{len(ok)} images are unreadable (named above)",
            DatasetWarning,
            stacklevel=2,
        )
        check_most_kept(name, int(keep.sum()), len(self), "validation pairs hold an unreadable image")
        self.a, self.b, self.same = self.a[keep], self.b[keep], self.same[keep]

    def embed(self, siamese) -> np.ndarray:
        """One embedding per unique validation image (float32, items x dim)."""
        batches = ItemBatches(self.images, self.batch)
        outs = [siamese.embed(x) for x, _ in as_tf_dataset(batches, self.workers).as_numpy_iterator()]
        return np.concatenate(outs)

    def scores(self, siamese) -> np.ndarray:
        """(pairs,) scores in the model's own units, as ``siamese.score`` on the pairs' images would give."""
        e = self.embed(siamese)
        return siamese.score_embeddings(e[self.a], e[self.b])

    def fit_data(self, targets_fn, seed: int):
        """A tf.data pipeline of ((xa, xb), targets) in a fixed order, for ``fit``'s validation loss."""
        pairs = FixedPairs(
            self.images, self.a, self.b, self.same, targets_fn, max(1, self.batch // 2), seed, shuffle=False
        )
        return as_tf_dataset(pairs, self.workers)

    def pair_images(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The images of pairs ``k`` (a montage's few), read from the store."""
        return self.images.take(self.a[k])[0], self.images.take(self.b[k])[0]
