"""This CPU's peak in the same run, to set the achieved GFLOP/s against: float32 numpy matmuls, and OpenVINO's
MatMul at bf16/fp16 (which numpy has no matmul for)."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.timing import time_calls


def measure_peak(n: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """This CPU's float32 peak as numpy sees it: the best of ``repeats`` (n x n) @ (n x n) matmuls, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)  # warm up (BLAS threads, page faults)
    best = min(time_calls(lambda _i: np.matmul(a, b, out=out), repeats, warmup=0))
    flops = 2.0 * n**3
    return {
        "gflops": flops / best / 1e9,
        "seconds": float(best),
        "n": int(n),
        "repeats": int(repeats),
        "method": f"numpy float32 matmul {n}x{n}, best of {repeats}",
    }


def measure_peak_openvino(precision: str, n: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """The CPU's peak at ``precision`` as OpenVINO computes it: an (n x n) @ (n x n) MatMul at that inference
    precision (bf16/fp16 have no numpy matmul), best of ``repeats``."""
    import openvino as ov
    import openvino.opset13 as ops

    from runtime.backends.openvino_backend import compile_config

    rng = np.random.default_rng(0)
    x = ops.parameter([n, n], ov.Type.f32, name="x")
    w = ops.constant(rng.standard_normal((n, n), dtype=np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x], "matmul_peak")
    compiled = ov.Core().compile_model(model, "CPU", compile_config(precision))
    req = compiled.create_infer_request()
    a = rng.standard_normal((n, n), dtype=np.float32)
    req.infer({0: a})
    best = min(time_calls(lambda _i: req.infer({0: a}), repeats, warmup=0))
    return {
        "gflops": 2.0 * n**3 / best / 1e9,
        "seconds": float(best),
        "n": int(n),
        "repeats": int(repeats),
        "method": f"OpenVINO CPU MatMul {n}x{n} at {precision}, best of {repeats}",
    }
