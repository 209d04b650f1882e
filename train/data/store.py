"""Network inputs by index: decoded once into memory, or read and preprocessed on the fly from the index.

Samplers draw item indices; a store turns a batch of indices into float32 inputs. ``DecodedImages`` holds a
small dataset as one array (fastest when it fits); ``StreamedImages`` reads each image from its file or zip
member through ``runtime.preprocess`` when a batch asks for it, so memory does not grow with the dataset.
``choose_loading`` decides between them from the decoded size.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from runtime.preprocess import ImageReadError, Preprocessing, preprocess_image
from train.data.errors import DatasetWarning

LOADINGS = ("auto", "memory", "stream")
# auto decodes a dataset into memory only when its float32 inputs take at most this much (measured: the committed
# Omniglot recipe's 123 MB trains as fast from memory as streamed; VGG16's 2.5 GB at 105x105x3 must stream)
MEMORY_BUDGET_BYTES = 512 * 2**20
WARN_FIRST = 3  # unreadable images met while streaming: one warning each for the first few, then one summary


class ImageStore(Protocol):
    """Float32 HxWxC network inputs by item index; ``take`` says which of the asked items could be read."""

    input_shape: tuple[int, int, int]

    def __len__(self) -> int: ...

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (float32 N x H x W x C, bool mask of readable rows; unreadable rows are zero)."""
        ...


def decoded_bytes(n_items: int, preprocessing: Preprocessing) -> int:
    """Bytes that ``n_items`` preprocessed float32 inputs take in memory."""
    h, w, c = preprocessing.input_shape
    return int(n_items) * h * w * c * 4


def choose_loading(n_items: int, preprocessing: Preprocessing, loading: str = "auto") -> str:
    """``"memory"`` or ``"stream"``: as asked, or for ``"auto"`` memory when the decoded inputs fit
    ``MEMORY_BUDGET_BYTES``."""
    if loading not in LOADINGS:
        raise ValueError(f"data loading {loading!r}: expected one of {LOADINGS}")
    if loading != "auto":
        return loading
    return "memory" if decoded_bytes(n_items, preprocessing) <= MEMORY_BUDGET_BYTES else "stream"


class DecodedImages:
    """A dataset decoded once (``train.data.load_images``): indexing is a gather from one array."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.input_shape = tuple(x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, np.int64)
        return self.x[idx], np.ones(len(idx), np.bool_)


class StreamedImages:
    """Items read and preprocessed when asked for; nothing decoded is kept.

    Safe to call from several threads at once (tf.data's parallel map): OpenCV releases the GIL while it
    decodes and resizes. An unreadable item gives a zero row marked unreadable, and a ``DatasetWarning``
    naming it (the first ``WARN_FIRST`` items, then one that says the rest are only counted).
    """

    def __init__(
        self, items: Sequence[str], read: Callable[[str], np.ndarray], preprocessing: Preprocessing, name: str
    ) -> None:
        self.items = list(items)
        self.read = read
        self.preprocessing = preprocessing
        self.name = name
        self.input_shape = preprocessing.input_shape
        self.unreadable: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def image(self, i: int) -> np.ndarray | None:
        """Item ``i`` as a network input, or None when it cannot be read (recorded and warned about)."""
        item = self.items[i]
        try:
            return preprocess_image(self.read(item), self.preprocessing)
        except ImageReadError as e:
            self._record(item, str(e))
            return None

    def _record(self, item: str, message: str) -> None:
        with self._lock:
            if item in self.unreadable:
                return
            self.unreadable[item] = message
            n = len(self.unreadable)
        if n <= WARN_FIRST:
            warnings.warn(
                f"{self.name}: unreadable image skipped wherever it is drawn: {message}", DatasetWarning, stacklevel=1
            )
        if n == WARN_FIRST:
            warnings.warn(
                f"{self.name}: further unreadable images are skipped and counted, not named",
                DatasetWarning,
                stacklevel=1,
            )

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, np.int64)
        out = np.zeros((len(idx), *self.input_shape), np.float32)
        ok = np.ones(len(idx), np.bool_)
        for k, i in enumerate(idx):
            x = self.image(int(i))
            if x is None:
                ok[k] = False
            else:
                out[k] = x
        return out, ok


class SubsetImages:
    """The items ``idx`` of another store (a train or validation split), renumbered from 0, without copying."""

    def __init__(self, store: ImageStore, idx: np.ndarray) -> None:
        self.store = store
        self.idx = np.asarray(idx, np.int64)
        self.input_shape = store.input_shape

    def __len__(self) -> int:
        return len(self.idx)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.store.take(self.idx[np.asarray(idx, np.int64)])
