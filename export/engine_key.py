"""Engine identity for the builder, pure logic: the FP16 strategy per TensorRT version, workspace and trtexec
helpers, and (re-exported from ``runtime.engines``, their single source) batch profiles, the cache key, file names
and sidecars.

A TensorRT plan only runs on the TensorRT version and GPU architecture that built it, for the graph, precision
and batch range it was built for. What names and keys a plan is defined once, in ``runtime.engines``, because the
runtime checks the same key when it picks a plan; ``export.tensorrt_build`` is the thin GPU layer on top.
"""

from __future__ import annotations

from runtime.engines import (  # the pure identity logic lives in the runtime, which matches plans at load time
    ENGINE_GLOB,
    ENGINE_PREFIX,
    ENGINE_SUFFIX,
    KEY_LENGTH,
    KEY_SCHEMA,
    MIN_TRT_MAJOR,
    PRECISIONS,
    SIDECAR_FORMAT,
    SIDECAR_SUFFIX,
    BatchProfile,
    check_compute_capability,
    check_input_shape,
    check_precision,
    engine_cache_key,
    engine_file_name,
    engine_sidecar,
    gpu_tag,
    parse_engine_file_name,
    parse_trt_version,
    read_sidecar,
    sidecar_name,
    trt_tag,
)
from runtime.manifest import EMBEDDING_FP16_ONNX, EMBEDDING_ONNX

_check_cc = check_compute_capability  # the former private name

# how a plan gets its precision (DESIGN.md, "Backends")
STRATEGY_BUILDER_FLAG = "builder-flag"  # TensorRT 10.x: the FP32 graph + BuilderFlag.FP16 (weak typing)
STRATEGY_STRONGLY_TYPED = "strongly-typed-fp16-onnx"  # TensorRT >= 11: FP16 lives in the graph, no FP16 flag
STRATEGY_FP32 = "fp32"  # the FP32 graph, no reduced precision (TF32 off), any version

__all__ = [
    "ENGINE_GLOB",
    "ENGINE_PREFIX",
    "ENGINE_SUFFIX",
    "KEY_LENGTH",
    "KEY_SCHEMA",
    "MIN_TRT_MAJOR",
    "PRECISIONS",
    "SIDECAR_FORMAT",
    "SIDECAR_SUFFIX",
    "STRATEGY_BUILDER_FLAG",
    "STRATEGY_FP32",
    "STRATEGY_STRONGLY_TYPED",
    "BatchProfile",
    "build_plan",
    "check_compute_capability",
    "check_input_shape",
    "check_precision",
    "engine_cache_key",
    "engine_file_name",
    "engine_sidecar",
    "fp16_strategy",
    "gpu_tag",
    "parse_engine_file_name",
    "parse_trt_version",
    "read_sidecar",
    "sidecar_name",
    "trt_tag",
    "trtexec_shape",
    "workspace_bytes",
]


def fp16_strategy(trt_version: str) -> str:
    """How FP16 is obtained: TensorRT 10.x sets ``BuilderFlag.FP16`` on the FP32 graph; 11+ removed that flag
    (networks are always strongly typed), so the FP16 graph ``embedding.fp16.onnx`` is built as it is."""
    major = parse_trt_version(trt_version)[0]
    if major < MIN_TRT_MAJOR:
        raise ValueError(
            f"TensorRT {trt_version}: this project builds with TensorRT 10 or newer (JetPack 6 ships 10.3); "
            "install a newer TensorRT"
        )
    return STRATEGY_BUILDER_FLAG if major == MIN_TRT_MAJOR else STRATEGY_STRONGLY_TYPED


def build_plan(trt_version: str, precision: str) -> tuple[str, str]:
    """(strategy, source ONNX file name in the bundle) for this TensorRT version and precision."""
    check_precision(precision)
    strategy = fp16_strategy(trt_version)  # also rejects TensorRT < 10
    if precision == "fp32":
        return STRATEGY_FP32, EMBEDDING_ONNX
    if strategy == STRATEGY_BUILDER_FLAG:
        return strategy, EMBEDDING_ONNX
    return strategy, EMBEDDING_FP16_ONNX


def workspace_bytes(workspace_gib: float) -> int:
    """GiB -> bytes for ``set_memory_pool_limit``; ValueError unless positive."""
    try:
        gib = float(workspace_gib)
    except (TypeError, ValueError):
        raise ValueError(f"workspace {workspace_gib!r}: expected a size in GiB, e.g. 2") from None
    if not gib > 0:
        raise ValueError(f"workspace {workspace_gib!r} GiB: expected a positive size")
    return int(gib * (1 << 30))


def trtexec_shape(name: str, shape: tuple[int, ...]) -> str:
    """trtexec's shape spec: ``image:8x105x105x3``."""
    return f"{name}:" + "x".join(str(int(d)) for d in shape)
