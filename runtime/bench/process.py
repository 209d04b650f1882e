"""The runtime-only process: a fresh interpreter that imports only ``runtime`` and ONNX Runtime, loads the bundle
and verifies a pair; its import and load times, resident memory, and whether TensorFlow or Keras got imported.
What runs there is ``probe.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROBE = Path(__file__).with_name("probe.py")


def runtime_probe_code() -> str:
    """``python -c`` code that runs the probe file (``probe.py``) as a script; its arguments: BUNDLE [THREADS]."""
    return f"import runpy; runpy.run_path({str(PROBE)!r}, run_name='__main__')"


def measure_runtime_process(bundle_dir: Path, threads: int | None = None, timeout: float = 300) -> dict[str, Any]:
    """A fresh interpreter that imports only ``runtime`` (+ numpy, OpenCV, ONNX Runtime) and loads the bundle:
    import and load times, resident memory (MB), and whether TensorFlow/Keras got imported (they must not)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", runtime_probe_code(), str(bundle_dir), *([str(threads)] if threads is not None else [])],
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
