"""Load every model file users bring into the project's structure (a ``train.models.Siamese``).

``load_model(path)`` looks at what the file is, not at its name:

- a ``.keras`` archive: the project's own (config from ``model_card.json`` beside it, else the registry),
  or another Keras 3 Siamese model (converted);
- a weights-only HDF5 file (bubbliiiing's ``Omniglot_vgg.h5``, ``save_weights`` files, Keras 3
  ``.weights.h5``): the architecture is recognised from its layers and rebuilt, weights load by order;
- a whole-model HDF5 file (Keras 2 ``model.save('m.h5')``, Keras 3's HDF5 writer): rebuilt from its config;
- a SavedModel folder from Keras 2 (``model.save('dir')``): rebuilt from its Keras metadata and variables.

Lambda bytecode is never run unless ``allow_unsafe`` (``--allow-unsafe-lambda``) is given; the seeds'
distance Lambdas are recognised without running them and become registered layers.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import h5py

from runtime.console import one_line
from train.legacy.errors import LoadWarning, ModelLoadError
from train.legacy.h5weights import is_hdf5
from train.models import Siamese

__all__ = ["LoadWarning", "ModelLoadError", "load_model"]

ZIP_MAGIC = b"PK\x03\x04"  # a zip's first local header: a .keras archive whose end (its directory) is missing


def load_model(
    path: str | os.PathLike, arch: str | None = None, allow_unsafe: bool = False, **build_kwargs: Any
) -> Siamese:
    """Load ``path`` as a project model.

    arch: the registry architecture, when the file does not say (it is recognised where possible); it also
        gives the preprocessing of imported models.
    allow_unsafe: deserialize Lambda layers that are not recognised distances (runs their bytecode).
    build_kwargs: factory arguments for rebuilt architectures (e.g. ``input_shape``).
    """
    p = Path(path)
    source = str(p)
    if "input_shape" in build_kwargs and build_kwargs["input_shape"] is not None:
        build_kwargs["input_shape"] = tuple(int(d) for d in build_kwargs["input_shape"])
    if not p.exists():
        raise ModelLoadError(f"{source}: no such file or folder")
    if p.is_dir():
        from train.legacy.savedmodel import is_savedmodel, load_savedmodel

        if not is_savedmodel(source):
            listing = sorted(x.name for x in p.iterdir())[:10]
            raise ModelLoadError(
                f"{source}: a folder, expected a SavedModel folder (with saved_model.pb); found {listing or 'nothing'}"
            )
        return load_savedmodel(source, arch, allow_unsafe, build_kwargs)
    if zipfile.is_zipfile(source):
        from train.legacy.keras_file import load_keras_file

        return load_keras_file(source, arch, allow_unsafe, build_kwargs)
    if is_hdf5(source):
        try:
            with h5py.File(source, "r") as f:
                whole = "model_config" in f.attrs
        except OSError as e:  # h5py's own message does not name the file
            raise ModelLoadError(f"{source}: a truncated or corrupt HDF5 (.h5) file ({one_line(e)})") from None
        if whole:
            from train.legacy.whole_h5 import load_whole_h5

            return load_whole_h5(source, arch, allow_unsafe, build_kwargs)
        from train.legacy.weights_only import load_weights_only

        return load_weights_only(source, arch, build_kwargs)
    with open(source, "rb") as fh:
        head = fh.read(16)
    if head.startswith(ZIP_MAGIC):
        raise ModelLoadError(
            f"{source}: a truncated or corrupt .keras (zip) archive: it starts as a zip but its directory at the "
            "end is missing or damaged; copy or save the model again"
        )
    raise ModelLoadError(
        f"{source}: expected a Keras model (.keras archive, HDF5 .h5 file, or a SavedModel folder); "
        f"found a file starting with {head!r}"
    )
