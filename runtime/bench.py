"""``python -m runtime.bench --bundle DIR [--model SOURCE.keras]``: how fast the runtime is, next to Keras.

In one run, on the same preprocessed images (the bundle's ``reference.npz`` inputs, or ``--images DIR``):

* **pair latency at batch 1** (p50/p90/p99): what a verifier does per camera frame - embed one image and score it
  against a reference embedding computed once (embed once, score many);
* **throughput at batch 8 and 32** (images/s through the embedding network);
* for every backend present: ONNX Runtime on the CPU always; ONNX Runtime on a GPU provider, OpenVINO fp32/bf16 and
  TensorRT when their modules import and say they can run here (absent ones are listed with the reason);
* Keras on the source model (``--model``, when TensorFlow is installed): ``model.predict`` and a direct
  ``model(x)`` call; a Keras user verifies a pair by running the two-input model on both images, so that is the
  batch-1 baseline; throughput uses the model's nested ``embedding`` network (images through one branch). Keras
  runs in a child process (TensorFlow is imported only there, and does not share threads with the runtime), and
  its scores are compared with the runtime's on the same pairs;
* achieved GFLOP/s: the embedding graph's FLOPs (Conv, ConvTranspose, Gemm and MatMul multiply-accumulates x 2,
  from the shapes ONNX shape inference gives at batch 1; element-wise ops are not counted) times images/s,
  against this CPU's peak measured in the same run (the best of several float32 numpy matmuls; for bf16/fp16
  rows, the same matmul on OpenVINO at that precision);
* a runtime-only process (a fresh interpreter that imports only ``runtime`` and ONNX Runtime): import time, bundle
  load time and resident memory (VmRSS/VmHWM from /proc/self/status) with the bundle loaded and one pair
  verified, and whether anything imported TensorFlow or Keras.

Writes ``runtime_bench_<bundle>.txt`` (the table, also printed), ``.json`` and ``.png`` (a bar chart) into
``--out``, each atomically. Targets (issue 5, as ratios in one run): pair at batch 1 >= 20x faster than Keras
``predict``; the best backend at batch 32 >= 0.5 of the CPU's peak for its precision; the runtime-only process
< 300 MB resident. ``--check`` exits 1 when a target that was measured is missed.

TensorFlow/Keras are imported lazily, only in the Keras child process; nothing else here needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import bench_rows
from runtime.extras import explain_missing_extras
from runtime.fileio import atomic_path, write_json_atomic, write_text_atomic
from runtime.machine import cpu_name, versions
from runtime.manifest import REFERENCE_NPZ, Manifest, load_manifest
from runtime.timing import latency_stats, throughput_stats, time_calls

BENCH_SCHEMA = 1
BATCHES = (8, 32)
DEFAULT_BACKENDS = tuple(row for row, _, _ in bench_rows())  # the registry's rows: onnxruntime, openvino-bf16, ...
TARGETS = {"pair_b1_vs_keras_predict": 20.0, "best_b32_peak_fraction": 0.5, "runtime_rss_mb": 300.0}
FLOP_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
HEAVY_MODULES = ("tensorflow", "keras", "tf_keras")


# --- FLOPs from the ONNX graph ---------------------------------------------------------------------------------


def count_flops(model: str | os.PathLike | Any, batch: int = 1) -> dict[str, Any]:
    """FLOPs of one forward pass at ``batch``: 2 x multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul.

    Shapes come from ``onnx.shape_inference`` (with data propagation) after fixing every graph input's
    symbolic or unknown dimensions to ``batch`` (the batch axis is the only dynamic one in a bundle). Returns
    ``{"flops", "macs", "by_op": {op: flops}, "nodes": n counted, "unknown": [nodes whose shapes were unknown]}``.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    m = (
        onnx.load(str(model))
        if not isinstance(model, onnx.ModelProto)
        else onnx.ModelProto.FromString(model.SerializeToString())
    )
    init_names = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in init_names:
            continue
        for d in inp.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                d.Clear()
                d.dim_value = int(batch)
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes: dict[str, tuple[int, ...] | None] = {}

    def record(vi) -> None:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            shapes[vi.name] = None
            return
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
        shapes[vi.name] = tuple(dims) if all(v > 0 for v in dims) or not dims else None

    for vi in (*m.graph.input, *m.graph.value_info, *m.graph.output):
        record(vi)
    for t in m.graph.initializer:
        shapes[t.name] = tuple(int(v) for v in t.dims)
    for node in m.graph.node:  # Constant nodes carry weights in some exporters
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(numpy_helper.to_array(a.t).shape)

    def attr(node, name: str, default: Any) -> Any:
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    by_op: dict[str, int] = {}
    unknown: list[str] = []
    counted = 0
    for node in m.graph.node:
        if node.op_type not in FLOP_OPS:
            continue
        ins = [shapes.get(n) for n in node.input]
        out = shapes.get(node.output[0])
        macs = None
        if node.op_type == "Conv" and out and len(ins) > 1 and ins[1]:
            macs = int(np.prod(out)) * int(np.prod(ins[1][1:]))  # per output element: C/group x kH x kW
        elif node.op_type == "ConvTranspose" and ins and ins[0] and len(ins) > 1 and ins[1]:
            macs = int(np.prod(ins[0])) * int(np.prod(ins[1][1:]))  # per input element: M/group x kH x kW
        elif node.op_type == "Gemm" and out and ins and ins[0]:
            k = ins[0][0] if attr(node, "transA", 0) else ins[0][-1]
            macs = int(np.prod(out)) * int(k)
        elif node.op_type == "MatMul" and out and ins and ins[0]:
            macs = int(np.prod(out)) * int(ins[0][-1])
        if macs is None:
            unknown.append(node.name or node.output[0])
            continue
        counted += 1
        by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    total = sum(by_op.values())
    return {
        "flops": int(total),
        "macs": int(total // 2),
        "by_op": by_op,
        "nodes": counted,
        "unknown": unknown,
        "batch": int(batch),
    }


# --- peaks --------------------------------------------------------------------------------------------------


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


# --- the images ------------------------------------------------------------------------------------------------


def bench_images(bundle_dir: Path, manifest: Manifest, images_dir: str | None, n: int = 32) -> tuple[np.ndarray, str]:
    """At least ``n`` preprocessed images (NHWC float32) and where they came from; repeated when fewer exist."""
    if images_dir:
        from runtime.images import preprocess_many
        from runtime.preprocess import IMAGE_SUFFIXES

        files = sorted(p for p in Path(images_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: max(n, 64)]
        if not files:
            raise SystemExit(f"--images {images_dir}: no image files found")
        x = preprocess_many([str(p) for p in files], manifest.preprocessing)
        source = f"{len(files)} images from {images_dir}"
    else:
        ref = bundle_dir / REFERENCE_NPZ
        if ref.is_file():
            with np.load(ref, allow_pickle=False) as z:
                x = np.asarray(z["inputs"], np.float32)
            source = f"{len(x)} preprocessed inputs from {REFERENCE_NPZ}"
        else:
            rng = np.random.default_rng(0)
            x = rng.random((n, *manifest.preprocessing.input_shape), dtype=np.float32)
            source = f"{n} random inputs (the bundle has no {REFERENCE_NPZ})"
    if len(x) < n:
        x = np.concatenate([x] * (-(-n // len(x))))
    return np.ascontiguousarray(x, np.float32), source


# --- backends --------------------------------------------------------------------------------------------------


def make_backend(name: str, bundle_dir: Path, manifest: Manifest, threads: int | None) -> tuple[Any | None, str]:
    """(backend, "") or (None, why it is skipped here), for one of the registry's benchmark rows."""
    rows = {row: (e, precision) for row, e, precision in bench_rows()}
    if name not in rows:
        raise ValueError(f"backend {name!r}: expected one of {', '.join(DEFAULT_BACKENDS)}")
    e, precision = rows[name]
    presence = e.present(bundle_dir, precision, None)
    if not presence.ok:
        return None, presence.why
    try:
        return e.build(bundle_dir, manifest, precision=precision, threads=threads), ""
    except Exception as exc:  # noqa: BLE001 - e.g. a GPU provider present without a usable GPU
        return None, f"did not load: {exc}"


def bench_backend(
    backend: Any, x: np.ndarray, ref_index: int, repeats: int, batch_repeats: int, warmup: int, budget_s: float
) -> dict[str, Any]:
    """Pair latency at batch 1 (embed one image + score against the cached reference) and throughput."""
    ref = np.asarray(backend.embed(x[ref_index : ref_index + 1]), np.float32)  # computed once
    n = len(x)

    def pair(i: int) -> Any:
        j = i % n
        return backend.score_embeddings(backend.embed(x[j : j + 1]), ref)

    out: dict[str, Any] = {"latency_b1": latency_stats(time_calls(pair, repeats, warmup, budget_s)), "throughput": {}}
    for b in BATCHES:
        xb = np.ascontiguousarray(x[:b])
        t = time_calls(lambda _i, xb=xb, b=b: backend.embed(xb, batch_size=b), batch_repeats, min(warmup, 2), budget_s)
        out["throughput"][str(b)] = throughput_stats(t, b)
    # the pair scores on the check pairs (x[i], reference), to compare with Keras
    m = min(8, n)
    e = np.asarray(backend.embed(x[:m]), np.float32)
    out["check_scores"] = np.asarray(backend.score_embeddings(e, np.repeat(ref, m, axis=0)), np.float32).tolist()
    return out


# --- Keras (child process) -------------------------------------------------------------------------------------


def run_keras(model: str, x: np.ndarray, ref_index: int, settings: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Time Keras in a child process (``python -m train.keras_baseline``; the runtime never imports Keras);
    {"error": ...} if it cannot."""
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
            "batches": list(BATCHES),
            **settings,
        }
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        root = str(Path(__file__).resolve().parents[1])
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


# --- the runtime-only process ----------------------------------------------------------------------------------

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
    root = str(Path(__file__).resolve().parents[1])
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


# --- the report ------------------------------------------------------------------------------------------------


def _add_compute(row: dict[str, Any], flops_per_image: int | None, peaks: dict[str, dict[str, Any]]) -> None:
    tp = row.get("throughput", {}).get("32")
    if not tp or not flops_per_image:
        return
    g = flops_per_image * tp["images_per_s"] / 1e9
    row["gflops_b32"] = g
    peak = peaks.get(row.get("precision", "fp32")) or peaks.get("fp32")
    if peak:
        row["peak_fraction_b32"] = g / peak["gflops"]
        row["peak_precision"] = peak.get("precision", "fp32")


def summarize(results: list[dict[str, Any]], runtime_proc: dict[str, Any] | None) -> dict[str, Any]:
    """The target ratios from the rows of one run (None where not measured)."""
    ok = [r for r in results if r.get("status") == "ok"]
    rt = [r for r in ok if r["backend"] != "keras"]
    keras_predict = next((r for r in ok if r["name"] == "keras-predict"), None)
    best_b1 = min(rt, key=lambda r: r["latency_b1"]["p50_ms"], default=None)
    out: dict[str, Any] = {
        "best_b1_backend": best_b1["name"] if best_b1 else None,
        "pair_b1_vs_keras_predict": None,
        "pair_b1_vs_keras_call": None,
        "best_b32_backend": None,
        "best_b32_peak_fraction": None,
        "runtime_rss_mb": None,
        "runtime_hwm_mb": None,
    }
    if best_b1 and keras_predict:
        out["pair_b1_vs_keras_predict"] = keras_predict["latency_b1"]["p50_ms"] / best_b1["latency_b1"]["p50_ms"]
    keras_call = next((r for r in ok if r["name"] == "keras-call"), None)
    if best_b1 and keras_call:
        out["pair_b1_vs_keras_call"] = keras_call["latency_b1"]["p50_ms"] / best_b1["latency_b1"]["p50_ms"]
    with_frac = [r for r in rt if r.get("peak_fraction_b32") is not None]
    if with_frac:
        best = max(with_frac, key=lambda r: r["peak_fraction_b32"])
        out["best_b32_backend"] = best["name"]
        out["best_b32_peak_fraction"] = best["peak_fraction_b32"]
        out["best_b32_gflops"] = best["gflops_b32"]
    if runtime_proc and "error" not in runtime_proc:
        out["runtime_rss_mb"] = runtime_proc.get("rss_mb_after_pair")
        out["runtime_hwm_mb"] = runtime_proc.get("hwm_mb")
    targets = {}
    for key, goal in TARGETS.items():
        v = out.get(key)
        met = None if v is None else (v < goal if key == "runtime_rss_mb" else v >= goal)
        targets[key] = {"value": v, "goal": (f"< {goal:g}" if key == "runtime_rss_mb" else f">= {goal:g}"), "met": met}
    out["targets"] = targets
    return out


def format_table(report: dict[str, Any]) -> str:
    b = report["bundle"]
    peak = report["peak"]["fp32"]
    fl = report["flops"]
    lines = [
        f"runtime bench: bundle {b['name']!r} ({b.get('arch') or '?'}, input {'x'.join(map(str, b['input_shape']))}, "
        f"embedding {b['embedding_dim']}, head {b['head']}) on {report['machine']['cpu']} "
        f"({report['machine']['cpus']} CPUs)",
        f"images: {report['images']['source']}",
        f"peak fp32: {peak['gflops']:.1f} GFLOP/s ({peak['method']})"
        + "".join(
            f"; peak {p}: {v['gflops']:.1f} GFLOP/s ({v['method']})" for p, v in report["peak"].items() if p != "fp32"
        ),
    ]
    if fl.get("flops"):
        ops = ", ".join(f"{k} {v / 1e9:.3g}" for k, v in fl["by_op"].items())
        lines.append(
            f"embedding: {fl['flops'] / 1e9:.4g} GFLOP per image ({ops})"
            + (f"; {len(fl['unknown'])} nodes with unknown shapes not counted" if fl.get("unknown") else "")
        )
    else:
        lines.append(f"embedding FLOPs: not counted ({fl.get('error', 'unknown')})")
    lines.append("")
    head = (
        f"{'backend':<22}{'prec':<6}{'pair b1 p50':>12}{'p90':>9}{'p99':>9}{'b8 img/s':>11}{'b32 img/s':>11}"
        f"{'GFLOP/s':>10}{'of peak':>9}"
    )
    lines += [head, "-" * len(head)]
    for r in report["results"]:
        if r.get("status") != "ok":
            continue
        lat, tp = r["latency_b1"], r["throughput"]
        g = r.get("gflops_b32")
        f = r.get("peak_fraction_b32")
        lines.append(
            f"{r['name']:<22}{r.get('precision', ''):<6}{lat['p50_ms']:>10.2f}ms{lat['p90_ms']:>7.2f}ms"
            f"{lat['p99_ms']:>7.2f}ms{tp['8']['images_per_s']:>11.1f}{tp['32']['images_per_s']:>11.1f}"
            f"{(f'{g:.1f}' if g is not None else '-'):>10}{(f'{f:.2f}' if f is not None else '-'):>9}"
        )
    skipped = [r for r in report["results"] if r.get("status") != "ok"]
    if skipped:
        lines.append("")
        lines += [f"not run: {r['name']}: {r.get('reason', '')}" for r in skipped]
    k = report.get("keras") or {}
    if k.get("error"):
        lines.append(f"keras: {k['error']}")
    elif k.get("measured"):
        lines.append(
            f"keras: pair b1 = the two-input model on (image, reference); b8/b32 = "
            f"{k.get('throughput_note', '')}; scores vs runtime max abs diff "
            f"{k.get('check_max_abs_diff', float('nan')):.3g}"
        )
    p = report.get("runtime_process") or {}
    lines.append("")
    if "error" in p:
        lines.append(f"runtime-only process: {p['error']}")
    elif p:
        lines.append(
            f"runtime-only process ({p['backend']}): import runtime {p['import_runtime_s']:.2f} s, "
            f"+ onnxruntime and the backend {p['import_backend_s']:.2f} s, load bundle {p['load_bundle_s']:.2f} s, first pair "
            f"{p['first_pair_s']:.2f} s; RSS {p['rss_mb_loaded']:.0f} MB loaded, {p['rss_mb_after_pair']:.0f} MB "
            f"after a pair, peak {p['hwm_mb']:.0f} MB; TensorFlow/Keras imported: "
            f"{', '.join(p['heavy_modules']) or 'no'}"
        )
    s = report["summary"]
    t = s["targets"]

    def fmt(key: str, unit: str, spec: str) -> str:
        v = t[key]["value"]
        met = {True: "met", False: "MISSED", None: "not measured"}[t[key]["met"]]
        return f"{spec.format(v) if v is not None else '-'}{unit} ({t[key]['goal']}: {met})"

    lines.append(
        "targets: pair b1 vs keras predict "
        + fmt("pair_b1_vs_keras_predict", "x", "{:.1f}")
        + f" [{s.get('best_b1_backend')}]"
        + "; best b32 of peak "
        + fmt("best_b32_peak_fraction", "", "{:.2f}")
        + f" [{s.get('best_b32_backend')}]"
        + "; runtime RSS "
        + fmt("runtime_rss_mb", " MB", "{:.0f}")
    )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Bar chart: batch-1 pair latency (log scale) and batch-8/32 throughput per backend. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in report["results"] if r.get("status") == "ok"]
    if not rows:
        return None
    names = [f"{r['name']} ({r.get('precision', '')})" for r in rows]
    colors = ["#888888" if r["backend"] == "keras" else "#1f77b4" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.55 * len(rows) + 2.2))
    y = np.arange(len(rows))
    lat = [r["latency_b1"]["p50_ms"] for r in rows]
    ax1.barh(y, lat, color=colors)
    ax1.set_yticks(y, names)
    ax1.invert_yaxis()
    ax1.set_xscale("log")
    ax1.set_xlabel("pair latency at batch 1, p50 (ms, log scale; lower is better)")
    for yi, v in zip(y, lat):
        ax1.text(v, yi, f" {v:.1f}", va="center", fontsize=8)
    h = 0.38
    for k, (b, c) in enumerate(zip(BATCHES, ("#ff7f0e", "#2ca02c"))):
        vals = [r["throughput"][str(b)]["images_per_s"] for r in rows]
        ax2.barh(y + (k - 0.5) * h, vals, height=h, color=c, label=f"batch {b}")
    ax2.set_yticks(y, [""] * len(rows))
    ax2.invert_yaxis()
    ax2.set_xlabel("throughput (images/s; higher is better)")
    ax2.legend(loc="best", fontsize=8, framealpha=0.9)
    b = report["bundle"]
    fig.suptitle(
        f"runtime bench: {b['name']} ({'x'.join(map(str, b['input_shape']))} -> {b['embedding_dim']}) "
        f"on {report['machine']['cpu']}, {report['machine']['cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


# --- the run ---------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    bundle_dir = Path(args.bundle)
    manifest = load_manifest(bundle_dir)
    x, source = bench_images(bundle_dir, manifest, args.images, n=max(BATCHES))
    ref_index = len(x) - 1
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))

    say("measuring the CPU's fp32 peak ...")
    peaks: dict[str, dict[str, Any]] = {
        "fp32": {**measure_peak(args.peak_size, args.peak_repeats), "precision": "fp32"}
    }
    try:
        flops = count_flops(bundle_dir / manifest.embedding_file)
    except Exception as e:  # noqa: BLE001 - onnx missing or a graph it cannot infer: no GFLOP/s, the rest stands
        flops = {"flops": None, "error": f"{type(e).__name__}: {e}"}

    results: list[dict[str, Any]] = []
    settings = {
        "repeats": args.repeats,
        "batch_repeats": args.batch_repeats,
        "warmup": args.warmup,
        "budget_s": args.budget,
    }
    for name in args.backends:
        row: dict[str, Any] = {"name": name, "backend": name.split("-")[0]}
        try:
            backend, why = make_backend(name, bundle_dir, manifest, args.threads)
        except Exception as e:  # noqa: BLE001
            backend, why = None, f"did not load: {type(e).__name__}: {e}"
        if backend is None:
            results.append({**row, "status": "skipped", "reason": why})
            say(f"{name}: skipped ({why})")
            continue
        info = backend.info()
        row.update(precision=str(info.get("precision", "fp32")), info=info)
        say(f"{name}: timing ...")
        try:
            row.update(bench_backend(backend, x, ref_index, args.repeats, args.batch_repeats, args.warmup, args.budget))
            row["status"] = "ok"
        except Exception as e:  # noqa: BLE001
            row.update(status="failed", reason=f"{type(e).__name__}: {e}")
        results.append(row)
        if row["precision"] in ("bf16", "fp16") and row["precision"] not in peaks and row["status"] == "ok":
            try:
                peaks[row["precision"]] = {
                    **measure_peak_openvino(row["precision"], args.peak_size, args.peak_repeats),
                    "precision": row["precision"],
                }
            except Exception as e:  # noqa: BLE001
                say(f"no {row['precision']} peak: {e}")
        del backend

    keras: dict[str, Any] = {}
    if args.model and not args.no_keras:
        say("keras: timing in a child process ...")
        keras = run_keras(args.model, x, ref_index, settings, timeout=args.keras_timeout)
        for krow in keras.get("rows", []):
            results.append({**krow, "status": "ok"})
            keras.update(measured=True, throughput_note=krow.get("throughput_note"))
        rt_scores = next(
            (r.get("check_scores") for r in results if r.get("status") == "ok" and r["backend"] != "keras"), None
        )
        if keras.get("check_scores") and rt_scores:
            keras["check_max_abs_diff"] = float(np.max(np.abs(np.subtract(keras["check_scores"], rt_scores))))
    elif args.model:
        keras = {"rows": [], "error": "--no-keras"}

    # the peak again at the end: on a shared machine one measurement can be unlucky; the best of both counts
    again = measure_peak(args.peak_size, args.peak_repeats)
    first = peaks["fp32"]
    peaks["fp32"] = {**(again if again["gflops"] > first["gflops"] else first), "precision": "fp32"}
    peaks["fp32"]["measurements_gflops"] = [first["gflops"], again["gflops"]]
    peaks["fp32"]["method"] += ", at the start and the end of the run (the better counts)"
    for r in results:
        if r.get("status") == "ok":
            _add_compute(r, flops.get("flops"), peaks)

    runtime_proc: dict[str, Any] = {}
    if not args.no_process:
        say("runtime-only process ...")
        runtime_proc = measure_runtime_process(bundle_dir, args.threads)

    report = {
        "schema": BENCH_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, "-m", "runtime.bench", *sys.argv[1:]]),
        "bundle": {
            "name": manifest.name,
            "dir": str(bundle_dir),
            "arch": manifest.raw.get("source", {}).get("arch"),
            "input_shape": list(manifest.preprocessing.input_shape),
            "embedding_dim": manifest.embedding_dim,
            "head": manifest.head_kind,
            "score": manifest.score.to_dict(),
        },
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "versions": versions(("numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "openvino", "tensorflow", "keras")),
        "images": {"source": source, "count": int(len(x)), "reference_index": ref_index},
        "settings": {**settings, "threads": args.threads, "batches": list(BATCHES)},
        "peak": peaks,
        "flops": flops,
        "results": results,
        "keras": {k: v for k, v in keras.items() if k != "rows"},
        "runtime_process": runtime_proc,
    }
    report["summary"] = summarize(results, runtime_proc)
    return report


def parse_backends(values: Sequence[str] | None) -> list[str]:
    if not values:
        return list(DEFAULT_BACKENDS)
    out: list[str] = []
    for v in values:
        for name in v.replace(",", " ").split():
            name = {"openvino": "openvino-fp32", "ort": "onnxruntime"}.get(name, name)
            if name not in DEFAULT_BACKENDS:
                raise SystemExit(f"--backends {name!r}: expected some of {', '.join(DEFAULT_BACKENDS)}")
            if name not in out:
                out.append(name)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runtime.bench",
        description="Latency, throughput, GFLOP/s and memory of a bundle on every backend present, next to Keras.",
    )
    p.add_argument("--bundle", help="the bundle folder (written by python -m export.build)")
    p.add_argument(
        "--model", help="the source Keras model (.keras / full-model .h5): adds Keras rows when TensorFlow is installed"
    )
    p.add_argument(
        "--backends",
        nargs="*",
        help=f"some of {', '.join(DEFAULT_BACKENDS)} (default: all; absent ones are listed as not run)",
    )
    p.add_argument("--out", default="runs/bench", help="where runtime_bench_<bundle>.{txt,json,png} go")
    p.add_argument("--images", help="a folder of images to time on (default: the bundle's reference inputs)")
    p.add_argument("--repeats", type=int, default=100, help="timed pairs at batch 1 per backend (default 100)")
    p.add_argument("--batch-repeats", type=int, default=10, help="timed batches per batch size (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--budget", type=float, default=30.0, help="at most this many seconds per measurement (default 30)")
    p.add_argument("--threads", type=int, help="intra-op threads for the CPU backends (default: theirs)")
    p.add_argument("--peak-size", type=int, default=2048, help="matrix size of the peak matmul (default 2048)")
    p.add_argument("--peak-repeats", type=int, default=7, help="peak matmuls, the best counts (default 7)")
    p.add_argument("--quick", action="store_true", help="tiny repeat counts (a smoke run, not a measurement)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras baseline")
    p.add_argument("--no-process", action="store_true", help="skip the runtime-only process measurement")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--keras-timeout", type=float, default=1800.0, help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true", help="exit 1 when a measured target is missed")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


@explain_missing_extras()
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.bundle:
        build_parser().error("--bundle is required")
    if args.quick:
        args.repeats, args.batch_repeats, args.warmup, args.peak_size, args.peak_repeats = 5, 2, 1, 1024, 3
    for name in ("repeats", "batch_repeats"):
        if getattr(args, name) < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be >= 1")
    args.backends = parse_backends(args.backends)
    from runtime.manifest import BundleError

    try:
        report = run(args)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    stem = f"runtime_bench_{report['bundle']['name']}"
    table = format_table(report)
    png = None if args.no_plot else plot(report, out / f"{stem}.png")
    report["files"] = {
        "txt": str(out / f"{stem}.txt"),
        "json": str(out / f"{stem}.json"),
        "png": str(png) if png else None,
    }
    write_text_atomic(out / f"{stem}.txt", table + "\n")
    write_json_atomic(out / f"{stem}.json", report)
    print(json.dumps(report, indent=2, default=str) if args.json else table)
    if not args.json:
        print(f"\nwritten: {', '.join(v for v in report['files'].values() if v)}")
    if args.check and any(t["met"] is False for t in report["summary"]["targets"].values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
