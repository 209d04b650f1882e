"""Where an image's bytes come from: plain files, members of a zip (read in place, never extracted), or arrays.

A dataset stores one string id per image; its source turns that id into a decoded uint8 image through
``runtime.preprocess`` so training reads pixels exactly as the deployed runtime does.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from runtime.preprocess import IMAGE_SUFFIXES, ImageReadError, decode_image, normalize_image, read_image

# files tools leave behind that are not data; ignored without a warning
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})


def is_image_name(name: str) -> bool:
    """True when the file name has an image extension OpenCV decodes (case-insensitive)."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def is_junk(part: str) -> bool:
    """Hidden files and OS droppings (``.DS_Store``, ``__MACOSX``, ``Thumbs.db``)."""
    return part.startswith(".") or part.lower() in JUNK_NAMES


class ImageSource(Protocol):
    """Reads one item id into a uint8 RGB HxWx3 or gray HxW image; errors name the item."""

    def read(self, item: str) -> np.ndarray: ...


def _checked(read, item: str) -> np.ndarray:
    try:
        return read()
    except cv2.error as e:  # an OpenCV failure must still name the file
        raise ImageReadError(f"{item}: OpenCV could not decode it ({str(e).strip().splitlines()[-1]})") from None


class FileSource:
    """Item ids are file paths."""

    def read(self, item: str) -> np.ndarray:
        return _checked(lambda: read_image(item), item)

    def __repr__(self) -> str:
        return "FileSource()"


class ZipSource:
    """Item ids are ``<zip path>:<member>``; members are read from the open zip and decoded from memory.

    One ``ZipFile`` is shared under a lock (reading a stored or deflated member is short); decoding, which
    releases the GIL in OpenCV, happens outside the lock so a thread pool decodes in parallel.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.prefix = f"{self.path}:"
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    def item(self, member: str) -> str:
        return self.prefix + member

    def member(self, item: str) -> str:
        if not item.startswith(self.prefix):
            raise ImageReadError(f"{item}: not an item of {self.path}")
        return item[len(self.prefix) :]

    def read_bytes(self, item: str) -> bytes:
        member = self.member(item)
        with self._lock:
            if self._zip is None:
                try:
                    self._zip = zipfile.ZipFile(self.path)
                except (OSError, zipfile.BadZipFile) as e:
                    raise ImageReadError(f"{item}: cannot open {self.path} ({e})") from None
            try:
                return self._zip.read(member)
            except KeyError:
                raise ImageReadError(f"{item}: no such member in {self.path}") from None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # bad CRC, truncated member
                raise ImageReadError(f"{item}: cannot read the member ({e})") from None

    def read(self, item: str) -> np.ndarray:
        data = self.read_bytes(item)
        return _checked(lambda: decode_image(data, name=item), item)

    def close(self) -> None:
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"ZipSource({str(self.path)!r})"


class ArraySource:
    """Item ids map to in-memory arrays (datasets bundled with a library, e.g. scikit-learn's digits)."""

    def __init__(self, images: dict[str, np.ndarray]) -> None:
        self.images = images

    def read(self, item: str) -> np.ndarray:
        try:
            img = self.images[item]
        except KeyError:
            raise ImageReadError(f"{item}: no such item") from None
        return normalize_image(img, name=item)

    def __repr__(self) -> str:
        return f"ArraySource({len(self.images)} images)"
