"""Build the bundle's embedding graph into a TensorRT plan, on the machine that will run it.

A plan is specific to the TensorRT version and GPU that built it, so it is built where it runs (the Jetson
itself, or the serving GPU): by ``python -m export.build --engine`` or, for a bundle copied to the target,
``python -m export.tensorrt_build --bundle DIR``. TensorRT and cuda-python are imported only inside the
functions that need them, so what decides *what* to build is tested on any machine: the strategy (which graph,
which flags) is below, the cache key, file names and sidecars are in ``runtime.engines``, which the runtime uses
to match plans at load time.

Written against the TensorRT 10 and 11 Python APIs: ``Builder.create_network`` (11.x: always strongly typed),
``OnnxParser.parse_from_file``, ``IBuilderConfig.set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``,
``set_flag(BuilderFlag.FP16)``/``set_flag(BuilderFlag.INT8)`` and the FP32 layer pins (10.x only: weak typing,
removed in 11; used only under ``major < STRONGLY_TYPED_MAJOR``), ``ILayer.type`` (``LayerType.QUANTIZE``/
``DEQUANTIZE``: an INT8 build checks the parsed network is explicitly quantized), ``create_optimization_profile``/
``set_shape``, ``create_timing_cache``/``set_timing_cache``/``get_timing_cache().serialize()``,
``build_serialized_network``. Type-checked against tensorrt-stubs (TensorRT 10.13's API) by tools/typecheck.py.

Precisions: fp32 (the FP32 graph, TF32 off), fp16 (10.x: the FP32 graph + FP16 flag with the FP16 graph's FP32
islands pinned; 11.x: embedding.fp16.onnx, strongly typed) and int8 (explicit quantization from the QDQ graph
embedding.int8.onnx on both: 10.x with the INT8 flag, 11.x strongly typed; ``int8_strategy`` says why not FP16 too).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.backends.onnxruntime_backend import CPU_PROVIDER
from runtime.backends.tensorrt_backend import MachineInfo, dims_tuple, probe
from runtime.bundle.layout import (
    EMBEDDING_FP16_ONNX,
    EMBEDDING_INT8_ONNX,
    EMBEDDING_ONNX,
    FP32_NODES_KEY,
    INPUT_NAME,
)
from runtime.engines import (
    ENGINE_GLOB,
    MIN_TRT_MAJOR,
    PRECISIONS,
    BatchProfile,
    check_input_shape,
    check_precision,
    engine_cache_key,
    engine_file_name,
    engine_sidecar,
    gpu_tag,
    normalize_trt_version,
    parse_trt_version,
    read_sidecar,
    sidecar_name,
)
from runtime.extras import explain_missing_extras
from runtime.fileio import atomic_path, sha256_file, write_json_atomic

if TYPE_CHECKING:
    import tensorrt as trt

EXIT_OK, EXIT_BUILD, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

# how a plan gets its precision: the strategy is chosen per TensorRT version (fp16_strategy) and recorded in the
# plan's sidecar
STRATEGY_BUILDER_FLAG = "builder-flag"  # TensorRT 10.x: the FP32 graph + BuilderFlag.FP16 (weak typing)
STRATEGY_STRONGLY_TYPED = "strongly-typed-fp16-onnx"  # TensorRT >= 11: FP16 lives in the graph, no FP16 flag
STRATEGY_FP32 = "fp32"  # the FP32 graph, no reduced precision (TF32 off), any version
# INT8 is explicit quantization on every version: the bundle's QDQ graph (embedding.int8.onnx) says where INT8 runs,
# with the scales ONNX Runtime calibrated on real images; no calibrator ever runs (TensorRT 11 has none)
STRATEGY_INT8_FLAG = "int8-flag-qdq-onnx"  # TensorRT 10.x: the QDQ graph + BuilderFlag.INT8 (no FP16 flag: below)
STRATEGY_INT8_STRONGLY_TYPED = "strongly-typed-int8-qdq-onnx"  # TensorRT >= 11: the QDQ graph as it is
INT8_HOWTO = (
    "make one with python -m export.build --model MODEL_FILE --int8 [--calib-images DIR] (ONNX Runtime static "
    "quantization on real images), then build the plan again"
)
# TensorRT 11 removed weak typing: no BuilderFlag.FP16/INT8/..., no OBEY_PRECISION_CONSTRAINTS, no calibrators, no
# layer precisions; every network is strongly typed. Code using those names runs only under
# ``if major < STRONGLY_TYPED_MAJOR`` or in a ``*_trt10`` function called from there (tests/test_gpu_typecheck.py)
STRONGLY_TYPED_MAJOR = 11


class EngineUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is missing here; the message is one line saying which."""


