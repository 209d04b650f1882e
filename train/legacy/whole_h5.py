"""Whole-model HDF5 files (Keras 2 ``model.save('m.h5')`` and Keras 3's legacy HDF5 writer): the config is
rewritten (distance Lambdas made safe), built, given the file's weights and converted to the project's
structure."""

from __future__ import annotations

import json

import h5py

from train.legacy.assign import apply, plan_by_name
from train.legacy.convert import to_project
from train.legacy.errors import ModelLoadError
from train.legacy.h5weights import read_layer_groups, weights_group
from train.legacy.rewrite import build_model, rewrite_config
from train.models import Siamese


def read_model_config(f: h5py.File, source: str) -> dict:
    raw = f.attrs["model_config"]
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    try:
        config = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{source}: the 'model_config' attribute is not JSON ({e})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(f"{source}: 'model_config' is not a Keras model config (no 'class_name')")
    return config


def load_whole_h5(path: str, arch: str | None, allow_unsafe: bool, build_kwargs: dict) -> Siamese:
    with h5py.File(path, "r") as f:
        rewrite = rewrite_config(read_model_config(f, path), allow_unsafe, path)
        group = weights_group(f)
        if group is None:
            raise ModelLoadError(f"{path}: a model config without weights (no 'model_weights' group)")
        entries = read_layer_groups(group, path)
    model = build_model(rewrite, path)
    apply(plan_by_name(model, entries, path))
    return to_project(model, path, arch, build_kwargs)
