"""The runtime-only process (``runtime.bench.process`` runs this file in a fresh interpreter): how long numpy,
``runtime`` and the ONNX Runtime backend take to import, how long the bundle takes to load, the resident memory
at each step and whether anything imported TensorFlow or Keras; one JSON line on stdout.

    python -c "import runpy; runpy.run_path('runtime/bench/probe.py', run_name='__main__')" BUNDLE [THREADS]

It is run as a file, not with ``python -m runtime.bench.probe``, which would import the ``runtime`` package
before the first clock starts; and with ``-c``, not ``python runtime/bench/probe.py``, which would put this
folder first on ``sys.path``. So only the standard library is imported at the top: everything else is timed.
"""

from __future__ import annotations

import json
import sys
import time

HEAVY_MODULES = ("tensorflow", "keras", "tf_keras")


def read_proc_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MB (Linux /proc/self/status); {} elsewhere."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return out


def main(argv: list[str]) -> int:
    bundle, threads = argv[0], (int(argv[1]) if len(argv) > 1 else None)
    t0 = time.perf_counter()
    import numpy as np

    t_numpy = time.perf_counter() - t0
    base = read_proc_status()
    t0 = time.perf_counter()
    import runtime  # noqa: F401  (timed: the import is what is measured)

    t_runtime = time.perf_counter() - t0
    t0 = time.perf_counter()
    import onnxruntime  # noqa: F401  (timed with the backend)

    from runtime.backends.onnxruntime_backend import CPU_PROVIDER, OnnxRuntimeBackend
    from runtime.bundle.manifest import load_manifest

    t_backend = time.perf_counter() - t0
    after_import = read_proc_status()
    t0 = time.perf_counter()
    m = load_manifest(bundle)
    b = OnnxRuntimeBackend(bundle, m, providers=[CPU_PROVIDER], threads=threads)
    t_load = time.perf_counter() - t0
    loaded = read_proc_status()
    x = np.zeros((1, *m.preprocessing.input_shape), np.float32)
    t0 = time.perf_counter()
    ref = b.embed(x)
    b.score_embeddings(b.embed(x), ref)
    t_first = time.perf_counter() - t0
    after = read_proc_status()
    heavy = sorted(k for k in sys.modules if k.split(".")[0] in HEAVY_MODULES)
    report = {
        "import_numpy_s": t_numpy,
        "import_runtime_s": t_runtime,
        "import_backend_s": t_backend,
        "load_bundle_s": t_load,
        "first_pair_s": t_first,
        "rss_mb_start": base.get("VmRSS"),
        "rss_mb_after_import": after_import.get("VmRSS"),
        "rss_mb_loaded": loaded.get("VmRSS"),
        "rss_mb_after_pair": after.get("VmRSS"),
        "hwm_mb": after.get("VmHWM"),
        "heavy_modules": heavy,
        "modules": len(sys.modules),
        "backend": "onnxruntime (CPUExecutionProvider)",
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