class EngineBuildError(RuntimeError):
    """TensorRT is here but the plan could not be built (parser errors listed with their ONNX node)."""


# What is on this machine (TensorRT, cuda-python, the GPU) is probed by runtime.backends.tensorrt_backend: the
# runtime asks the same questions when it picks a plan, so there is one probe (imported above).


# ----------------------------------------------------------------------------------------------------------------
# what to build
# ----------------------------------------------------------------------------------------------------------------


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


def int8_strategy(trt_version: str) -> str:
    """How INT8 is obtained, always from the QDQ graph ``embedding.int8.onnx`` (explicit quantization):

    - TensorRT 11+: strongly typed, the graph as it is (INT8 between each Q/DQ pair, FP32 elsewhere);
    - TensorRT 10.x (JetPack 6): the same graph with ``BuilderFlag.INT8``, which weak typing needs before it runs
      the Q/DQ pairs in INT8. Not ``BuilderFlag.FP16`` as well: the layers the QDQ graph leaves unquantized then
      stay FP32, as the TensorRT 11 build of the same file computes them (the rule the FP16 strategy follows: a
      plan computes the same on 10 and 11), and nothing of the graph's FP32 islands (the L2 norm's sum of squares,
      which overflows FP16) needs pinning, which would have to match the FP16 graph's node names in the
      quantizer's rewritten graph.
    """
    fp16_strategy(trt_version)  # rejects TensorRT older than 10 and what is not a version, with the same words
    major = parse_trt_version(trt_version)[0]
    return STRATEGY_INT8_FLAG if major < STRONGLY_TYPED_MAJOR else STRATEGY_INT8_STRONGLY_TYPED


INT8_STRATEGIES = frozenset({STRATEGY_INT8_FLAG, STRATEGY_INT8_STRONGLY_TYPED})
QDQ_LAYER_TYPES = ("QUANTIZE", "DEQUANTIZE")  # trt.LayerType names of the parsed QuantizeLinear/DequantizeLinear


def check_explicit_quantization(src: Path, layer_types: Sequence[str]) -> int:
    """How many Q/DQ layers the parsed network of an INT8 build has (``layer_types``: each layer's
    ``trt.LayerType`` name, in network order). EngineBuildError when it has no quantize and dequantize layer: the
    file is not a QDQ graph, and this project never falls back to implicit INT8 (a calibrator, gone in 11)."""
    counts = {t: sum(1 for x in layer_types if str(x) == t) for t in QDQ_LAYER_TYPES}
    if not all(counts.values()):
        raise EngineBuildError(
            f"{src}: an INT8 plan is built from a QDQ graph, but the parsed network has {counts['QUANTIZE']} "
            f"quantize and {counts['DEQUANTIZE']} dequantize layers; re-export the bundle's INT8 graph ({INT8_HOWTO})"
        )
    return sum(counts.values())


def build_plan(trt_version: str, precision: str) -> tuple[str, str]:
    """(strategy, source ONNX file name in the bundle) for this TensorRT version and precision."""
    check_precision(precision)
    strategy = fp16_strategy(trt_version)  # also rejects TensorRT < 10
    if precision == "fp32":
        return STRATEGY_FP32, EMBEDDING_ONNX
    if precision == "int8":
        return int8_strategy(trt_version), EMBEDDING_INT8_ONNX
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


