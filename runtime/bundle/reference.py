"""The Keras reference a bundle is checked against, read and written here only: ``reference.npz`` and its raw copy.

The exporter computes it (``export.reference.build_reference``: real images, Keras embeddings and pair scores)
and saves it through ``Reference.save`` and ``write_raw``; the runtime's parity check, the C++ test data and the
tests read it through ``Reference.load``, which refuses a file that is not one, naming it. The raw copy holds the
same arrays byte for byte as little-endian C-order files, so the C++ runtime needs no .npz reader; the manifest's
``reference.raw`` names each file with its dtype and shape (``runtime.bundle.manifest.RawArray``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.bundle.layout import REFERENCE_RAW_ARRAYS, REFERENCE_RAW_DIR, BundleError
from runtime.bundle.manifest import RawArray
from runtime.fileio import atomic_path

REQUIRED = ("inputs", "embeddings", "pair_a", "pair_b", "scores")


@dataclass
class Reference:
    """inputs: preprocessed float32 NHWC; embeddings: (N, dim) float32 from Keras; pair_a/pair_b: indices into
    inputs; scores: (P,) Keras scores of those pairs; same: (P,) int8, 1 same, 0 different, -1 unknown; items:
    where each input came from; source: "calib-images: DIR" | "model card data: ..." | "random inputs (...)"."""

    inputs: np.ndarray
    embeddings: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    scores: np.ndarray
    same: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    items: list[str] = field(default_factory=list)
    source: str = "unknown"

    @property
    def is_random(self) -> bool:
        return self.source.startswith("random")

    def save(self, path: str | Path) -> Path:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(
                tmp,
                inputs=self.inputs,
                embeddings=self.embeddings,
                pair_a=self.pair_a,
                pair_b=self.pair_b,
                scores=self.scores,
                same=self.same,
                items=np.array(self.items, dtype=np.str_),
                source=np.array(self.source),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        """Read ``path``; BundleError naming it when it is missing or not a reference export.build wrote."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in REQUIRED}
                same = z["same"] if "same" in z.files else np.full(len(arrays["scores"]), -1, np.int8)
                items = [str(s) for s in z["items"]] if "items" in z.files else []
                source = str(z["source"]) if "source" in z.files else "unknown"
        except FileNotFoundError:
            raise BundleError(f"{path}: missing; the parity check needs the bundle's reference") from None
        except (KeyError, ValueError, OSError) as e:
            raise BundleError(f"{path}: not a reference written by export.build ({e})") from None
        return cls(**arrays, same=same, items=items, source=source)


def write_raw(ref: Reference, bundle_dir: str | Path) -> dict[str, RawArray]:
    """Write ``reference/<array>.<f32|i64>`` for each array of ``ref``; returns the manifest's ``reference.raw``."""
    folder = Path(bundle_dir) / REFERENCE_RAW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    listed = {}
    for name, (file_name, dtype) in REFERENCE_RAW_ARRAYS.items():
        array = np.ascontiguousarray(getattr(ref, name), dtype=np.dtype(dtype).newbyteorder("<"))
        (folder / file_name).write_bytes(array.tobytes(order="C"))
        listed[name] = RawArray(f"{REFERENCE_RAW_DIR}/{file_name}", dtype, tuple(array.shape))
    return listed


def read_raw(bundle_dir: str | Path, raw: dict[str, RawArray]) -> dict[str, np.ndarray]:
    """The arrays listed in a manifest's ``reference.raw`` (what the C++ runtime reads), for tests and tools."""
    out = {}
    for name, entry in raw.items():
        data = (Path(bundle_dir) / entry.file).read_bytes()
        out[name] = np.frombuffer(data, dtype=np.dtype(entry.dtype).newbyteorder("<")).reshape(entry.shape)
    return out
