"""Streamed data: batches read on the fly equal the decoded ones, zips are read in place, rotation and mirror
classes cost no copies, unreadable files are skipped and named, and training runs streamed end to end."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.preprocess import Preprocessing
from train.augment import AffineAugment, VariantImages, class_variants, mirror_classes, rotation_classes
from train.data import DatasetError, DatasetWarning, load_images, open_dataset
from train.data.store import DecodedImages, StreamedImages, SubsetImages
from train.pair_dataset import EpisodeBatches, SampledPairs, as_tf_dataset, batch_errors
from train.sampling import EpisodeSampler, PairSampler
from train.trainer import TrainOptions, train

GRAY = Preprocessing(16, 16, color="gray")


def _folder(root: Path, classes: int = 6, per_class: int = 4, bad: int = 0) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            cv2.imwrite(str(root / f"c{c}" / f"{i}.png"), img)
    for k in range(bad):
        (root / f"c{k}" / f"broken{k}.png").write_bytes(b"not a png")
    return root


def _targets(same: np.ndarray) -> np.ndarray:
    return same.astype(np.float32)


def test_streamed_batches_equal_decoded_ones(tmp_path: Path, tiny_omniglot_zip: Path) -> None:
    for ds in (open_dataset(_folder(tmp_path / "f")), open_dataset(tiny_omniglot_zip)):  # files; zip members in place
        x, _ = load_images(ds, GRAY, progress=False)
        memory, streamed = DecodedImages(x), StreamedImages(ds.items, ds.read_item, GRAY, ds.name)
        sampler = PairSampler(ds.labels, ds.class_groups)
        a, b = (SampledPairs(m, sampler, _targets, 8, 3, 7, AffineAugment()) for m in (memory, streamed))
        for epoch in (0, 1):
            a.epoch = b.epoch = epoch
            for i in range(3):
                (xa1, xb1), y1 = a.batch(i)
                (xa2, xb2), y2 = b.batch(i)
                np.testing.assert_array_equal(xa1, xa2)
                np.testing.assert_array_equal(xb1, xb2)
                np.testing.assert_array_equal(y1, y2)
        a.epoch = 0
        (xa0, _), _ = a.batch(0)
        a.epoch = 1
        assert not np.array_equal(a.batch(0)[0][0], xa0)  # each epoch draws new pairs


def test_tf_dataset_yields_the_batches_in_order_for_the_current_epoch(tmp_path: Path) -> None:
    ds = open_dataset(_folder(tmp_path / "f"))
    images = StreamedImages(ds.items, ds.read_item, GRAY, ds.name)
    batches = EpisodeBatches(images, EpisodeSampler(ds.labels, None, classes=3, per_class=2), steps=4, seed=1)
    batches.epoch = 2
    got = list(as_tf_dataset(batches, workers=2).as_numpy_iterator())
    assert len(got) == 4
    for i, (x, classes) in enumerate(got):
        want_x, want_classes = batches.batch(i)
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(classes, want_classes)
        assert x.shape == (6, 16, 16, 1) and classes.dtype == np.int32


def test_variant_images_are_the_rotation_and_mirror_classes_without_copies() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 6, 2), dtype=np.float32)
    labels, groups = np.array([0, 0, 1, 2, 2]), np.array([0, 0, 1])
    xr, lr, gr = rotation_classes(x, labels, groups)
    xm, lm, gm = mirror_classes(xr, lr, gr)
    v = class_variants(labels, groups, rotations=True, mirror=True)
    np.testing.assert_array_equal(v.labels, lm)
    np.testing.assert_array_equal(v.class_groups, gm)
    view = VariantImages(DecodedImages(x), v)
    got, ok = view.take(np.arange(len(v)))
    assert ok.all() and len(view) == 40
    np.testing.assert_array_equal(got, xm)


def test_unreadable_files_are_skipped_where_drawn_and_named_once(tmp_path: Path) -> None:
    ds = open_dataset(_folder(tmp_path / "f", bad=2))
    images = SubsetImages(StreamedImages(ds.items, ds.read_item, GRAY, ds.name), np.arange(len(ds)))
    with pytest.warns(DatasetWarning, match="broken0.png"):
        x, ok = images.take(np.arange(len(ds)))
    assert ok.sum() == len(ds) - 2 and not x[~ok].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an item is named once, not at every draw
        images.take(np.arange(len(ds)))
    assert sorted(Path(k).name for k in images.store.unreadable) == ["broken0.png", "broken1.png"]


def test_training_streams_end_to_end_and_skips_unreadable_images(tmp_path: Path) -> None:
    data = _folder(tmp_path / "f", classes=24, per_class=5, bad=1)
    opts = TrainOptions(
        arch="pyimagesearch", data=str(data), out=str(tmp_path / "run"), input_shape=(16, 16, 1), epochs=2,
        steps_per_epoch=3, batch_size=16, val_pairs=40, progress=False, data_loading="stream",
        rotation_classes=True, mirror_classes=True, augment=True,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = train(opts)
    assert any("broken0.png" in str(w.message) for w in seen)
    t = result.card["training"]
    assert t["data_loading"] == "stream" and t["epochs_run"] == 2
    assert t["first_step_seconds"] > 0 and t["steps_per_second"] > 0
    assert result.card["data"]["images"] == 24 * 5 + 1  # the index keeps every file; streaming skips the bad one
    assert np.isfinite(result.card["metrics"]["validation"]["auc"])


def test_pair_lists_train_streamed_like_decoded(tmp_path: Path) -> None:
    data = _folder(tmp_path / "f", classes=8, per_class=4, bad=1)
    files = sorted(str(p) for p in data.rglob("*.png") if "broken" not in p.name)
    rng = np.random.default_rng(0)
    rows = ["path_a,path_b,label"]
    for _ in range(120):
        a, b = rng.choice(len(files), 2, replace=False)
        rows.append(f"{files[a]},{files[b]},{int(Path(files[a]).parent == Path(files[b]).parent)}")
    rows.append(f"{data / 'c0' / 'broken0.png'},{files[0]},0")  # dropped wherever it is drawn
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    cards = {}
    for loading in ("memory", "stream"):
        opts = TrainOptions(
            arch="pyimagesearch", data=str(csv_path), out=str(tmp_path / loading), input_shape=(16, 16, 1),
            epochs=1, batch_size=16, progress=False, data_loading=loading,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)
            cards[loading] = train(opts).card
    assert cards["stream"]["training"]["data_loading"] == "stream"
    assert cards["stream"]["training"]["unreadable_images_skipped"] == 1
    assert cards["stream"]["training"]["epochs_run"] == 1
    assert np.isfinite(cards["stream"]["metrics"]["validation"]["auc"])


def test_a_batch_that_cannot_be_built_raises_its_own_one_line_error(tmp_path: Path) -> None:
    for c in range(3):
        (tmp_path / "f" / f"c{c}").mkdir(parents=True)
        for i in range(2):
            (tmp_path / "f" / f"c{c}" / f"{i}.png").write_bytes(b"not a png")
    ds = open_dataset(tmp_path / "f")  # indexing reads no pixels
    images = StreamedImages(ds.items, ds.read_item, GRAY, ds.name)
    batches = EpisodeBatches(images, EpisodeSampler(ds.labels, None, classes=3, per_class=2), steps=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        # prefetching builds the next episode too: either may be the first to fail, on a busy machine
        with pytest.raises(DatasetError, match=r"^epoch 1, episode [01]: fewer than 2 readable images$"):
            with batch_errors(batches):
                list(as_tf_dataset(batches, workers=1).as_numpy_iterator())
