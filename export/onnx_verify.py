"""Run a freshly converted graph in ONNX Runtime (CPU) next to Keras before it is saved.

A graph that passes onnx.checker can still compute something else (a mis-converted op, a layout mix-up);
the bundle's parity report covers embedding and head, but siamese.onnx is only ever checked here. This is a
guard against wrong graphs, not the parity contract (runtime.parity): absolute plus relative to the output's
scale, loose enough for FP32 rounding of large distances, far below what a mis-conversion produces.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

RELATIVE_TOLERANCE = 1e-4  # of max |keras| over the batch
ABSOLUTE_TOLERANCE = 1e-5  # for outputs near zero (a saturated sigmoid)
BATCH = 2  # > 1: the dynamic batch is exercised too


def sample_inputs(shapes: dict[str, tuple], seed: int = 0, free_dim: int = 32) -> dict[str, np.ndarray]:
    """Seeded float32 batches for per-sample ``shapes``: [0, 1) for images (H, W, C), N(0, 1) for embeddings."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        size = (BATCH, *[free_dim if d is None else int(d) for d in shape])
        out[name] = rng.random(size, dtype=np.float32) if len(shape) == 3 else rng.standard_normal(size, np.float32)
    return out


def disagreement(model: onnx.ModelProto, keras_fn: Callable[..., np.ndarray], inputs: dict[str, np.ndarray]) -> float:
    """max |onnx - keras| / (ABSOLUTE + RELATIVE * max |keras|) on ``inputs``: <= 1 agrees (ONNX Runtime CPU)."""
    import onnxruntime as ort

    from runtime.backends.onnxruntime_backend import CPU_PROVIDER

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=[CPU_PROVIDER])
    (got,) = sess.run(None, inputs)
    ref = np.asarray(keras_fn(*inputs.values()), dtype=np.float32).reshape(got.shape)
    allowed = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * float(np.abs(ref).max())
    return float(np.abs(got - ref).max() / allowed)
