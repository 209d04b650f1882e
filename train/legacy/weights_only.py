"""Weights-only HDF5 files (bubbliiiing's ``Omniglot_vgg.h5``, Keras 2 ``save_weights``, Keras 3
``.weights.h5``): recognise the architecture, rebuild it from the registry, load by layer order."""

from __future__ import annotations

import warnings

import h5py
import keras

from train.legacy import archs
from train.legacy.assign import apply, plan_by_order
from train.legacy.errors import LoadWarning, ModelLoadError
from train.legacy.h5weights import (
    is_keras3_weights,
    leaf_entries,
    read_keras3_weights,
    read_layer_groups,
    weights_group,
)
from train.models import Siamese, create_model


def load_weights_by_order(model: keras.Model, path: str) -> None:
    """Load a Keras 1/2-layout weights file into ``model`` by the order of weighted layers.

    Every count and shape is checked before the first assignment: on error the model is left untouched.
    """
    with h5py.File(path, "r") as f:
        group = weights_group(f)
        if group is None:
            raise ModelLoadError(f"{path}: expected a Keras weights file ('layer_names' attribute), found none")
        entries = leaf_entries(read_layer_groups(group, path))
    apply(plan_by_order(model, entries, path))


def load_weights_only(path: str, arch: str | None, build_kwargs: dict) -> Siamese:
    """A registry model with the file's weights; the architecture recognised from the file if not given."""
    with h5py.File(path, "r") as f:
        group = weights_group(f)
        if group is not None:
            entries = leaf_entries(read_layer_groups(group, path))
            keras3 = False
        elif is_keras3_weights(f):
            entries = read_keras3_weights(f)
            keras3 = True
        else:
            raise ModelLoadError(
                f"{path}: an HDF5 file that is neither a Keras model (no 'model_config' attribute) nor a weights "
                f"file (no 'layer_names' attribute, no Keras 3 'layers' group); found top-level keys {list(f)[:10]} "
                f"and attributes {list(f.attrs)[:10]}"
            )
    if not entries:
        raise ModelLoadError(f"{path}: the weights file holds no weights")
    found = [e.leaf for e in entries]
    recognise = archs.recognise_multiset if keras3 else archs.recognise
    name, shape = recognise(found, arch, build_kwargs, path)
    default = archs.default_input_shape(name)
    if "input_shape" not in build_kwargs and tuple(shape) != tuple(default):
        warnings.warn(
            f"{path}: input shape {shape} inferred from the weights ({name}'s default is {default}); "
            "pass input_shape to choose another size with the same weights",
            LoadWarning,
            stacklevel=2,
        )
    if arch is None:
        warnings.warn(
            f"{path}: recognised as architecture {name!r} from its weighted layers", LoadWarning, stacklevel=2
        )
    kwargs = {**build_kwargs, "input_shape": tuple(shape)}
    siamese = create_model(name, **kwargs)
    if keras3:
        try:
            siamese.model.load_weights(path)
        except Exception as e:  # noqa: BLE001 - the fresh model is discarded, never returned half loaded
            raise ModelLoadError(f"{path}: Keras could not load these weights into {name}: {e}") from e
    else:
        apply(plan_by_order(siamese.model, entries, path))
    return siamese
