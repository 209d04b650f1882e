"""The bundle served by Triton's Python backend: the model that ``export.triton`` writes as ``<name>_runtime``.

Triton's Python backend runs ``<repo>/<name>_runtime/1/model.py`` in its stub process; that file is a shim that
makes the project's ``runtime`` importable (see ``SHIM``) and takes ``TritonPythonModel`` from here, so the
server computes exactly what ``runtime.load(bundle)`` computes in-process.

Tensors (all FP32, the batch dimension first; every input is optional, a request gives one side ``a`` and at most
one side ``b``):

==============  ==============  =====================================================================
input           dims            what
==============  ==============  =====================================================================
``image_a``     ``[H, W, C]``   preprocessed images (``runtime.preprocess``), side a
``embedding_in_a`` ``[dim]``    embeddings computed before (embed once, score many), side a
``image_b``     ``[H, W, C]``   side b, images
``embedding_in_b`` ``[dim]``    side b, embeddings
==============  ==============  =====================================================================

A request with side a only embeds it (output ``embedding_a``); with both sides it scores each row of a against the
same row of b (outputs ``score`` and ``match``, and the embeddings of the sides given as images). One image against
many is a request of N rows whose a side repeats the one embedding. Triton's dynamic batcher hands ``execute``
several requests at once: all their images go through the network in one call, all their pairs through the head in
one more, so batching across clients costs nothing per request.

The bundle is copied inside the model (``1/bundle``) and loaded with ``runtime.load`` at model load, which checks
every file's sha256: a tampered bundle makes the model fail to load, naming the file. The bundle's score semantics
and threshold are in the config's ``parameters`` (what ``runtime.remote`` reads) and checked here against the bundle
itself, so a config that disagrees with its bundle does not load either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

INPUTS = ("image_a", "embedding_in_a", "image_b", "embedding_in_b")
OUTPUTS = ("embedding_a", "embedding_b", "score", "match")
BUNDLE_DIR = "bundle"  # inside the model's version folder
NUMPY2 = int(np.__version__.split(".")[0]) >= 2
PYTHONPATH_ENV = "SIAMESE_EDGE_PYTHONPATH"  # folders put first on sys.path by the shim (set by runtime.serve)

# the model.py written into the repository: the project's runtime from SIAMESE_EDGE_PYTHONPATH (or the server's
# Python environment), then this module's model. It is the only code in the repository.
SHIM = f'''"""Triton Python-backend model written by siamese-edge: the bundle in ./bundle, served by runtime.triton_model."""

import os
import sys

for _p in reversed([p for p in os.environ.get("{PYTHONPATH_ENV}", "").split(os.pathsep) if p]):
    if _p not in sys.path:
        sys.path.insert(0, _p)
try:
    from runtime.triton_model import TritonPythonModel  # noqa: F401
except ImportError as _e:
    raise ImportError(
        f"siamese-edge's runtime cannot be imported by the Triton Python backend's interpreter ({{sys.executable}}, "
        f"Python {{sys.version.split()[0]}}): {{_e}}. Serve with python -m runtime.serve (it sets "
        "{PYTHONPATH_ENV} and the interpreter), or pip install siamese-edge into the server's Python"
    ) from _e
'''


def parameters(config: dict[str, Any]) -> dict[str, str]:
    """A model config's ``parameters`` as {key: string_value} (the JSON form Triton gives models and clients)."""
    return {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}


def spec_parameters(params: dict[str, str]):
    """The ``ScoreSpec`` the config's parameters describe."""
    from runtime.scoring import ScoreSpec

    return ScoreSpec(
        params["score_kind"], params["same_when"], float(params["threshold"]), params.get("threshold_source", "")
    )


def split_request(inputs: dict[str, np.ndarray | None]) -> tuple[str, np.ndarray, str | None, np.ndarray | None]:
    """(kind of side a, its rows, kind of side b or None, its rows) of one request; ValueError for a bad one."""
    a = [k for k in ("image_a", "embedding_in_a") if inputs.get(k) is not None]
    b = [k for k in ("image_b", "embedding_in_b") if inputs.get(k) is not None]
    if len(a) != 1 or len(b) > 1:
        given = sorted(k for k, v in inputs.items() if v is not None)
        raise ValueError(
            f"inputs {given}: give exactly one of image_a, embedding_in_a and at most one of image_b, embedding_in_b"
        )
    ka, kb = a[0], (b[0] if b else None)
    xa = inputs[ka]
    xb = inputs[kb] if kb else None
    if xb is not None and len(xb) != len(xa):
        raise ValueError(f"{ka} has {len(xa)} rows, {kb} {len(xb)}: pair them row by row")
    return ka, xa, kb, xb


