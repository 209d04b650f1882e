"""The runtime-only process: a fresh interpreter that imports only ``runtime`` and ONNX Runtime, loads the bundle
and verifies a pair; its import and load times, resident memory, and whether TensorFlow or Keras got imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAVY_MODULES = ("tensorflow", "keras", "tf_keras")


def read_proc_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MB (Linux /proc/self/status); {} elsewhere."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return out


_RUNTIME_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
t_numpy = time.perf_counter() - t0
def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024.0
    return out
base = status()
t0 = time.perf_counter()
import runtime
t_runtime = time.perf_counter() - t0
t0 = time.perf_counter()
import onnxruntime
from runtime.manifest import load_manifest
from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
t_backend = time.perf_counter() - t0
after_import = status()
t0 = time.perf_counter()
m = load_manifest(sys.argv[1])
b = OnnxRuntimeBackend(sys.argv[1], m, providers=["CPUExecutionProvider"], threads=THREADS)
t_load = time.perf_counter() - t0
loaded = status()
x = np.zeros((1, *m.preprocessing.input_shape), np.float32)
t0 = time.perf_counter()
ref = b.embed(x)
s = b.score_embeddings(b.embed(x), ref)
t_first = time.perf_counter() - t0
after = status()
heavy = sorted(k for k in sys.modules if k.split(".")[0] in HEAVY)
print(json.dumps({
    "import_numpy_s": t_numpy, "import_runtime_s": t_runtime, "import_backend_s": t_backend, "load_bundle_s": t_load,
    "first_pair_s": t_first, "rss_mb_start": base.get("VmRSS"), "rss_mb_after_import": after_import.get("VmRSS"),
    "rss_mb_loaded": loaded.get("VmRSS"), "rss_mb_after_pair": after.get("VmRSS"), "hwm_mb": after.get("VmHWM"),
    "heavy_modules": heavy, "modules": len(sys.modules), "backend": "onnxruntime (CPUExecutionProvider)",
}))
"""


def runtime_probe_code(threads: int | None = None) -> str:
    return _RUNTIME_PROBE.replace("THREADS", repr(threads)).replace("HEAVY", repr(HEAVY_MODULES))


def measure_runtime_process(bundle_dir: Path, threads: int | None = None, timeout: float = 300) -> dict[str, Any]:
    """A fresh interpreter that imports only ``runtime`` (+ numpy, OpenCV, ONNX Runtime) and loads the bundle:
    import and load times, resident memory (MB), and whether TensorFlow/Keras got imported (they must not)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", runtime_probe_code(threads), str(bundle_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the runtime-only process failed (exit {proc.returncode}): {tail}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    out["tensorflow_imported"] = bool(out["heavy_modules"])
    return out
