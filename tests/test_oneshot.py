"""N-way K-shot trials, one-shot accuracy, and Lake's run folders (written, read back, scored)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_digits

from runtime.preprocess import Preprocessing, preprocess_batch, preprocess_image
from runtime.scoring import ScoreSpec
from train import oneshot

PROB = ScoreSpec("probability", "high", 0.5)
DIST = ScoreSpec("distance", "low", 0.5)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a.reshape(len(a), -1) - b.reshape(len(b), -1), axis=1)


def synthetic(group_sizes=(8, 6, 3), n_drawers=6, seed=0):
    """Omniglot-shaped arrays: one item per (class, drawer); drawers numbered from 1, shuffled item order."""
    class_groups = np.repeat(np.arange(len(group_sizes)), group_sizes)
    n_classes = class_groups.size
    labels = np.repeat(np.arange(n_classes), n_drawers)
    drawers = np.tile(np.arange(1, n_drawers + 1), n_classes)
    perm = np.random.default_rng(seed).permutation(labels.size)
    return labels[perm], class_groups, drawers[perm]


LABELS, GROUPS, DRAWERS = synthetic()


@pytest.mark.parametrize("k_shot", [1, 2])
def test_trials_follow_lake_protocol(k_shot: int) -> None:
    trials = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, k_shot=k_shot, n_trials=300, seed=1)
    assert len(trials) == 300
    seen_groups = set()
    for t in trials:
        assert t.support.shape == (5 * k_shot,) and t.support_labels.shape == (5 * k_shot,)
        assert np.array_equal(LABELS[t.support], t.support_labels)
        assert len(set(t.support_labels.tolist())) == 5
        assert t.answer in t.support_labels and LABELS[t.query] == t.answer
        assert t.query not in t.support
        # one group (alphabet) per trial, and never the 3-class group that cannot give 5 classes
        assert set(GROUPS[t.support_labels].tolist()) == {t.group}
        assert t.group != 2
        seen_groups.add(t.group)
        # support drawings from k_shot drawers shared by all classes, the query from yet another drawer
        support_drawers = DRAWERS[t.support].reshape(5, k_shot)
        assert all(set(row) == set(support_drawers[0]) for row in support_drawers)
        assert len(set(support_drawers[0].tolist())) == k_shot
        assert DRAWERS[t.query] not in support_drawers
    assert seen_groups == {0, 1}


def test_trials_are_seeded() -> None:
    def key(trials):
        return [(t.support.tolist(), t.query) for t in trials]

    a = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, n_trials=50, seed=7)
    b = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, n_trials=50, seed=7)
    c = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, n_trials=50, seed=8)
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_trials_across_groups_and_without_drawers() -> None:
    across = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=10, n_trials=50, within_group=False)
    assert any(len(set(GROUPS[t.support_labels].tolist())) > 1 for t in across)
    assert all(t.group == -1 for t in across)

    plain = oneshot.build_trials(LABELS, GROUPS, None, n_way=5, k_shot=3, n_trials=100, seed=2)
    for t in plain:
        assert t.query not in t.support and len(set(t.support.tolist())) == 15
        assert LABELS[t.query] == t.answer

    with pytest.raises(ValueError, match="largest has 8"):
        oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=9, n_trials=5)
    with pytest.raises(ValueError, match="drawers"):  # 6 drawers cannot give 6 support + 1 query drawer
        oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, k_shot=6, n_trials=5)


def test_drawer_of() -> None:
    assert oneshot.drawer_of("/d/images_evaluation.zip:images_evaluation/Angelic/character01/0965_01.png") == 1
    assert oneshot.drawer_of("data/Angelic/character01/0965_17.png") == 17
    assert oneshot.drawer_of(r"C:\data\Angelic\character01\1623_20.png") == 20
    assert oneshot.drawer_of("photos/cat/IMG_0001.jpg") is None
    assert oneshot.drawer_of("digits/3/17.png") is None


def test_accuracy_with_perfect_embeddings() -> None:
    onehot = np.eye(LABELS.max() + 1)[LABELS]
    trials = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, k_shot=1, n_trials=2000, seed=0)
    res = oneshot.oneshot_accuracy(trials, onehot, cosine, PROB)  # 2000 trials: spans several score chunks
    assert res["accuracy"] == 1.0 and res["trials"] == 2000 and res["n_way"] == 5 and res["k_shot"] == 1
    assert res["ties"] == 0
    lo, hi = res["ci95"]
    assert 0.997 < lo < 1.0 and hi == 1.0

    # a distance, "low" = same: also perfect; the same distance read as if high meant same: always wrong
    assert oneshot.oneshot_accuracy(trials, onehot, euclidean, DIST)["accuracy"] == 1.0
    assert oneshot.oneshot_accuracy(trials, onehot, euclidean, PROB)["accuracy"] == 0.0

    three = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=4, k_shot=3, n_trials=50, seed=0)
    res3 = oneshot.oneshot_accuracy(three, onehot, euclidean, DIST)
    assert res3["accuracy"] == 1.0 and res3["k_shot"] == 3 and res3["n_way"] == 4

    # embeddings given only for the items involved, as a mapping
    some = {int(i): onehot[i] for i in oneshot.involved_items(three)}
    assert oneshot.oneshot_accuracy(three, some, cosine, PROB)["accuracy"] == 1.0
    some.pop(next(iter(some)))
    with pytest.raises(ValueError, match="missing"):
        oneshot.oneshot_accuracy(three, some, cosine, PROB)


def test_accuracy_with_random_embeddings_is_chance() -> None:
    emb = np.random.default_rng(0).normal(size=(LABELS.size, 16))
    trials = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, n_trials=3000, seed=3)
    res = oneshot.oneshot_accuracy(trials, emb, euclidean, DIST)
    assert 0.16 < res["accuracy"] < 0.24
    lo, hi = res["ci95"]
    assert lo < res["accuracy"] < hi and hi - lo < 0.04


def test_ties_earn_expected_credit_not_wins() -> None:
    """A saturated head that says 1.0 for everything must score chance, not 100 %."""
    trials = oneshot.build_trials(LABELS, GROUPS, DRAWERS, n_way=5, n_trials=40, seed=0)
    emb = np.zeros((LABELS.size, 2))
    res = oneshot.oneshot_accuracy(trials, emb, lambda a, b: np.ones(len(a)), PROB)
    assert res["accuracy"] == pytest.approx(0.2) and res["ties"] == 40

    with pytest.raises(ValueError, match="scores for"):
        oneshot.oneshot_accuracy(trials, emb, lambda a, b: np.ones(3), PROB)


def test_wilson_interval() -> None:
    lo, hi = oneshot.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)  # the textbook value for 0/10
    lo, hi = oneshot.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


# --------------------------------------------------------------------------------------------------
# Lake runs


class DigitsImageSet:
    """A tiny ImageSet (train.data's contract) of real handwritten digits drawn up to 28x28.

    Each digit is a class; 12 drawings per class, each by its own "drawer" (Omniglot-style names).
    """

    def __init__(self, per_class: int = 12) -> None:
        digits = load_digits()
        self.classes = [f"digits/{d}" for d in range(10)]
        self.groups = ["digits"]
        self.class_groups = np.zeros(10, np.int64)
        self.items, labels, self._images = [], [], []
        for d in range(10):
            for k, i in enumerate(np.flatnonzero(digits.target == d)[:per_class]):
                img = (digits.images[i] * (255 / 16)).round().astype(np.uint8)
                self._images.append(cv2.resize(img, (28, 28), interpolation=cv2.INTER_LINEAR))
                self.items.append(f"digits/{d}/{d:02d}{k:02d}_{k + 1:02d}.png")
                labels.append(d)
        self.labels = np.array(labels, np.int64)

    def read(self, i: int) -> np.ndarray:
        return self._images[i]

    def __len__(self) -> int:
        return len(self.items)


PREP = Preprocessing(height=28, width=28, color="gray")


@pytest.fixture(scope="module")
def digits() -> DigitsImageSet:
    return DigitsImageSet()


def oracle(imageset: DigitsImageSet):
    """embed_fn that knows every image: its class as a one-hot vector (a perfect network)."""
    table = {}
    for i in range(len(imageset)):
        key = preprocess_image(imageset.read(i), PREP).tobytes()
        assert table.setdefault(key, imageset.labels[i]) == imageset.labels[i]
    return lambda batch: np.eye(10)[[table[x.tobytes()] for x in batch]]


def png_header(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return data[24], data[25]  # IHDR bit depth, color type


def test_lake_runs_round_trip(tmp_path: Path, digits: DigitsImageSet) -> None:
    out = oneshot.write_lake_runs(digits, tmp_path / "runs", n_runs=4, n_way=5, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no temporary folder left behind
    assert png_header(out / "run01" / "training" / "class01.png") == (8, 0)  # 8-bit greyscale
    first_line = (out / "run01" / "class_labels.txt").read_text().splitlines()[0]
    assert first_line.startswith("run01/test/item01.png run01/training/class")

    record = json.loads((out / "runs.json").read_text())
    for run in record["runs"]:
        train_drawers = {oneshot.drawer_of(i) for i in run["training"]}
        test_drawers = {oneshot.drawer_of(i) for i in run["test"]}
        assert len(train_drawers) == 1 and len(test_drawers) == 1 and train_drawers != test_drawers

    runs = oneshot.read_lake_runs(out)
    assert [r.name for r in runs] == ["run01", "run02", "run03", "run04"]
    assert all(len(r.items) == 5 and len(r.classes) == 5 for r in runs)
    res = oneshot.lake_runs_accuracy(runs, oracle(digits), cosine, PROB, PREP)
    assert res["accuracy"] == 1.0 and res["trials"] == 20 and res["runs"] == [1.0] * 4
    # answers really point at the right class: read the wrong way round, every answer is wrong
    assert oneshot.lake_runs_accuracy(runs, oracle(digits), cosine, DIST, PREP)["accuracy"] == 0.0

    with pytest.raises(FileExistsError, match="runs"):
        oneshot.write_lake_runs(digits, out, n_runs=1, n_way=5)
    oneshot.write_lake_runs(digits, out, n_runs=2, n_way=5, seed=1, overwrite=True)
    assert len(oneshot.read_lake_runs(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_lake_paths_relative_to_run_folder_are_accepted(tmp_path: Path, digits: DigitsImageSet) -> None:
    out = oneshot.write_lake_runs(digits, tmp_path / "runs", n_runs=2, n_way=5, seed=4)
    before = oneshot.read_lake_runs(out)
    for run in ("run01", "run02"):
        f = out / run / "class_labels.txt"
        f.write_text(f.read_text().replace(f"{run}/", ""))
        assert f.read_text().startswith("test/item01.png training/class")
    after = oneshot.read_lake_runs(out)
    for a, b in zip(before, after):
        assert a.items == b.items and a.classes == b.classes and np.array_equal(a.answers, b.answers)


def test_lake_errors_name_file_and_line(tmp_path: Path, digits: DigitsImageSet) -> None:
    out = oneshot.write_lake_runs(digits, tmp_path / "runs", n_runs=1, n_way=5)
    labels = out / "run01" / "class_labels.txt"
    good = labels.read_text().splitlines()

    labels.write_text("\n".join([good[0], good[1], "run01/test/item03.png", *good[3:]]) + "\n")
    with pytest.raises(ValueError, match=r"class_labels\.txt:3: expected two paths"):
        oneshot.read_lake_runs(out)

    labels.write_text("\n".join([*good[:4], "run01/test/item99.png run01/training/class01.png"]) + "\n")
    with pytest.raises(FileNotFoundError, match=r"class_labels\.txt:5: 'run01/test/item99.png' not found"):
        oneshot.read_lake_runs(out)

    labels.unlink()
    with pytest.raises(FileNotFoundError, match=r"run01.class_labels\.txt: missing"):
        oneshot.read_lake_runs(out)
    with pytest.raises(ValueError, match="no runNN folders"):
        oneshot.read_lake_runs(out / "run01")


def test_one_bit_and_eight_bit_png_read_the_same(tmp_path: Path) -> None:
    """Lake's published runs are 1-bit PNGs; ours are 8-bit. The network must see the same tensor."""
    rng = np.random.default_rng(0)
    img = np.where(rng.random((105, 105)) < 0.2, 0, 255).astype(np.uint8)
    one, eight = tmp_path / "one.png", tmp_path / "eight.png"
    assert cv2.imwrite(str(one), img, [cv2.IMWRITE_PNG_BILEVEL, 1])
    assert cv2.imwrite(str(eight), img)
    assert png_header(one) == (1, 0) and png_header(eight) == (8, 0)
    for prep in (PREP, Preprocessing(105, 105, color="rgb", resize="shorter-side+center-crop")):
        a, b = preprocess_batch([one, eight], prep)
        np.testing.assert_array_equal(a, b)
        assert a.min() == 0.0 and a.max() == 1.0
