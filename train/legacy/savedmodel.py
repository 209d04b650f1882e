"""SavedModel folders written by Keras 2 (``model.save('dir')``), which Keras 3 cannot load as a model.

The Keras 2 config is in ``keras_metadata.pb`` (or, before TF 2.5, in the user objects of
``saved_model.pb``); the weights are in the ``variables/`` checkpoint, found through its object graph by the
same paths Keras 2 used (``layer_with_weights-0/kernel``, nested for sub-models). The config then goes the
way of a whole-model HDF5 file: rewritten, built, converted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from train.legacy.assign import Plan, apply
from train.legacy.convert import to_project
from train.legacy.errors import ModelLoadError
from train.legacy.graph import is_model
from train.legacy.rewrite import build_model, rewrite_config
from train.models import Siamese

KERAS_IDS = ("_tf_keras_network", "_tf_keras_model", "_tf_keras_sequential")


def is_savedmodel(path: str) -> bool:
    p = Path(path)
    return (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, object]]:
    """(field number, value) of a protobuf message: enough wire format to read SavedMetadata."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def parse_keras_metadata(data: bytes) -> list[tuple[str, str, str]]:
    """(node_path, identifier, metadata JSON) of each node in keras_metadata.pb (SavedMetadata)."""
    nodes = []
    for field, value in _fields(data):
        if field != 1 or not isinstance(value, bytes):
            continue
        node = {3: "", 4: "", 5: ""}
        for f, v in _fields(value):
            if f in node and isinstance(v, bytes):
                node[f] = v.decode("utf8")
        nodes.append((node[3], node[4], node[5]))
    return nodes


def _metadata_from_saved_model(path: Path) -> list[tuple[str, str, str]]:
    """Pre-TF-2.5 SavedModels keep the Keras metadata in saved_model.pb's object graph."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    if not sm.meta_graphs:
        return []
    objects = sm.meta_graphs[0].object_graph_def.nodes
    out, queue, seen = [], [(0, "root")], {0}
    while queue:
        node_id, node_path = queue.pop(0)
        obj = objects[node_id]
        if obj.WhichOneof("kind") == "user_object" and obj.user_object.identifier.startswith("_tf_keras"):
            out.append((node_path, obj.user_object.identifier, obj.user_object.metadata))
        for child in obj.children:
            if child.node_id not in seen:
                seen.add(child.node_id)
                queue.append((child.node_id, f"{node_path}.{child.local_name}"))
    return out


def read_metadata(path: str) -> list[tuple[str, str, dict]]:
    from keras.src.legacy.saving import json_utils

    p = Path(path)
    raw = (
        parse_keras_metadata((p / "keras_metadata.pb").read_bytes())
        if (p / "keras_metadata.pb").is_file()
        else _metadata_from_saved_model(p)
        if (p / "saved_model.pb").is_file()
        else []
    )
    out = []
    for node_path, identifier, metadata in raw:
        try:
            out.append((node_path, identifier, json_utils.decode(metadata) if metadata else {}))
        except json.JSONDecodeError:
            out.append((node_path, identifier, {}))
    return out


class _Checkpoint:
    """The variables checkpoint and its object graph: variables found by the path of names leading to them."""

    def __init__(self, path: str):
        import tensorflow as tf
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        prefix = str(Path(path) / "variables" / "variables")
        try:
            self.reader = tf.train.load_checkpoint(prefix)
        except Exception as e:  # noqa: BLE001 - missing or corrupt checkpoint
            raise ModelLoadError(f"{path}: cannot read the SavedModel's variables ({prefix}): {e}") from e
        self.graph = trackable_object_graph_pb2.TrackableObjectGraph()
        self.graph.ParseFromString(self.reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

    def node(self, node_path: str) -> int | None:
        node_id = 0
        for name in node_path.split(".")[1:]:
            children = {c.local_name: c.node_id for c in self.graph.nodes[node_id].children}
            if name not in children:
                return None
            node_id = children[name]
        return node_id

    def variables(self, node_id: int) -> dict[str, str]:
        """local name -> checkpoint key of the variables directly under a node, in the graph's order."""
        out = {}
        for child in self.graph.nodes[node_id].children:
            for attr in self.graph.nodes[child.node_id].attributes:
                if attr.name == "VARIABLE_VALUE":
                    out[child.local_name] = attr.checkpoint_key
        return out

    def value(self, key: str) -> np.ndarray:
        return np.asarray(self.reader.get_tensor(key))


def _plan(model: keras.Model, node_path: str, meta: dict[str, list], ckpt: _Checkpoint, source: str) -> Plan:
    """Variables of ``model``'s layers paired with checkpoint values, through the metadata's node paths."""
    children = {md.get("name"): p for p, _, md in meta.get(node_path, [])}
    plan: Plan = []
    for layer in model.layers:
        if not layer.weights:
            continue
        child = children.get(layer.name)
        if child is None:
            raise ModelLoadError(f"{source}: layer {layer.name!r} has weights but no node in keras_metadata.pb")
        if is_model(layer):
            plan.extend(_plan(layer, child, meta, ckpt, source))
            continue
        node_id = ckpt.node(child)
        if node_id is None:
            raise ModelLoadError(f"{source}: layer {layer.name!r} ({child}) is not in the variables checkpoint")
        stored = ckpt.variables(node_id)
        by_name = all(v.name in stored for v in layer.weights)
        keys = [stored[v.name] for v in layer.weights] if by_name else list(stored.values())
        if len(keys) != len(layer.weights):
            raise ModelLoadError(
                f"{source}: layer {layer.name!r} has {len(layer.weights)} weights, the checkpoint has "
                f"{len(keys)} ({', '.join(stored)})"
            )
        for v, key in zip(layer.weights, keys):
            value = ckpt.value(key)
            if tuple(value.shape) != tuple(v.shape):
                raise ModelLoadError(
                    f"{source}: layer {layer.name!r} weight {v.name!r}: the model expects {tuple(v.shape)}, "
                    f"the checkpoint has {tuple(value.shape)} ({key})"
                )
            plan.append((v, value))
    return plan


def load_savedmodel(path: str, arch: str | None, allow_unsafe: bool, build_kwargs: dict) -> Siamese:
    nodes = read_metadata(path)
    root = next((n for n in nodes if n[0] == "root"), None)
    if root is None or not root[1].startswith("_tf_keras"):
        raise ModelLoadError(
            f"{path}: a SavedModel without Keras metadata (no keras_metadata.pb; a tf.Module or tf.function "
            "export): there is no Keras model to rebuild. Load the original Keras model, or export to ONNX from it"
        )
    _, identifier, md = root
    if identifier not in KERAS_IDS or not isinstance(md.get("config"), dict) or "class_name" not in md:
        raise ModelLoadError(
            f"{path}: the SavedModel holds a Keras {md.get('class_name', 'model')} without a config "
            f"({identifier}; a subclassed model?): only functional and sequential models can be rebuilt"
        )
    rewrite = rewrite_config({"class_name": md["class_name"], "config": md["config"]}, allow_unsafe, path)
    model = build_model(rewrite, path)
    meta: dict[str, list] = {}
    for node_path, ident, node_md in nodes:
        if "." in node_path:
            meta.setdefault(node_path.rsplit(".", 1)[0], []).append((node_path, ident, node_md))
    apply(_plan(model, "root", meta, _Checkpoint(path), path))
    return to_project(model, path, arch, build_kwargs)
