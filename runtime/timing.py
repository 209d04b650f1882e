"""Timing a call and summarising the times: the measurements both sides of ``python -m runtime.bench`` share.

``runtime.bench`` times the runtime's backends with these, and the Keras child process it starts
(``train.keras_baseline``) times Keras with the same functions, so the two columns of the comparison are
measured alike. numpy only; nothing here imports a backend, TensorFlow or Keras.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def time_calls(fn: Callable[[int], Any], repeats: int, warmup: int = 2, budget_s: float | None = None) -> np.ndarray:
    """Seconds per call of ``fn(i)``, after ``warmup`` untimed calls; stops early when ``budget_s`` is spent
    (but always times at least 3 calls, or ``repeats`` if fewer)."""
    for i in range(max(0, warmup)):
        fn(i)
    times = []
    start = time.perf_counter()
    for i in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s and len(times) >= min(3, repeats):
            break
    return np.asarray(times, dtype=np.float64)


def latency_stats(seconds: np.ndarray) -> dict[str, float]:
    ms = np.asarray(seconds, np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "n": int(len(ms)),
    }


def throughput_stats(seconds: np.ndarray, batch: int) -> dict[str, float]:
    """Images/s from the median batch time (robust to a busy machine), with the batch time percentiles."""
    ms = np.asarray(seconds, np.float64) * 1e3
    p50 = float(np.percentile(ms, 50))
    return {
        "images_per_s": float(batch / (p50 / 1e3)),
        "batch_p50_ms": p50,
        "batch_min_ms": float(ms.min()),
        "n": int(len(ms)),
    }
