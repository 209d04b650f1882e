"""Engine identity, pure logic: batch profiles, the FP16 strategy per TensorRT version, the cache key, file names.

A TensorRT plan only runs on the TensorRT version and GPU architecture that built it, for the graph, precision
and batch range it was built for. Everything that decides whether a plan may be reused is computed here, without
TensorRT, so it is tested on any machine; ``export.tensorrt_build`` is the thin GPU layer on top.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from runtime.manifest import EMBEDDING_FP16_ONNX, EMBEDDING_ONNX, INPUT_NAME

PRECISIONS = ("fp16", "fp32")

# how a plan gets its precision (DESIGN.md, "Backends")
STRATEGY_BUILDER_FLAG = "builder-flag"  # TensorRT 10.x: the FP32 graph + BuilderFlag.FP16 (weak typing)
STRATEGY_STRONGLY_TYPED = "strongly-typed-fp16-onnx"  # TensorRT >= 11: FP16 lives in the graph, no FP16 flag
STRATEGY_FP32 = "fp32"  # the FP32 graph, no reduced precision (TF32 off), any version

MIN_TRT_MAJOR = 10
KEY_SCHEMA = 1  # bump to invalidate every cached engine when the key's meaning changes
KEY_LENGTH = 12  # hex characters of sha256 kept in the key and the file name

ENGINE_PREFIX = "embedding"
ENGINE_SUFFIX = ".plan"
ENGINE_GLOB = f"{ENGINE_PREFIX}.trt*{ENGINE_SUFFIX}"  # what a runtime looks for in a bundle
SIDECAR_SUFFIX = ".json"  # <plan>.json beside each plan
_ENGINE_NAME = re.compile(
    r"^embedding\.trt(?P<trt>\d+(?:\.\d+)?)\.sm(?P<sm>\d+)\.(?P<precision>[a-z0-9]+)\.(?P<key>[0-9a-f]+)\.plan$"
)


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes a plan accepts (``min``..``max``) and the one it is tuned for (``opt``)."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or not (
            1 <= self.min <= self.opt <= self.max
        ):
            raise ValueError(
                f"batch profile {self.min}:{self.opt}:{self.max}: expected MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX"
            )

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """``"1:8:32"`` -> (1, 8, 32); ``"8"`` -> (1, 8, 8): any batch from 1 up to 8, tuned for 8."""
        expected = "expected MIN:OPT:MAX (e.g. 1:8:32) or N (= 1:N:N), with integers 1 <= MIN <= OPT <= MAX"
        parts = str(text).strip().split(":")
        try:
            values = [int(p.strip()) for p in parts]
        except ValueError:
            raise ValueError(f"batch profile {text!r}: {expected}") from None
        if len(values) == 1:
            values = [1, values[0], values[0]]
        if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
            raise ValueError(f"batch profile {text!r}: {expected}")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"

    def shapes(self, input_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
        """The NHWC input shapes at min, opt and max batch (what the optimization profile is given)."""
        hwc = tuple(int(d) for d in input_shape)
        return {"min": (self.min, *hwc), "opt": (self.opt, *hwc), "max": (self.max, *hwc)}

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """An NHWC input shape without the batch: three positive integers, else ValueError."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input shape {input_shape!r}: expected (height, width, channels)") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input shape {input_shape!r}: expected (height, width, channels), positive integers")
    return shape  # type: ignore[return-value]


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    return precision


def parse_trt_version(trt_version: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> (10, 3, 0, 30). ValueError for anything that is not dotted integers."""
    text = str(trt_version).strip()
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        raise ValueError(f"TensorRT version {trt_version!r}: expected dotted integers such as 10.3.0")
    return tuple(int(p) for p in text.split("."))


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


def _check_cc(compute_capability) -> tuple[int, int]:
    try:
        major, minor = (int(v) for v in compute_capability)
    except (TypeError, ValueError):
        raise ValueError(f"compute capability {compute_capability!r}: expected (major, minor)") from None
    if major < 1 or minor < 0:
        raise ValueError(f"compute capability {compute_capability!r}: expected (major, minor)")
    return major, minor


def engine_cache_key(
    model_sha256: str,
    trt_version: str,
    compute_capability: tuple[int, int],
    precision: str,
    profile: BatchProfile,
    input_shape: tuple[int, int, int],
) -> str:
    """A short hex digest of everything that makes a plan valid: change any of it and the key changes.

    ``model_sha256`` is the hash of the ONNX file the plan is built from; ``trt_version`` the full version
    (plans do not move between TensorRT releases); the input name is included so a renamed input invalidates.
    """
    sha = str(model_sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,128}", sha):
        raise ValueError(f"model sha256 {model_sha256!r}: expected a hex digest")
    parts = {
        "schema": KEY_SCHEMA,
        "model_sha256": sha,
        "tensorrt": ".".join(str(p) for p in parse_trt_version(trt_version)),
        "compute_capability": list(_check_cc(compute_capability)),
        "precision": check_precision(precision),
        "profile": [profile.min, profile.opt, profile.max],
        "input": {"name": INPUT_NAME, "shape": list(check_input_shape(input_shape))},
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


def trt_tag(trt_version: str) -> str:
    """``"10.8.0.43"`` -> ``"trt10.8"`` (major.minor; the full version is in the key and the sidecar)."""
    v = parse_trt_version(trt_version)
    return f"trt{v[0]}.{v[1] if len(v) > 1 else 0}"


def gpu_tag(compute_capability: tuple[int, int]) -> str:
    """(8, 7) -> ``"sm87"``, the GPU architecture a plan is built for (Orin is sm87)."""
    major, minor = _check_cc(compute_capability)
    return f"sm{major}{minor}"


def engine_file_name(trt_version: str, compute_capability: tuple[int, int], precision: str, key: str) -> str:
    """``embedding.trt10.8.sm87.fp16.<key>.plan``: DESIGN's name plus the cache key, so plans built for other
    profiles or models never take each other's place and a stale one is never picked by name alone."""
    if not re.fullmatch(r"[0-9a-f]+", key or ""):
        raise ValueError(f"engine key {key!r}: expected lowercase hex (from engine_cache_key)")
    return f"{ENGINE_PREFIX}.{trt_tag(trt_version)}.{gpu_tag(compute_capability)}.{check_precision(precision)}.{key}{ENGINE_SUFFIX}"


def sidecar_name(plan_name: str) -> str:
    """The JSON sidecar beside a plan: ``<plan>.json``."""
    return plan_name + SIDECAR_SUFFIX


def parse_engine_file_name(name: str) -> dict[str, str] | None:
    """The parts of a name written by ``engine_file_name`` (trt major.minor, sm, precision, key), else None."""
    m = _ENGINE_NAME.match(name)
    return m.groupdict() if m else None


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
