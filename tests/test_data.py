"""train.data: every layout, Omniglot (tiny zips here and the official zips when present), safe extraction,
SHA256SUMS, downloads over file:// and a localhost HTTP server, bad inputs and mixed image modes.

All files are written into tmp_path; nothing touches the network or ../shared except reading the zips.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pickle
import threading
import warnings
import zipfile
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from runtime.preprocess import ImageReadError, Preprocessing
from train.data import (
    DatasetError,
    DatasetWarning,
    ImageSet,
    PairSet,
    count_tree,
    download_file,
    fetch_omniglot,
    load_images,
    load_pairs,
    omniglot_dir_default,
    open_dataset,
    safe_extract,
    verify_sha256sums,
)
from train.data import omniglot as omniglot_mod

REPO_ROOT = Path(__file__).resolve().parents[1]
GRAY = Preprocessing(16, 16, color="gray")
RGB = Preprocessing(16, 16, color="rgb")
OFFICIAL = {"background": (30, 964, 19280), "evaluation": (20, 659, 13180)}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No developer copy or cache leaks in through the environment; nothing downloads into the real cache."""
    monkeypatch.delenv("SIAMESE_EDGE_OMNIGLOT", raising=False)
    monkeypatch.setenv("SIAMESE_EDGE_CACHE", str(tmp_path_factory.mktemp("cache")))


def make_png(seed: int, size: int = 12) -> bytes:
    """The same bytes conftest's Omniglot zips hold for ``seed``."""
    rng = np.random.default_rng(seed)
    return cv2.imencode(".png", rng.integers(0, 256, (size, size), dtype=np.uint8))[1].tobytes()


def img(seed: int, shape: tuple[int, ...] = (10, 14, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write(path: Path, seed: int = 0, shape: tuple[int, ...] = (10, 14, 3)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img(seed, shape))
    return path


def messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DatasetWarning)]


# ------------------------------------------------------------------------------------------------ class folders


def make_class_folders(root: Path) -> Path:
    write(root / "cat" / "1.png", 1)
    write(root / "cat" / "2.png", 2)
    write(root / "cat" / "3.jpg", 3)
    write(root / "dog" / "a.bmp", 4)
    write(root / "dog" / "b.PNG", 5)
    write(root / "solo" / "only.png", 6)
    (root / "README.txt").write_text("not data")  # top-level files are ignored
    (root / "cat" / ".DS_Store").write_bytes(b"junk")  # hidden files are ignored silently
    return root


def test_class_folders(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "own")
    with pytest.warns(DatasetWarning, match=r"single image.*1 of 3.*solo"):
        ds = open_dataset(root)
    assert isinstance(ds, ImageSet)
    assert ds.classes == ["cat", "dog", "solo"]
    assert ds.groups == ["all"] and ds.class_groups.tolist() == [0, 0, 0]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert ds.items[0] == str(root / "cat" / "1.png")
    assert ds.classes_with_positives().tolist() == [0, 1]
    assert ds.class_counts().tolist() == [3, 2, 1]
    assert [ix.tolist() for ix in ds.indices_by_class()] == [[0, 1, 2], [3, 4], [5]]
    d = ds.describe()
    assert (d["images"], d["classes"], d["groups"], d["classes_with_one_image"]) == (6, 3, 1, 1)
    assert d["source"] == str(root) and len(d["sha256"]) == 64
    assert ds.read(3).shape == (10, 14, 3) and ds.read(3).dtype == np.uint8

    x, kept = load_images(ds, RGB, progress=False)
    assert x.shape == (6, 16, 16, 3) and x.dtype == np.float32 and kept is ds
    assert 0.0 <= x.min() and x.max() <= 1.0

    sub = ds.subset([5, 0])
    assert sub.items == [ds.items[5], ds.items[0]] and sub.labels.tolist() == [2, 0] and sub.classes == ds.classes
    assert sub.describe()["classes"] == 2
    assert ds.subset(ds.labels == 1).labels.tolist() == [1, 1]


def test_records_name_the_data_as_given_never_the_machine_path(tmp_path: Path, monkeypatch) -> None:
    """Model cards and evaluation reports name the data as the user typed it (relative stays relative)."""
    from train.data import describe_as_given

    make_class_folders(tmp_path / "own")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(DatasetWarning):
        ds = open_dataset("own")
    d = describe_as_given(ds, "own")
    assert d["source"] == "own" and d["sha256"] == ds.sha256 and d["images"] == 6
    assert str(tmp_path) not in json.dumps(d)
    assert describe_as_given(open_dataset("digits"), "digits")["source"] == "digits"


