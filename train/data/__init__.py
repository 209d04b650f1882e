"""Datasets for training and evaluation: Omniglot (folder, zip, download), class folders, pair folders with
annos.csv, pair CSVs and scikit-learn's digits, all read through ``runtime.preprocess``.

``open_dataset`` recognises the layout and indexes it (item ids, labels, groups, sha256; nothing decoded);
``load_images`` / ``load_pairs`` / ``decode_pairs`` decode a small dataset into arrays, and ``train.data.store``
reads a large one on the fly (``choose_loading`` decides).
"""

from train.data.digits import open_digits
from train.data.download import cache_root, download_file, safe_extract, verify_sha256sums
from train.data.errors import DatasetError, DatasetWarning
from train.data.folders import open_image_folder
from train.data.imageset import ImageSet, PairSet
from train.data.loading import decode_pairs, load_images, load_pairs, pair_index
from train.data.omniglot import cache_dir, check_counts, count_tree, fetch_omniglot, omniglot_dir_default, open_omniglot
from train.data.opener import describe_as_given, open_dataset
from train.data.pairs import open_pair_folders, open_pairs_csv
from train.data.zips import open_image_zip

__all__ = [
    "DatasetError",
    "DatasetWarning",
    "ImageSet",
    "PairSet",
    "cache_dir",
    "cache_root",
    "check_counts",
    "count_tree",
    "decode_pairs",
    "describe_as_given",
    "download_file",
    "fetch_omniglot",
    "load_images",
    "load_pairs",
    "omniglot_dir_default",
    "open_dataset",
    "open_digits",
    "open_image_folder",
    "open_image_zip",
    "open_omniglot",
    "open_pair_folders",
    "open_pairs_csv",
    "pair_index",
    "safe_extract",
    "verify_sha256sums",
]
