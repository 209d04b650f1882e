"""OpenVINO backend (optional extra ``siamese-edge[openvino]``): the bundle's embedding.onnx on the CPU plugin.

``precision="fp32"`` asks the CPU plugin for f32 inference (``INFERENCE_PRECISION_HINT`` f32, execution mode
ACCURACY): the FP32 parity tolerances hold. ``precision="bf16"`` asks for bf16 (``INFERENCE_PRECISION_HINT``
bf16): convolutions and matrix products take bf16 inputs and accumulate in f32, which is several times faster on
CPUs with native bf16 (AMX or AVX512-BF16) and is checked with the FP16 tolerances (cosine, no decision flips).
Without native bf16 the CPU plugin emulates it on AVX-512 (same numbers, slower than f32): ``bf16_support()``
tells the two apart from OpenVINO's own ``OPTIMIZATION_CAPABILITIES``, and the backend refuses emulated bf16 unless
asked for explicitly. ``precision="fp16"`` (f16 hint) only where OpenVINO lists FP16 for the CPU (AMX-FP16,
ARM). The graph is read directly (``Core.read_model`` on the ONNX file), no conversion step; the
head runs on ONNX Runtime's CPU provider (``CpuHead``), or as the distance in numpy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import BackendEntry, Presence, register
from runtime.bundle.graph_io import check_embedding_io
from runtime.bundle.layout import INPUT_NAME
from runtime.bundle.manifest import Manifest, load_manifest
from runtime.extras import install_command

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# the inference precision hint per precision; int8 runs the bundle's QDQ graph (OpenVINO's low-precision
# transformations turn its Q/DQ pairs into int8 kernels) with f32 for what stays unquantized
_OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
LOW_LAYER_TYPES = {"bf16": ("bf16",), "fp16": ("f16",), "int8": ("i8", "u8")}  # what proves the precision ran
INSTALL_HINT = install_command("openvino")
DEVICE = "CPU"


class OpenVINOUnavailable(RuntimeError):
    """OpenVINO is missing, or cannot run the asked precision here; the message says which."""


def _import_openvino():
    import openvino as ov

    return ov


def version() -> str | None:
    try:
        return str(_import_openvino().__version__)
    except Exception:
        return None


def cpu_capabilities() -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` for the CPU (e.g. FP32, BF16, INT8, ...); [] without OpenVINO."""
    try:
        ov = _import_openvino()
        return [str(c) for c in ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")]
    except Exception:
        return []


def bf16_support(capabilities: list[str] | None = None) -> str | None:
    """``"native"`` when the CPU computes bf16 in hardware (OpenVINO lists BF16: AMX or AVX512-BF16), ``"emulated"``
    when it has AVX-512 but not bf16 (oneDNN emulates bf16: same numbers, slower than f32), else None."""
    caps = cpu_capabilities() if capabilities is None else capabilities
    if "BF16" in caps:
        return "native"
    if not caps:
        return None
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return None
    return "emulated" if "avx512f" in flags else None


def fp16_support(capabilities: list[str] | None = None) -> str | None:
    """``"native"`` when OpenVINO's CPU plugin lists FP16 (AMX-FP16, AVX512-FP16 or ARM), else None."""
    caps = cpu_capabilities() if capabilities is None else capabilities
    return "native" if "FP16" in caps else None


def precisions() -> tuple[str, ...]:
    """The precisions worth running here, fastest first: bf16 only where the CPU has it natively, then fp32."""
    return ("bf16", "fp32") if bf16_support() == "native" else ("fp32",)


def available(bundle_dir: str | Path | None = None, precision: str | None = "fp32") -> tuple[bool, str]:
    """Whether OpenVINO can run here (and, for bf16 or fp16, natively), with one line saying why (not)."""
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        return False, f"precision {precision!r}: the OpenVINO backend runs {' or '.join(PRECISIONS)}"
    v = version()
    if v is None:
        return False, f"OpenVINO is not installed ({INSTALL_HINT})"
    if precision == "bf16":
        support = bf16_support()
        if support != "native":
            caps = ", ".join(cpu_capabilities()) or "none reported"
            how = "it would be emulated (slower than f32)" if support == "emulated" else "it cannot run"
            return False, f"this CPU has no native bf16 (OpenVINO CPU capabilities: {caps}); {how}"
    if precision == "fp16" and fp16_support() != "native":
        caps = ", ".join(cpu_capabilities()) or "none reported"
        return False, f"OpenVINO's CPU plugin has no FP16 inference on this CPU (capabilities: {caps})"
    if bundle_dir is not None:
        from runtime.bundle.layout import BundleError

        try:
            load_manifest(bundle_dir)
        except BundleError as e:
            return False, str(e)
    return True, f"OpenVINO {v} on the CPU ({precision})"


def compile_config(precision: str, threads: int | None = None) -> dict[str, Any]:
    """The ``compile_model`` config for a precision: f32 + ACCURACY (exact parity), or bf16/f16 + PERFORMANCE."""
    ov = _import_openvino()
    import openvino.properties as props
    import openvino.properties.hint as hints

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    config: dict[str, Any] = {
        hints.inference_precision: getattr(ov.Type, _OV_TYPES[precision]),
        hints.execution_mode: hints.ExecutionMode.ACCURACY if precision == "fp32" else hints.ExecutionMode.PERFORMANCE,
    }
    if threads:
        config[props.inference_num_threads] = int(threads)
    return config


def runtime_precisions(compiled) -> dict[str, int]:
    """How many layers of the compiled model run in each precision (from the runtime model's rt_info)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info and "layerType" in info:
            if info["layerType"].astype(str) in ("Input", "Output", "Const"):
                continue
            p = info["runtimePrecision"].astype(str)
            counts[p] = counts.get(p, 0) + 1
    return counts


class OpenVINOBackend:
    """A bundle's embedding graph on OpenVINO's CPU plugin. Thread-safe: one infer request per thread."""

    name = "openvino"
    thread_safe = True  # an infer request per thread

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest | None = None,
        precision: str | None = "fp32",
        threads: int | None = None,
        embedding_model: str | Path | None = None,
        allow_emulated_bf16: bool = False,
    ):
        precision = precision or "fp32"
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: the OpenVINO backend runs {' or '.join(PRECISIONS)}")
        try:
            ov = _import_openvino()
        except ImportError:
            raise OpenVINOUnavailable(f"OpenVINO is not installed ({INSTALL_HINT})") from None
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest or load_manifest(self.bundle_dir)
        self.precision = precision
        self.threads = threads
        self.bf16 = bf16_support() if precision == "bf16" else None
        if precision == "bf16" and self.bf16 != "native" and not (allow_emulated_bf16 and self.bf16 == "emulated"):
            _, why = available(None, "bf16")
            raise OpenVINOUnavailable(why + "; use precision='fp32' (or allow_emulated_bf16=True to test numerics)")
        if precision == "fp16":
            ok, why = available(None, "fp16")
            if not ok:
                raise OpenVINOUnavailable(why + "; use precision='fp32'")
        # int8 runs the bundle's QDQ graph; fp32, bf16 and fp16 the FP32 graph, with OpenVINO's own inference precision
        graph_precision = "int8" if precision == "int8" else "fp32"
        if embedding_model is not None:
            src = Path(embedding_model)
        else:
            src = self.manifest.graph_path(self.bundle_dir, graph_precision)
        core = ov.Core()
        model = core.read_model(str(src))
        outputs = _ports(model.outputs, self.manifest.embedding.output)
        check_embedding_io(src, self.manifest, _ports(model.inputs, INPUT_NAME), outputs)
        self._compiled = core.compile_model(model, DEVICE, compile_config(precision, threads))
        self._output = self._compiled.output(0)
        got = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = got.to_string() if hasattr(got, "to_string") else str(got)  # "f32", "bf16"
        self.layer_precisions = runtime_precisions(self._compiled)
        low = LOW_LAYER_TYPES.get(precision, ())
        if low and not any(t in self.layer_precisions for t in low):
            raise OpenVINOUnavailable(
                f"OpenVINO compiled no layer in {'/'.join(low)} on this CPU (layers: {self.layer_precisions}); "
                "use precision='fp32'"
            )
        from runtime.backends.onnxruntime_backend import CpuHead

        self._head = CpuHead(self.bundle_dir, self.manifest, threads)
        self._local = threading.local()

    def _request(self):
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self._compiled.create_infer_request()
        return req

    def embed(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Preprocessed float32 NHWC -> (N, dim) float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        req = self._request()
        outs = []
        for i in range(0, len(x), batch_size):
            res = req.infer({INPUT_NAME: x[i : i + batch_size]})
            outs.append(np.array(res[self._output], dtype=np.float32, copy=True))  # the request reuses its buffer
        if not outs:
            return np.zeros((0, self.manifest.embedding_dim), np.float32)
        return np.concatenate(outs)

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """(N, dim) x 2 -> (N,) scores in the manifest's units (head.onnx on ONNX Runtime's CPU, or the distance)."""
        return self._head(ea, eb)

    def close(self) -> None:
        """The compiled model and its requests are freed with the backend; nothing to release early."""

    def info(self) -> dict[str, Any]:
        out = {
            "backend": self.name,
            "provider": f"OpenVINO {version()} CPU",
            "precision": self.precision,
            "device": "cpu",
            "bundle": self.manifest.name,
            "inference_precision": self.inference_precision,
            "layer_precisions": dict(self.layer_precisions),
        }
        if self.precision == "bf16":
            out["bf16"] = self.bf16  # "native", or "emulated" (same numbers, slower than f32: no bf16 in this CPU)
        return out


# ----------------------------------------------------------------------------------------------------------------
# registry entry
# ----------------------------------------------------------------------------------------------------------------


def _ports(ports, expected: str) -> list[tuple[str, list[int | None]]]:
    """OpenVINO ports as (name, shape): the expected name when the port has it among its names; dynamic
    dimensions as None."""
    out = []
    for p in ports:
        name = expected if expected in p.get_names() else p.get_any_name()
        out.append((name, [d.get_length() if d.is_static else None for d in p.get_partial_shape()]))
    return out


def _present(bundle_dir, precision, providers) -> Presence:
    ok, why = available(bundle_dir, precision)
    return Presence(ok, "" if ok else why)


def _build(bundle_dir, manifest, precision=None, threads=None, providers=None) -> OpenVINOBackend:
    return OpenVINOBackend(bundle_dir, manifest, precision=precision, threads=threads)


def parity_label(info: dict[str, Any]) -> str:
    """ "openvino-cpu" (export's row), or the device OpenVINO ran on."""
    return f"openvino-{str(info.get('device', 'cpu')).split('.')[0].split(' ')[0].lower()}"


def _rank(precision: str | None, preferred: tuple[str | None, ...]) -> int:
    # OpenVINO beats ONNX Runtime on a CPU through native bf16 (AMX / AVX512-bf16); in fp32, or where bf16 is only
    # emulated, ONNX Runtime CPU measured faster (omniglot 13 ms vs 33 ms at batch 32), so it is tried after it
    leads = precision in (None, "bf16") and preferred[:1] == ("bf16",)
    return 2 if leads else 4


register(
    BackendEntry(
        variant="openvino",
        backend="openvino",
        device="cpu",
        precisions=("bf16", "fp16", "fp32", "int8"),
        preferred=lambda: precisions(),  # looked up when asked (tests stand in for the CPU)
        present=_present,
        build=_build,
        parity_label=parity_label,
        rank=_rank,
        bench=(("openvino-fp32", "fp32"), ("openvino-bf16", "bf16"), ("openvino-int8", "int8")),
        distributions=("openvino",),
    )
)
