"""Reading weights from HDF5 files without Keras: Keras 1/2 layouts (``layer_names`` / ``weight_names``
attributes, also inside a whole-model file's ``model_weights`` group) and Keras 3 ``.weights.h5``.

Everything is read into memory first, so nothing is assigned before every check has passed.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from train.legacy.errors import ModelLoadError
from train.legacy.graph import Leaf

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class LayerWeights:
    """One layer's weights as a file stores them."""

    name: str
    weight_names: list[str]
    arrays: list[np.ndarray]

    @property
    def leaf(self) -> Leaf:
        return (self.name, tuple(tuple(int(d) for d in a.shape) for a in self.arrays))


def is_hdf5(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == HDF5_MAGIC


def _text(x: object) -> str:
    return x.decode("utf8") if isinstance(x, (bytes, np.bytes_)) else str(x)


def attr_strings(obj: h5py.Group, name: str) -> list[str]:
    """A list-of-strings attribute, also in its chunked form (``name0``, ``name1``, ... for long lists)."""
    if name in obj.attrs:
        data = obj.attrs[name]
        return [_text(d) for d in np.atleast_1d(data)] if np.size(data) else []
    out: list[str] = []
    i = 0
    while f"{name}{i}" in obj.attrs:
        out.extend(_text(d) for d in np.atleast_1d(obj.attrs[f"{name}{i}"]))
        i += 1
    return out


def has_layer_names(group: h5py.Group) -> bool:
    return "layer_names" in group.attrs or "layer_names0" in group.attrs


def weights_group(f: h5py.File) -> h5py.Group | None:
    """The group holding Keras 1/2-layout weights: the file itself or its ``model_weights``."""
    if has_layer_names(f):
        return f
    if "model_weights" in f and has_layer_names(f["model_weights"]):
        return f["model_weights"]
    return None


def is_keras3_weights(f: h5py.File) -> bool:
    return not has_layer_names(f) and ("layers" in f or "vars" in f) and "model_config" not in f.attrs


def read_layer_groups(group: h5py.Group, source: str) -> list[LayerWeights]:
    """Every layer of a Keras 1/2-layout group, in the file's layer order (layers without weights included)."""
    out = []
    for name in attr_strings(group, "layer_names"):
        if name not in group:
            raise ModelLoadError(f"{source}: the file lists layer {name!r} in 'layer_names' but has no group for it")
        g = group[name]
        names = attr_strings(g, "weight_names")
        arrays = []
        for w in names:
            if w not in g:
                raise ModelLoadError(f"{source}: layer {name!r} lists weight {w!r} but the file has no such dataset")
            arrays.append(np.asarray(g[w][()]))
        out.append(LayerWeights(name, names, arrays))
    return out


def leaf_entries(entries: list[LayerWeights]) -> list[LayerWeights]:
    """Weighted layers as leaves: a nested model's group (weights of several layers) is split per layer.

    The owner of ``conv2d/kernel:0`` is ``conv2d``; a group whose weights have several owners is a nested model.
    """
    out = []
    for e in entries:
        if not e.arrays:
            continue
        owners: dict[str, list[tuple[str, np.ndarray]]] = {}
        for n, a in zip(e.weight_names, e.arrays):
            owners.setdefault(n.rsplit("/", 1)[0] if "/" in n else e.name, []).append((n, a))
        if len(owners) <= 1:
            out.append(e)
        else:
            out.extend(LayerWeights(o, [n for n, _ in items], [a for _, a in items]) for o, items in owners.items())
    return out


def read_keras3_weights(f: h5py.File) -> list[LayerWeights]:
    """Keras 3 ``.weights.h5``: every ``vars`` group with datasets. Group order is alphabetical, not the
    model's, so callers may only compare these as a multiset (Keras itself loads the file)."""
    out: list[LayerWeights] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(obj):
            keys = sorted(obj.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            label = _text(obj.attrs.get("name", name))
            out.append(LayerWeights(label, [f"{name}/{k}" for k in keys], [np.asarray(obj[k][()]) for k in keys]))

    f.visititems(visit)
    return out
