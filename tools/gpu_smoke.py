"""GPU smoke check (``make gpu-smoke``): the first command to run on a machine with an NVIDIA GPU.

One command, no network, under five minutes. Each step runs what it can and is skipped with its reason when a
library or the GPU is missing, so on a CPU machine every GPU step says why it did not run. One JSON report:

- installed: driver, CUDA runtime, TensorRT, cuda-bindings, ONNX Runtime and its providers;
- cuda: through each CUDA API installed (cuda-python, pycuda: runtime.backends.cuda_memory), pinned and device
  allocations, a copy round trip on a stream, 20 times, device memory back to its baseline;
- tensorrt: a tiny L2-norm bundle built at FP32 and FP16 with a 2:4:8 profile, timing-cache reuse and a foreign
  cache refused cleanly,
  batches of 0, 1, 3, 8 and 20 against ONNX Runtime's CPU provider within the precision's gate, four threads
  embedding while one closes, 20 load/close cycles back to the memory baseline, a plan for another compute
  capability refused;
- tensorrt-int8: an INT8 plan built from a QDQ graph (explicit quantization: TensorRT 10 with the INT8 flag, 11
  strongly typed) and run through the runtime's backend, compared by runtime.parity.compare with the INT8
  tolerances: with ``--bundle DIR`` (exported with --int8), a copy of that bundle against its Keras reference
  (reference.npz); without, the tiny bundle quantized here (export.int8) against its FP32 graph on ONNX Runtime's
  CPU provider (it has no Keras model), the report saying which;
- onnxruntime-gpu: the CUDA and TensorRT providers' parity on the same bundle;
- cpp: the C++ TensorRT backend's ctest, where a build with TensorRT exists.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HWC = (2, 2, 3)
DIM = 4
PROFILE = "2:4:8"
BATCHES = (0, 1, 3, 8, 20)


class Skip(Exception):
    """A step that cannot run here; the message is the reason."""


# ----------------------------------------------------------------------------------------------------------------
# a tiny real bundle: tf2onnx's graph for an L2 norm, its FP16 twin, a manifest (needs the onnx package)
# ----------------------------------------------------------------------------------------------------------------


def l2_norm_graph(named: bool = True, dim: int = DIM):
    """The graph tf2onnx 1.17 writes for ``tf.math.l2_normalize(tf.matmul(tf.reshape(image, [-1, 12]), w), 1)``:
    its node names, ops and wiring as exported (``Rsqrt__11`` is one of tf2onnx's own helper nodes). ``named``
    False drops every node name, as graph tools that rebuild nodes do."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from runtime.bundle.layout import INPUT_NAME

    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(np.array([-1, 12], np.int64), "const_fold_opt__13"),
        numpy_helper.from_array(rng.standard_normal((12, dim)).astype(np.float32), "MatMul/b:0"),
        numpy_helper.from_array(np.array([1], np.int64), "const_fold_opt__15"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "l2_normalize/Maximum/y:0"),
    ]
    nodes = [
        ("Reshape", "Reshape", [INPUT_NAME, "const_fold_opt__13"], ["Reshape:0"], {}),
        ("MatMul", "MatMul", ["Reshape:0", "MatMul/b:0"], ["MatMul:0"], {}),
        ("l2_normalize/Square", "Mul", ["MatMul:0", "MatMul:0"], ["l2_normalize/Square:0"], {}),
        ("l2_normalize/Sum", "ReduceSum", ["l2_normalize/Square:0", "const_fold_opt__15"], ["l2_normalize/Sum:0"],
         {"keepdims": 1}),
        ("l2_normalize/Maximum", "Max", ["l2_normalize/Sum:0", "l2_normalize/Maximum/y:0"],
         ["l2_normalize/Maximum:0"], {}),
        ("l2_normalize/Rsqrt", "Sqrt", ["l2_normalize/Maximum:0"], ["l2_normalize/Rsqrt:0"], {}),
        ("l2_normalize/Rsqrt__11", "Reciprocal", ["l2_normalize/Rsqrt:0"], ["l2_normalize/Rsqrt__11:0"], {}),
        ("l2_normalize", "Mul", ["MatMul:0", "l2_normalize/Rsqrt__11:0"], ["embedding"], {}),
    ]  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node(op, i, o, name=n if named else "", **a) for n, op, i, o, a in nodes],
        "tf2onnx",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *HWC])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model)


