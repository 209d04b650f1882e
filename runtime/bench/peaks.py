"""This CPU's peak per precision, measured in the same run, to set each row's achieved GFLOP/s against.

The kernel is the one that reaches the widest units here: OpenVINO's CPU plugin running a square MatMul
(a FullyConnected layer on oneDNN/MLAS brgemm kernels) at f32, at bf16 and f16 inference precision where the CPU
has them natively, and at INT8: the MatMul's activations and weights go through FakeQuantize, so the plugin runs
a u8 x s8 GEMM (VNNI where present). Which kernel really ran is read back from the compiled model's runtime
graph (the GEMM layer's ``runtimePrecision`` and ``primitiveType``) and named in the peak's ``method``; a
precision whose GEMM did not run at that precision has no peak (an error, not a wrong number). numpy's float32
matmul is timed too, as another fp32 candidate (and the only one without OpenVINO). Every candidate is timed at
a few sizes, as many calls as fit in a short budget (a shared machine has quiet moments); the best counts, and the
per-size figures are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from runtime.timing import time_calls

PEAK_PRECISIONS = ("fp32", "bf16", "fp16", "int8")
PEAK_SIZES = (512, 1024, 1536)  # square (n x n) @ (n x n); the best size differs per precision and machine
QUICK_PEAK_SIZES = (512, 1024)
PEAK_BUDGET_S = 0.3  # per kernel and size: as many calls as fit (at least 3), the best counts; a shared machine has
QUICK_PEAK_BUDGET_S = 0.1  # quiet moments, and more calls find them
GEMM_LAYERS = ("FullyConnected", "MatMul")  # what the CPU plugin names the MatMul once compiled
_RUNTIME_PRECISIONS = {"fp32": ("f32",)}  # plus the backend's bf16/fp16/int8 types (openvino_backend)


def measure_peak(n: int = 2048, repeats: int = 5, budget_s: float | None = None) -> dict[str, Any]:
    """This CPU's float32 matmul as numpy sees it: the best of ``repeats`` (n x n) @ (n x n) (fewer when
    ``budget_s`` is spent first), in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)  # warm up (BLAS threads, page faults)
    times = time_calls(lambda _i: np.matmul(a, b, out=out), repeats, warmup=0, budget_s=budget_s)
    return {
        "gflops": 2.0 * n**3 / min(times) / 1e9,
        "seconds": float(min(times)),
        "n": int(n),
        "repeats": len(times),
        "kernel": "numpy",
        "method": f"numpy float32 matmul {n}x{n}, best of {len(times)}",
    }


def _matmul_model(precision: str, n: int) -> Any:
    """(n x n) input @ constant (n x n) weights; for int8 both sides pass FakeQuantize (u8 activations in
    [0, 4], s8 weights in [-4, 4]), the pattern OpenVINO's low-precision transformations turn into an i8 GEMM."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([n, n], ov.Type.f32, name="x")
    w = ops.constant(rng.uniform(-4, 4, (n, n)).astype(np.float32))
    if precision == "int8":
        lo, hi = ops.constant(np.float32(0)), ops.constant(np.float32(4))
        wlo, whi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
        x_in, w_in = ops.fake_quantize(x, lo, hi, lo, hi, 256), ops.fake_quantize(w, wlo, whi, wlo, whi, 255)
    else:
        x_in, w_in = x, w
    return ov.Model([ops.matmul(x_in, w_in, False, False)], [x], f"matmul_peak_{precision}")


def gemm_layer(compiled: Any) -> dict[str, str]:
    """The compiled model's GEMM layer as the plugin runs it: type, runtime precision, primitive (kernel)."""
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        if kind in GEMM_LAYERS:
            return {
                "type": kind,
                "runtime_precision": info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "",
                "primitive": info["primitiveType"].astype(str) if "primitiveType" in info else "",
            }
    raise RuntimeError("the compiled peak model has no FullyConnected/MatMul layer")


def measure_peak_openvino(
    precision: str, n: int = 1024, repeats: int = 5, budget_s: float | None = None
) -> dict[str, Any]:
    """An (n x n) @ (n x n) MatMul on OpenVINO's CPU plugin at ``precision``, best of ``repeats`` (fewer when
    ``budget_s`` is spent first), in GFLOP/s (2 n^3 per call). Raises RuntimeError when the GEMM layer did not run
    at that precision."""
    import openvino as ov

    from runtime.backends.openvino_backend import LOW_LAYER_TYPES, compile_config

    compiled = ov.Core().compile_model(_matmul_model(precision, n), "CPU", compile_config(precision))
    layer = gemm_layer(compiled)
    expected = _RUNTIME_PRECISIONS.get(precision) or LOW_LAYER_TYPES[precision]
    if layer["runtime_precision"] not in expected:
        raise RuntimeError(
            f"OpenVINO ran the {precision} MatMul in {layer['runtime_precision'] or '?'} ({layer['primitive']}), "
            f"not {'/'.join(expected)}: no {precision} peak"
        )
    req = compiled.create_infer_request()
    a = np.random.default_rng(1).uniform(0, 4, (n, n)).astype(np.float32)
    req.infer({0: a})  # warm up (threads, weight reorders)
    times = time_calls(lambda _i: req.infer({0: a}), repeats, warmup=1, budget_s=budget_s)
    return {
        "gflops": 2.0 * n**3 / min(times) / 1e9,
        "seconds": float(min(times)),
        "n": int(n),
        "repeats": len(times),
        "kernel": "openvino",
        "layer": layer,
        "method": (
            f"OpenVINO {ov.__version__.split('-')[0]} CPU MatMul {n}x{n} at {precision}: {layer['type']} ran in "
            f"{layer['runtime_precision']} ({layer['primitive']}, from the compiled model's runtime graph), "
            f"best of {len(times)}"
        ),
    }