def test_folder_hash_is_stable_and_tracks_content(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        a = open_dataset(make_class_folders(tmp_path / "a"))
        b = open_dataset(make_class_folders(tmp_path / "b"))  # same files elsewhere: same hash
        assert a.sha256 == b.sha256
        write(tmp_path / "b" / "dog" / "a.bmp", 99)
        assert open_dataset(tmp_path / "b").sha256 != a.sha256


def test_omniglot_folder_layout_has_groups(tmp_path: Path) -> None:
    root = tmp_path / "images_background"
    for a, alpha in enumerate(["Latin", "Greek"]):
        for c in range(2):
            for d in range(2):
                write(root / alpha / f"character{c + 1:02d}" / f"{d}.png", a * 10 + c * 2 + d, (8, 8))
    with pytest.warns(DatasetWarning, match=r"Omniglot background has 2 alphabets, 4 characters, 8 images"):
        ds = open_dataset(root)  # named like the official split: counts compared, a warning for a user's copy
    assert ds.name == "Omniglot images_background (folder)"
    assert ds.groups == ["Greek", "Latin"]
    assert ds.classes == ["Greek/character01", "Greek/character02", "Latin/character01", "Latin/character02"]
    assert ds.class_groups.tolist() == [0, 0, 1, 1]
    # the parent folder holding images_background/ works too (as --data or SIAMESE_EDGE_OMNIGLOT)
    with pytest.warns(DatasetWarning, match="official"):
        assert open_dataset(tmp_path).items == ds.items
    with pytest.raises(DatasetError, match=r"holds Omniglot background but not images_evaluation"):
        open_dataset(tmp_path, split="evaluation")


# ------------------------------------------------------------------------------------------------ Omniglot zips


def test_omniglot_zip_read_in_place(tmp_path: Path, tiny_omniglot_zip: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    ds = open_dataset(tiny_omniglot_zip)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted
    assert ds.name == "Omniglot images_background (zip)"  # from the zip's top folder
    assert len(ds) == 12 and ds.groups == ["Alphabet_0", "Alphabet_1"]
    assert ds.classes[:2] == ["Alphabet_0/character01", "Alphabet_0/character02"]
    assert ds.items[0] == f"{tiny_omniglot_zip}:images_background/Alphabet_0/character01/0001_01.png"
    assert ds.sha256 == hashlib.sha256(tiny_omniglot_zip.read_bytes()).hexdigest()
    assert count_tree(tiny_omniglot_zip) == (2, 4, 12)
    expected = cv2.imdecode(np.frombuffer(make_png(100), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ds.read(0), expected)
    x, _ = load_images(ds, GRAY, progress=False, workers=2)
    assert x.shape == (12, 16, 16, 1)
    # picklable (for worker processes): the zip handle is reopened on demand
    again = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(again.read(5), ds.read(5))


def test_official_names_are_count_checked(tmp_path: Path, make_omniglot_zip) -> None:
    path = make_omniglot_zip(tmp_path / "images_evaluation.zip", split="evaluation")
    with pytest.warns(DatasetWarning, match=r"Omniglot evaluation has 2 alphabets, 4 characters, 12 images"):
        ds = open_dataset(path)
    assert ds.name == "Omniglot images_evaluation (zip)"
    with pytest.raises(DatasetError, match="20, 659, 13180"):
        omniglot_mod.check_counts(path, "evaluation")


def test_omniglot_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_omniglot_zip) -> None:
    make_omniglot_zip(tmp_path / "images_background.zip")
    monkeypatch.setenv("SIAMESE_EDGE_OMNIGLOT", str(tmp_path))
    assert omniglot_dir_default() == tmp_path
    with pytest.warns(DatasetWarning, match="official"):
        ds = open_dataset("omniglot")
    assert ds.source == str((tmp_path / "images_background.zip").resolve())
    with pytest.raises(DatasetError, match=r"images_evaluation\.zip"):
        open_dataset("omniglot", split="evaluation")
    with pytest.raises(DatasetError, match="split 'train'"):
        open_dataset("omniglot", split="train")
    monkeypatch.setenv("SIAMESE_EDGE_OMNIGLOT", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="SIAMESE_EDGE_OMNIGLOT=.*missing.*not a directory"):
        open_dataset("omniglot")


def test_default_dir_is_relative_to_repo_not_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shared = (REPO_ROOT.parent / "shared" / "data" / "omniglot").resolve()
    assert omniglot_dir_default() == (shared if shared.is_dir() else None)


@pytest.mark.parametrize("split", ["background", "evaluation"])
def test_shared_official_zips(shared_omniglot: Path, split: str) -> None:
    zip_path = shared_omniglot / f"images_{split}.zip"
    assert count_tree(zip_path) == OFFICIAL[split]  # from member names, nothing decoded
    ds = open_dataset("omniglot", split=split)  # found through <repo>/../shared, relative to the repo
    d = ds.describe()
    assert (d["groups"], d["classes"], d["images"]) == OFFICIAL[split]
    assert d["name"] == f"Omniglot images_{split} (zip)" and d["source"] == str(zip_path.resolve())
    assert verify_sha256sums(zip_path, digest=ds.sha256) in (True, None)
    assert ds.classes_with_positives().size == OFFICIAL[split][1]  # 20 drawers per character
    sample = ds.subset(np.random.default_rng(0).choice(len(ds), 40, replace=False))
    x, kept = load_images(sample, Preprocessing(105, 105, color="gray"), progress=False)
    assert x.shape == (40, 105, 105, 1) and len(kept) == 40
    assert set(np.unique(x)) <= {0.0, 1.0}  # 1-bit strokes come out as 0/255


def test_fetch_from_file_url_extracts_and_checks(shared_omniglot: Path, tmp_path: Path) -> None:
    url = (shared_omniglot / "images_evaluation.zip").resolve().as_uri()
    cache = tmp_path / "cache"
    folder = fetch_omniglot("evaluation", cache=cache, extract=True, progress=False, url=url)
    assert folder == cache / "images_evaluation"
    assert count_tree(folder) == OFFICIAL["evaluation"]
    assert sorted(p.name for p in cache.iterdir()) == ["images_evaluation", "images_evaluation.zip"]  # no .part
    ds = open_dataset(cache, split="evaluation")  # the zip is preferred over the extracted folder
    assert ds.sha256 == hashlib.sha256((shared_omniglot / "images_evaluation.zip").read_bytes()).hexdigest()


def test_fetch_rejects_incomplete_download(tmp_path: Path, make_omniglot_zip) -> None:
    small = make_omniglot_zip(tmp_path / "small.zip")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"images_background\.zip downloaded from file://.*30, 964, 19280"):
        fetch_omniglot("background", cache=cache, progress=False, url=small.as_uri())
    assert list(cache.iterdir()) == []  # the temp file is gone and nothing sits under the final name


# ------------------------------------------------------------------------------------ download, sums, extraction


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_over_http(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(200_000)
    (served / "blob.bin").write_bytes(payload)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        dest = download_file(f"{base}/blob.bin", tmp_path / "out" / "blob.bin", progress=False)
        assert dest.read_bytes() == payload
        assert os.listdir(tmp_path / "out") == ["blob.bin"]

        def reject(p: Path) -> None:
            raise DatasetError(f"{p}: rejected")

        with pytest.raises(DatasetError, match="rejected"):
            download_file(f"{base}/blob.bin", tmp_path / "out2" / "blob.bin", progress=False, check=reject)
        assert os.listdir(tmp_path / "out2") == []
        with pytest.raises(DatasetError, match=r"missing\.bin: download failed"):
            download_file(f"{base}/missing.bin", tmp_path / "out3" / "missing.bin", progress=False)
        assert os.listdir(tmp_path / "out3") == []
    finally:
        server.shutdown()
        server.server_close()


def test_sha256sums_catches_tampered_zip(tmp_path: Path, make_omniglot_zip) -> None:
    path = make_omniglot_zip(tmp_path / "data.zip")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  data.zip\n{'0' * 64}  other.zip\n")
    assert verify_sha256sums(path) is True
    assert open_dataset(path).sha256 == digest
    with zipfile.ZipFile(path, "a") as zf:  # tamper: one more member
        zf.writestr("images_background/Alphabet_0/character01/evil.png", make_png(7))
    with pytest.raises(DatasetError, match=r"data\.zip: sha256 .* does not match .*SHA256SUMS"):
        open_dataset(path)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  other.zip\n")  # not listed: not verified, no error
    assert verify_sha256sums(path) is None


def _zip_with(path: Path, member: zipfile.ZipInfo | str, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/a.png", make_png(1))
        zf.writestr(member, data)
    return path


@pytest.mark.parametrize(
    "member, why",
    [
        ("../evil.png", r"\.\."),
        ("ok/../../evil.png", r"\.\."),
        ("/tmp/abs_evil.png", "absolute"),
        ("C:/evil.png", "absolute"),
        ("symlink", "symbolic link"),
    ],
)
def test_safe_extract_refuses_escapes(tmp_path: Path, member: str, why: str) -> None:
    if member == "symlink":
        info = zipfile.ZipInfo("ok/link.png")
        info.external_attr = 0o120777 << 16
        zpath = _zip_with(tmp_path / "evil.zip", info, b"/etc/passwd")
    else:
        zpath = _zip_with(tmp_path / "evil.zip", member)
    target = tmp_path / "deep" / "target"
    with pytest.raises(DatasetError, match=why):
        safe_extract(zpath, target)
    assert list(target.iterdir()) == []  # refused before anything was written
    assert not (tmp_path / "deep" / "evil.png").exists() and not (tmp_path / "evil.png").exists()


def test_safe_extract_writes_inside(tmp_path: Path, tiny_omniglot_zip: Path) -> None:
    out = safe_extract(tiny_omniglot_zip, tmp_path / "x")
    assert count_tree(out / "images_background") == (2, 4, 12)


# ------------------------------------------------------------------------------------------------ pairs


def make_pair_folders(root: Path, annos: str) -> Path:
    write(root / "p1" / "a.jpg", 1)
    write(root / "p1" / "b.jpg", 2)
    write(root / "p2" / "x.png", 3)
    write(root / "p2" / "y.png", 4)
    write(root / "p3" / "b.png", 5)  # b before a by name: a.* / b.* decide the order
    write(root / "p3" / "a.png", 6)
    (root / "annos.csv").write_text(annos)
    return root


def test_pair_folders(tmp_path: Path) -> None:
    root = make_pair_folders(tmp_path / "pairs", "fold,label\np1,1\np2,0\np3,1\n")
    ps = open_dataset(root)
    assert isinstance(ps, PairSet)
    assert ps.same.tolist() == [True, False, True]
    assert ps.items_a == [str(root / "p1/a.jpg"), str(root / "p2/x.png"), str(root / "p3/a.png")]
    assert ps.items_b[2] == str(root / "p3/b.png")
    assert ps.describe()["pairs"] == 3 and ps.describe()["same"] == 2 and ps.describe()["images"] == 6
    assert ps.read(ps.items_a[0]).shape == (10, 14, 3)
    xa, xb, same = load_pairs(ps, RGB, progress=False)
    assert xa.shape == xb.shape == (3, 16, 16, 3) and same.tolist() == [True, False, True]
    assert open_dataset(root / "annos.csv").same.tolist() == ps.same.tolist()


@pytest.mark.parametrize(
    "annos, same",
    [
        ("p1,1\np2,0\np3,1\n", [True, False, True]),  # no header: 1 = same
        ("id,is_same\np1,true\np2,false\np3,yes\n", [True, False, True]),
        ("folder,different\np1,1\np2,0\np3,0\n", [False, True, True]),  # the column name flips the meaning
        ("label,fold\n0,p1\n1,p2\n1,p3\n", [False, True, True]),  # label column found by its name
    ],
)
def test_pair_labels_accepted(tmp_path: Path, annos: str, same: list[bool]) -> None:
    assert open_dataset(make_pair_folders(tmp_path / "p", annos)).same.tolist() == same


@pytest.mark.parametrize(
    "annos, match",
    [
        ("fold,label\np1,2\n", r"annos\.csv:2: label '2'"),
        ("fold,score\np1,1\n", r"annos\.csv:1: label 'score' is neither 0/1 nor a known column name"),
        ("p1,1,extra\n", r"annos\.csv:1: 3 columns, expected 2"),
        ("", r"annos\.csv: empty"),
        ("fold,label\n../p1,1\n", r"must be a folder name inside"),
    ],
)
def test_pair_labels_rejected(tmp_path: Path, annos: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        open_dataset(make_pair_folders(tmp_path / "p", annos))


def test_pair_folders_bad_folds_are_counted(tmp_path: Path) -> None:
    root = make_pair_folders(tmp_path / "p", "fold,label\np1,1\np2,0\np3,1\nmissing,0\nlonely,1\n")
    write(root / "lonely" / "a.png", 9)
    write(root / "unlabelled" / "a.png", 9)
    with pytest.warns(DatasetWarning) as record:
        ps = open_dataset(root)
    assert len(ps) == 3
    msgs = messages(record)
    assert any(
        "pairs skipped: 2 of 5" in m and "missing (no such folder" in m and "lonely (1 images" in m for m in msgs
    )
    assert any("not listed" in m and "unlabelled" in m for m in msgs)


def test_pairs_csv(tmp_path: Path) -> None:
    a = write(tmp_path / "imgs" / "a.png", 1)
    b = write(tmp_path / "imgs" / "b.jpg", 2)
    c = write(tmp_path / "elsewhere" / "c.png", 3, (9, 9))
    csv_path = tmp_path / "lists" / "pairs.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(f"path_a,path_b,label\n../imgs/a.png,../imgs/b.jpg,0\n../imgs/a.png,{c},1\n")
    ps = open_dataset(csv_path)
    assert ps.items_a == [str(a), str(a)] and ps.items_b == [str(b), str(c)]
    assert ps.same.tolist() == [False, True]
    assert ps.sha256 == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    xa, xb, same = load_pairs(ps, GRAY, progress=False)
    assert xa.shape == (2, 16, 16, 1) and same.tolist() == [False, True]

    headerless = tmp_path / "h.csv"
    headerless.write_text(f"{a},{b},1\nimgs/missing.png,imgs/b.jpg,0\n")
    with pytest.warns(DatasetWarning, match=r"missing file skipped: 1 of 2.*missing\.png \(h\.csv line 2\)"):
        ps = open_dataset(headerless)
    assert len(ps) == 1 and ps.same.tolist() == [True]


# ------------------------------------------------------------------------------------------------ digits


def test_digits() -> None:
    ds = open_dataset("digits")
    assert len(ds) == 1797 and ds.classes == [str(i) for i in range(10)] and ds.source == "sklearn.datasets.load_digits"
    assert ds.labels[:3].tolist() == [0, 0, 0] and ds.class_counts().sum() == 1797
    im = ds.read(0)
    assert im.shape == (8, 8) and im.dtype == np.uint8 and im.min() == 0
    assert max(ds.read(i).max() for i in range(50)) == 255  # 0..16 -> 0..255
    assert ds.sha256 == open_dataset("digits").sha256
    x, _ = load_images(ds.subset(range(0, 1797, 10)), Preprocessing(8, 8, color="gray"), progress=False)
    assert x.shape == (180, 8, 8, 1) and x.max() == 1.0


# ------------------------------------------------------------------------------------------------ bad inputs


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope: no such file or directory; accepted"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: empty folder"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"texts: no image files found"):
        open_dataset(tmp_path / "texts")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"notes\.txt: unsupported file type \.txt"):
        open_dataset(tmp_path / "notes.txt")
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(DatasetError, match=r"bad\.zip: not a readable zip"):
        open_dataset(tmp_path / "bad.zip")


def test_wrong_layouts(tmp_path: Path) -> None:
    write(tmp_path / "flat" / "a.png")
    with pytest.raises(DatasetError, match=r"flat: images directly in the top folder \(e\.g\. a\.png\)"):
        open_dataset(tmp_path / "flat")
    write(tmp_path / "mixed" / "cls" / "a.png")
    write(tmp_path / "mixed" / "grp" / "cls" / "b.png")
    with pytest.raises(DatasetError, match=r"different depths.*cls/a\.png.*grp/cls/b\.png"):
        open_dataset(tmp_path / "mixed")
    write(tmp_path / "deep" / "1" / "2" / "3" / "a.png")
    with pytest.raises(DatasetError, match=r"3 folders deep"):
        open_dataset(tmp_path / "deep")


def test_non_images_and_empty_classes_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for cls in ("a", "b"):
        write(root / cls / "1.png", 1)
        write(root / cls / "2.png", 2)
    (root / "a" / "labels.txt").write_text("x")
    (root / "b" / "model.h5").write_bytes(b"x")
    (root / "empty_class").mkdir()
    with pytest.warns(DatasetWarning) as record:
        ds = open_dataset(root)
    assert ds.classes == ["a", "b"] and len(ds) == 4
    msgs = messages(record)
    assert any("non-image files" in m and ": 2;" in m and "a/labels.txt" in m for m in msgs)
    assert any("without images" in m and "empty_class" in m for m in msgs)


def test_corrupt_truncated_and_empty_images(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(3):
        write(root / "good" / f"{i}.png", i)
    write(root / "bad" / "fine.png", 9)
    png = cv2.imencode(".png", img(5))[1].tobytes()
    (root / "bad" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "bad" / "garbage.jpg").write_bytes(b"\x00not an image at all" * 10)
    (root / "bad" / "zero.png").write_bytes(b"")
    ds = open_dataset(root)
    with pytest.warns(DatasetWarning) as record:
        x, kept = load_images(ds, RGB, progress=False)
    msgs = messages(record)
    assert len(msgs) == 1  # ONE warning, with the count and the first names
    assert "unreadable images skipped: 3 of 7" in msgs[0]
    assert "garbage.jpg" in msgs[0] and "truncated.png" in msgs[0] and "zero.png: empty file" in msgs[0]
    assert x.shape == (4, 16, 16, 3) and len(kept) == 4
    assert [Path(i).name for i in kept.items] == ["fine.png", "0.png", "1.png", "2.png"]
    assert kept.labels.tolist() == [0, 1, 1, 1] and kept.classes == ds.classes
    with pytest.raises(ImageReadError, match=r"garbage\.jpg: not a readable image"):
        load_images(ds, RGB, progress=False, skip_bad=False, workers=2)
    with pytest.raises(DatasetError, match="none of its 3 images"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetWarning)
            load_images(ds.subset([1, 2, 3]), RGB, progress=False)


def test_corrupt_member_in_zip_and_pairs(tmp_path: Path) -> None:
    path = tmp_path / "classes.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cls1/a.png", make_png(1))
        zf.writestr("cls1/b.png", b"\x89PNG broken")
        zf.writestr("cls2/c.png", make_png(2))
        zf.writestr("cls2/d.png", make_png(3))
    ds = open_dataset(path)
    assert ds.name == "classes.zip (zip, one folder per class)" and ds.classes == ["cls1", "cls2"]
    with pytest.warns(DatasetWarning, match=r"1 of 4.*classes\.zip:cls1/b\.png"):
        x, kept = load_images(ds, GRAY, progress=False)
    assert len(kept) == 3

    good = write(tmp_path / "p" / "good.png", 1)
    (tmp_path / "p" / "bad.png").write_bytes(b"nope")
    csv_path = tmp_path / "p" / "pairs.csv"
    csv_path.write_text("good.png,good.png,1\ngood.png,bad.png,0\n")
    with pytest.warns(DatasetWarning, match=r"1 of 2 pairs dropped.*bad\.png"):
        xa, xb, same = load_pairs(open_dataset(csv_path), GRAY, progress=False)
    assert xa.shape == (1, 16, 16, 1) and same.tolist() == [True] and good.exists()


# ------------------------------------------------------------------------------------------------ image modes


def test_mixed_modes_load_to_one_shape(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    (root / "c").mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(base).convert("1").save(root / "c" / "bilevel.png")
    Image.fromarray(base).convert("L").save(root / "c" / "gray.png")
    Image.fromarray(base).save(root / "c" / "rgb.png")
    Image.fromarray(base).convert("RGBA").save(root / "c" / "rgba.png")
    Image.fromarray(base).convert("P").save(root / "c" / "palette.png")
    Image.fromarray(base).save(root / "c" / "rgb.jpg", quality=90)
    cv2.imwrite(str(root / "c" / "gray16.png"), (base[:, :, 0].astype(np.uint16) * 257))
    cv2.imwrite(str(root / "c" / "bgr16.png"), base[:, :, ::-1].astype(np.uint16) * 257)  # OpenCV writes BGR
    ds = open_dataset(root)
    assert len(ds) == 8
    for spec in (RGB, GRAY):
        x, kept = load_images(ds, spec, progress=False)
        assert x.shape == (8, *spec.input_shape) and len(kept) == 8
        assert np.isfinite(x).all() and 0.0 <= x.min() and x.max() <= 1.0
    names = [Path(i).name for i in ds.items]
    exact = Preprocessing(20, 30, color="rgb")
    x, _ = load_images(ds, exact, progress=False)
    np.testing.assert_array_equal(x[names.index("rgb.png")], x[names.index("bgr16.png")])  # 16 bit scaled to 8
    assert set(np.unique(x[names.index("bilevel.png")])) <= {0.0, 1.0}
