"""The INT8 embedding graph: ONNX Runtime's static quantization, in QDQ form, calibrated on real images.

QDQ (QuantizeLinear/DequantizeLinear pairs around each quantized op) is the one INT8 form that ONNX Runtime's CPU
provider, OpenVINO (its low-precision transformations read the pairs) and TensorRT 10 and 11 (explicit
quantization: TensorRT 11 has no implicit INT8 calibrators) all run. Weights are per-channel symmetric int8 and
activations symmetric int8 (TensorRT takes only symmetric scales), with MinMax calibration over the images given.
The graph is checked before it is written: its inputs and outputs are the FP32 graph's, and it runs on ONNX
Runtime's CPU provider on the calibration batch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.bundle.layout import INPUT_NAME, PRECISION_KEY

MIN_CALIBRATION_IMAGES = 16  # fewer and the activation ranges are a guess
DEFAULT_CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 8


class Int8Error(ValueError):
    """INT8 calibration cannot be done as asked (too few images, no real images, a graph it cannot quantize)."""


@dataclass(frozen=True)
class Int8Result:
    path: Path
    images: int
    nodes_quantized: int


def _batches(x: np.ndarray, progress: bool) -> Iterator[dict[str, np.ndarray]]:
    from tqdm import tqdm

    starts = range(0, len(x), CALIBRATION_BATCH)
    for s in tqdm(starts, desc="int8 calibration", unit="batch", disable=not progress, leave=False):
        yield {INPUT_NAME: np.ascontiguousarray(x[s : s + CALIBRATION_BATCH], np.float32)}


def quantize_int8(fp32_graph: Path, out: Path, calibration: np.ndarray, progress: bool = True) -> Int8Result:
    """Write ``out``, the QDQ INT8 twin of ``fp32_graph``, calibrated on ``calibration`` (preprocessed NHWC)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from runtime.backends.onnxruntime_backend import CPU_PROVIDER

    x = np.asarray(calibration, np.float32)
    if len(x) < MIN_CALIBRATION_IMAGES:
        raise Int8Error(
            f"INT8 calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {len(x)}: pass --calib-images DIR "
            "with more images"
        )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = _batches(x, progress)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="siamese-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        staged = Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_graph), str(pre), skip_symbolic_shape=False)
        quantize_static(
            str(pre),
            str(staged),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
        model = onnx.load(str(staged))
        quantized = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
        if quantized == 0:
            raise Int8Error(f"{fp32_graph}: ONNX Runtime quantized no node of this graph; no INT8 graph written")
        meta = {p.key: p.value for p in model.metadata_props}
        meta[PRECISION_KEY] = "int8"
        del model.metadata_props[:]
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=v)
        onnx.save(model, str(staged))
        fp32 = ort.InferenceSession(str(fp32_graph), providers=[CPU_PROVIDER])
        int8 = ort.InferenceSession(str(staged), providers=[CPU_PROVIDER])
        io = [(a.name, len(a.shape)) for a in fp32.get_inputs()], [(a.name, len(a.shape)) for a in fp32.get_outputs()]
        got = [(a.name, len(a.shape)) for a in int8.get_inputs()], [(a.name, len(a.shape)) for a in int8.get_outputs()]
        if io != got:
            raise Int8Error(f"{fp32_graph}: the INT8 graph's inputs/outputs {got} differ from the FP32 graph's {io}")
        probe = x[:CALIBRATION_BATCH]
        if int8.run(None, {INPUT_NAME: probe})[0].shape != fp32.run(None, {INPUT_NAME: probe})[0].shape:
            raise Int8Error(f"{fp32_graph}: the INT8 graph's output shape differs from the FP32 graph's")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(out))  # into the bundle's staging folder, published with the bundle
    return Int8Result(out, len(x), quantized)
