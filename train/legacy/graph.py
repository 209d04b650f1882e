"""Walking Keras 3 functional graphs: weighted leaf layers in order, and replaying a subgraph on new inputs.

Replaying calls the *same* layer objects on new tensors, so a model cut out of a loaded file keeps its
weights without copying them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import tree

Leaf = tuple[str, tuple[tuple[int, ...], ...]]  # (layer name, weight shapes in order)


def is_model(layer: Any) -> bool:
    return isinstance(layer, keras.Model)


def leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers that own weights, in order, recursing into nested models (the order weights files use)."""
    out: list[keras.layers.Layer] = []
    for layer in model.layers:
        if is_model(layer):
            out.extend(leaf_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def leaf_signature(model: keras.Model) -> list[Leaf]:
    return [(layer.name, tuple(tuple(int(d) for d in v.shape) for v in layer.weights)) for layer in leaf_layers(model)]


def legacy_weights(layer: keras.layers.Layer) -> list:
    """A layer's variables in the order Keras 2 HDF5 files store them: trainable first, then the others."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def producer(tensor: Any) -> tuple[Any, Any]:
    """(operation, node) that produced a symbolic tensor."""
    op, node_index, _ = tensor._keras_history
    return op, op._inbound_nodes[node_index]


def input_tensors(tensor: Any) -> list:
    """The symbolic tensors the producing node of ``tensor`` consumed (empty for an Input)."""
    _, node = producer(tensor)
    return [x for x in tree.flatten((node.arguments.args, node.arguments.kwargs)) if isinstance(x, keras.KerasTensor)]


def depends_on(tensor: Any, memo: dict[int, frozenset]) -> frozenset:
    """ids of the graph inputs (Input tensors) that ``tensor`` is computed from."""
    key = id(tensor)
    if key not in memo:
        parents = input_tensors(tensor)
        if not parents:
            memo[key] = frozenset([key])
        else:
            memo[key] = frozenset().union(*(depends_on(p, memo) for p in parents))
    return memo[key]


def operations_between(sources: set[int], target: Any) -> set[int]:
    """ids of the operations computing ``target`` from the tensors whose ids are in ``sources``."""
    seen: set[int] = set()
    ops: set[int] = set()
    stack = [target]
    while stack:
        t = stack.pop()
        if id(t) in sources or id(t) in seen:
            continue
        seen.add(id(t))
        op, _ = producer(t)
        ops.add(id(op))
        stack.extend(input_tensors(t))
    return ops


def replay(mapping: dict[int, Any], target: Any, on_input: Callable[[Any], Any]) -> Any:
    """Recompute ``target`` with the tensors in ``mapping`` (id(old) -> new) substituted, calling the same layers.

    ``on_input`` is called with a graph input that ``mapping`` does not cover (it should raise).
    """
    memo = dict(mapping)

    def visit(t: Any) -> Any:
        if id(t) in memo:
            return memo[id(t)]
        op, node = producer(t)
        if not input_tensors(t):
            return on_input(t)
        args, kwargs = tree.map_structure(
            lambda x: visit(x) if isinstance(x, keras.KerasTensor) else x,
            (node.arguments.args, node.arguments.kwargs),
        )
        outs = op(*args, **kwargs)
        for old, new in zip(tree.flatten(node.output_tensors), tree.flatten(outs)):
            memo[id(old)] = new
        return memo[id(t)]

    return visit(target)