# ----------------------------------------------------------------------------------------------------------------
# the build
# ----------------------------------------------------------------------------------------------------------------


def reusable(plan_path: Path, key: str) -> dict[str, Any] | None:
    """The sidecar of an existing plan when its key matches and the plan bytes are the ones recorded."""
    side = read_sidecar(plan_path)
    if not side or side.get("key") != key or not plan_path.is_file():
        return None
    if sha256_file(plan_path) != side.get("plan_sha256"):
        return None
    return side


def _parser_errors(parser: trt.OnnxParser) -> list[str]:
    """One line per ONNX parser error, naming the node (index, name, operator)."""
    lines = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        where = f"node {e.node()}"
        for label, value in (("name", e.node_name()), ("op", e.node_operator())):
            if value:
                where += f" {label}={value!r}"
        lines.append(f"  {where}: {e.desc()} [{e.code()}]")
    return lines


def _check_network_input(network: trt.INetworkDefinition, src: Path, input_shape: tuple[int, int, int]) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [INPUT_NAME]:
        raise EngineBuildError(f"{src}: inputs {names}, expected exactly [{INPUT_NAME!r}] (NHWC float32)")
    shape = dims_tuple(network.get_input(0).shape)
    if len(shape) != 4 or tuple(shape[1:]) != tuple(input_shape):
        raise EngineBuildError(
            f"{src}: input {INPUT_NAME!r} has shape {list(shape)}, expected [-1, {', '.join(map(str, input_shape))}]"
        )


# ----------------------------------------------------------------------------------------------------------------
# the timing cache: reused when TensorRT accepts it, else a fresh one (decided here, pure; applied in _serialize_plan)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimingCacheVerdict:
    """What to do with a timing cache file: ``reused`` when TensorRT took it; else build with an empty cache
    (``warning`` says why the file was not used, None when there was no file)."""

    reused: bool
    warning: str | None = None


def timing_cache_verdict(path: Path | None, had_bytes: bool, created: bool, accepted: bool) -> TimingCacheVerdict:
    """The fallback policy. ``created``: ``create_timing_cache(bytes)`` returned a cache; ``accepted``:
    ``set_timing_cache(cache, ignore_mismatch=False)`` returned True. A cache from another GPU or TensorRT
    release (the file is copied along with bundles) is refused by TensorRT: build with an empty one and say so,
    never record it as reused."""
    if not had_bytes:
        return TimingCacheVerdict(False)
    if not created:
        return TimingCacheVerdict(
            False, f"timing cache {path} cannot be read by this TensorRT (another release?); starting an empty one"
        )
    if not accepted:
        return TimingCacheVerdict(
            False,
            f"timing cache {path} was refused by TensorRT (made on another GPU or TensorRT release); starting an "
            "empty one, which replaces it after the build",
        )
    return TimingCacheVerdict(True)


def default_timing_cache(bundle_dir: Path, trt_version: str, compute_capability: tuple[int, int]) -> Path:
    """``trt_timing.trt<version>.sm<cc>.cache`` beside the bundle: bundles built on one machine share it, and a
    cache from another GPU or TensorRT release (copied along with the bundles) never has the same name."""
    return Path(bundle_dir).resolve().parent / (
        f"trt_timing.trt{normalize_trt_version(trt_version)}.{gpu_tag(compute_capability)}.cache"
    )


def timing_cache_bytes(cache: trt.ITimingCache | None) -> bytes | None:
    """The serialized cache of ``config.get_timing_cache()``, or None when TensorRT returned none (nothing to
    save: the plan is written all the same)."""
    if cache is None:
        return None
    data: trt.IHostMemory | None = cache.serialize()
    return host_bytes(data) if data is not None else None


def host_bytes(memory: trt.IHostMemory) -> bytes:
    """The bytes of a TensorRT ``IHostMemory`` (a buffer; the stubs do not declare it as one)."""
    return bytes(memoryview(memory))