def run_requests(verifier: Any, requests: list[dict[str, np.ndarray | None]]) -> list[dict[str, np.ndarray] | str]:
    """Every request's outputs (or its error message), the images of all requests embedded in one call and all
    their pairs scored in one more."""
    parts: list[Any] = []
    images: list[np.ndarray] = []
    for inputs in requests:
        try:
            ka, xa, kb, xb = split_request(inputs)
            sides = [(ka, xa), (kb, xb)] if kb else [(ka, xa)]
            for key, x in sides:
                if key.startswith("image") and tuple(x.shape[1:]) != tuple(verifier.preprocessing.input_shape):
                    raise ValueError(
                        f"{key} has dims {list(x.shape[1:])}, the bundle takes {list(verifier.preprocessing.input_shape)}"
                    )
                if key.startswith("embedding") and tuple(x.shape[1:]) != (verifier.dim,):
                    raise ValueError(
                        f"{key} has dims {list(x.shape[1:])}, the bundle's embeddings have [{verifier.dim}]"
                    )
            parts.append(sides)
            images.extend(x for key, x in sides if key.startswith("image"))
        except ValueError as e:
            parts.append(str(e))
    emb = verifier.embed_preprocessed(np.concatenate(images)) if images else np.zeros((0, verifier.dim), np.float32)
    emb = np.asarray(emb, np.float32)
    at = 0
    results: list[dict[str, np.ndarray] | str] = []
    pairs_a, pairs_b = [], []
    for sides in parts:
        if isinstance(sides, str):
            results.append(sides)
            continue
        out: dict[str, np.ndarray] = {}
        rows = []
        for key, x in sides:
            side = key[-1]
            if key.startswith("image"):
                e, at = emb[at : at + len(x)], at + len(x)
                out[f"embedding_{side}"] = e
            else:
                e = np.asarray(x, np.float32)
            rows.append(e)
        if len(rows) == 2:
            pairs_a.append(rows[0])
            pairs_b.append(rows[1])
        results.append(out)
    if pairs_a:
        scores = verifier.score_embeddings(np.concatenate(pairs_a), np.concatenate(pairs_b))
        match = np.asarray(verifier.spec.is_match(scores), bool).reshape(-1)
        at = 0
        for sides, out in zip(parts, results):
            if isinstance(sides, str) or len(sides) != 2:
                continue
            n = len(sides[0][1])
            out["score"] = scores[at : at + n].reshape(n, 1).astype(np.float32)
            out["match"] = match[at : at + n].reshape(n, 1)
            at += n
    return results


def input_array(tensor: Any) -> np.ndarray:
    """A request tensor as float32 numpy, through DLPack (``as_numpy`` reads wrong bytes under numpy 2; DLPack is
    right under numpy 1 and 2)."""
    return np.array(np.from_dlpack(tensor), np.float32)


def _quiet_capsule_hook(previous: Any) -> Any:
    """An ``sys.unraisablehook`` that drops the one harmless message the stub's DLPack import leaves per tensor
    (numpy 2's capsule deleter finding the capsule renamed by its consumer) and passes every other one on."""

    def hook(unraisable: Any) -> None:
        e = unraisable.exc_value
        if isinstance(e, ValueError) and "PyCapsule_GetPointer called with incorrect name" in str(e):
            return
        previous(unraisable)

    return hook


def output_tensor(pb_utils: Any, name: str, value: np.ndarray) -> Any:
    """A response tensor. Under numpy 2 through DLPack: ``pb_utils.Tensor(name, array)`` sends no data there (the
    nvidia-pytriton 0.7.0 stub's buffer path was built for numpy 1; the right shape, no bytes). Under numpy 1 the
    plain constructor, the one that works there (the stub crashes importing a numpy 1 DLPack capsule)."""
    array = np.array(value, order="C")
    if NUMPY2:
        return pb_utils.Tensor.from_dlpack(name, array.__dlpack__())
    return pb_utils.Tensor(name, array)


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize`` loads the bundle, ``execute`` answers a list of requests."""

    def initialize(self, args: dict[str, Any]) -> None:
        import os
        import sys

        if args.get("model_instance_kind") == "GPU" and "onnxruntime" not in sys.modules:
            # KIND_GPU: this instance's stub process sees its own GPU only, so the runtime's CUDA/TensorRT providers
            # (onnxruntime-gpu in the server's Python) run on the device Triton placed the instance on
            os.environ["CUDA_VISIBLE_DEVICES"] = str(args.get("model_instance_device_id", "0"))
        import runtime

        sys.unraisablehook = _quiet_capsule_hook(sys.unraisablehook)

        config = json.loads(args["model_config"])
        params = parameters(config)
        root = Path(args["model_repository"]) / args["model_version"] / params.get("bundle", BUNDLE_DIR)
        threads = int(params["threads"]) if params.get("threads") else None
        self.verifier = runtime.load(
            root,
            backend=params.get("backend") or "onnxruntime",
            precision=params.get("precision") or "fp32",
            threads=threads,
        )  # BundleError names a tampered or missing file: the model then fails to load with that line
        expected = spec_parameters(params)
        got = self.verifier.spec
        if (got.kind, got.same_when, got.threshold) != (expected.kind, expected.same_when, expected.threshold):
            raise ValueError(
                f"{root}: the bundle scores {got.describe()}, but config.pbtxt says {expected.describe()}: "
                "rewrite the repository from this bundle (python -m export.triton --force)"
            )
        if params.get("model_id") and params["model_id"] != self.verifier.model_id:
            raise ValueError(f"{root}: embedding graph {self.verifier.model_id[:12]}... is not config.pbtxt's model_id")
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        feeds = []
        for request in requests:
            inputs = {}
            for name in INPUTS:
                t = pb_utils.get_input_tensor_by_name(request, name)
                inputs[name] = None if t is None else input_array(t)
            feeds.append(inputs)
        try:
            results = run_requests(self.verifier, feeds)
        except Exception as e:  # noqa: BLE001 - the whole batch failed (e.g. NaN out of the network): say so to each
            results = [f"{type(e).__name__}: {e}"] * len(requests)
        responses = []
        for out in results:
            if isinstance(out, str):
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(out)))
            else:
                tensors = [output_tensor(pb_utils, k, v) for k, v in out.items() if k in self.outputs]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        backend = getattr(getattr(self, "verifier", None), "backend", None)
        close = getattr(backend, "close", None)
        if close is not None:
            close()
