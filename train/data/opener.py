"""``open_dataset``: one entry point that recognises every supported layout from a name or a path."""

from __future__ import annotations

import os
from pathlib import Path

from train.data.digits import open_digits
from train.data.errors import ACCEPTED, DatasetError
from train.data.folders import OMNIGLOT_NAMES, open_image_folder
from train.data.imageset import ImageSet, PairSet
from train.data.omniglot import SPLITS, check_split, find_split, open_omniglot, open_omniglot_path
from train.data.pairs import ANNOS, open_pair_folders, open_pairs_csv

NAMES = {"digits": "digits", "sklearn-digits": "digits", "omniglot": "omniglot"}


def describe_as_given(ds: ImageSet | PairSet, spec: str | os.PathLike) -> dict:
    """What a model card or an evaluation report records about its data: the dataset's counts and sha256, with
    the data named as the user gave it (``omniglot``, or the path as typed, relative where it was relative),
    never the absolute path it resolved to on the machine that trained it."""
    return {**ds.describe(), "source": os.fspath(spec)}


def open_dataset(spec: str | os.PathLike, split: str = "background") -> ImageSet | PairSet:
    """Open a dataset by name or path.

    * ``"digits"``: scikit-learn's bundled digits; ``"omniglot"``: Omniglot ``split`` ("background" or
      "evaluation") from ``$SIAMESE_EDGE_OMNIGLOT``, ``<repo>/../shared/data/omniglot`` or the download cache
      (names win over same-named folders: write ``./digits`` for a folder);
    * a ``.zip``: an Omniglot zip (or a zipped class-folder tree), read in place;
    * a ``.csv``: pairs ``path_a,path_b,label``;
    * a folder: with ``annos.csv`` -> pair folders (``PairSet``); holding ``images_<split>.zip`` or
      ``images_<split>/`` -> that Omniglot split; ``<alphabet>/<character>/<image>`` -> ``ImageSet`` with groups;
      ``<class>/<image>`` -> ``ImageSet``.

    Raises ``DatasetError`` naming the path and the accepted layouts.
    """
    if isinstance(spec, str) and spec.strip().lower() in NAMES:
        if NAMES[spec.strip().lower()] == "digits":
            return open_digits()
        return open_omniglot(split)
    path = Path(os.fspath(spec)).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory; {ACCEPTED}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".zip":
            return open_omniglot_path(path)
        if suffix == ".csv":
            if path.name == ANNOS:
                return open_pair_folders(path.parent)
            return open_pairs_csv(path)
        raise DatasetError(f"{path}: unsupported file type {suffix or '(none)'}; {ACCEPTED}")
    if not path.is_dir():
        raise DatasetError(f"{path}: neither a file nor a folder; {ACCEPTED}")
    if (path / ANNOS).is_file():
        return open_pair_folders(path)
    split = check_split(split)
    found = find_split(path, split)
    if found is not None:
        return open_omniglot_path(found)
    others = [s for s in SPLITS if find_split(path, s) is not None]
    if others:
        raise DatasetError(f"{path}: holds Omniglot {', '.join(others)} but not images_{split}.zip or images_{split}/")
    if path.name in OMNIGLOT_NAMES:
        return open_omniglot_path(path)
    return open_image_folder(path)
