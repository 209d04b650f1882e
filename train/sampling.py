"""Pair sampling: balanced same/different pairs, negatives from the same alphabet, seeded.

Koch et al. draw pairs uniformly over classes; one-shot tests ask to tell apart characters of *one*
alphabet, so by default negatives come from the same group (alphabet) whenever it has another class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    a: np.ndarray  # item indices
    b: np.ndarray
    same: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.a)


class PairSampler:
    """Draws balanced pairs of item indices from per-item class labels (and per-class groups)."""

    def __init__(
        self,
        labels: np.ndarray,
        class_groups: np.ndarray | None = None,
        same_group_negatives: float = 1.0,
    ):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError("pair sampler: expected a non-empty 1-D array of class labels")
        if not 0.0 <= same_group_negatives <= 1.0:
            raise ValueError(f"same_group_negatives {same_group_negatives}: expected a value in [0, 1]")
        self.labels = labels
        self.classes = np.unique(labels)
        if len(self.classes) < 2:
            raise ValueError(f"pair sampler: found {len(self.classes)} class; need at least 2 for negative pairs")
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], self.classes)
        self._members = np.split(order, bounds[1:])  # item indices per class, aligned with self.classes
        sizes = np.array([len(m) for m in self._members])
        self._pos_classes = np.flatnonzero(sizes >= 2)
        if len(self._pos_classes) == 0:
            raise ValueError("pair sampler: every class has a single image; need a class with 2 or more for positives")
        if class_groups is None:
            groups = np.zeros(len(self.classes), np.int64)
        else:
            groups = np.asarray(class_groups, dtype=np.int64)[self.classes]
        self._groups = groups
        self._group_members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
        self.same_group_negatives = same_group_negatives

    def _pick_item(self, cls_pos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.array([self._members[c][rng.integers(len(self._members[c]))] for c in cls_pos], dtype=np.int64)

    def sample(self, n: int, rng: np.random.Generator | int) -> Pairs:
        """``n`` pairs, half same (rounded down) and half different, in random order."""
        rng = np.random.default_rng(rng)
        n_pos = n // 2
        n_neg = n - n_pos
        # positives: uniform over classes that have two items, two distinct items
        pc = self._pos_classes[rng.integers(len(self._pos_classes), size=n_pos)]
        pa = np.empty(n_pos, np.int64)
        pb = np.empty(n_pos, np.int64)
        for k, c in enumerate(pc):
            i, j = rng.choice(len(self._members[c]), size=2, replace=False)
            pa[k], pb[k] = self._members[c][i], self._members[c][j]
        # negatives: a class, then another class from its group (with the given probability) or anywhere
        c1 = rng.integers(len(self.classes), size=n_neg)
        c2 = np.empty(n_neg, np.int64)
        within = rng.random(n_neg) < self.same_group_negatives
        for k, c in enumerate(c1):
            pool = self._group_members[self._groups[c]]
            if within[k] and len(pool) >= 2:
                o = pool[rng.integers(len(pool) - 1)]
                c2[k] = o if o != c else pool[-1]
            else:
                o = rng.integers(len(self.classes) - 1)
                c2[k] = o if o != c else len(self.classes) - 1
        na, nb = self._pick_item(c1, rng), self._pick_item(c2, rng)
        a = np.concatenate([pa, na])
        b = np.concatenate([pb, nb])
        same = np.concatenate([np.ones(n_pos, bool), np.zeros(n_neg, bool)])
        perm = rng.permutation(n)
        return Pairs(a[perm], b[perm], same[perm])


def split_items(
    labels: np.ndarray, class_groups: np.ndarray | None, val_fraction: float, by: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation item indices, split by whole classes (``by="classes"``) or by items within each class.

    By classes is what one-shot learning measures (validation characters never seen in training);
    by items suits datasets with few classes (the digits).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if by == "classes":
        classes = np.unique(labels)
        n_val = max(2, int(round(len(classes) * val_fraction)))
        if n_val >= len(classes) - 1:
            raise ValueError(f"cannot hold out {n_val} of {len(classes)} classes for validation; use --val-split items")
        val_classes = rng.choice(classes, size=n_val, replace=False)
        is_val = np.isin(labels, val_classes)
    elif by == "items":
        is_val = np.zeros(len(labels), bool)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            # classes with 4+ items go to both sides with at least 2 items each (a positive pair per side)
            k = min(max(int(round(len(idx) * val_fraction)), 2), len(idx) - 2)
            if len(idx) >= 4 and val_fraction > 0:
                is_val[rng.choice(idx, size=k, replace=False)] = True
    else:
        raise ValueError(f"split by {by!r}: expected 'classes' or 'items'")
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


class EpisodeSampler:
    """Batches of ``classes`` classes x ``per_class`` items. With probability ``same_group`` the classes are
    taken group by group (all of one alphabet's characters, then another's, ...), so most negatives in a batch
    are hard, same-alphabet ones, as in the within-alphabet one-shot test; otherwise from anywhere."""

    def __init__(
        self,
        labels: np.ndarray,
        class_groups: np.ndarray | None,
        classes: int,
        per_class: int = 2,
        same_group: float = 1.0,
    ):
        labels = np.asarray(labels, dtype=np.int64)
        if classes < 2 or per_class < 2:
            raise ValueError(f"episodes of {classes} classes x {per_class}: need at least 2 classes of 2 items")
        present, counts = np.unique(labels, return_counts=True)
        usable = present[counts >= per_class]
        if len(usable) < classes:
            raise ValueError(
                f"episodes need {classes} classes with {per_class}+ items each; the data has {len(usable)}"
            )
        self.classes, self.per_class, self.same_group = classes, per_class, same_group
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], present)
        members = dict(zip(present.tolist(), np.split(order, bounds[1:])))
        self._members = [members[c] for c in usable]
        groups = np.zeros(len(usable), np.int64) if class_groups is None else np.asarray(class_groups)[usable]
        self._by_group = [np.flatnonzero(groups == g) for g in np.unique(groups)]

    def _grouped_classes(self, rng: np.random.Generator) -> np.ndarray:
        chosen: list[np.ndarray] = []
        need = self.classes
        for g in rng.permutation(len(self._by_group)):
            pool = self._by_group[g]
            take = rng.choice(pool, size=min(need, len(pool)), replace=False)
            chosen.append(take)
            need -= len(take)
            if need == 0:
                break
        return np.concatenate(chosen)

    def sample(self, rng: np.random.Generator | int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, class index within the episode), both of length classes * per_class."""
        rng = np.random.default_rng(rng)
        if rng.random() < self.same_group:
            chosen = self._grouped_classes(rng)
        else:
            chosen = rng.choice(len(self._members), size=self.classes, replace=False)
        items = np.concatenate([rng.choice(self._members[c], size=self.per_class, replace=False) for c in chosen])
        return items, np.repeat(np.arange(self.classes), self.per_class)
