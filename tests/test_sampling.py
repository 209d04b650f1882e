"""train.sampling: balanced, correct and seeded pairs; same-group negatives; train/validation splits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from train.sampling import PairSampler, split_items

# 13 classes: groups 0, 1, 2 hold four classes each, group 3 holds class 12 alone
N_CLASSES = 13
GROUPS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3])


def _labels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 7, N_CLASSES)
    labels = np.repeat(np.arange(N_CLASSES), sizes)
    return rng.permutation(labels)  # items of a class are not contiguous


LABELS = _labels()


def _check_pairs_correct(sampler: PairSampler, labels: np.ndarray, n: int, seed: int):
    p = sampler.sample(n, seed)
    assert len(p) == n and len(p.a) == len(p.b) == len(p.same) == n
    assert p.same.dtype == bool
    la, lb = labels[p.a], labels[p.b]
    np.testing.assert_array_equal(la == lb, p.same)  # same pairs share a class, negatives differ
    assert (p.a[p.same] != p.b[p.same]).all()  # two distinct items
    assert ((p.a >= 0) & (p.a < len(labels)) & (p.b >= 0) & (p.b < len(labels))).all()
    return p


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 101])
def test_exactly_half_same_rounded_down(n: int) -> None:
    p = _check_pairs_correct(PairSampler(LABELS, GROUPS), LABELS, n, seed=1)
    assert int(p.same.sum()) == n // 2


def test_pairs_are_correct_and_shuffled() -> None:
    p = _check_pairs_correct(PairSampler(LABELS, GROUPS), LABELS, 400, seed=2)
    # positives and negatives are interleaved, not a block of one then the other
    assert p.same[:200].sum() not in (0, 200)
    # every class shows up
    assert set(np.unique(np.concatenate([LABELS[p.a], LABELS[p.b]]))) == set(range(N_CLASSES))


def test_same_group_negatives_stay_in_the_group() -> None:
    sampler = PairSampler(LABELS, GROUPS, same_group_negatives=1.0)
    p = _check_pairs_correct(sampler, LABELS, 2000, seed=3)
    neg = ~p.same
    ga, gb = GROUPS[LABELS[p.a[neg]]], GROUPS[LABELS[p.b[neg]]]
    in_big_group = ga != 3
    assert in_big_group.sum() > 500
    np.testing.assert_array_equal(ga[in_big_group], gb[in_big_group])
    # the one-class group has nobody to pair with inside, so its negatives cross (and still differ)
    assert (~in_big_group).sum() > 0
    assert (gb[~in_big_group] != 3).all()


def test_zero_same_group_probability_crosses_groups() -> None:
    sampler = PairSampler(LABELS, GROUPS, same_group_negatives=0.0)
    p = _check_pairs_correct(sampler, LABELS, 2000, seed=4)
    neg = ~p.same
    crossing = np.mean(GROUPS[LABELS[p.a[neg]]] != GROUPS[LABELS[p.b[neg]]])
    assert crossing > 0.6  # uniform over the other 12 classes: about 9/12 cross for classes in groups of 4


def test_half_probability_is_in_between() -> None:
    def crossing(prob: float) -> float:
        p = PairSampler(LABELS, GROUPS, same_group_negatives=prob).sample(4000, 5)
        neg = ~p.same
        return float(np.mean(GROUPS[LABELS[p.a[neg]]] != GROUPS[LABELS[p.b[neg]]]))

    lo, mid, hi = crossing(1.0), crossing(0.5), crossing(0.0)
    assert lo < mid < hi


def test_without_groups_negatives_come_from_anywhere() -> None:
    p = _check_pairs_correct(PairSampler(LABELS), LABELS, 2000, seed=6)
    neg = ~p.same
    assert np.mean(GROUPS[LABELS[p.a[neg]]] != GROUPS[LABELS[p.b[neg]]]) > 0.6


def test_reproducible_for_a_seed_and_different_across_seeds() -> None:
    sampler = PairSampler(LABELS, GROUPS)
    p1, p2, p3 = sampler.sample(200, 7), sampler.sample(200, 7), sampler.sample(200, 8)
    for f in ("a", "b", "same"):
        np.testing.assert_array_equal(getattr(p1, f), getattr(p2, f))
    assert not (np.array_equal(p1.a, p3.a) and np.array_equal(p1.b, p3.b))
    g1 = sampler.sample(50, np.random.default_rng(9))
    g2 = PairSampler(LABELS, GROUPS).sample(50, np.random.default_rng(9))
    np.testing.assert_array_equal(g1.a, g2.a)
    np.testing.assert_array_equal(g1.b, g2.b)


def test_single_image_classes_never_give_positives() -> None:
    labels = np.array([0, 0, 0, 1, 2, 3, 3, 4, 5])  # 1, 2, 4 and 5 are singletons
    p = _check_pairs_correct(PairSampler(labels), labels, 1000, seed=10)
    assert set(np.unique(labels[p.a[p.same]])) == {0, 3}
    # singletons still serve as negatives
    assert {1, 2, 4, 5} <= set(np.unique(np.concatenate([labels[p.a[~p.same]], labels[p.b[~p.same]]])))


def test_non_contiguous_class_ids() -> None:
    labels = np.array([10, 50, 10, 7, 50, 7, 7])
    groups = np.zeros(51, np.int64)
    p = _check_pairs_correct(PairSampler(labels, groups), labels, 300, seed=11)
    assert set(np.unique(labels[p.a])) == {7, 10, 50}


@pytest.mark.parametrize(
    "labels, kwargs, fragment",
    [
        (np.array([3, 3, 3]), {}, "at least 2"),
        (np.array([], np.int64), {}, "non-empty"),
        (np.array([0, 1, 2, 3]), {}, "single image"),
        (np.array([0, 0, 1, 1]), {"same_group_negatives": 1.5}, "1.5"),
        (np.array([0, 0, 1, 1]), {"same_group_negatives": -0.1}, "-0.1"),
    ],
)
def test_sampler_refuses_unusable_input(labels: np.ndarray, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        PairSampler(labels, **kwargs)


# --- split_items --------------------------------------------------------------------------------------------


def _many_classes(n_classes: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.arange(n_classes), rng.integers(1, 12, n_classes))


def _partition(labels: np.ndarray, tr: np.ndarray, va: np.ndarray) -> None:
    assert len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(labels)))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_split_by_classes_keeps_classes_on_one_side(fraction: float) -> None:
    labels = _many_classes()
    tr, va = split_items(labels, None, fraction, "classes", seed=0)
    _partition(labels, tr, va)
    assert len(np.intersect1d(labels[tr], labels[va])) == 0
    n_val_classes = len(np.unique(labels[va]))
    assert n_val_classes == max(2, round(30 * fraction))


def test_split_is_seeded() -> None:
    labels = _many_classes()
    a = split_items(labels, None, 0.2, "classes", seed=1)
    b = split_items(labels, None, 0.2, "classes", seed=1)
    c = split_items(labels, None, 0.2, "classes", seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9])
def test_split_by_items_puts_every_class_with_4_items_on_both_sides(fraction: float) -> None:
    labels = np.repeat(np.arange(12), np.arange(1, 13))  # class c has c + 1 items
    tr, va = split_items(labels, None, fraction, "items", seed=0)
    _partition(labels, tr, va)
    for c in range(12):
        n_tr, n_va = int((labels[tr] == c).sum()), int((labels[va] == c).sum())
        if c + 1 >= 4:
            assert n_tr >= 2 and n_va >= 2, (c, n_tr, n_va)  # a positive pair possible on each side
        else:
            assert (n_tr, n_va) == (c + 1, 0)
    # the fraction is respected where it can be
    big = labels == 11
    assert int((labels[va] == 11).sum()) == min(max(round(12 * fraction), 2), 10)
    assert big.sum() == 12


def test_split_by_items_gives_samplers_for_both_sides() -> None:
    labels = np.repeat(np.arange(10), 5)  # 10 classes of 5: the small user dataset case
    tr, va = split_items(labels, None, 0.2, "items", seed=3)
    for idx in (tr, va):
        p = PairSampler(labels[idx]).sample(20, 0)
        assert p.same.sum() == 10


def test_split_errors() -> None:
    with pytest.raises(ValueError, match="3 classes"):
        split_items(np.repeat(np.arange(3), 4), None, 0.2, "classes", seed=0)
    with pytest.raises(ValueError, match="'pairs'"):
        split_items(np.repeat(np.arange(30), 4), None, 0.2, "pairs", seed=0)


def test_split_by_items_with_zero_fraction_holds_nothing_out() -> None:
    labels = np.repeat(np.arange(5), 6)
    tr, va = split_items(labels, None, 0.0, "items", seed=0)
    assert len(va) == 0
    np.testing.assert_array_equal(tr, np.arange(30))
