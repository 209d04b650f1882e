"""Explicit labelled pairs: pair folders with ``annos.csv`` (ResNet-backbone tutorials) and CSVs of
``path_a,path_b,label``.

Label convention accepted (and nothing else, so a flipped convention cannot slip through silently):

* values ``1``/``0`` (also ``1.0``/``0.0``, ``true``/``false``, ``yes``/``no``, any case);
* by default ``1`` = same identity, ``0`` = different (bubbliiiing, PyImageSearch, the annos.csv seeds);
* an optional header row; the label column is found by its name, and the name decides the meaning:
  ``SAME_NAMES`` (``label``, ``same``, ``match``, ...) keep 1 = same, ``DIFFERENT_NAMES`` (``different``,
  ``dissimilar``, ``not_same``, ...) mean 1 = different (keras.io contrastive's 0 = same). A header whose
  label column has any other name is an error, as is a first row that is neither data nor such a header.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path, PurePosixPath

import numpy as np

from train.data.errors import DatasetError, check_most_kept, warn_names
from train.data.hashing import sha256_file, sha256_tree
from train.data.imageset import PairSet
from train.data.sources import FileSource, is_image_name, is_junk

ANNOS = "annos.csv"
SAME_NAMES = frozenset(
    "label labels y target same is_same issame similar is_similar match is_match genuine positive".split()
)
DIFFERENT_NAMES = frozenset(
    "different is_different dissimilar is_dissimilar not_same mismatch is_mismatch impostor imposter negative".split()
)
TRUE_VALUES = frozenset({"1", "1.0", "true", "yes"})
FALSE_VALUES = frozenset({"0", "0.0", "false", "no"})
CONVENTION = (
    "labels must be 1/0 (true/false, yes/no) with 1 = same unless a header names the label column "
    f"{sorted(DIFFERENT_NAMES)} (then 1 = different); header names meaning 1 = same: {sorted(SAME_NAMES)}"
)


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _value(cell: str) -> bool | None:
    v = cell.strip().lower()
    return True if v in TRUE_VALUES else False if v in FALSE_VALUES else None


def read_label_csv(path: Path, n_keys: int, key_help: str) -> list[tuple[int, list[str], bool]]:
    """Rows of ``n_keys`` key columns plus one label column -> ``[(line number, keys, same)]``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), 1)]
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: not a readable UTF-8 CSV ({e})") from None
    rows = [(n, r) for n, r in rows if any(r)]
    if not rows:
        raise DatasetError(f"{path}: empty; expected rows of {key_help},label")
    width = n_keys + 1
    label_col, inverted = n_keys, False
    n0, first = rows[0]
    if len(first) == width and _value(first[-1]) is None:  # a header row, or nonsense
        names = [_norm(c) for c in first]
        known = [i for i, c in enumerate(names) if c in SAME_NAMES or c in DIFFERENT_NAMES]
        if len(known) != 1:
            what = "several label columns" if known else f"label {first[-1]!r} is neither 0/1 nor a known column name"
            raise DatasetError(f"{path}:{n0}: {what}; {CONVENTION}")
        label_col, inverted = known[0], names[known[0]] in DIFFERENT_NAMES
        rows = rows[1:]
    out = []
    for n, row in rows:
        if len(row) != width:
            raise DatasetError(f"{path}:{n}: {len(row)} columns, expected {width} ({key_help},label)")
        value = _value(row[label_col])
        if value is None:
            raise DatasetError(f"{path}:{n}: label {row[label_col]!r}; {CONVENTION}")
        keys = [c for i, c in enumerate(row) if i != label_col]
        if any(not k for k in keys):
            raise DatasetError(f"{path}:{n}: empty {key_help} column")
        out.append((n, keys, value != inverted))
    if not out:
        raise DatasetError(f"{path}: a header but no rows")
    return out


def _pair_images(fold: Path) -> tuple[Path, Path] | str:
    """The two images of a pair folder (``a.*`` and ``b.*`` when present, else the two images sorted by name),
    or why there are none."""
    if not fold.is_dir():
        return "no such folder"
    images = sorted(p for p in fold.iterdir() if p.is_file() and not is_junk(p.name) and is_image_name(p.name))
    by_stem = {p.stem.lower(): p for p in images}
    if "a" in by_stem and "b" in by_stem:
        return by_stem["a"], by_stem["b"]
    if len(images) == 2:
        return images[0], images[1]
    return f"{len(images)} images, expected 2 (or a.* and b.*)"


def open_pair_folders(root: str | Path) -> PairSet:
    """``root/annos.csv`` (fold,label) with ``root/<fold>/`` holding the pair's two images -> ``PairSet``."""
    root = Path(root)
    annos = root / ANNOS
    rows = read_label_csv(annos, 1, "fold")
    items_a: list[str] = []
    items_b: list[str] = []
    same: list[bool] = []
    rels = [ANNOS]
    skipped: list[str] = []
    listed: set[str] = set()
    for n, (fold,), is_same in rows:
        parts = PurePosixPath(fold.replace("\\", "/")).parts
        if PurePosixPath(fold).is_absolute() or ".." in parts:
            raise DatasetError(f"{annos}:{n}: fold {fold!r} must be a folder name inside {root}")
        listed.add(parts[0])
        found = _pair_images(root.joinpath(*parts))
        if isinstance(found, str):
            skipped.append(f"{root / fold} ({found}, {annos.name} line {n})")
            continue
        a, b = found
        items_a.append(str(a))
        items_b.append(str(b))
        same.append(is_same)
        rels += [a.relative_to(root).as_posix(), b.relative_to(root).as_posix()]
    check_most_kept(annos, len(same), len(rows), "folds skipped", skipped)
    warn_names(f"{annos}: pairs skipped", skipped, total=len(rows))
    unlisted = sorted(p.name for p in root.iterdir() if p.is_dir() and not is_junk(p.name) and p.name not in listed)
    warn_names(f"{annos}: folders not listed (no label, ignored)", unlisted)
    return PairSet(
        name=f"{root.name} (pair folders + {ANNOS})",
        source=str(root),
        sha256=sha256_tree(root, rels),
        items_a=items_a,
        items_b=items_b,
        same=np.array(same, dtype=np.bool_),
        _source=FileSource(),
    )


def open_pairs_csv(path: str | Path) -> PairSet:
    """A CSV of ``path_a,path_b,label`` (paths absolute or relative to the CSV's folder) -> ``PairSet``.

    Rows naming a missing file are skipped with one warning; more than half of them is an error.
    """
    path = Path(path)
    rows = read_label_csv(path, 2, "path_a,path_b")
    base = path.parent
    items_a: list[str] = []
    items_b: list[str] = []
    same: list[bool] = []
    missing: list[str] = []
    for n, (a, b), is_same in rows:
        pa, pb = (os.path.normpath(base / p) for p in (a, b))
        gone = [p for p in (pa, pb) if not os.path.isfile(p)]
        if gone:
            missing.append(f"{gone[0]} ({path.name} line {n})")
            continue
        items_a.append(pa)
        items_b.append(pb)
        same.append(is_same)
    check_most_kept(path, len(same), len(rows), "pairs name a missing file", missing)
    warn_names(f"{path}: pairs naming a missing file skipped", missing, total=len(rows))
    return PairSet(
        name=f"{path.name} (pairs CSV)",
        source=str(path),
        sha256=sha256_file(path),
        items_a=items_a,
        items_b=items_b,
        same=np.array(same, dtype=np.bool_),
        _source=FileSource(),
    )
