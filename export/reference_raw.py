"""The Keras reference as raw little-endian files, so the C++ runtime's parity tests need no .npz reader.

``reference.npz`` stays the Python runtime's copy; these files hold the same arrays byte for byte (C order),
and the manifest's ``reference.raw`` names each file with its dtype and shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.manifest import REFERENCE_RAW_ARRAYS, REFERENCE_RAW_DIR


def write_raw_reference(ref, bundle_dir: Path) -> dict[str, Any]:
    """Write ``reference/<array>.<f32|i64>`` for each array of ``ref``; returns the manifest's ``reference.raw``."""
    folder = Path(bundle_dir) / REFERENCE_RAW_DIR
    folder.mkdir(parents=True, exist_ok=True)
    listed = {}
    for name, (file_name, dtype) in REFERENCE_RAW_ARRAYS.items():
        array = np.ascontiguousarray(getattr(ref, name), dtype=np.dtype(dtype).newbyteorder("<"))
        (folder / file_name).write_bytes(array.tobytes(order="C"))
        listed[name] = {"file": f"{REFERENCE_RAW_DIR}/{file_name}", "dtype": dtype, "shape": list(array.shape)}
    return listed


def read_raw_reference(bundle_dir: Path, raw: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays listed in a manifest's ``reference.raw`` (what the C++ runtime reads), for tests and tools."""
    out = {}
    for name, entry in raw.items():
        data = (Path(bundle_dir) / entry["file"]).read_bytes()
        out[name] = np.frombuffer(data, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])
    return out
