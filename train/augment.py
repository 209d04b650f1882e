"""Affine augmentation as in Koch et al. 2015: small rotations, shears, scales and shifts.

Each transform is applied with probability one half; images are preprocessed float32 HxWxC arrays,
so this runs after ``runtime.preprocess`` and never changes what deployment sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AffineAugment:
    rotation_deg: float = 10.0
    shear: float = 0.3
    scale: tuple[float, float] = (0.8, 1.2)
    shift_px: float = 2.0
    probability: float = 0.5

    def matrix(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """A random 2x3 affine matrix about the image centre."""
        p = self.probability
        theta = np.deg2rad(rng.uniform(-self.rotation_deg, self.rotation_deg)) if rng.random() < p else 0.0
        sx_, sy_ = rng.uniform(-self.shear, self.shear, 2) if rng.random() < p else (0.0, 0.0)
        sx, sy = rng.uniform(*self.scale, 2) if rng.random() < p else (1.0, 1.0)
        tx, ty = rng.uniform(-self.shift_px, self.shift_px, 2) if rng.random() < p else (0.0, 0.0)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        shear = np.array([[1.0, sx_], [sy_, 1.0]])
        scale = np.diag([sx, sy])
        a = rot @ shear @ scale
        c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        t = c - a @ c + np.array([tx, ty])
        return np.hstack([a, t[:, None]]).astype(np.float32)

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a float32 NxHxWxC batch; returns a new array."""
        n, h, w, c = batch.shape
        out = np.empty_like(batch)
        for i in range(n):
            m = self.matrix(h, w, rng)
            warped = cv2.warpAffine(batch[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[i] = warped.reshape(h, w, c)
        return out


@dataclass(frozen=True)
class ClassVariants:
    """Training classes grown by transformed copies, as indices: item ``j`` is base item ``base[j]`` rotated
    ``rot[j]`` x 90 degrees, then mirrored left-right where ``flip[j]``; ``labels`` and ``class_groups`` number
    each copy's classes and groups after the previous copy's. Nothing is decoded or copied to build it."""

    base: np.ndarray
    rot: np.ndarray
    flip: np.ndarray
    labels: np.ndarray
    class_groups: np.ndarray

    def __len__(self) -> int:
        return len(self.base)


def class_variants(
    labels: np.ndarray, class_groups: np.ndarray | None, rotations: bool = False, mirror: bool = False
) -> ClassVariants:
    """Each class rotated by 90, 180 and 270 degrees (``rotations``; Vinyals et al. 2016 on Omniglot) and/or
    mirrored left-right (``mirror``, after the rotations) becomes a new class in a new group, so same-group
    episodes never mix a character with its rotation or mirror image. For training only; evaluation data is
    never transformed."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1
    groups = np.zeros(n_classes, np.int64) if class_groups is None else np.asarray(class_groups, np.int64)
    v = ClassVariants(
        np.arange(len(labels)), np.zeros(len(labels), np.int64), np.zeros(len(labels), bool), labels, groups
    )
    if rotations:
        v = _copies(v, 4, rot=lambda k, r: r + k, flip=lambda k, f: f)
    if mirror:
        v = _copies(v, 2, rot=lambda k, r: r, flip=lambda k, f: f | bool(k))
    return v


def _copies(v: ClassVariants, n: int, rot, flip) -> ClassVariants:
    """``n`` copies of ``v``; copy ``k`` has its classes and groups numbered after copy ``k - 1``'s."""
    n_classes, n_groups = int(v.labels.max()) + 1, int(v.class_groups.max()) + 1
    return ClassVariants(
        base=np.tile(v.base, n),
        rot=np.concatenate([rot(k, v.rot) for k in range(n)]),
        flip=np.concatenate([flip(k, v.flip) for k in range(n)]),
        labels=np.concatenate([v.labels + k * n_classes for k in range(n)]),
        class_groups=np.concatenate([v.class_groups + k * n_groups for k in range(n)]),
    )


def transform(x: np.ndarray, rot: int, flip: bool) -> np.ndarray:
    """An HxWxC image or NxHxWxC batch rotated ``rot`` x 90 degrees, then mirrored left-right if ``flip``."""
    out = np.rot90(x, int(rot), axes=(-3, -2))
    return out[..., ::-1, :] if flip else out


class VariantImages:
    """A store (``train.data.store``) of base items seen through ``ClassVariants``: its item ``j`` is the
    transformed base item, computed per batch, so rotation and mirror classes cost no memory."""

    def __init__(self, store, variants: ClassVariants) -> None:
        self.store, self.variants = store, variants
        self.input_shape = store.input_shape

    def __len__(self) -> int:
        return len(self.variants)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, np.int64)
        x, ok = self.store.take(self.variants.base[idx])
        for k, (r, f) in enumerate(zip(self.variants.rot[idx], self.variants.flip[idx])):
            if r or f:
                x[k] = transform(x[k], r, f).copy()  # a view of x[k] itself
        return x, ok


def _expand(x: np.ndarray, v: ClassVariants) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = np.empty((len(v), *x.shape[1:]), x.dtype)
    for r in np.unique(v.rot):
        for f in np.unique(v.flip):
            rows = np.flatnonzero((v.rot == r) & (v.flip == f))
            if len(rows):
                out[rows] = transform(x[v.base[rows]], r, f)
    return out, v.labels, v.class_groups


def rotation_classes(
    x: np.ndarray, labels: np.ndarray, class_groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``class_variants(rotations=True)`` applied to an array: (images x4, labels, class_groups)."""
    return _expand(x, class_variants(labels, class_groups, rotations=True))


def mirror_classes(
    x: np.ndarray, labels: np.ndarray, class_groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``class_variants(mirror=True)`` applied to an array: (images x2, labels, class_groups)."""
    return _expand(x, class_variants(labels, class_groups, mirror=True))