def _attach_timing_cache(config: trt.IBuilderConfig, path: Path | None, warn: Callable[[str], None]) -> bool:
    """Attach the timing cache at ``path`` (or an empty one) to ``config``; whether the file's cache was reused."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache: trt.ITimingCache | None = None
    accepted = False
    if data:
        try:
            cache = config.create_timing_cache(data)
        except Exception:  # TensorRT raises on bytes it cannot parse (another release)
            cache = None
        accepted = cache is not None and bool(config.set_timing_cache(cache, ignore_mismatch=False))
    verdict = timing_cache_verdict(path, bool(data), cache is not None, accepted)
    if verdict.warning:
        warn(verdict.warning)
    if not verdict.reused:
        empty: trt.ITimingCache | None = config.create_timing_cache(b"")
        if empty is None or not config.set_timing_cache(empty, ignore_mismatch=False):
            warn("TensorRT refused an empty timing cache; building without one")
    return verdict.reused


# ----------------------------------------------------------------------------------------------------------------
# FP32 islands on TensorRT 10: which layers of the parsed network to pin (pure over names and types)
# ----------------------------------------------------------------------------------------------------------------

FLOAT_TYPES = frozenset({"FLOAT", "HALF", "BF16"})  # trt.DataType names of the tensors a precision pin applies to
_EXPANSION = re.compile(r"(?P<base>.+)_\d+")  # onnx-tensorrt's unique names for a node's further layers: name_<n>


@dataclass(frozen=True)
class PinPlan:
    """The layers to pin to FP32 (network indices) and, per node asked for, how many float layers it matched.
    ``skipped``: layers of those nodes left alone because an output is not a float tensor (shape helpers)."""

    layers: tuple[int, ...]
    matched: dict[str, int]
    skipped: tuple[str, ...] = ()

    @property
    def missing(self) -> list[str]:
        """The nodes asked for that no float layer of the network came from."""
        return [n for n, count in self.matched.items() if count == 0]

    def check(self) -> None:
        """EngineBuildError unless every node asked for pinned at least one layer (else FP16 could overflow)."""
        if self.missing:
            raise EngineBuildError(
                f"FP32 pinning: {len(self.missing)} of the {len(self.matched)} nodes the FP16 graph keeps in FP32 "
                f"match no float layer of the TensorRT network: {', '.join(self.missing)} (expected layers named "
                "<node>, node_of_<first output> or <that>_<n>)"
            )


def trt_layer_names(node: str) -> tuple[str, str]:
    """The names onnx-tensorrt gives the first layer of an ONNX node that ``export.fp16`` lists as ``node``: the
    node's name, or ``node_of_<first output>`` for an unnamed node (which it lists by its first output)."""
    return node, f"node_of_{node}"


def plan_fp32_pins(nodes: Sequence[str], layers: Sequence[tuple[str, Sequence[str]]]) -> PinPlan:
    """Which of ``layers`` (name, output type names, in network order) implement the ONNX ``nodes`` to keep FP32.

    onnx-tensorrt names a node's first layer after the node (``node_of_<first output>`` when unnamed) and each
    further layer ``<that>_<n>``. Only layers whose outputs are all float tensors are pinned: a node's INT64/INT32
    shape helpers are never forced to float32, and tf2onnx's helper nodes (``<node>__<n>``) are not the node.
    """
    owner = {name: node for node in nodes for name in trt_layer_names(node)}
    matched = dict.fromkeys(nodes, 0)
    pinned: list[int] = []
    skipped: list[str] = []
    for i, (name, types) in enumerate(layers):
        node = owner.get(name)
        if node is None and (m := _EXPANSION.fullmatch(name)):
            node = owner.get(m["base"])
        if node is None:
            continue
        if not types or not all(str(t) in FLOAT_TYPES for t in types):
            skipped.append(name)
            continue
        pinned.append(i)
        matched[node] += 1
    return PinPlan(tuple(pinned), matched, tuple(skipped))


