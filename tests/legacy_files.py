"""Writers for legacy model files as the seeds' Keras versions wrote them (shared by the legacy and export tests)."""

from __future__ import annotations

import h5py
import numpy as np

VGG = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


def vgg_file_weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    weights: dict[str, list[np.ndarray]] = {}
    cin = 3
    for block, convs, filters in VGG:
        for i in range(1, convs + 1):
            std = np.sqrt(2.0 / (9 * cin))
            weights[f"block{block}_conv{i}"] = [
                rng.normal(0, std, (3, 3, cin, filters)).astype(np.float32),
                rng.normal(0, 0.01, (filters,)).astype(np.float32),
            ]
            cin = filters
    weights["dense_1"] = [
        rng.normal(0, np.sqrt(2 / 4608), (4608, 512)).astype(np.float32),
        rng.normal(0, 0.01, (512,)).astype(np.float32),
    ]
    weights["dense_2"] = [rng.normal(0, 0.02, (512, 1)).astype(np.float32), np.zeros((1,), np.float32)]
    return weights


def vgg_layer_names() -> list[str]:
    names = ["input_1", "input_2"]
    for block, convs, _ in VGG:
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    return names + ["flatten", "lambda_1", "dense_1", "dense_2"]


def write_keras215_weights(path, layer_names: list[str], weights: dict[str, list[np.ndarray]]) -> None:
    """The layout of Keras 2.1.5 ``model.save_weights``: root attrs, one group per layer, weight_names attrs."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode("utf8") for n in layer_names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        for name in layer_names:
            g = f.create_group(name)
            arrays = weights.get(name, [])
            kinds = ["kernel", "bias"] if len(arrays) == 2 else [f"w{i}" for i in range(len(arrays))]
            wnames = [f"{name}/{k}:0".encode() for k in kinds]
            g.attrs["weight_names"] = wnames
            for wname, value in zip(wnames, arrays):
                ds = g.create_dataset(wname.decode(), value.shape, dtype=value.dtype)
                ds[:] = value
