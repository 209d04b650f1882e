"""BUILD_ENGINE.md: how to build the TensorRT plan on the target when the exporting machine could not.

A plan only runs on the TensorRT version and GPU that built it, so an export on a laptop without TensorRT is
normal: the bundle then carries the exact commands for the target, with this bundle's real tensor name, shapes,
profile and workspace filled in. trtexec flags as in TensorRT's trtexec help (10.x) and the 10.x -> 11.x
trtexec migration guide: ``--fp16`` and ``--int8`` exist in 10.x only; 11.x is always strongly typed and builds the
FP16 graph, or the INT8 (Q/DQ) graph, as typed.
"""

from __future__ import annotations

from export.tensorrt_build import workspace_bytes
from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_INT8_ONNX, EMBEDDING_ONNX, INPUT_NAME
from runtime.engines import BatchProfile, check_input_shape, check_precision

TIMING_CACHE = "../trt_timing.cache"  # beside the bundle, shared by its rebuilds (the tool's default too)


def trtexec_plan_name(precision: str) -> str:
    """The plan trtexec writes. Not ``embedding.trt*``: without a sidecar the project's runtime must not pick it."""
    return f"embedding.{precision}.trtexec.plan"


def trtexec_shape(name: str, shape: tuple[int, ...]) -> str:
    """trtexec's shape spec: ``image:8x105x105x3``."""
    return f"{name}:" + "x".join(str(int(d)) for d in shape)


def workspace_mib(workspace_gib: float) -> int:
    return workspace_bytes(workspace_gib) >> 20


def trtexec_args(
    trt_major: int,
    input_shape: tuple[int, int, int],
    profile: BatchProfile,
    precision: str = "fp16",
    workspace_gib: float = 2.0,
    timing_cache: str = TIMING_CACHE,
    save_engine: str | None = None,
) -> list[str]:
    """trtexec's arguments for TensorRT ``trt_major`` (10 or 11+), run inside the bundle folder."""
    shape = check_input_shape(input_shape)
    check_precision(precision)
    if trt_major < 10:
        raise ValueError(f"TensorRT {trt_major}: this project builds with TensorRT 10 or newer")
    shapes = profile.shapes(shape)
    if precision == "fp32":
        model, precision_flags = EMBEDDING_ONNX, ["--noTF32"]  # FP32 parity needs real FP32, not TF32
    elif precision == "int8":
        # explicit quantization: the Q/DQ graph carries its scales (no calibration cache); 10.x must allow INT8
        # kernels with --int8 and keeps unquantized layers FP32 (as export.tensorrt_build); 11.x is typed by the graph
        model, precision_flags = EMBEDDING_INT8_ONNX, ["--int8"] if trt_major == 10 else ["--stronglyTyped"]
    elif trt_major == 10:
        model, precision_flags = EMBEDDING_ONNX, ["--fp16"]  # weak typing: FP32 graph, FP16 kernels allowed
    else:
        model, precision_flags = EMBEDDING_FP16_ONNX, ["--stronglyTyped"]  # 11+: always on; harmless, explicit
    return [
        f"--onnx={model}",
        *precision_flags,
        f"--minShapes={trtexec_shape(INPUT_NAME, shapes['min'])}",
        f"--optShapes={trtexec_shape(INPUT_NAME, shapes['opt'])}",
        f"--maxShapes={trtexec_shape(INPUT_NAME, shapes['max'])}",
        f"--memPoolSize=workspace:{workspace_mib(workspace_gib)}M",
        f"--timingCacheFile={timing_cache}",
        f"--saveEngine={save_engine or trtexec_plan_name(precision)}",
        "--skipInference",
    ]


def _shell(cmd: str, args: list[str]) -> str:
    return " \\\n  ".join([cmd, *args])