def fp32_pinned_layers(bundle_dir: Path) -> list[str]:
    """Node names the FP16 graph deliberately keeps in FP32 (e.g. an L2 norm's sum of squares, which overflows
    FP16), read from embedding.fp16.onnx's metadata. A TensorRT 10 build from the FP32 graph with the FP16 flag
    pins these layers to FP32, so it computes what the TensorRT 11 (strongly typed) build computes."""
    import onnxruntime as ort  # a core dependency: building a plan needs no onnx package (nor TensorFlow)

    path = Path(bundle_dir) / EMBEDDING_FP16_ONNX
    if not path.is_file():
        return []
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    props = ort.InferenceSession(str(path), opts, providers=[CPU_PROVIDER]).get_modelmeta().custom_metadata_map
    return [n for n in props.get(FP32_NODES_KEY, "").split(",") if n]


def _pin_fp32_trt10(network: trt.INetworkDefinition, names: list[str], config: trt.IBuilderConfig) -> int:
    """Pin the layers ``plan_fp32_pins`` picks to FP32 (checked: every node asked for pins a layer); how many.
    TensorRT 10 only: layer precisions and OBEY_PRECISION_CONSTRAINTS are weak-typing APIs, removed in 11."""
    import tensorrt as trt

    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        layers.append((layer.name, [layer.get_output(j).dtype.name for j in range(layer.num_outputs)]))
    plan = plan_fp32_pins(names, layers)
    plan.check()
    for i in plan.layers:
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
    if plan.layers:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return len(plan.layers)


def _weak_typing_trt10(
    network: trt.INetworkDefinition, config: trt.IBuilderConfig, strategy: str, fp32_layers: list[str]
) -> int:
    """TensorRT 10's precision: the FP16 flag on the FP32 graph with its FP32 islands pinned (layers pinned: the
    count), or the INT8 flag on the QDQ graph (explicit quantization: the graph's scales, no calibrator)."""
    import tensorrt as trt

    if strategy == STRATEGY_INT8_FLAG:
        config.set_flag(trt.BuilderFlag.INT8)
        return 0
    if strategy != STRATEGY_BUILDER_FLAG:
        return 0
    config.set_flag(trt.BuilderFlag.FP16)
    return _pin_fp32_trt10(network, fp32_layers, config)


@dataclass(frozen=True)
class BuiltPlan:
    """What ``_serialize_plan`` produced: the plan bytes, whether the timing cache file was reused, how many
    layers were pinned to FP32, and (INT8) how many quantize/dequantize layers the parsed network has."""

    plan: bytes
    timing_cache_reused: bool
    fp32_layers_pinned: int
    qdq_layers: int | None = None


def _serialize_plan(
    src: Path,
    input_shape: tuple[int, int, int],
    profile: BatchProfile,
    strategy: str,
    workspace_gib: float,
    timing_cache: Path | None,
    fp32_layers: list[str] | None = None,
) -> BuiltPlan:
    """Parse ``src`` and build a serialized engine (plain plan bytes)."""
    import tensorrt as trt

    major = parse_trt_version(trt.__version__)[0]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # 10.x: weakly typed (the flags below); 11.x: always strongly typed
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(src)):
        raise EngineBuildError(f"{src}: the TensorRT ONNX parser failed:\n" + "\n".join(_parser_errors(parser)))
    _check_network_input(network, src, input_shape)
    qdq = None
    if strategy in INT8_STRATEGIES:
        qdq = check_explicit_quantization(src, [network.get_layer(i).type.name for i in range(network.num_layers)])

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes(workspace_gib))
    pinned = 0
    if major < STRONGLY_TYPED_MAJOR:
        pinned = _weak_typing_trt10(network, config, strategy, fp32_layers or [])
    # else TensorRT 11+: the graph's own types are the plan's (embedding.fp16.onnx for FP16, the Q/DQ pairs of
    # embedding.int8.onnx for INT8); nothing to set
    if strategy == STRATEGY_FP32:
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 parity (1e-4) needs real FP32 math
    shapes = profile.shapes(input_shape)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, *(trt.Dims(list(shapes[k])) for k in ("min", "opt", "max")))
    config.add_optimization_profile(opt_profile)
    reused = _attach_timing_cache(config, timing_cache, _warn)

    serialized: trt.IHostMemory | None = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{src}: TensorRT could not build an engine (its log above says why)")
    if timing_cache is not None:
        data = timing_cache_bytes(config.get_timing_cache())
        if data is None:
            _warn(f"TensorRT returned no timing cache; {timing_cache} is left as it was")
        else:
            with atomic_path(timing_cache) as tmp:
                tmp.write_bytes(data)
    return BuiltPlan(host_bytes(serialized), reused, pinned, qdq)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class PlanIdentity:
    """Everything a plan for this bundle, machine, precision and profile is built from, and its cache key."""

    strategy: str
    source: str  # the ONNX file in the bundle the plan is parsed from
    source_sha256: str
    fp32_pins: tuple[str, ...]  # TensorRT 10 FP16: the FP16 graph's FP32 islands, pinned in the FP32 graph
    fp16_graph_sha256: str | None  # ... and the FP16 graph they were read from
    key: str
    file_name: str


