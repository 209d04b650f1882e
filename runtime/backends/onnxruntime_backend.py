"""ONNX Runtime backend: embedding.onnx for images, head.onnx (or the distance) for pairs of embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.heads import DEFAULT_EPSILON, euclidean_distance
from runtime.manifest import EMBEDDING_OUTPUT, HEAD_INPUTS, INPUT_NAME, SCORE_OUTPUT, Manifest, load_manifest

# preferred order when several are present (DESIGN.md: TensorRT EP > CUDA EP > CPU)
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def best_providers(available: list[str] | None = None) -> list[str]:
    """The providers to ask for, best first, among those this onnxruntime build has."""
    import onnxruntime as ort

    have = set(ort.get_available_providers() if available is None else available)
    return [p for p in PROVIDER_ORDER if p in have] or ["CPUExecutionProvider"]


def make_session(model: str | Path | bytes, providers: list[str] | None = None, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=providers or best_providers())


class OnnxRuntimeBackend:
    """A bundle on ONNX Runtime. ``embedding_model`` overrides embedding.onnx (e.g. the FP16 CPU estimate)."""

    name = "onnxruntime"

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
        embedding_model: str | Path | bytes | None = None,
        precision: str = "fp32",
    ):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest or load_manifest(self.bundle_dir)
        self.precision = precision
        src = embedding_model if embedding_model is not None else self.bundle_dir / self.manifest.embedding_file
        self._embed = make_session(src, providers, threads)
        self._head = None
        if self.manifest.head_kind == "learned":
            self._head = make_session(self.bundle_dir / self.manifest.head_file, providers, threads)
        self._epsilon = float(self.manifest.raw.get("head", {}).get("epsilon", DEFAULT_EPSILON))

    def embed(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Preprocessed float32 NHWC -> (N, dim) float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        outs = [
            self._embed.run([EMBEDDING_OUTPUT], {INPUT_NAME: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        if not outs:
            return np.zeros((0, self.manifest.embedding_dim), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """(N, dim) x 2 -> (N,) scores in the manifest's score units."""
        ea = np.ascontiguousarray(ea, dtype=np.float32)
        eb = np.ascontiguousarray(eb, dtype=np.float32)
        if self._head is None:
            return euclidean_distance(ea, eb, self._epsilon)
        out = self._head.run([SCORE_OUTPUT], {HEAD_INPUTS[0]: ea, HEAD_INPUTS[1]: eb})[0]
        return np.asarray(out, np.float32).reshape(-1)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "provider": self._embed.get_providers()[0],
            "precision": self.precision,
            "bundle": self.manifest.name,
        }