def build_engine_markdown(
    bundle_name: str,
    input_shape,
    profile: BatchProfile,
    precision: str,
    workspace_gib: float,
    reason: str,
    model_file: str | None = None,
) -> str:
    """The text of BUILD_ENGINE.md: why no engine was built here, then the command lines for the target."""
    h, w, c = check_input_shape(input_shape)
    check_precision(precision)
    gib = f"{float(workspace_gib):g}"
    opt_shape = trtexec_shape(INPUT_NAME, profile.shapes((h, w, c))["opt"])
    plan = trtexec_plan_name(precision)
    ten = _shell("trtexec", trtexec_args(10, (h, w, c), profile, precision, workspace_gib))
    eleven = _shell("trtexec", trtexec_args(11, (h, w, c), profile, precision, workspace_gib))
    model = model_file or "MODEL_FILE"
    if precision == "fp16":
        ten_note = "The FP32 graph, with FP16 kernels allowed by `--fp16` (`BuilderFlag.FP16`)."
        eleven_note = (
            "TensorRT 11 removed `--fp16` (every network is strongly typed): it builds the FP16 graph "
            f"`{EMBEDDING_FP16_ONNX}` (FP16 inside, FP32 at its input and output) as typed. `--stronglyTyped` is on "
            "by default there; it is written out so the same line also works on TensorRT 10, where it must be asked for."
        )
    elif precision == "int8":
        ten_note = (
            f"The INT8 graph `{EMBEDDING_INT8_ONNX}` (Q/DQ, explicit quantization: no calibrator), with INT8 kernels "
            "allowed by `--int8` (`BuilderFlag.INT8`); layers the graph leaves unquantized stay FP32."
        )
        eleven_note = f"The INT8 graph `{EMBEDDING_INT8_ONNX}` strongly typed: precision comes from its Q/DQ nodes."
    else:
        ten_note = "The FP32 graph in FP32 (`--noTF32`: TF32 would miss the FP32 parity tolerance)."
        eleven_note = "The FP32 graph, strongly typed as FP32 (`--noTF32` as for TensorRT 10)."
    return f"""# Building the TensorRT engine for `{bundle_name}`

No TensorRT engine was built when this bundle was exported: {reason}.

A TensorRT plan only runs on the TensorRT version and GPU that built it, so build it on the target itself
(the Jetson, or the serving GPU). Everything else in this bundle already works without it (ONNX Runtime).

This bundle's embedding graph: input `{INPUT_NAME}`, float32, NHWC `[N, {h}, {w}, {c}]`; batch profile
{profile.min}:{profile.opt}:{profile.max} (min:opt:max); precision {precision}; workspace {gib} GiB.

## With this project (recommended)

Run from the folder that contains `{bundle_name}/`. It picks the strategy for the TensorRT it finds (10.x: FP32
graph + FP16 builder flag; 11.x: the FP16 graph, strongly typed), names the plan by its cache key
(`embedding.trt<version>.sm<arch>.{precision}.<key>.plan` with a `.json` sidecar), keeps a timing cache beside
the bundle for rebuilds, and records the plan and its hashes in `manifest.json` (`engines`) for the runtime.

```sh
pip install 'siamese-edge[gpu]'   # TensorRT + cuda-python
python -m export.tensorrt_build --bundle {bundle_name} --batch {profile} --precision {precision} --workspace {gib}
```

Or re-export from the source model on the target (rewrites the whole bundle, then builds the plan):

```sh
python -m export.build --model {model} --name {bundle_name} --engine --require-engine --batch {profile} --workspace {gib} --force
```

## With trtexec

Plans written by trtexec have no sidecar: Triton (`tensorrt_plan`, as `model.plan`), DeepStream (`model-engine-file`)
and trtexec load them, but this project's runtime only uses plans whose cache key it can check (the commands
above). Run inside `{bundle_name}/`; `{TIMING_CACHE}` is the same timing cache the tool uses.

### TensorRT 10.x (JetPack 6)

{ten_note}

```sh
{ten}
```

### TensorRT 11.x

{eleven_note}

```sh
{eleven}
```

Check the plan (a timed run at the tuned batch size):

```sh
trtexec --loadEngine={plan} --shapes={opt_shape}
```
"""


def int8_engine_markdown(bundle_name: str, input_shape, profile: BatchProfile, workspace_gib: float) -> str:
    """The INT8 section of BUILD_ENGINE.md, for a bundle with an INT8 (Q/DQ) graph."""
    hwc = check_input_shape(input_shape)
    gib = f"{float(workspace_gib):g}"
    ten = _shell("trtexec", trtexec_args(10, hwc, profile, "int8", workspace_gib))
    eleven = _shell("trtexec", trtexec_args(11, hwc, profile, "int8", workspace_gib))
    return f"""
## INT8

This bundle also has the INT8 graph `{EMBEDDING_INT8_ONNX}` (Q/DQ nodes calibrated on real images at export, see
`manifest.json` `int8`). TensorRT builds it by explicit quantization on both versions; no calibrator is involved.
The runtime takes an INT8 plan only when asked (`precision="int8"`).

```sh
python -m export.tensorrt_build --bundle {bundle_name} --batch {profile} --precision int8 --workspace {gib}
```

TensorRT 10.x (JetPack 6): INT8 kernels allowed by `--int8`; layers the graph leaves unquantized stay FP32.

```sh
{ten}
```

TensorRT 11.x: strongly typed, the precision comes from the graph's Q/DQ nodes.

```sh
{eleven}
```
"""