def plan_identity(
    bundle_dir: Path,
    trt_version: str,
    compute_capability: tuple[int, int],
    precision: str,
    profile: BatchProfile,
    input_shape: tuple[int, int, int],
) -> PlanIdentity:
    """The plan ``build_engine`` builds (or reuses) for this bundle on this TensorRT version and GPU; pure over the
    bundle's files. FileNotFoundError when the source graph is missing."""
    bundle_dir = Path(bundle_dir)
    strategy, source = build_plan(trt_version, precision)
    src = bundle_dir / source
    if not src.is_file():
        raise FileNotFoundError(f"{src}: missing{missing_source_hint(source)}")
    source_sha = sha256_file(src)
    pins: tuple[str, ...] = ()
    fp16_sha = None
    fp16 = bundle_dir / EMBEDDING_FP16_ONNX
    if strategy == STRATEGY_BUILDER_FLAG and fp16.is_file():
        pins = tuple(fp32_pinned_layers(bundle_dir))
        fp16_sha = sha256_file(fp16)
    key = engine_cache_key(source_sha, trt_version, compute_capability, precision, profile, input_shape, pins, fp16_sha)
    name = engine_file_name(trt_version, compute_capability, precision, key)
    return PlanIdentity(strategy, source, source_sha, pins, fp16_sha, key, name)


def missing_source_hint(source: str) -> str:
    """What to do when the graph a plan is built from is not in the bundle (appended to "<file>: missing")."""
    if source == EMBEDDING_FP16_ONNX:
        return "; TensorRT 11 builds FP16 from the FP16 graph: export with --fp16"
    if source == EMBEDDING_INT8_ONNX:
        return f"; a TensorRT INT8 plan is built from the bundle's QDQ INT8 graph {EMBEDDING_INT8_ONNX}: {INT8_HOWTO}"
    return ""


def source_graphs(precision: str) -> frozenset[str]:
    """The bundle files a ``precision`` plan may be built from, over the TensorRT versions built with (fp16: the
    FP32 graph on 10, the FP16 graph on 11; fp32 and int8: one graph on both)."""
    return frozenset(build_plan(f"{major}.0", precision)[1] for major in (MIN_TRT_MAJOR, STRONGLY_TYPED_MAJOR))


def check_source_graph(bundle_dir: Path, precision: str) -> None:
    """FileNotFoundError (naming the file and how to make it) when the graph every TensorRT version would build
    ``precision`` from is missing: said before TensorRT or a GPU is looked for, so on any machine."""
    sources = source_graphs(precision)
    if len(sources) == 1:
        src = Path(bundle_dir) / next(iter(sources))
        if not src.is_file():
            raise FileNotFoundError(f"{src}: missing{missing_source_hint(src.name)}")


