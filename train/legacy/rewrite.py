"""Rewriting a saved model config (Keras 1/2 or Keras 3 format) so Keras 3 can build it safely.

- distance ``Lambda`` layers become the registered ``AbsDifference`` / ``EuclideanDistance`` (same name,
  same inbound nodes), recognised without running their bytecode (see ``lambdas``);
- any other ``Lambda`` is refused unless the caller allows unsafe deserialization;
- Keras 2 counted a nested model's own construction as its node 0, Keras 3 does not: node indices that
  point at nested models are shifted down by one (Keras 3 alone fails on these files with "disconnected
  nodes").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import keras

from train.legacy.errors import ModelLoadError
from train.legacy.lambdas import classify_lambda
from train.models.layers import CUSTOM_OBJECTS, DISTANCE_LAYERS

UNSAFE_FLAG = "--allow-unsafe-lambda on the command line, allow_unsafe=True in the API"
MODEL_CLASSES = ("Functional", "Model", "Sequential")


@dataclass
class Rewrite:
    config: dict
    distances: dict[str, str] = field(default_factory=dict)  # layer name -> 'abs' | 'euclidean'
    unsafe: list[str] = field(default_factory=list)  # Lambdas left as they are (allow_unsafe)


def _distance_layer(kind: str, old: dict) -> dict:
    """The registered layer that replaces a distance Lambda, in the entry's own format."""
    cls = DISTANCE_LAYERS[kind]
    name = old.get("name") or old["config"]["name"]
    entry: dict[str, Any]
    if "module" in old:  # Keras 3 format
        entry = dict(keras.saving.serialize_keras_object(cls(name=name)))
    else:
        cfg: dict[str, Any] = {"name": name, "trainable": bool(old["config"].get("trainable", True))}
        dtype = old["config"].get("dtype")
        if isinstance(dtype, str):
            cfg["dtype"] = dtype
        entry = {"class_name": cls.__name__, "config": cfg}
    entry["name"] = name
    entry["inbound_nodes"] = old.get("inbound_nodes", [])
    return entry


def _skips_first_node(layer: dict) -> bool:
    """Keras 2: a nested model built from an Input starts with a node of its own, left out of configs."""
    if layer.get("class_name") not in MODEL_CLASSES or "module" in layer:
        return False
    cfg = layer.get("config")
    if layer["class_name"] != "Sequential":
        return True
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers", [])
    if not layers:
        return False
    first = layers[0]
    return first.get("class_name") == "InputLayer" or "batch_input_shape" in first.get("config", {})


def _shift_refs(refs: Any, shifted: set[str]) -> Any:
    """[name, node, tensor(, kwargs)] references: node - 1 for layers in ``shifted``."""
    if isinstance(refs, list) and len(refs) in (3, 4) and isinstance(refs[0], str) and isinstance(refs[1], int):
        if refs[0] in shifted and refs[1] > 0:
            return [refs[0], refs[1] - 1, *refs[2:]]
        return refs
    if isinstance(refs, list):
        return [_shift_refs(r, shifted) for r in refs]
    return refs


def _rewrite_model(entry: dict, allow_unsafe: bool, out: Rewrite, refused: list[str], path: str) -> None:
    """Rewrite one model config in place (recursing into nested models)."""
    cfg = entry.get("config")
    if entry.get("class_name") == "Sequential" and isinstance(cfg, list):  # Keras <= 2.2: config is the layer list
        entry["config"] = cfg = {"name": entry.get("name", "sequential"), "layers": cfg}
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        return
    layers = cfg["layers"]
    shifted = {la.get("name") or la.get("config", {}).get("name") for la in layers if _skips_first_node(la)}
    for i, layer in enumerate(layers):
        name = layer.get("name") or layer.get("config", {}).get("name")
        where = f"{path}/{name}" if path else str(name)
        if layer.get("class_name") == "Lambda":
            kind, why = classify_lambda(layer)
            if kind is not None:
                layers[i] = layer = _distance_layer(kind, layer)
                out.distances[name] = kind
            elif allow_unsafe:
                out.unsafe.append(where)
            else:
                refused.append(f"{where!r} ({why})")
        elif layer.get("class_name") in MODEL_CLASSES:
            _rewrite_model(layer, allow_unsafe, out, refused, where)
        if shifted and isinstance(layer.get("inbound_nodes"), list):
            layer["inbound_nodes"] = [
                _shift_refs(node, shifted) if isinstance(node, list) else node for node in layer["inbound_nodes"]
            ]
    if shifted and entry.get("class_name") != "Sequential":
        # Keras 3 shifts output references to nested Functional models itself, but not to Sequential ones
        seq = {la.get("name") for la in layers if la.get("class_name") == "Sequential" and _skips_first_node(la)}
        for key in ("input_layers", "output_layers"):
            if key in cfg and seq:
                cfg[key] = _shift_refs(cfg[key], seq)


def rewrite_config(model_config: dict, allow_unsafe: bool, source: str) -> Rewrite:
    """A copy of ``model_config`` with distance Lambdas replaced; refuses other Lambdas unless allowed."""
    config = copy.deepcopy(model_config)
    out = Rewrite(config)
    refused: list[str] = []
    _rewrite_model(config, allow_unsafe, out, refused, "")
    if refused:
        raise ModelLoadError(
            f"{source}: refusing to load Lambda layer(s) {', '.join(refused)}: a Lambda stores its function as "
            "Python bytecode, and loading it runs that code. Only the distance Lambdas of the known Siamese "
            f"models are rebuilt safely. If you trust this file, pass {UNSAFE_FLAG} (the bytecode only loads on "
            "the Python version that wrote the file)."
        )
    return out


def build_model(rewrite: Rewrite, source: str) -> keras.Model:
    """Build a Keras 3 model from a (rewritten) legacy config, the way Keras' own HDF5 loader does."""
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import serialization_lib

    config = copy.deepcopy(rewrite.config)
    try:
        with (
            saving_options.keras_option_scope(use_legacy_config=True),
            serialization_lib.SafeModeScope(not rewrite.unsafe),
        ):
            model = saving_utils.model_from_config(config, custom_objects=dict(CUSTOM_OBJECTS))
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - anything Keras raises here means the config could not be built
        hint = ""
        if rewrite.unsafe:
            hint = (
                f" (the file has Lambda layers {rewrite.unsafe} deserialized from bytecode: this fails when the "
                "file was written by another Python version than this one)"
            )
        raise ModelLoadError(f"{source}: Keras 3 could not rebuild the model from its config: {e}{hint}") from e
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{source}: the config describes a {type(model).__name__}, expected a model")
    return model
