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


def rotation_classes(
    x: np.ndarray, labels: np.ndarray, class_groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class rotated by 90, 180 and 270 degrees becomes a new class (Vinyals et al. 2016 on Omniglot),
    in a new group per rotation, so same-group episodes never mix a character with its rotation.

    Returns (images x4, labels, class_groups) for training only; evaluation data is never rotated.
    """
    return _as_new_classes([x] + [np.rot90(x, k, axes=(1, 2)) for k in (1, 2, 3)], labels, class_groups)


def mirror_classes(
    x: np.ndarray, labels: np.ndarray, class_groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class mirrored left-right becomes a new class, in a new group (x2): a mirrored character is a
    plausible character of another alphabet, and more classes is what a metric learner generalises from.

    Returns (images x2, labels, class_groups) for training only; evaluation data is never mirrored.
    """
    return _as_new_classes([x, x[:, :, ::-1]], labels, class_groups)


def _as_new_classes(
    copies: list[np.ndarray], labels: np.ndarray, class_groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack transformed copies of a dataset; each copy's classes and groups are numbered after the last's."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1
    groups = np.zeros(n_classes, np.int64) if class_groups is None else np.asarray(class_groups, np.int64)
    n_groups = int(groups.max()) + 1
    out_x = np.ascontiguousarray(np.concatenate(copies))
    out_labels = np.concatenate([labels + k * n_classes for k in range(len(copies))])
    out_groups = np.concatenate([groups + k * n_groups for k in range(len(copies))])
    return out_x, out_labels, out_groups