def machine_target(info: MachineInfo) -> tuple[str, tuple[int, int]]:
    """(TensorRT version, compute capability) from ``probe()``'s result; EngineUnavailable with its reason."""
    version, cc = info["tensorrt"], info["compute_capability"]
    if info["reason"] or version is None or cc is None:
        raise EngineUnavailable(info["reason"] or "TensorRT or a CUDA GPU is missing")
    return version, cc


def build_engine(
    bundle_dir: Path,
    input_shape: tuple[int, int, int],
    profile: BatchProfile,
    precision: str = "fp16",
    workspace_gib: float = 2.0,
    timing_cache: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) ``<bundle>/embedding.trt<ver>.sm<cc>.<precision>.<key>.plan`` and its JSON sidecar.

    Raises EngineUnavailable (one line: which of TensorRT or the GPU is missing), EngineBuildError (parser
    errors with their node, FP32 islands that match no layer), FileNotFoundError (the source graph is missing),
    ValueError (bad arguments). Returns the sidecar dict, plus ``"reused": True`` when a plan with the same key was
    already there.
    """
    bundle_dir = Path(bundle_dir)
    input_shape = check_input_shape(input_shape)
    check_precision(precision)
    workspace_bytes(workspace_gib)
    if not isinstance(profile, BatchProfile):
        raise ValueError(f"profile {profile!r}: expected a BatchProfile (BatchProfile.parse('1:8:32'))")
    check_source_graph(bundle_dir, precision)

    info = probe()
    trt_version, cc = machine_target(info)
    ident = plan_identity(bundle_dir, trt_version, cc, precision, profile, input_shape)
    plan_path = bundle_dir / ident.file_name
    if not force and (side := reusable(plan_path, ident.key)) is not None:
        return {**side, "reused": True}

    start = time.perf_counter()
    src = bundle_dir / ident.source
    built = _serialize_plan(
        src, input_shape, profile, ident.strategy, workspace_gib, timing_cache, list(ident.fp32_pins)
    )
    seconds = round(time.perf_counter() - start, 3)
    with atomic_path(plan_path) as tmp:
        tmp.write_bytes(built.plan)  # the serialized engine only: trtexec, Triton and DeepStream load it as is
    pin_fields: dict[str, Any] = {}
    if ident.fp16_graph_sha256 is not None:
        pin_fields = {
            "fp32_pins": list(ident.fp32_pins),
            "fp16_graph_sha256": ident.fp16_graph_sha256,
            "fp32_layers_pinned": built.fp32_layers_pinned,
        }
    if built.qdq_layers is not None:
        pin_fields["qdq_layers"] = built.qdq_layers
    sidecar = engine_sidecar(
        plan_path,
        ident.key,
        trt_version,
        cc,
        precision,
        ident.source,
        ident.source_sha256,
        input_shape,
        profile,
        gpu=info["gpu"],
        strategy=ident.strategy,
        **pin_fields,
        workspace_gib=float(workspace_gib),
        timing_cache=str(timing_cache) if timing_cache is not None else None,
        timing_cache_reused=built.timing_cache_reused,
        build_seconds=seconds,
        built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    write_json_atomic(plan_path.with_name(sidecar_name(plan_path.name)), sidecar)
    return {**sidecar, "reused": False}


def register_engine(bundle_dir: Path, sidecar: dict[str, Any]) -> None:
    """Record a plan built after export in the bundle's manifest (``runtime.bundle.Bundle.add_engine``, the one
    writer): its entry under ``engines`` and the sha256 of the plan and its sidecar under ``files``."""
    from runtime.bundle import Bundle

    entry = {k: v for k, v in sidecar.items() if k != "reused"}
    Bundle.open(bundle_dir).add_engine(entry, [entry["file"], sidecar_name(entry["file"])])


# ----------------------------------------------------------------------------------------------------------------
# command line: the bundle-only route, for a bundle copied to the target
# ----------------------------------------------------------------------------------------------------------------

EXAMPLES = """
examples:
  python -m export.tensorrt_build --bundle bundles/omniglot_vgg                   # FP16, batch 1:8:32
  python -m export.tensorrt_build --bundle bundles/omniglot_vgg --batch 1:4:8 --workspace 1
  python -m export.tensorrt_build --bundle bundles/omniglot_vgg --precision int8  # from embedding.int8.onnx (--int8)
  python -m export.tensorrt_build --probe                                         # what is on this machine

