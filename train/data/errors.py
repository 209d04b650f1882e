"""Dataset errors and the one way datasets report skipped files.

Bad input must surface as a message naming the file (``DatasetError``) or as a counted skip with a single
warning, never as a crash deep inside TensorFlow.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence


class DatasetError(ValueError):
    """A dataset cannot be opened or is malformed; the message names the path and what is accepted."""


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped or is unusable for part of training (e.g. one-image classes)."""


def warn_names(
    what: str, names: Sequence[str], *, total: int | None = None, first: int = 3, stacklevel: int = 3
) -> None:
    """Emit ONE warning for a batch of files or classes: ``what``, the count and the first few names."""
    if not names:
        return
    shown = "; ".join(str(n) for n in names[:first])
    more = f" (+{len(names) - first} more)" if len(names) > first else ""
    of = f" of {total}" if total is not None else ""
    warnings.warn(f"{what}: {len(names)}{of}; first: {shown}{more}", DatasetWarning, stacklevel=stacklevel)


def check_most_kept(source: object, kept: int, total: int, what: str, names: Sequence[str] = ()) -> None:
    """A dataset that lost more than half of its ``total`` entries is an error naming ``source`` and the count,
    not a training run on what is left (whose model card would then describe the wrong data). Half or fewer
    lost: the caller's one warning counts them."""
    if total and (total - kept) * 2 > total:
        raise DatasetError(
            f"{source}: {total - kept} of {total} {what}{f' (first: {names[0]})' if names else ''}; more than half "
            "of the dataset is unusable: fix the list or its files (at most half may be skipped)"
        )


ACCEPTED = (
    "accepted: 'digits' (scikit-learn, bundled); 'omniglot' (official zips); an Omniglot zip or folder "
    "(<alphabet>/<character>/<image>); a folder or zip with one folder per class (<class>/<image>); "
    "pair folders (<fold>/<image a>, <image b> with annos.csv of fold,label); a .csv of path_a,path_b,label"
)
