"""Matching file weights to a model's layers, checking everything, and only then assigning.

Weights-only files go by the order of weighted layers (the way Keras 2 wrote and read them); keras'
``by_name`` is never used, because Keras 3's automatic names differ from Keras 2's and would silently skip
the head.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from train.legacy.errors import ModelLoadError
from train.legacy.graph import Leaf, leaf_layers, legacy_weights
from train.legacy.h5weights import LayerWeights

Plan = list[tuple[Any, np.ndarray]]


def _shapes(leaf: Leaf) -> str:
    return "[" + ", ".join(str(s) for s in leaf[1]) + "]"


def mismatch_report(expected: list[Leaf], found: list[Leaf]) -> str | None:
    """None when ``found`` fits ``expected`` layer by layer; else what differs first (names and both shapes)."""
    head = ""
    if len(expected) != len(found):
        head = f"expected {len(expected)} weighted layers, found {len(found)}; "
        longer, shorter, side = (
            (expected, found, "lacks the model's") if len(expected) > len(found) else (found, expected, "has an extra")
        )
        if len(longer) == len(shorter) + 1:
            for k in range(len(longer)):
                if [x[1] for x in longer[:k] + longer[k + 1 :]] == [x[1] for x in shorter]:
                    head += f"the file {side} {longer[k][0]!r} {_shapes(longer[k])}; "
                    break
    for i, (e, f) in enumerate(zip(expected, found)):
        if e[1] != f[1]:
            return (
                f"{head}first mismatch at weighted layer #{i}: the model's {e[0]!r} has weights {_shapes(e)}, "
                f"the file's {f[0]!r} has {_shapes(f)}"
            )
    if head:
        n = min(len(expected), len(found))
        extra = expected[n:] if len(expected) > n else found[n:]
        side = "the file lacks" if len(expected) > n else "the file has extra"
        return f"{head}{side} {', '.join(repr(x[0]) for x in extra)} (the first {n} match)"
    return None


def matched_prefix(expected: list[Leaf], found: list[Leaf]) -> int:
    n = 0
    for e, f in zip(expected, found):
        if e[1] != f[1]:
            break
        n += 1
    return n


def plan_by_order(model: keras.Model, entries: list[LayerWeights], source: str) -> Plan:
    """Pair the model's weighted leaf layers (recursing into nested models) with the file's, by order."""
    layers = leaf_layers(model)
    expected = [(la.name, tuple(tuple(int(d) for d in v.shape) for v in la.weights)) for la in layers]
    report = mismatch_report(expected, [e.leaf for e in entries])
    if report:
        raise ModelLoadError(f"{source}: the weights do not fit model {model.name!r}: {report}")
    return [(v, a) for layer, e in zip(layers, entries) for v, a in zip(layer.weights, e.arrays)]


def plan_by_name(model: keras.Model, entries: list[LayerWeights], source: str) -> Plan:
    """Pair a model built from a file's own config with that file's weight groups (same layer names).

    Each top-level layer gets its group's weights in Keras' legacy order (a nested model's group holds all of
    its layers' weights: trainable first, then the others).
    """
    weighted = [la for la in model.layers if legacy_weights(la)]
    groups = {e.name: e for e in entries if e.arrays}
    missing = [la.name for la in weighted if la.name not in groups]
    extra = sorted(set(groups) - {la.name for la in weighted})
    if missing or extra:
        raise ModelLoadError(
            f"{source}: the weights do not match the model's config: layers with weights in the config "
            f"{[la.name for la in weighted]}, in the weights {list(groups)}"
            + (f"; no weights for {missing}" if missing else "")
            + (f"; weights for unknown layers {extra}" if extra else "")
        )
    plan: Plan = []
    for layer in weighted:
        e = groups[layer.name]
        variables = legacy_weights(layer)
        want = [tuple(int(d) for d in v.shape) for v in variables]
        got = [tuple(a.shape) for a in e.arrays]
        if want != got:
            raise ModelLoadError(
                f"{source}: layer {layer.name!r}: the model expects weights {want}, the file has {got} "
                f"({', '.join(e.weight_names)})"
            )
        plan.extend(zip(variables, e.arrays))
    return plan


def apply(plan: Plan) -> None:
    """Assign every planned value (call only after planning succeeded: nothing is ever half loaded)."""
    for variable, value in plan:
        variable.assign(np.asarray(value, dtype=variable.dtype))
