"""Turning any loaded two-input Siamese Keras model into the project's structure and config.

The embedding is what both images go through (a nested model or shared layers); the head is the first
layer that combines the two branches plus everything after it. Both are replayed on new inputs with the
same layer objects, so the weights are kept; then ``assemble`` wires them as every project model is wired.
"""

from __future__ import annotations

import dataclasses
import warnings

import keras

from runtime.preprocess import Preprocessing
from train.legacy import archs
from train.legacy.errors import LoadWarning, ModelLoadError
from train.legacy.graph import (
    depends_on,
    input_tensors,
    is_model,
    leaf_signature,
    operations_between,
    producer,
    replay,
)
from train.models import L2Normalize, Siamese, SiameseConfig, list_models
from train.models.common import score_for
from train.models.layers import EuclideanDistance
from train.models.siamese import assemble

IMPORTED = "imported"


def _split(model: keras.Model, source: str) -> tuple:
    """(embedding_a tensor, embedding_b tensor, merge operation) of a two-input model."""
    if len(model.inputs) != 2 or len(model.outputs) != 1:
        raise ModelLoadError(
            f"{source}: expected a Siamese model with two image inputs and one score output, found "
            f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)"
        )
    in_a, in_b = model.inputs
    if tuple(in_a.shape[1:]) != tuple(in_b.shape[1:]):
        raise ModelLoadError(f"{source}: the two inputs have different shapes {in_a.shape} and {in_b.shape}")
    memo: dict[int, frozenset] = {}
    ida, idb = id(in_a), id(in_b)
    t = model.outputs[0]
    while True:
        op, _ = producer(t)
        parents = input_tensors(t)
        both = [p for p in parents if depends_on(p, memo) == {ida, idb}]
        if not both:
            break
        t = both[0]
    side = {ida: [], idb: []}
    for p in parents:
        dep = depends_on(p, memo)
        if len(dep) == 1:
            side[next(iter(dep))].append(p)
    if len(side[ida]) != 1 or len(side[idb]) != 1:
        raise ModelLoadError(
            f"{source}: cannot find where the two branches meet: layer {op.name!r} takes "
            f"{len(side[ida])} tensor(s) from image A and {len(side[idb])} from image B, expected one each"
        )
    return side[ida][0], side[idb][0], op


def _raise_on_input(source: str, what: str):
    def fail(t) -> None:
        raise ModelLoadError(
            f"{source}: the {what} reaches model input {producer(t)[0].name!r} by another path than the shared "
            "embedding; expected one embedding per image feeding the head (each image embedded once)"
        )

    return fail


def _embedding(model: keras.Model, ea, eb, source: str) -> keras.Model:
    in_a, in_b = model.inputs
    ops_a = operations_between({id(in_a)}, ea)
    ops_b = operations_between({id(in_b)}, eb)
    if ops_a != ops_b:
        raise ModelLoadError(
            f"{source}: the two branches do not share their layers (a pseudo-siamese network); the project's "
            "structure needs one embedding network applied to both images"
        )
    image = keras.Input(tuple(in_a.shape[1:]), name="image")
    op, _ = producer(ea)
    args = input_tensors(ea)
    if is_model(op) and len(args) == 1 and args[0] is in_a and len(op.inputs) == 1:
        # a nested embedding model called on the image: replay its own graph, flat
        target = op.outputs[ea._keras_history[2]]
        out = replay({id(op.inputs[0]): image}, target, _raise_on_input(source, "embedding"))
    else:
        out = replay({id(in_a): image}, ea, _raise_on_input(source, "embedding"))
    return keras.Model(image, out, name="embedding")


def _head(model: keras.Model, ea, eb, dim: int, source: str) -> keras.Model:
    a = keras.Input((dim,), name="embedding_a")
    b = keras.Input((dim,), name="embedding_b")
    out = replay({id(ea): a, id(eb): b}, model.outputs[0], _raise_on_input(source, "head"))
    return keras.Model([a, b], out, name="head")


def _head_ops(head: keras.Model) -> list:
    return [op for op in head.operations if not isinstance(op, keras.layers.InputLayer)]


def _is_sigmoid(op) -> bool:
    act = getattr(op, "activation", None)
    return isinstance(op, (keras.layers.Dense, keras.layers.Activation)) and getattr(act, "__name__", "") == "sigmoid"


