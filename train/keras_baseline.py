"""The Keras side of ``python -m runtime.bench``, run in its own process so the runtime never imports Keras.

``python -m train.keras_baseline SPEC.json`` loads the source model through ``train.load.load_model`` (so
anything the exporter loads: a ``.keras`` archive, a whole-model or weights-only ``.h5`` file, a SavedModel
folder; the spec's ``arch`` and ``input_shape`` are the bundle's, for files that do not say), times
``model.predict`` and a direct call on the images the runtime was timed on, and ``predict`` on the pair of image
files the runtime's ``verify`` was timed on (read and preprocessed with the bundle's preprocessing, as the
runtime does), and writes the results JSON named in the spec. The spec names the batch sizes; the timing is
``runtime.timing``'s, as on the runtime's side.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.preprocess import Preprocessing, preprocess_batch
from runtime.timing import latency_stats, throughput_stats, time_calls


def load_source(spec: dict[str, Any]) -> Any:
    """The spec's model as a ``train.models.Siamese``, through train's own loader."""
    from train.load import load_model
    from train.models import list_models

    arch = spec.get("arch")
    kwargs = {"input_shape": tuple(spec["input_shape"])} if spec.get("input_shape") else {}
    return load_model(spec["model"], arch=arch if arch in list_models() else None, **kwargs)


def time_pair_files(model: Any, spec: dict[str, Any]) -> dict[str, Any] | None:
    """``predict`` on the two image files of the runtime's ``verify`` row, from the files (decode and
    preprocess included, as ``verify`` does): its latency and score; None when the spec names no files."""
    files, pre = spec.get("pair_files"), spec.get("preprocessing")
    if not files or not pre:
        return None
    prep = Preprocessing.from_dict(pre)

    def pair(_i: int) -> Any:
        x = preprocess_batch(files, prep)
        return model.predict([x[:1], x[1:2]], verbose=0)

    t = time_calls(pair, spec["repeats"], spec["warmup"], spec["budget_s"])
    return {"files": files, "latency": latency_stats(t), "score": float(np.asarray(pair(0)).reshape(-1)[0])}


def keras_worker(spec_path: str) -> int:
    """The Keras side, in its own process: reads a spec JSON (model, images .npz, settings), writes results JSON."""
    spec = json.loads(Path(spec_path).read_text())
    result: dict[str, Any] = {"rows": [], "error": None}
    try:
        t0 = time.perf_counter()
        import keras
        import tensorflow as tf

        result["import_s"] = time.perf_counter() - t0
        result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
        t0 = time.perf_counter()
        siamese = load_source(spec)
        model, emb = siamese.model, siamese.embedding
        result["load_s"] = time.perf_counter() - t0
        result["loaded_as"] = siamese.config.arch
        with np.load(spec["images"], allow_pickle=False) as z:
            x = np.asarray(z["x"], np.float32)
        r = int(spec["ref_index"])
        ref = x[r : r + 1]
        n = len(x)
        reps, breps, warm, budget = spec["repeats"], spec["batch_repeats"], spec["warmup"], spec["budget_s"]

        def predict_pair(i: int) -> Any:
            j = i % n
            return model.predict([x[j : j + 1], ref], verbose=0)

        def call_pair(i: int) -> Any:
            j = i % n
            return keras.ops.convert_to_numpy(model([x[j : j + 1], ref], training=False))

        for mode, pair in (("predict", predict_pair), ("call", call_pair)):
            row: dict[str, Any] = {"name": f"keras-{mode}", "backend": "keras", "mode": mode, "precision": "fp32"}
            row["latency_b1"] = latency_stats(time_calls(pair, reps, warm, budget))
            row["throughput"] = {}
            for b in spec["batches"]:
                xb = np.ascontiguousarray(x[:b])  # images through the embedding network, as the runtime's
                if mode == "predict":
                    fn = lambda _i, xb=xb, b=b: emb.predict(xb, batch_size=b, verbose=0)  # noqa: E731
                else:
                    fn = lambda _i, xb=xb: keras.ops.convert_to_numpy(emb(xb, training=False))  # noqa: E731
                row["throughput"][str(b)] = throughput_stats(time_calls(fn, breps, min(warm, 2), budget), b)
            row["throughput_note"] = "embedding network"
            result["rows"].append(row)
        result["pair_files"] = time_pair_files(model, spec)
        m = min(8, n)
        scores = model.predict([x[:m], np.repeat(ref, m, axis=0)], verbose=0)
        result["check_scores"] = np.asarray(scores, np.float32).reshape(-1).tolist()
    except Exception as e:  # noqa: BLE001 - reported in the bench, which goes on without Keras
        result["error"] = f"{type(e).__name__}: {e}"
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(keras_worker(sys.argv[1]))
