"""``.keras`` files: the project's own (loaded in safe mode; config from the model card beside them, else
from the registry) and other Keras 3 Siamese models (distance Lambdas rewritten, then converted)."""

from __future__ import annotations

import json
import tempfile
import warnings
import zipfile
from pathlib import Path

import keras

from train import model_card
from train.legacy import archs
from train.legacy.convert import to_project
from train.legacy.errors import LoadWarning, ModelLoadError
from train.legacy.graph import is_model, leaf_signature
from train.legacy.rewrite import rewrite_config
from train.models import Siamese, SiameseConfig, list_models

CARD = model_card.CARD_NAME


def read_card(path: str) -> SiameseConfig | None:
    """The config in the model card beside ``path``, if there is one and it describes this file."""
    try:
        card = model_card.read_card(path, warning=LoadWarning)
    except model_card.CardError as e:
        raise ModelLoadError(str(e)) from None
    if card is None:
        return None
    try:
        return SiameseConfig.from_dict(card["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{Path(path).with_name(CARD)}: the model card has no valid 'config' ({e})") from None


def run_build_kwargs(path: str) -> dict:
    """A training snapshot (``RUN/checkpoints/epochNNN.keras``) has no card of its own: its run's card says
    which factory arguments built it (e.g. ``members=3``), so its shapes can be matched without guessing."""
    p = Path(path)
    if p.parent.name != "checkpoints" or not (p.parent.parent / CARD).is_file():
        return {}
    try:
        config = read_card(str(p.parent.parent / "model.keras"))
    except ModelLoadError:  # an unreadable run card: match the shapes without it, as before it existed
        return {}
    return dict(config.build_kwargs) if config is not None else {}


def registry_config(arch: str, model: keras.Model, build_kwargs: dict, source: str) -> SiameseConfig:
    """The registry's config for a loaded project model: factory arguments found by matching its shapes."""
    archs.check_arch(arch)
    embedding = model.get_layer("embedding")
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    dim = int(embedding.output.shape[-1])
    found = archs.match_arch(leaf_signature(model), [arch], shape, dim, build_kwargs)
    if found is not None:
        return found[1]
    described = archs.describe(arch, **{**build_kwargs, "input_shape": shape})
    if described is None:
        raise ModelLoadError(f"{source}: architecture {arch!r} cannot be built for input shape {shape}")
    warnings.warn(
        f"{source}: the model's weights do not have the shapes of {arch!r} with {build_kwargs or 'default arguments'}; "
        "using that architecture's config anyway (pass the factory's arguments to match)",
        LoadWarning,
        stacklevel=3,
    )
    return described[0]


def _config_json(path: str) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: expected a .keras archive with a config.json, found {e}") from None


def _has_lambda(config: object) -> bool:
    if isinstance(config, dict):
        return config.get("class_name") == "Lambda" or any(_has_lambda(v) for v in config.values())
    if isinstance(config, list):
        return any(_has_lambda(v) for v in config)
    return False


def _load(path: str, allow_unsafe: bool) -> keras.Model:
    config = _config_json(path)
    try:
        if not _has_lambda(config):
            return keras.models.load_model(path, safe_mode=True, compile=False)
        rewrite = rewrite_config(config, allow_unsafe, path)
        with tempfile.TemporaryDirectory() as tmp:
            rewritten = str(Path(tmp) / Path(path).name)
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(rewritten, "w") as dst:
                for item in src.infolist():
                    data = json.dumps(rewrite.config).encode() if item.filename == "config.json" else src.read(item)
                    dst.writestr(item, data)
            return keras.models.load_model(rewritten, safe_mode=not rewrite.unsafe, compile=False)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - anything Keras raises means this file cannot be loaded
        raise ModelLoadError(f"{path}: Keras could not load this .keras file: {e}") from e


def load_keras_file(path: str, arch: str | None, allow_unsafe: bool, build_kwargs: dict) -> Siamese:
    model = _load(path, allow_unsafe)
    layers = {layer.name: layer for layer in model.layers}
    if not (is_model(layers.get("embedding")) and is_model(layers.get("head"))):
        return to_project(model, path, arch, build_kwargs)
    config = read_card(path)
    if config is None:
        if arch is None:
            by_model_name = {name.replace("-", "_"): name for name in list_models()}
            arch = by_model_name.get(model.name)
        if arch is None:
            raise ModelLoadError(
                f"{path}: model {model.name!r} has no {CARD} beside it and its name is no known architecture "
                f"(model names: {', '.join(sorted(n.replace('-', '_') for n in list_models()))}); "
                "pass --arch NAME to say which architecture it is, or keep the model card written with it"
            )
        config = registry_config(arch, model, {**run_build_kwargs(path), **build_kwargs}, path)
    return Siamese(model, config)
