"""``python -m runtime.bench --bundle DIR [--model SOURCE.keras]``: how fast the runtime is, next to Keras.

In one run, on the same preprocessed images (the bundle's ``reference.npz`` inputs, or ``--images DIR``):

* **pair latency at batch 1** (p50/p90/p99): what a verifier does per camera frame - embed one image and score it
  against a reference embedding computed once (embed once, score many);
* **throughput at batch 8 and 32** (images/s through the embedding network);
* for every backend present: ONNX Runtime on the CPU always; ONNX Runtime on a GPU provider, OpenVINO fp32/bf16 and
  TensorRT when their modules import and say they can run here (absent ones are listed with the reason);
* Keras on the source model (``--model``, when TensorFlow is installed): ``model.predict`` and a direct
  ``model(x)`` call; a Keras user verifies a pair by running the two-input model on both images, so that is the
  batch-1 baseline; throughput uses the model's nested ``embedding`` network (images through one branch). Keras
  runs in a child process (TensorFlow is imported only there, and does not share threads with the runtime), and
  its scores are compared with the runtime's on the same pairs;
* achieved GFLOP/s: the embedding graph's FLOPs (Conv, ConvTranspose, Gemm and MatMul multiply-accumulates x 2,
  from the shapes ONNX shape inference gives at batch 1; element-wise ops are not counted) times images/s,
  against this CPU's peak measured in the same run (the best of several float32 numpy matmuls; for bf16/fp16
  rows, the same matmul on OpenVINO at that precision);
* a runtime-only process (a fresh interpreter that imports only ``runtime`` and ONNX Runtime): import time, bundle
  load time and resident memory (VmRSS/VmHWM from /proc/self/status) with the bundle loaded and one pair
  verified, and whether anything imported TensorFlow or Keras.

Writes ``runtime_bench_<bundle>.txt`` (the table, also printed), ``.json`` and ``.png`` (a bar chart) into
``--out``, each atomically. Targets (issue 5, as ratios in one run): pair at batch 1 >= 20x faster than Keras
``predict``; the best backend at batch 32 >= 0.5 of the CPU's peak for its precision; the runtime-only process
< 300 MB resident. ``--check`` exits 1 when a target that was measured is missed.

TensorFlow/Keras are imported lazily, only in the Keras child process; nothing else here needs them.

The package, one job a module: ``rows`` (the images, a backend per registry row, pair latency and throughput;
the timing itself is ``runtime.timing``, shared with the Keras child), ``flops`` (FLOPs from the ONNX graph),
``peaks`` (the CPU's peak), ``process`` (the runtime-only process), ``baseline`` (the Keras child process),
``report`` (targets, summary, table, chart) and ``cli`` (the options and the run; ``python -m runtime.bench``).
"""

from runtime.bench.cli import main

__all__ = ["main"]
