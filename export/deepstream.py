"""Optional: a DeepStream Gst-nvinfer config that runs the embedding as a secondary model on detected objects.

nvinfer preprocesses as ``y = net-scale-factor * (x - offsets[c])`` on uint8 pixels; the bundle's preprocessing
is ``(x * scale - mean) / std``, the same map when ``net-scale-factor = scale / std`` and ``offsets = mean /
scale`` (one std for all channels: nvinfer has a single scale factor). The embedding comes out as tensor meta
(``output-tensor-meta=1``, ``network-type=100``) for the application to compare with its references.

INT8 (``network-mode=1``) names the bundle's QDQ graph embedding.int8.onnx and is meant to run the plan
``python -m export.tensorrt_build --precision int8`` built from it (explicit quantization): nvinfer's own engine build
in INT8 mode looks for an ``int8-calib-file`` (implicit calibration), which this project never makes.
"""

from __future__ import annotations

from pathlib import Path

from runtime.bundle.layout import EMBEDDING_INT8_ONNX, EMBEDDING_ONNX, EMBEDDING_OUTPUT
from runtime.bundle.manifest import load_manifest
from runtime.fileio import write_text_atomic
from runtime.preprocess import Preprocessing

CONFIG_NAME = "deepstream_nvinfer_embedding.txt"
_COLOR_FORMAT = {"rgb": 0, "gray": 2}  # nvinfer model-color-format: 0 RGB, 1 BGR, 2 GRAY
_NETWORK_MODE = {"fp32": 0, "fp16": 2, "int8": 1}  # nvinfer network-mode: 0 FP32, 1 INT8, 2 FP16
# the graph nvinfer is pointed at per precision (FP16 from the FP32 graph, nvinfer sets the FP16 flag itself)
_ONNX_FILE = {"fp32": EMBEDDING_ONNX, "fp16": EMBEDDING_ONNX, "int8": EMBEDDING_INT8_ONNX}
_SCALING_FILTER = {"nearest": 0, "bilinear": 1}  # NvBufSurfTransform_Inter


def nvinfer_config_text(
    pre: Preprocessing,
    onnx_file: str | None = None,
    engine_file: str | None = None,
    batch_size: int = 16,
    precision: str = "fp16",
    unique_id: int = 2,
    operate_on_gie_id: int = 1,
    gpu_id: int = 0,
) -> str:
    """The ``[property]`` group for nvinfer; ValueError for preprocessing nvinfer cannot express. ``onnx_file``
    defaults to the precision's graph (INT8: the QDQ graph)."""
    if len(set(pre.std)) != 1:
        raise ValueError(
            f"preprocessing std {list(pre.std)}: nvinfer has one net-scale-factor for all channels; "
            "use Gst-nvdspreprocess for per-channel std"
        )
    if precision not in _NETWORK_MODE:
        raise ValueError(f"precision {precision!r}: expected one of {tuple(_NETWORK_MODE)}")
    scale = pre.scale / pre.std[0]
    means = pre.mean if len(pre.mean) == pre.channels else pre.mean * pre.channels
    offsets = ";".join(f"{m / pre.scale:.6g}" for m in means)
    notes = []
    if precision == "int8":
        notes.append(
            f"INT8 runs the plan python -m export.tensorrt_build --precision int8 builds from {EMBEDDING_INT8_ONNX} "
            "(set model-engine-file to it); nvinfer's own INT8 build expects an int8-calib-file"
        )
    if pre.resize == "letterbox":
        aspect = "maintain-aspect-ratio=1\nsymmetric-padding=1\n"
        if pre.letterbox_fill:
            notes.append(f"nvinfer pads with black; the bundle's letterbox fill is {pre.letterbox_fill}")
    else:
        aspect = "maintain-aspect-ratio=0\n"
        if pre.resize != "stretch":
            notes.append(f"the bundle resizes by {pre.resize}; nvinfer stretches each object crop to the input size")
    filt = _SCALING_FILTER.get(pre.interpolation)
    if filt is None:
        notes.append(f"the bundle interpolates {pre.interpolation}; nvinfer's default filter is used")
    engine = f"model-engine-file={engine_file}\n" if engine_file else "# model-engine-file=<plan built on this GPU>\n"
    return (
        "# Gst-nvinfer: the siamese-edge embedding as a secondary model (tensor meta out), written by export\n"
        + "".join(f"# note: {n}\n" for n in notes)
        + "[property]\n"
        f"gpu-id={int(gpu_id)}\n"
        f"onnx-file={onnx_file or _ONNX_FILE[precision]}\n"
        f"{engine}"
        f"batch-size={int(batch_size)}\n"
        f"network-mode={_NETWORK_MODE[precision]}\n"
        "network-type=100\n"
        "output-tensor-meta=1\n"
        f"output-blob-names={EMBEDDING_OUTPUT}\n"
        "process-mode=2\n"
        f"gie-unique-id={int(unique_id)}\n"
        f"operate-on-gie-id={int(operate_on_gie_id)}\n"
        "network-input-order=1\n"
        f"model-color-format={_COLOR_FORMAT[pre.color]}\n"
        f"net-scale-factor={scale:.9g}\n"
        f"offsets={offsets}\n"
        f"{aspect}" + (f"scaling-filter={filt}\n" if filt is not None else "")
    )


def write_nvinfer_config(bundle_dir: Path, out: Path | None = None, engine_file: str | None = None, **kwargs) -> Path:
    """Write the nvinfer config for a bundle (default ``<bundle>/deepstream_nvinfer_embedding.txt``)."""
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir, verify=False)
    path = Path(out) if out is not None else bundle_dir / CONFIG_NAME
    return write_text_atomic(path, nvinfer_config_text(manifest.preprocessing, engine_file=engine_file, **kwargs))