def write_l2_bundle(root: Path, name: str = "l2", named: bool = True) -> Path:
    """A bundle of ``l2_norm_graph`` (FP32 and FP16 graphs, euclidean distance) written through runtime.bundle."""
    import onnx

    from export.fp16 import to_fp16
    from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_ONNX, SCHEMA_VERSION
    from runtime.bundle.manifest import Manifest, write_manifest
    from runtime.preprocess import Preprocessing

    bundle = Path(root) / name
    bundle.mkdir(parents=True, exist_ok=True)
    model = l2_norm_graph(named)
    onnx.save(model, str(bundle / EMBEDDING_ONNX))
    onnx.save(to_fp16(model), str(bundle / EMBEDDING_FP16_ONNX))
    fields = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "preprocessing": Preprocessing(height=HWC[0], width=HWC[1], color="rgb").to_dict(),
        "embedding": {"file": EMBEDDING_ONNX, "dim": DIM, "l2_normalized": True, "fp16_file": EMBEDDING_FP16_ONNX},
        "head": {"kind": "euclidean", "file": None},
        "score": {"kind": "distance", "same_when": "low", "threshold": 0.5},
        "files": {},
    }
    write_manifest(bundle, Manifest.from_dict(fields))
    return bundle


# ----------------------------------------------------------------------------------------------------------------
# the steps
# ----------------------------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def step_installed(ctx: dict[str, Any]) -> dict[str, Any]:
    from runtime.backends import cuda_memory
    from runtime.backends import onnxruntime_backend as ortb
    from runtime.backends.tensorrt_backend import probe

    out: dict[str, Any] = {"python": sys.version.split()[0]}
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run(
            [smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        out["nvidia-smi"] = q.stdout.strip() or q.stderr.strip()
    else:
        out["nvidia-smi"] = "not found (no NVIDIA driver here)"
    out["probe"] = probe()
    dists = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "cuda-python", "cuda-bindings", "pycuda")
    out["distributions"] = {d: _version(d) for d in dists} | ortb.ort_distributions()
    out["onnxruntime_providers"] = ortb.available_providers()
    out["onnxruntime_conflict"] = ortb.ort_conflict(ortb.ort_distributions())
    out["cuda_apis"] = cuda_memory.installed_apis()
    out["cuda_api"] = cuda_memory.current_choice().label
    try:
        cudart = cuda_memory.import_cudart()
        out["cuda_runtime"] = cudart.cudaRuntimeGetVersion()[1]
        out["cuda_driver"] = cudart.cudaDriverGetVersion()[1]
    except Exception as e:  # no cuda-python, or no driver to ask
        out["cuda_runtime"] = f"unknown ({type(e).__name__}: {e})"
    ctx["probe"] = out["probe"]
    return out


def _cuda_on_gpu(api: str | None = None):
    """The CUDA adapter (``api``, else the one the backend would take) on a GPU, or Skip with the reason."""
    from runtime.backends import cuda_memory

    dev, _label, why = cuda_memory.cuda_device(prefer=api)
    if why or dev is None:
        raise Skip(why or "no CUDA GPU found")
    return cuda_memory.open_cuda(prefer=api)


def _round_trips(cuda, n: int = 1 << 18, cycles: int = 20) -> dict[str, Any]:
    """Pinned and device buffers, a copy there and back on a stream, ``cycles`` times; device memory back to its
    baseline after."""
    with cuda.activate():
        base, _ = cuda.mem_info()
        for _ in range(cycles):
            host = cuda.pinned_floats(n)
            dev = cuda.alloc(n * 4)
            stream = cuda.create_stream()
            try:
                want = np.arange(n, dtype=np.float32)
                host.array[:] = want
                cuda.copy_to_device(dev, host.array, stream)
                host.array[:] = 0
                cuda.copy_to_host(host.array, dev, stream)
                cuda.synchronize(stream)
                if not np.array_equal(host.array, want):
                    raise AssertionError(f"{cuda.label}: the copy round trip changed the data")
            finally:
                cuda.destroy_stream(stream)
                cuda.free(dev)
                cuda.free_pinned(host)
            del stream
        after, _ = cuda.mem_info()
    if base - after > 4 << 20:
        raise AssertionError(
            f"{cuda.label}: device memory not back to baseline after {cycles} cycles: {base - after} bytes lower"
        )
    return {"round_trip_floats": n, "cycles": cycles, "free_before": base, "free_after": after}


def step_cuda(ctx: dict[str, Any]) -> dict[str, Any]:
    """The round trips through each CUDA API installed (cuda-python and pycuda), as the TensorRT backend uses them."""
    from runtime.backends import cuda_memory

    apis = [api for api, version in cuda_memory.installed_apis().items() if version is not None]
    if not apis:
        raise Skip(cuda_memory.current_choice().reason or "no CUDA API installed")
    out: dict[str, Any] = {}
    skipped: list[str] = []
    for api in apis:
        try:
            cuda = _cuda_on_gpu(api)
        except Skip as e:  # this API cannot reach a GPU here: said per API, the others still run
            skipped.append(str(e))
            out[api] = f"skipped: {e}"
            continue
        try:
            out[cuda.label] = _round_trips(cuda)
        finally:
            cuda.close()
    if len(skipped) == len(apis):
        raise Skip("; ".join(skipped))
    return out


def _needs_tensorrt(ctx: dict[str, Any]) -> None:
    probe = ctx.get("probe") or {}
    if probe.get("reason"):
        raise Skip(probe["reason"])
    try:
        import onnx  # noqa: F401  (the tiny bundle is written with it)
    except ImportError:
        raise Skip("the onnx package is not installed (pip install 'siamese-edge[export]')") from None


def _bundle(ctx: dict[str, Any]) -> Path:
    if "bundle" not in ctx:
        ctx["bundle"] = write_l2_bundle(ctx["work"])
    return ctx["bundle"]


def _reference(bundle: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    from runtime.backends.onnxruntime_backend import CPU_PROVIDER
    from runtime.bundle.layout import EMBEDDING_ONNX, INPUT_NAME

    session = ort.InferenceSession(str(bundle / EMBEDDING_ONNX), providers=[CPU_PROVIDER])
    return session.run(None, {INPUT_NAME: x})[0] if len(x) else np.zeros((0, DIM), np.float32)


def _gate(precision: str, got: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """The precision's parity gate on embeddings (runtime.parity's tolerances)."""
    from runtime.parity import FP16_TOLERANCES, FP32_TOLERANCES

    if len(ref) == 0:
        return {"rows": 0, "ok": got.shape == (0, DIM)}
    if precision == "fp32":
        rel = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
        return {"rows": len(ref), "embedding_rel": rel, "ok": rel <= FP32_TOLERANCES.embedding_rel}
    cos = np.sum(got * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    return {"rows": len(ref), "min_cosine": float(cos.min()), "ok": float(cos.min()) >= FP16_TOLERANCES.min_cosine}


def step_tensorrt(ctx: dict[str, Any]) -> dict[str, Any]:
    from export.tensorrt_build import build_engine, register_engine
    from runtime.backends import tensorrt_backend as trtb
    from runtime.engines import BatchProfile

    _needs_tensorrt(ctx)
    cuda = _cuda_on_gpu()
    bundle = _bundle(ctx)
    cache = ctx["work"] / "trt_timing.cache"
    out: dict[str, Any] = {}  # INT8: the tensorrt-int8 step
    x = np.random.default_rng(5).random((max(BATCHES), *HWC), dtype=np.float32)
    ok = True
    for precision in ("fp32", "fp16"):
        side = build_engine(bundle, HWC, BatchProfile.parse(PROFILE), precision, 0.25, cache)
        register_engine(bundle, side)
        again = build_engine(bundle, HWC, BatchProfile.parse(PROFILE), precision, 0.25, cache, force=True)
        row: dict[str, Any] = {
            "plan": side["file"],
            "strategy": side["strategy"],
            "fp32_layers_pinned": side.get("fp32_layers_pinned"),
            "timing_cache_reused_on_rebuild": again["timing_cache_reused"],
        }
        backend = trtb.TensorRTBackend(bundle, precision=precision)
        row["cuda_api"] = backend.info()["cuda_api"]
        try:
            row["batches"] = {
                str(n): _gate(precision, backend.embed(x[:n]), _reference(bundle, x[:n])) for n in BATCHES
            }
        finally:
            backend.close()
        ok &= all(b["ok"] for b in row["batches"].values()) and row["timing_cache_reused_on_rebuild"] is True
        out[precision] = row

    foreign = ctx["work"] / "foreign.cache"
    foreign.write_bytes(b"a timing cache from another GPU" * 64)
    side = build_engine(bundle, HWC, BatchProfile.parse(PROFILE), "fp16", 0.25, foreign, force=True)
    out["foreign_cache"] = {"built": True, "timing_cache_reused": side["timing_cache_reused"]}
    ok &= side["timing_cache_reused"] is False

    backend = trtb.TensorRTBackend(bundle, precision="fp16")
    errors: list[str] = []
    results: list[int] = []

    def worker() -> None:
        for _ in range(50):
            try:
                results.append(len(backend.embed(x[:8])))
            except RuntimeError as e:  # closed under it: the one error allowed
                if "closed" not in str(e):
                    errors.append(str(e))
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    backend.close()
    for t in threads:
        t.join(60)
    out["close_while_embedding"] = {"runs_before_close": len(results), "errors": errors}
    ok &= not errors

    with cuda.activate():
        base, _ = cuda.mem_info()
    for _ in range(20):
        trtb.TensorRTBackend(bundle, precision="fp16").close()
    with cuda.activate():
        drop = base - cuda.mem_info()[0]
    cuda.close()
    out["load_close_cycles"] = {"cycles": 20, "device_bytes_lost": drop}
    ok &= drop <= 4 << 20

    out["other_gpu_plan"] = _other_gpu_plan_refused(bundle, ctx["probe"])
    ok &= out["other_gpu_plan"]["refused"]
    out["ok"] = bool(ok)
    if not ok:
        raise AssertionError(json.dumps(out))
    return out


def _other_gpu_plan_refused(bundle: Path, probe: dict[str, Any]) -> dict[str, Any]:
    """A plan and sidecar as export.tensorrt_build writes them, for this TensorRT but another compute capability:
    the runtime's plan check refuses it and never selects it."""
    from runtime import engines
    from runtime.bundle.layout import EMBEDDING_ONNX
    from runtime.fileio import sha256_file

    trt, (major, minor) = probe["tensorrt"], probe["compute_capability"]
    other, profile, sha = (major, minor + 1), engines.BatchProfile.parse(PROFILE), sha256_file(bundle / EMBEDDING_ONNX)
    key = engines.engine_cache_key(sha, trt, other, "fp32", profile, HWC)
    plan = bundle / engines.engine_file_name(trt, other, "fp32", key)
    plan.write_bytes(b"not an engine: a plan for another GPU")
    side = engines.engine_sidecar(plan, key, trt, other, "fp32", EMBEDDING_ONNX, sha, HWC, profile, gpu="another GPU")
    plan.with_name(engines.sidecar_name(plan.name)).write_text(json.dumps(side))
    here = engines.PlanTarget(trt, (major, minor), probe.get("gpu"))
    check = engines.check_plan(plan, here, HWC)
    chosen = engines.select_plan(bundle, here, HWC).plan
    return {"refused": not check.ok and (chosen is None or chosen.plan != plan), "why": check.summary()}


@dataclass(frozen=True)
class Int8Case:
    """What the INT8 step builds and compares: a bundle with an INT8 graph (a copy: the plan is built into it), the
    reference to compare with (runtime.bundle.reference.Reference: inputs, embeddings, pairs and their scores) and
    what that reference is."""

    bundle: Path
    reference: Any
    label: str


def int8_case(ctx: dict[str, Any]) -> Int8Case:
    """The user's ``--bundle`` (a copy, against its Keras reference) or the tiny L2 bundle with a QDQ graph quantized
    here (against its FP32 graph on ONNX Runtime's CPU provider). Skip, with the reason, when the bundle has no INT8
    graph or the quantizer is not installed. Runs on the CPU (tested there)."""
    from runtime.bundle import Bundle
    from runtime.bundle.layout import EMBEDDING_INT8_ONNX

    work = Path(ctx["work"])
    given = ctx.get("int8_bundle")
    if given is not None:
        src = Path(given)
        if not (src / EMBEDDING_INT8_ONNX).is_file():
            raise Skip(
                f"{src} has no {EMBEDDING_INT8_ONNX}: export it with python -m export.build --model MODEL_FILE --int8"
            )
        copy = work / "int8" / src.name
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(src, copy)  # with its plans, which its manifest lists; the step builds its own (force)
        bundle = Bundle.open(copy)  # checks every hash of the copy
        return Int8Case(copy, bundle.reference(), f"the Keras reference of {src} (reference.npz)")
    try:
        from export.int8 import quantize_int8
    except ImportError as e:
        raise Skip(f"the INT8 quantizer needs the export extra (pip install 'siamese-edge[export]'): {e}") from None
    from runtime.backends.onnxruntime_backend import CPU_PROVIDER, OnnxRuntimeBackend
    from runtime.bundle.reference import Reference

    path = work / "int8" / "l2int8"
    shutil.rmtree(path, ignore_errors=True)
    bundle_dir = write_l2_bundle(path.parent, path.name)
    rng = np.random.default_rng(7)
    calibration = rng.random((64, *HWC), dtype=np.float32)
    quantize_int8(bundle_dir / "embedding.onnx", bundle_dir / EMBEDDING_INT8_ONNX, calibration, progress=False)
    Bundle.open(bundle_dir).add_graph("int8", EMBEDDING_INT8_ONNX)
    x = rng.random((20, *HWC), dtype=np.float32)
    fp32 = OnnxRuntimeBackend(bundle_dir, providers=[CPU_PROVIDER], precision="fp32")
    emb = fp32.embed(x)
    a, b = np.arange(0, 20, 2), np.arange(1, 20, 2)
    ref = Reference(x, emb, a, b, fp32.score_embeddings(emb[a], emb[b]), source="random inputs (gpu-smoke)")
    label = (
        "embedding.onnx on ONNX Runtime's CPU provider (the tiny bundle has no Keras model; --bundle DIR compares "
        "with a bundle's Keras reference)"
    )
    return Int8Case(bundle_dir, ref, label)


def int8_parity(case: Int8Case, backend: Any) -> Any:
    """runtime.parity.compare of ``backend`` (an int8 one) with the case's reference, at the INT8 tolerances."""
    from runtime.bundle.manifest import load_manifest
    from runtime.parity import compare, tolerances_for

    ref = case.reference
    emb = backend.embed(ref.inputs)
    scores = backend.score_embeddings(emb[ref.pair_a], emb[ref.pair_b])
    spec = load_manifest(case.bundle, verify=False).score
    label = str(backend.info().get("backend", "tensorrt"))
    return compare(label, "int8", ref.embeddings, emb, ref.scores, scores, spec, tolerances_for("int8"), case.label)


def step_tensorrt_int8(ctx: dict[str, Any]) -> dict[str, Any]:
    """An INT8 plan from the QDQ graph, built, reused, run by the runtime's TensorRT backend, within the INT8 gate."""
    from export.tensorrt_build import build_engine, register_engine
    from runtime.backends import tensorrt_backend as trtb
    from runtime.bundle.manifest import load_manifest
    from runtime.engines import BatchProfile

    _needs_tensorrt(ctx)
    _cuda_on_gpu().close()
    case = int8_case(ctx)
    hwc = load_manifest(case.bundle).preprocessing.input_shape
    profile, cache = BatchProfile.parse(PROFILE), ctx["work"] / "trt_timing.int8.cache"
    side = build_engine(case.bundle, hwc, profile, "int8", 0.25, cache, force=True)  # built here, never a copied one
    register_engine(case.bundle, side)
    again = build_engine(case.bundle, hwc, profile, "int8", 0.25, cache)
    backend = trtb.TensorRTBackend(case.bundle, precision="int8")
    try:
        info = backend.info()
        result = int8_parity(case, backend)
    finally:
        backend.close()
    out = {
        "bundle": str(case.bundle),
        "plan": side["file"],
        "strategy": side["strategy"],
        "qdq_layers": side.get("qdq_layers"),
        "reused_on_second_build": again["reused"],
        "backend": info,
        "reference": case.label,
        "parity": result.to_dict(),
    }
    if not result.passed or again["reused"] is not True or info.get("precision") != "int8":
        raise AssertionError(json.dumps(out, default=str))
    return out


def step_onnxruntime_gpu(ctx: dict[str, Any]) -> dict[str, Any]:
    from runtime.backends import onnxruntime_backend as ortb

    have = ortb.available_providers() or []
    gpu = [p for p in ortb.GPU_PROVIDERS if p in have]
    if not gpu:
        raise Skip(f"this onnxruntime has no GPU provider (providers: {', '.join(have) or 'none'})")
    _cuda_on_gpu().close()
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise Skip("the onnx package is not installed (pip install 'siamese-edge[export]')") from None
    bundle = _bundle(ctx)
    x = np.random.default_rng(6).random((20, *HWC), dtype=np.float32)
    ref = _reference(bundle, x)
    out: dict[str, Any] = {}
    for provider in gpu:
        for precision in ("fp32", "fp16"):
            b = ortb.OnnxRuntimeBackend(
                bundle, providers=[provider, ortb.CPU_EP], precision=precision, cache_dir=ctx["work"] / "ort-trt"
            )
            out[f"{provider}/{precision}"] = {"info": b.info(), **_gate(b.precision, b.embed(x), ref)}
    if not all(v["ok"] for v in out.values()):
        raise AssertionError(json.dumps(out))
    return out


def step_cpp(ctx: dict[str, Any]) -> dict[str, Any]:
    build = ROOT / "build" / "cpp"
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        raise Skip(f"no C++ build in {build} (make cpp-test builds one; with TensorRT found it adds the backend)")
    if "SIAMESE_HAVE_TENSORRT:INTERNAL=ON" not in cache.read_text() and "tensorrt" not in _backends(build):
        raise Skip("the C++ build has no TensorRT backend (NvInfer.h, nvinfer or the CUDA runtime not found)")
    ctest = shutil.which("ctest")
    if ctest is None:
        raise Skip("ctest is not installed")
    proc = subprocess.run(
        [ctest, "--test-dir", str(build), "-R", "tensorrt", "--output-on-failure"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = proc.stdout.strip().splitlines()[-5:]
    if proc.returncode:
        raise AssertionError("\n".join(tail))
    return {"ctest": tail}


def _backends(build: Path) -> str:
    cli = build / "runtime" / "cpp" / "siamese-cli"
    if not cli.is_file():
        return ""
    return subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=30).stdout


STEPS: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]], ...] = (
    ("installed", step_installed),
    ("cuda", step_cuda),
    ("tensorrt", step_tensorrt),
    ("tensorrt-int8", step_tensorrt_int8),
    ("onnxruntime-gpu", step_onnxruntime_gpu),
    ("cpp", step_cpp),
)


def run(work: Path, bundle: Path | None = None) -> dict[str, Any]:
    """Every step, in order; one entry each: passed (with details), skipped (with the reason) or failed. ``bundle``:
    a bundle exported with --int8, for the INT8 step (a copy of it; the bundle itself is left as it is)."""
    work.mkdir(parents=True, exist_ok=True)
    ctx: dict[str, Any] = {"work": work, "int8_bundle": bundle}
    steps = []
    for name, fn in STEPS:
        start = time.perf_counter()
        entry: dict[str, Any] = {"step": name}
        try:
            entry |= {"status": "passed", "details": fn(ctx)}
        except Skip as e:
            entry |= {"status": "skipped", "reason": str(e)}
        except Exception as e:
            entry |= {"status": "failed", "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
        entry["seconds"] = round(time.perf_counter() - start, 3)
        steps.append(entry)
    counts = {s: sum(1 for e in steps if e["status"] == s) for s in ("passed", "skipped", "failed")}
    return {
        "report": "siamese-edge gpu-smoke",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **counts,
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_smoke", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-smoke.json", help="the JSON report (%(default)s)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "gpu-smoke", help="scratch folder (%(default)s)")
    p.add_argument(
        "--bundle",
        type=Path,
        help="a bundle exported with --int8: the INT8 step builds its plan in a copy and compares it with the "
        "bundle's Keras reference (default: a tiny bundle quantized here, against its FP32 graph)",
    )
    args = p.parse_args(argv)
    report = run(args.work, args.bundle)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
