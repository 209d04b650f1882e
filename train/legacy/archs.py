"""The registry's architectures as shapes: built without allocating weights, compared with files and models.

Models are built inside a Keras ``StatelessScope`` with deferred initialization, so even the 37M-parameter
Koch net costs milliseconds; nothing built here is ever used for inference.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
from keras.src.backend.common import global_state

from train.legacy.assign import matched_prefix, mismatch_report
from train.legacy.errors import ModelLoadError
from train.legacy.graph import Leaf, leaf_signature
from train.models import SiameseConfig, create_model, get_entry, list_models


@contextmanager
def no_weights() -> Iterator[None]:
    """Build models whose variables are never initialized (and are forgotten afterwards)."""
    key = "uninitialized_variables"
    before = list(global_state.get_global_attribute(key, []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute(key, before)


def _freeze(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


@functools.lru_cache(maxsize=256)
def _describe(arch: str, frozen: tuple) -> tuple[dict, tuple[Leaf, ...]] | str:
    kwargs = {k: (tuple(v) if k == "input_shape" else v) for k, v in frozen}
    try:
        with no_weights():
            s = create_model(arch, **kwargs)
    except (ValueError, TypeError) as e:  # the factory refuses these arguments (e.g. 1 channel for an RGB net)
        return str(e)
    return s.config.to_dict(), tuple(leaf_signature(s.model))


def describe(arch: str, **kwargs: Any) -> tuple[SiameseConfig, list[Leaf]] | None:
    """(config, weighted-leaf signature) of ``create_model(arch, **kwargs)``, or None if the factory refuses."""
    out = _describe(arch, _freeze(kwargs))
    if isinstance(out, str):
        return None
    config, leaves = out
    return SiameseConfig.from_dict(config), list(leaves)


def default_input_shape(arch: str) -> tuple[int, int, int]:
    described = describe(arch)
    if described is None:
        raise ModelLoadError(f"architecture {arch!r} cannot be built with its defaults")
    return tuple(described[0].preprocessing.input_shape)


def check_arch(arch: str) -> None:
    try:
        get_entry(arch)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None


def _candidates(found: list[Leaf], arch: str | None) -> list[str]:
    if arch is not None:
        check_arch(arch)
        return [arch]
    names = {leaf[0] for leaf in found}

    def overlap(a: str) -> int:
        d = describe(a)
        return -len(names & {leaf[0] for leaf in d[1]}) if d else 0

    return sorted(list_models(), key=overlap)


def _flatten_dependent(expected: list[Leaf], found: list[Leaf]) -> tuple[int, int] | None:
    """(layer, weight) of the single 2-D kernel whose input size alone differs (a Dense after a Flatten)."""
    if len(expected) != len(found):
        return None
    diffs = []
    for i, (e, f) in enumerate(zip(expected, found)):
        if len(e[1]) != len(f[1]):
            return None
        for j, (se, sf) in enumerate(zip(e[1], f[1])):
            if se != sf:
                if len(se) != 2 or len(sf) != 2 or se[1] != sf[1]:
                    return None
                diffs.append((i, j))
    return diffs[0] if len(diffs) == 1 else None


def _infer_size(arch: str, found: list[Leaf], where: tuple[int, int], kwargs: dict) -> tuple[int, int, int] | None:
    """The smallest square input size at which ``arch`` has exactly the file's shapes (Flatten size grows with it)."""
    h, w, c = default_input_shape(arch)
    if h != w:
        return None
    i, j = where
    target = found[i][1][j][0]

    def dim(s: int) -> int:
        d = describe(arch, **{**kwargs, "input_shape": (s, s, c)})
        if d is None or len(d[1]) <= i:
            return -1
        return d[1][i][1][j][0]

    lo, hi = 8, 1024
    if dim(hi) < target:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if dim(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    shape = (lo, lo, c)
    d = describe(arch, **{**kwargs, "input_shape": shape})
    return shape if d is not None and mismatch_report(d[1], found) is None else None


def recognise(found: list[Leaf], arch: str | None, build_kwargs: dict, source: str) -> tuple[str, tuple[int, int, int]]:
    """Which architecture (and input shape) a weights-only file's weighted layers fit, in order.

    Compared against each registry architecture at its default input shape; when only the Dense after a
    Flatten differs, the input size is inferred from that Dense's kernel.
    """
    reports = []
    for name in _candidates(found, arch):
        kwargs = {k: v for k, v in build_kwargs.items() if k != "input_shape"}
        shape = tuple(build_kwargs["input_shape"]) if "input_shape" in build_kwargs else default_input_shape(name)
        d = describe(name, **kwargs, input_shape=shape)
        if d is None:
            reports.append((0, name, f"cannot be built with {build_kwargs}"))
            continue
        report = mismatch_report(d[1], found)
        if report is None:
            return name, shape
        where = _flatten_dependent(d[1], found) if "input_shape" not in build_kwargs else None
        inferred = _infer_size(name, found, where, kwargs) if where else None
        if inferred is not None:
            return name, inferred
        reports.append((matched_prefix(d[1], found), name, f"{name} at input {shape}: {report}"))
    if arch is not None:
        raise ModelLoadError(f"{source}: the weights do not fit architecture {reports[0][2]}")
    best = max(reports, key=lambda r: r[0])
    listing = ", ".join(repr(leaf[0]) for leaf in found[:6]) + (", ..." if len(found) > 6 else "")
    raise ModelLoadError(
        f"{source}: a weights-only file with {len(found)} weighted layers ({listing}) that fits no known "
        f"architecture ({', '.join(list_models())}); closest is {best[2]}. "
        "Pass --arch NAME (and the input shape) if it is one of them."
    )


def recognise_multiset(found: list[Leaf], arch: str | None, build_kwargs: dict, source: str) -> tuple[str, tuple]:
    """Like ``recognise`` for files whose layer order is unknown (Keras 3 .weights.h5): compare shape multisets."""
    want = sorted(s for leaf in found for s in leaf[1])
    for name in _candidates(found, arch):
        kwargs = {k: v for k, v in build_kwargs.items() if k != "input_shape"}
        shape = tuple(build_kwargs["input_shape"]) if "input_shape" in build_kwargs else default_input_shape(name)
        d = describe(name, **kwargs, input_shape=shape)
        if d is not None and sorted(s for leaf in d[1] for s in leaf[1]) == want:
            return name, shape
    what = f"architecture {arch}" if arch else f"any known architecture ({', '.join(list_models())})"
    raise ModelLoadError(
        f"{source}: a Keras 3 weights file with {len(found)} weighted layers whose shapes do not fit {what} "
        "at its default input shape; pass --arch NAME and the input shape"
    )


def variants(arch: str, input_shape: tuple, embedding_dim: int | None, build_kwargs: dict) -> Iterator[dict]:
    """Factory arguments worth trying for a model of ``arch`` with this input shape and embedding size."""
    params = inspect.signature(get_entry(arch).factory).parameters
    base = {**build_kwargs, "input_shape": tuple(input_shape)}
    if embedding_dim and "embedding_dim" in params and "embedding_dim" not in build_kwargs:
        base["embedding_dim"] = int(embedding_dim)
    yield base
    if "loss" not in build_kwargs:
        for loss in ("bce", "contrastive"):
            yield {**base, "loss": loss}


def match_arch(
    model_leaves: list[Leaf], archs: list[str], input_shape: tuple, embedding_dim: int | None, build_kwargs: dict
) -> tuple[str, SiameseConfig] | None:
    """The first (arch, config) among ``archs`` whose weighted layers have exactly ``model_leaves``' shapes."""
    want = [leaf[1] for leaf in model_leaves]
    for arch in archs:
        for kwargs in variants(arch, input_shape, embedding_dim, build_kwargs):
            d = describe(arch, **kwargs)
            if d is not None and [leaf[1] for leaf in d[1]] == want:
                return arch, d[0]
    return None
