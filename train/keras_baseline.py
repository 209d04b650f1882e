"""The Keras side of ``python -m runtime.bench``, run in its own process so the runtime never imports Keras.

``python -m train.keras_baseline SPEC.json`` loads the source model (the project's layers are registered by
importing ``train.models``), times ``model.predict`` and a direct call on the images the runtime was timed on,
and writes the results JSON named in the spec. The spec names the batch sizes; the timing is ``runtime.timing``'s,
as on the runtime's side.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import train.models  # noqa: F401  (registers the project's layers and losses for loading .keras files)
from runtime.timing import latency_stats, throughput_stats, time_calls


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
        model = keras.models.load_model(spec["model"], compile=False)
        result["load_s"] = time.perf_counter() - t0
        with np.load(spec["images"], allow_pickle=False) as z:
            x = np.asarray(z["x"], np.float32)
        r = int(spec["ref_index"])
        ref = x[r : r + 1]
        n = len(x)
        try:
            emb = model.get_layer("embedding")
        except ValueError:
            emb = None
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
                xb = np.ascontiguousarray(x[:b])
                if emb is not None:  # images through the embedding network, as the runtime's throughput
                    if mode == "predict":
                        fn = lambda _i, xb=xb, b=b: emb.predict(xb, batch_size=b, verbose=0)  # noqa: E731
                    else:
                        fn = lambda _i, xb=xb: keras.ops.convert_to_numpy(emb(xb, training=False))  # noqa: E731
                    images = b
                else:  # no nested embedding network: b pairs through the two-input model = 2b images
                    rb = np.repeat(ref, b, axis=0)
                    if mode == "predict":
                        fn = lambda _i, xb=xb, rb=rb, b=b: model.predict([xb, rb], batch_size=b, verbose=0)  # noqa: E731
                    else:
                        fn = lambda _i, xb=xb, rb=rb: keras.ops.convert_to_numpy(model([xb, rb], training=False))  # noqa: E731
                    images = 2 * b
                t = time_calls(fn, breps, min(warm, 2), budget)
                row["throughput"][str(b)] = throughput_stats(t, images)
            row["throughput_note"] = "embedding network" if emb is not None else "two-input model, 2 images per pair"
            result["rows"].append(row)
        m = min(8, n)
        scores = model.predict([x[:m], np.repeat(ref, m, axis=0)], verbose=0)
        result["check_scores"] = np.asarray(scores, np.float32).reshape(-1).tolist()
    except Exception as e:  # noqa: BLE001 - reported in the bench, which goes on without Keras
        result["error"] = f"{type(e).__name__}: {e}"
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(keras_worker(sys.argv[1]))