def peak_precisions() -> tuple[str, ...]:
    """The precisions with a peak here: fp32 and int8 always; bf16 and fp16 where OpenVINO runs them natively."""
    try:
        from runtime.backends.openvino_backend import bf16_support, fp16_support, version

        if version() is None:
            return ("fp32",)
        native = {"bf16": bf16_support() == "native", "fp16": fp16_support() == "native"}
    except Exception:  # noqa: BLE001 - OpenVINO missing or unusable: numpy's fp32 only
        return ("fp32",)
    return tuple(p for p in PEAK_PRECISIONS if native.get(p, True))


def _candidates(precision: str, n: int, repeats: int, budget_s: float | None) -> list[dict[str, Any]]:
    """One measurement per kernel for (precision, n); a kernel that fails gives {"error"}."""
    out: list[dict[str, Any]] = []
    try:
        out.append(measure_peak_openvino(precision, n, repeats, budget_s))
    except Exception as e:  # noqa: BLE001 - reported with the peak; numpy may still stand in for fp32
        out.append({"kernel": "openvino", "n": int(n), "error": f"{type(e).__name__}: {e}"})
    if precision == "fp32":
        out.append(measure_peak(n, repeats, budget_s))
    return out


def measure_peaks(
    precisions: Sequence[str] | None = None,
    sizes: Sequence[int] = PEAK_SIZES,
    repeats: int = 50,
    budget_s: float | None = PEAK_BUDGET_S,
) -> dict[str, dict[str, Any]]:
    """{precision: the best measurement over kernels and ``sizes`` (``repeats`` calls each, fewer once ``budget_s``
    is spent), with every measurement under ``measurements``}; a precision no kernel ran has {"precision", "error"}
    instead of "gflops"."""
    peaks: dict[str, dict[str, Any]] = {}
    for precision in precisions or peak_precisions():
        runs = [m for n in sizes for m in _candidates(precision, int(n), repeats, budget_s)]
        peaks[precision] = _best(precision, runs)
    return peaks


def remeasure(peaks: dict[str, dict[str, Any]], repeats: int = 50, budget_s: float | None = PEAK_BUDGET_S) -> None:
    """Measure each peak again at its best size and kernel (on a shared machine one measurement can be
    unlucky); the best of all counts. In place."""
    for precision, peak in peaks.items():
        if "gflops" not in peak:
            continue
        if peak["kernel"] == "numpy":
            again = measure_peak(peak["n"], repeats, budget_s)
        else:
            again = _candidates(precision, peak["n"], repeats, budget_s)[0]
        earlier = {**{k: v for k, v in peak.items() if k != "measurements"}, "method": peak["kernel_method"]}
        peaks[precision] = _best(precision, [earlier, {**again, "when": "end"}], peak["measurements"])


def _best(precision: str, runs: list[dict[str, Any]], earlier: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The best of ``runs`` (whole measurements; those carrying "when" are new and are listed after the
    ``earlier`` records under "measurements"), with its method and how many measurements it is the best of."""
    new = [m for m in runs if earlier is None or m.get("when") == "end"]
    record = [*(earlier or []), *(_record(m) for m in new)]
    ok = [m for m in runs if "gflops" in m]
    if not ok:
        errors = sorted({m["error"] for m in runs if "error" in m})
        return {"precision": precision, "error": "; ".join(errors) or "not measured", "measurements": record}
    best = max(ok, key=lambda m: m["gflops"])
    timed = [m for m in record if "gflops" in m]
    sizes = ", ".join(map(str, sorted({m["n"] for m in timed})))
    twice = ", at the start and the end of the run" if any(m["when"] == "end" for m in timed) else ""
    return {
        **{k: v for k, v in best.items() if k not in ("when", "method", "kernel_method")},
        "precision": precision,
        "kernel_method": best["method"],
        "method": f"{best['method']}; the best of {len(timed)} measurements (sizes {sizes}{twice})",
        "measurements": record,
    }


def _record(m: dict[str, Any]) -> dict[str, Any]:
    return {**{k: m[k] for k in ("kernel", "n", "gflops", "error") if k in m}, "when": m.get("when", "start")}
