"""The bundle's graphs against its manifest: the tensor names, ranks and static sizes every backend relies on.

A backend checks the graph it opened (``check_embedding_io``, ``check_head_io``) with the shapes its own library
reports, so an embedding graph whose input size or channels, or whose embedding size, disagree with the
manifest is refused at load, naming the file, instead of failing (or, worse, running) on the first batch.
A dimension is an int when the graph fixes it, None when it is dynamic (a batch, or a symbolic name).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runtime.bundle.layout import HEAD_INPUTS, INPUT_NAME, SCORE_OUTPUT, BundleError
from runtime.bundle.manifest import Manifest

Shape = Sequence[int | None]
Tensors = Sequence[tuple[str, Shape]]


def static(dim: object) -> int | None:
    """A library's dimension as an int when fixed, else None (ONNX Runtime gives str/None, OpenVINO -1)."""
    return dim if isinstance(dim, int) and dim >= 0 else None


def _fits(shape: Shape, want: Sequence[int | None]) -> bool:
    return len(shape) == len(want) and all(g is None or w is None or g == w for g, w in zip(shape, want))


def _describe(tensors: Tensors) -> str:
    return ", ".join(f"{n}{list(s)}" for n, s in tensors) or "none"


def check_embedding_io(where: str | Path, manifest: Manifest, inputs: Tensors, outputs: Tensors) -> None:
    """One input ``image`` [N, H, W, C] as the manifest's preprocessing, one output [N, dim] named as the manifest
    says; BundleError naming ``where`` (the graph's file) and both sides otherwise."""
    pre = manifest.preprocessing
    want_in = [None, pre.height, pre.width, pre.channels]
    want_out = [None, manifest.embedding_dim]
    name_out = manifest.embedding.output
    if len(inputs) != 1 or inputs[0][0] != INPUT_NAME or not _fits(inputs[0][1], want_in):
        raise BundleError(
            f"{where}: input {_describe(inputs)}, but the manifest expects {INPUT_NAME}{want_in} "
            f"({pre.height}x{pre.width}x{pre.channels}, NHWC): the graph and manifest.json do not belong together"
        )
    if len(outputs) != 1 or outputs[0][0] != name_out or not _fits(outputs[0][1], want_out):
        raise BundleError(
            f"{where}: output {_describe(outputs)}, but the manifest expects {name_out}{want_out} "
            f"(embedding dim {manifest.embedding_dim})"
        )


def check_head_io(where: str | Path, manifest: Manifest, inputs: Tensors, outputs: Tensors) -> None:
    """A learned head: inputs ``embedding_a``/``embedding_b`` [P, dim], one output ``score``."""
    want = [None, manifest.embedding_dim]
    got = dict(inputs)
    if sorted(got) != sorted(HEAD_INPUTS) or not all(_fits(got[n], want) for n in HEAD_INPUTS):
        raise BundleError(f"{where}: inputs {_describe(inputs)}, but the manifest expects {HEAD_INPUTS} of {want}")
    if len(outputs) != 1 or outputs[0][0] != SCORE_OUTPUT:
        raise BundleError(f"{where}: output {_describe(outputs)}, but the manifest expects one {SCORE_OUTPUT!r}")
