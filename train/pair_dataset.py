"""Batches for ``model.fit``: which items a batch holds is drawn from the index (sampled pairs, fixed pairs,
episodes); the pixels come from a store (``train.data.store``: decoded in memory, or read on the fly).

Each batch is a pure function of (seed, epoch, batch number), so ``as_tf_dataset`` can build batches in
parallel tf.data workers, ahead of the training step, and a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from train.augment import AffineAugment
from train.data.errors import DatasetError
from train.data.store import ImageStore
from train.sampling import EpisodeSampler, PairSampler

PREFETCH = 2  # batches kept ready beyond those being built


class Batches(Protocol):
    """A sequence of numpy batches with a tf.data signature; ``epoch`` is set by ``train.callbacks.EpochSeed``."""

    epoch: int

    def __len__(self) -> int: ...

    def batch(self, i: int) -> Any: ...

    def signature(self) -> Any: ...


def _image_spec(images: ImageStore):
    import tensorflow as tf

    return tf.TensorSpec((None, *images.input_shape), tf.float32)


def _pair_signature(images: ImageStore):
    import tensorflow as tf

    return (_image_spec(images), _image_spec(images)), tf.TensorSpec((None,), tf.float32)


def _readable_pairs(xa, xb, same, ok, where: str):
    if ok.all():
        return xa, xb, same
    if not ok.any():
        raise DatasetError(f"{where}: no pair of this batch has two readable images")
    return xa[ok], xb[ok], same[ok]


class SampledPairs:
    """Each epoch draws fresh balanced pairs; batch ``i`` of epoch ``e`` is a function of (seed, e, i)."""

    def __init__(
        self,
        images: ImageStore,
        sampler: PairSampler,
        targets_fn: Callable[[np.ndarray], np.ndarray],
        batch_size: int,
        steps: int,
        seed: int,
        augment: AffineAugment | None = None,
    ) -> None:
        self.images, self.sampler, self.targets_fn = images, sampler, targets_fn
        self.batch_size, self.steps, self.seed, self.augment = batch_size, steps, seed, augment
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def signature(self):
        return _pair_signature(self.images)

    def batch(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pairs = self.sampler.sample(self.batch_size, rng)
        xa, oka = self.images.take(pairs.a)
        xb, okb = self.images.take(pairs.b)
        xa, xb, same = _readable_pairs(xa, xb, pairs.same, oka & okb, f"epoch {self.epoch + 1}, batch {i}")
        if self.augment is not None:
            xa, xb = self.augment(xa, rng), self.augment(xb, rng)
        return (xa, xb), self.targets_fn(same)


class FixedPairs:
    """Explicit labelled pairs of store items (annos.csv folders, pair CSVs, validation pairs), reshuffled each
    epoch unless ``shuffle`` is False."""

    def __init__(
        self,
        images: ImageStore,
        a: np.ndarray,
        b: np.ndarray,
        same: np.ndarray,
        targets_fn: Callable[[np.ndarray], np.ndarray],
        batch_size: int,
        seed: int,
        augment: AffineAugment | None = None,
        shuffle: bool = True,
    ) -> None:
        self.images, self.targets_fn = images, targets_fn
        self.a, self.b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        self.same = np.asarray(same, bool)
        self.batch_size, self.seed, self.augment, self.shuffle = batch_size, seed, augment, shuffle
        self.epoch = 0

    def __len__(self) -> int:
        return max(1, int(np.ceil(len(self.a) / self.batch_size)))

    def signature(self):
        return _pair_signature(self.images)

    def batch(self, i: int):
        n = len(self.a)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        xa, oka = self.images.take(self.a[idx])
        xb, okb = self.images.take(self.b[idx])
        xa, xb, same = _readable_pairs(xa, xb, self.same[idx], oka & okb, f"epoch {self.epoch + 1}, batch {i}")
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            xa, xb = self.augment(xa, rng), self.augment(xb, rng)
        return (xa, xb), self.targets_fn(same)


class EpisodeBatches:
    """Batches for the supervised contrastive loss: (images, class-in-episode) from an EpisodeSampler."""

    def __init__(
        self,
        images: ImageStore,
        sampler: EpisodeSampler,
        steps: int,
        seed: int,
        augment: AffineAugment | None = None,
    ) -> None:
        self.images, self.sampler, self.steps, self.seed, self.augment = images, sampler, steps, seed, augment
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def signature(self):
        import tensorflow as tf

        return _image_spec(self.images), tf.TensorSpec((None,), tf.int32)

    def batch(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        idx, classes = self.sampler.sample(rng)
        x, ok = self.images.take(idx)
        if not ok.all():
            if ok.sum() < 2:
                raise DatasetError(f"epoch {self.epoch + 1}, episode {i}: fewer than 2 readable images")
            x, classes = x[ok], classes[ok]
        if self.augment is not None:
            x = self.augment(x, rng)
        return x, classes.astype(np.int32)


class ItemBatches:
    """Consecutive store items in batches, in order (embedding every validation image once)."""

    def __init__(self, images: ImageStore, batch_size: int) -> None:
        self.images, self.batch_size = images, batch_size
        self.epoch = 0

    def __len__(self) -> int:
        return max(1, int(np.ceil(len(self.images) / self.batch_size)))

    def signature(self):
        import tensorflow as tf

        return _image_spec(self.images), tf.TensorSpec((None,), tf.bool)

    def batch(self, i: int):
        idx = np.arange(i * self.batch_size, min((i + 1) * self.batch_size, len(self.images)))
        return self.images.take(idx)


@contextmanager
def batch_errors(batches: Batches) -> Iterator[None]:
    """Inside: what building a batch of ``batches`` raised (a ``DatasetError`` naming the files) comes out as
    itself, not as the TensorFlow error that wraps it with a traceback."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError:
        error = getattr(batches, "error", None)
        if error is not None:
            raise error from None
        raise


def as_tf_dataset(batches: Batches, workers: int):
    """A tf.data pipeline over ``batches``: up to ``workers`` batches built at once in tf.data's threads, in
    order, and ``PREFETCH`` more kept ready. A new iterator (each epoch in ``fit``) reads ``batches.epoch``."""
    import tensorflow as tf

    signature = batches.signature()
    flat = tf.nest.flatten(signature)

    def build(i):
        try:
            return [
                np.asarray(t, dtype=s.dtype.as_numpy_dtype)
                for t, s in zip(tf.nest.flatten(batches.batch(int(i))), flat)
            ]
        except Exception as e:  # kept so batch_errors can raise it as it was, not wrapped by TensorFlow
            batches.error = e
            raise

    def make(i):
        tensors = tf.numpy_function(build, [i], [s.dtype for s in flat], stateful=True)
        for t, s in zip(tensors, flat):
            t.set_shape(s.shape)
        return tf.nest.pack_sequence_as(signature, tensors)

    ds = tf.data.Dataset.range(len(batches)).map(make, num_parallel_calls=max(1, workers), deterministic=True)
    return ds.prefetch(PREFETCH)
