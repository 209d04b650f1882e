"""The Keras rows: ``train.keras_baseline`` run in a child process (TensorFlow is imported only there, and does
not share threads with the runtime), on the images the runtime was timed on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench.rows import BATCHES


def run_keras(model: str, x: np.ndarray, ref_index: int, settings: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Time Keras in a child process (``python -m train.keras_baseline``; the runtime never imports Keras);
    {"error": ...} if it cannot. ``settings``: the timing (repeats, batch_repeats, warmup, budget_s, optionally
    batches), the bundle's ``arch`` and ``input_shape`` (for model files that do not say), and the ``pair_files``
    with their ``preprocessing`` for the verify row."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None:
        return {"rows": [], "error": "TensorFlow/Keras are not installed: no Keras baseline"}
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as tmp:
        images = Path(tmp) / "images.npz"
        np.savez(images, x=x)
        spec = {
            "model": str(model),
            "images": str(images),
            "ref_index": ref_index,
            "result": str(Path(tmp) / "r.json"),
            "batches": list(settings.get("batches", BATCHES)),
            **settings,
        }
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "train.keras_baseline", str(Path(tmp) / "spec.json")]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"rows": [], "error": f"the Keras process did not finish in {timeout:.0f} s"}
        rpath = Path(spec["result"])
        if not rpath.is_file():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"rows": [], "error": f"the Keras process failed (exit {proc.returncode}): {tail}"}
        return json.loads(rpath.read_text())