exit codes: 0 built or reused; 1 the build failed; 2 bad input; 3 TensorRT or a CUDA GPU is missing
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export.tensorrt_build",
        description="Build a TensorRT plan for an exported bundle on this machine (FP16: TensorRT 10 the FP32 graph "
        "+ FP16 flag, TensorRT 11 the FP16 graph, strongly typed; INT8: the bundle's QDQ graph embedding.int8.onnx, "
        "explicit quantization, TensorRT 10 with the INT8 flag, TensorRT 11 strongly typed), reuse it when its cache "
        "key matches, and record it in the bundle's manifest.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", metavar="DIR", help="bundle folder written by python -m export.build")
    p.add_argument("--batch", default="1:8:32", help="batch sizes MIN:OPT:MAX (default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16", help="default: %(default)s")
    p.add_argument("--workspace", type=float, default=2.0, metavar="GiB", help="builder workspace limit (default: 2)")
    p.add_argument(
        "--timing-cache",
        metavar="FILE",
        help="persistent timing cache (default: trt_timing.trt<version>.sm<cc>.cache beside the bundle, one per "
        "TensorRT release and GPU)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even when a plan with the same key exists")
    p.add_argument("--probe", action="store_true", help="print what this machine has for building, then exit")
    return p


def default_timing_cache_here(bundle: Path) -> Path | None:
    """This machine's default timing cache for ``bundle`` (``default_timing_cache`` with this TensorRT and GPU), for
    every command that builds plans; None when there is no TensorRT or GPU (build_engine then says which)."""
    try:
        version, cc = machine_target(probe())
    except EngineUnavailable:
        return None
    return default_timing_cache(bundle, version, cc)


@dataclass(frozen=True)
class Options:
    """The command line, typed (argparse's Namespace is Any to a type checker)."""

    bundle: str | None
    batch: str
    precision: str
    workspace: float
    timing_cache: str | None
    force: bool
    probe: bool


def parse_options(argv: list[str] | None = None) -> Options:
    return Options(**vars(build_parser().parse_args(argv)))


@explain_missing_extras()
def main(argv: list[str] | None = None) -> int:
    args = parse_options(argv)
    if args.probe:
        info = probe()
        print(json.dumps(info, indent=2))
        return EXIT_OK if not info["reason"] else EXIT_UNAVAILABLE
    if not args.bundle:
        print("error: --bundle DIR is required (or --probe)", file=sys.stderr)
        return EXIT_INPUT
    from runtime.bundle.layout import BundleError
    from runtime.bundle.manifest import load_manifest

    bundle = Path(args.bundle)
    try:
        profile = BatchProfile.parse(args.batch)
        workspace_bytes(args.workspace)
        manifest = load_manifest(bundle)
        cache = Path(args.timing_cache) if args.timing_cache else default_timing_cache_here(bundle)
        sidecar = build_engine(
            bundle, manifest.preprocessing.input_shape, profile, args.precision, args.workspace, cache, args.force
        )
    except EngineUnavailable as e:
        print(f"error: cannot build a TensorRT engine here: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except EngineBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BUILD
    except (BundleError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    register_engine(bundle, sidecar)
    verb = "reused" if sidecar.get("reused") else f"built in {sidecar['build_seconds']:.1f} s"
    print(
        f"engine:   {bundle / sidecar['file']} ({verb}; TensorRT {sidecar['tensorrt']}, {sidecar['gpu']}, "
        f"{sidecar['precision']} via {sidecar['strategy']}, batch {profile})"
    )
    others = sorted(p.name for p in bundle.glob(ENGINE_GLOB) if p.name != sidecar["file"])
    if others:
        print(f"          other plans in the bundle (other keys, not used for this profile): {', '.join(others)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
