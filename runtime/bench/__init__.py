"""``python -m runtime.bench --bundle DIR [--model SOURCE]``: how fast the runtime is, next to Keras.

In one run, on the same preprocessed images (the bundle's ``reference.npz`` inputs, or ``--images DIR``):

* **pair latency at batch 1** (p50/p90/p99): what a verifier does per camera frame - embed one image and score it
  against a reference embedding computed once (embed once, score many);
* **throughput at batch 8 and 32** (images/s through the embedding network);
* for every backend present: ONNX Runtime on the CPU always; ONNX Runtime on a GPU provider, OpenVINO
  fp32/bf16/int8, ONNX Runtime int8 (bundles with an INT8 graph) and TensorRT when their modules import and say
  they can run here (absent ones are listed with the reason);
* Keras on the source model (``--model``: anything ``train.load`` loads, e.g. a weights-only ``.h5``; when
  TensorFlow is installed): ``model.predict`` and a direct ``model(x)`` call; a Keras user verifies a pair by
  running the two-input model on both images, so that is the batch-1 baseline; throughput uses the model's nested
  ``embedding`` network (images through one branch). Keras
  runs in a child process (TensorFlow is imported only there, and does not share threads with the runtime), and
  its scores are compared with the runtime's on the same pairs;
* achieved GFLOP/s: the embedding graph's FLOPs (Conv, ConvTranspose, Gemm and MatMul multiply-accumulates x 2,
  from the shapes ONNX shape inference gives at batch 1; element-wise ops are not counted) times images/s: effective
  FLOP/s (Winograd-style convolutions do fewer FLOPs than counted, so a row can exceed 1.0 of peak), against this
  CPU's peak for the row's precision measured in the same run (``peaks``: OpenVINO CPU MatMul at f32, bf16 and f16
  where native, and INT8 through FakeQuantize, the kernel each ran read back from the compiled model's runtime graph;
  numpy's float32 matmul as another fp32 candidate; a few sizes, best of N, at the start and the end of the run);
* the public API (``api``): ``runtime.load(bundle)`` (auto) then ``verify(path_a, path_b)`` on two image files and
  one ``embed([path_a, path_b])`` of them, timed alternately; the Keras child times ``predict`` on the same files;
* a runtime-only process (a fresh interpreter that imports only ``runtime`` and ONNX Runtime): import time, bundle
  load time and resident memory (VmRSS/VmHWM from /proc/self/status) with the bundle loaded and one pair
  verified, and whether anything imported TensorFlow or Keras.

Writes ``runtime_bench_<bundle>.txt`` (the table, also printed), ``.json`` (schema ``report.BENCH_SCHEMA``) and
``.png`` (a bar chart) into ``--out``, each atomically. Targets, as ratios in one run, each with the figures it comes
from (``report.TARGETS``): issue 5's pair at batch 1 >= 20x faster than Keras ``predict``, the best backend at batch
32 >= 0.5 of its precision's peak, the runtime-only process < 300 MB resident; issue 14's ``verify(path_a, path_b)``
>= 8x faster than Keras ``predict`` on the same pair of files, ``verify`` of two images <= 1.15x one ``embed`` of
both, and INT8 at batch 32 >= 1.8x the best FP32 row. Each is met, not met or not measured (e.g. no INT8 graph in
the bundle); a missed target never fails the run (exit 0), unless ``--check`` asks for exit 1.

TensorFlow/Keras are imported lazily, only in the Keras child process; nothing else here needs them.

The package, one job a module: ``rows`` (the images, a backend per registry row, pair latency and throughput;
the timing itself is ``runtime.timing``, shared with the Keras child), ``flops`` (FLOPs from the ONNX graph),
``peaks`` (the CPU's peak per precision), ``api`` (the public API's verify row), ``process`` (the runtime-only process), ``baseline`` (the Keras child process),
``report`` (targets, summary, table, chart) and ``cli`` (the options and the run; ``python -m runtime.bench``).
"""

from runtime.bench.cli import main

__all__ = ["main"]
