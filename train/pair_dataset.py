"""Batches of image pairs for ``model.fit``: sampled per epoch from class-labelled images, or fixed pairs."""

from __future__ import annotations

import keras
import numpy as np

from train.augment import AffineAugment
from train.sampling import PairSampler


class SampledPairs(keras.utils.PyDataset):
    """Each epoch draws fresh balanced pairs; batch ``i`` of epoch ``e`` is a function of (seed, e, i)."""

    def __init__(
        self,
        x: np.ndarray,
        sampler: PairSampler,
        targets_fn,
        batch_size: int,
        steps: int,
        seed: int,
        augment: AffineAugment | None = None,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.sampler, self.targets_fn = x, sampler, targets_fn
        self.batch_size, self.steps, self.seed, self.augment = batch_size, steps, seed, augment
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pairs = self.sampler.sample(self.batch_size, rng)
        xa, xb = self.x[pairs.a], self.x[pairs.b]
        if self.augment is not None:
            xa, xb = self.augment(xa, rng), self.augment(xb, rng)
        return (xa, xb), self.targets_fn(pairs.same)


class FixedPairs(keras.utils.PyDataset):
    """Explicit labelled pairs (annos.csv folders, pair CSVs), reshuffled each epoch."""

    def __init__(self, xa, xb, same, targets_fn, batch_size: int, seed: int, augment: AffineAugment | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.xa, self.xb, self.same, self.targets_fn = xa, xb, np.asarray(same, bool), targets_fn
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.epoch = 0

    def __len__(self) -> int:
        return max(1, int(np.ceil(len(self.xa) / self.batch_size)))

    def __getitem__(self, i: int):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.xa))
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        xa, xb = self.xa[idx], self.xb[idx]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            xa, xb = self.augment(xa, rng), self.augment(xb, rng)
        return (xa, xb), self.targets_fn(self.same[idx])


class EpisodeBatches(keras.utils.PyDataset):
    """Batches for the supervised contrastive loss: (images, class-in-episode) from an EpisodeSampler."""

    def __init__(self, x: np.ndarray, sampler, steps: int, seed: int, augment: AffineAugment | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.sampler, self.steps, self.seed, self.augment = x, sampler, steps, seed, augment
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        idx, classes = self.sampler.sample(rng)
        xb = self.x[idx]
        if self.augment is not None:
            xb = self.augment(xb, rng)
        return xb, classes.astype(np.int32)