def score_semantics(head: keras.Model, source: str) -> tuple[str, str] | None:
    """(head kind, loss) read from the head's structure, or None if it does not say.

    - a bare EuclideanDistance output: a contrastive distance (low = same);
    - distance -> BatchNormalization -> ... -> Dense sigmoid (keras.io): the keras-contrastive convention,
      label 0 = same, the sigmoid output behaves as a distance;
    - otherwise a sigmoid output: P(same), label 1 = same (BCE).
    """
    ops = _head_ops(head)
    if tuple(head.output.shape[1:]) != (1,):
        raise ModelLoadError(
            f"{source}: the model outputs shape {tuple(head.output.shape)} per pair, expected one score per pair"
        )
    last = producer(head.output)[0]
    if not head.weights and isinstance(last, EuclideanDistance):
        return "euclidean", "contrastive"
    if _is_sigmoid(last):
        if len(ops) >= 2 and isinstance(ops[1], keras.layers.BatchNormalization):
            return "learned", "contrastive"
        return "learned", "bce"
    return None


def default_preprocessing(input_shape: tuple, arch: str | None, source: str) -> Preprocessing:
    """The preprocessing of ``arch`` at this input size, else gray/rgb by channels, /255, stretch; warns."""
    h, w, c = (int(d) for d in input_shape)
    if c not in (1, 3):
        raise ModelLoadError(f"{source}: input shape {tuple(input_shape)}: expected 1 (gray) or 3 (rgb) channels")
    color = "gray" if c == 1 else "rgb"
    if arch is not None:
        described = archs.describe(arch)
        if described is not None:
            pre = described[0].preprocessing
            return dataclasses.replace(
                pre,
                height=h,
                width=w,
                color=color,
                mean=pre.mean[:1] if c == 1 else pre.mean,
                std=pre.std[:1] if c == 1 else pre.std,
            )
    warnings.warn(
        f"{source}: the file does not say how images were preprocessed; assuming {color}, {h}x{w} stretch "
        "(bilinear), pixel values / 255. Pass --arch NAME to use an architecture's preprocessing.",
        LoadWarning,
        stacklevel=3,
    )
    return Preprocessing(h, w, color=color, resize="stretch", interpolation="bilinear", scale=1 / 255)


def to_project(model: keras.Model, source: str, arch: str | None = None, build_kwargs: dict | None = None) -> Siamese:
    """A project ``Siamese`` from any two-input Siamese model (its weights kept, its config inferred)."""
    build_kwargs = dict(build_kwargs or {})
    ea, eb, _ = _split(model, source)
    embedding = _embedding(model, ea, eb, source)
    dim = int(embedding.output.shape[-1])
    head = _head(model, ea, eb, dim, source)
    input_shape = tuple(int(d) for d in embedding.input.shape[1:])
    if arch is not None:
        archs.check_arch(arch)
    found = archs.match_arch(
        leaf_signature(embedding) + leaf_signature(head),
        [arch] if arch else list_models(),
        input_shape,
        dim,
        {k: v for k, v in build_kwargs.items() if k != "input_shape"},
    )
    semantics = score_semantics(head, source)
    if found is not None and semantics is not None and (found[1].loss, found[1].head) != (semantics[1], semantics[0]):
        found = None  # same shapes, another head: keep the structure's reading
    if found is not None:
        name, config = found
        pre = config.preprocessing
        if arch is None:
            warnings.warn(
                f"{source}: recognised as architecture {name!r} by its layers' shapes; using its preprocessing "
                f"({pre.color}, {pre.resize}, {pre.interpolation}, scale {pre.scale:g}). Pass --arch to choose.",
                LoadWarning,
                stacklevel=2,
            )
        config = dataclasses.replace(config, embedding_dim=dim, l2_normalized=_l2_normalized(embedding))
    else:
        if semantics is None:
            raise ModelLoadError(
                f"{source}: cannot tell what the model's output means: expected a sigmoid Dense (P(same)) or a "
                f"euclidean distance at the end of the head, found {type(producer(head.output)[0]).__name__} "
                f"{producer(head.output)[0].name!r}"
            )
        head_kind, loss = semantics
        if arch is not None:
            warnings.warn(
                f"{source}: the model's layers do not have the shapes of architecture {arch!r}; using its "
                "preprocessing, and score semantics read from the model's head",
                LoadWarning,
                stacklevel=2,
            )
        score, label_same = score_for(loss, None)
        config = SiameseConfig(
            arch=arch or IMPORTED,
            preprocessing=default_preprocessing(input_shape, arch, source),
            score=score,
            head=head_kind,
            loss=loss,
            label_same=label_same,
            embedding_dim=dim,
            l2_normalized=_l2_normalized(embedding),
            margin=1.0 if loss == "contrastive" else None,
            build_kwargs={"input_shape": list(input_shape)} if arch else {},
        )
    full = assemble(embedding, head, name=config.arch.replace("-", "_"))
    return Siamese(full, config)


def _l2_normalized(embedding: keras.Model) -> bool:
    return isinstance(producer(embedding.output)[0], L2Normalize)
