"""TensorRT backend: the bundle's plan for this GPU and TensorRT version, through TensorRT's Python API.

Which plan may run here is decided by ``runtime.engines`` (file name, sidecar, cache key recomputed with this
machine's TensorRT version and compute capability, source graph and plan hashes); a plan built for another GPU or
TensorRT release is never loaded: ``available()`` says why and gives the command that rebuilds it. This module is
the thin GPU layer on top, written against the TensorRT 10 and 11 Python APIs and cuda-python:

- ``trt.Runtime(logger).deserialize_cuda_engine(plan)``, ``engine.create_execution_context()``;
- the name-based tensor API: ``engine.num_io_tensors``, ``get_tensor_name(i)``, ``get_tensor_mode(name)``
  (``trt.TensorIOMode.INPUT``/``OUTPUT``), ``get_tensor_dtype(name)``, ``get_tensor_shape(name)``,
  ``get_tensor_profile_shape(name, profile_index)`` -> (min, opt, max);
- ``context.set_input_shape(name, shape)``, ``context.set_tensor_address(name, device_ptr)``,
  ``context.execute_async_v3(stream_handle)`` (enqueueV3: the only execute call left in TensorRT 10 and 11);
- device memory, pinned staging buffers, async copies and the stream through ``runtime.backends.cuda_memory``:
  cuda-python's runtime API first, pycuda when only it is installed (``info()["cuda_api"]`` says which).

TensorRT and the CUDA API are imported only inside the functions that use them, so importing this module on a
machine without them costs nothing. Batches larger than the plan's profile run in chunks (``plan_chunks``, pure,
tested on the CPU). The head (head.onnx) runs on ONNX Runtime's CPU provider; distances in numpy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from runtime.backends.base import BackendEntry, Presence, register
from runtime.backends.cuda_memory import CudaMemory, PinnedFloats, cuda_device, open_cuda, staging_bytes
from runtime.bundle.layout import EMBEDDING_OUTPUT, INPUT_NAME, BundleError
from runtime.bundle.manifest import Manifest, load_manifest
from runtime.engines import (
    ENGINE_GLOB,
    MIN_TRT_MAJOR,
    UNASKED_PRECISIONS,
    BatchProfile,
    Chunk,
    PlanSelection,
    PlanTarget,
    parse_trt_version,
    plan_chunks,
    rebuild_command,
    select_plan,
)
from runtime.extras import install_command

if TYPE_CHECKING:
    import tensorrt as trt

INSTALL_HINT = install_command("gpu")  # the desktop default (CUDA 13); the other targets: OTHER_TARGETS
OTHER_TARGETS = f"on CUDA 12 {install_command('gpu-cuda12')}, on a Jetson JetPack's TensorRT (README: GPU and Jetson)"


class TensorRTUnavailable(RuntimeError):
    """TensorRT, cuda-python, a GPU or a matching plan is missing; the message says which and what to do."""


# ----------------------------------------------------------------------------------------------------------------
# what is on this machine (shared with export.tensorrt_build)
# ----------------------------------------------------------------------------------------------------------------


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module (ImportError when it is not installed)."""
    import tensorrt

    return tensorrt


class MachineInfo(TypedDict):
    """What ``probe()`` found: versions and the GPU, or None each, and one line saying what is missing."""

    tensorrt: str | None
    cuda_api: str | None
    gpu: str | None
    compute_capability: tuple[int, int] | None
    reason: str | None


def probe(device: int = 0) -> MachineInfo:
    """What this machine has for building and running engines.

    ``{"tensorrt": version or None, "cuda_api": "cuda-python 13.x" / "pycuda 2025.x" or None, "gpu": name or None,
    "compute_capability": (major, minor) or None, "reason": None when all are there, else one line saying what is
    missing}``.
    """
    reasons = []
    version: str | None = None
    try:
        version = str(import_tensorrt().__version__)
    except ImportError:
        reasons.append(f"TensorRT is not installed ({INSTALL_HINT}), {OTHER_TARGETS}")
    except Exception as e:  # a tensorrt wheel whose libraries do not load
        reasons.append(f"TensorRT cannot be loaded ({type(e).__name__}: {e})")
    dev, api, why = cuda_device(device)
    if why:
        reasons.append(why)
    return MachineInfo(
        tensorrt=version,
        cuda_api=api,
        gpu=dev.name if dev else None,
        compute_capability=dev.compute_capability if dev else None,
        reason="; ".join(reasons) or None,
    )


# ----------------------------------------------------------------------------------------------------------------
# may a plan of this bundle run here? (pure over the probe, so it is tested on the CPU)
# ----------------------------------------------------------------------------------------------------------------


def plan_verdict(
    bundle_dir: str | Path,
    machine_info: MachineInfo,
    input_shape: tuple[int, int, int],
    precision: str | None = None,
) -> tuple[bool, str, PlanSelection | None]:
    """(usable, one line saying why, the selection) for a bundle on a machine described like ``probe()``'s result.

    Not usable: TensorRT or the GPU missing (the probe's reason), TensorRT older than 10, no plan in the bundle, or
    no plan matching this TensorRT version and GPU: each plan's reasons, then ``; rebuild with: <command>``.
    """
    if machine_info.get("reason"):
        return False, str(machine_info["reason"]), None
    trt_version = str(machine_info["tensorrt"])
    try:
        major = parse_trt_version(trt_version)[0]
    except ValueError as e:
        return False, str(e), None
    if major < MIN_TRT_MAJOR:
        return (
            False,
            f"TensorRT {trt_version} is older than {MIN_TRT_MAJOR} (this runtime uses the TensorRT 10+ API)",
            None,
        )
    cc = machine_info["compute_capability"]
    if cc is None:
        return False, "no CUDA GPU found (no compute capability)", None
    machine = PlanTarget(trt_version, (int(cc[0]), int(cc[1])), machine_info.get("gpu"))
    selection = select_plan(bundle_dir, machine, input_shape, precision)
    if selection.plan is not None:
        return True, f"{selection.plan.plan.name} matches {machine.describe()}", selection
    profiles = [c.profile for c in selection.checked if c.profile is not None]
    wanted = rebuild_precision(precision, [c.precision for c in selection.checked])
    cmd = rebuild_command(bundle_dir, wanted, profiles[0] if profiles else None)
    return False, f"{selection.why_not()} ({machine.describe()}) ; rebuild with: {cmd}", selection


def rebuild_precision(asked: str | None, found: Sequence[str | None]) -> str:
    """The precision the rebuild command names: the one asked, else that of the first plan found that is taken
    unasked (an int8 plan is not: it runs only when asked), else FP16."""
    return asked or next((p for p in found if p in UNASKED_PRECISIONS), None) or "fp16"


def available(bundle_dir: str | Path, precision: str | None = None, device: int = 0) -> tuple[bool, str]:
    """Whether ``TensorRTBackend(bundle_dir, precision=precision)`` can run here, and one line saying why (not).

    A plan built for another GPU or TensorRT version is never used: the reason names what differs and ends with
    ``; rebuild with: python -m export.tensorrt_build --bundle DIR ...``.
    """
    info = probe(device)
    if info["reason"]:
        return False, str(info["reason"])
    try:
        manifest = load_manifest(bundle_dir)
    except BundleError as e:
        return False, str(e)
    ok, why, _ = plan_verdict(bundle_dir, info, manifest.preprocessing.input_shape, precision)
    return ok, why


# ----------------------------------------------------------------------------------------------------------------
# the backend
# ----------------------------------------------------------------------------------------------------------------


def check_batch(x: np.ndarray, hwc: tuple[int, ...]) -> np.ndarray:
    """The batch as contiguous float32 NHWC; ValueError naming the shape unless it is (N, H, W, C) of the plan."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(hwc):
        raise ValueError(f"input shape {x.shape}, expected (N, {', '.join(map(str, hwc))})")
    return x


def run_profile(profile: BatchProfile, batch_size: int | None) -> BatchProfile:
    """The chunking profile for one ``embed`` call: the plan's, or smaller runs when ``batch_size`` asks for them
    (never below the plan's minimum, which padding reaches)."""
    if batch_size is None or batch_size >= profile.max:
        return profile
    run = max(profile.min, int(batch_size))
    return BatchProfile(profile.min, run, run)


def stage_chunk(dst: np.ndarray, rows: np.ndarray, run: int) -> None:
    """Copy ``rows`` (size, ...) into the flat staging buffer ``dst`` and zero it up to ``run`` images (the padding
    up to the profile's minimum, whose outputs are dropped)."""
    per_image = int(np.prod(rows.shape[1:], dtype=np.int64))
    n = len(rows) * per_image
    dst[:n] = rows.reshape(-1)
    dst[n : run * per_image] = 0.0


def embed_in_chunks(
    x: np.ndarray, dim: int, profile: BatchProfile, run_chunk: Callable[[Chunk, np.ndarray], np.ndarray]
) -> np.ndarray:
    """(N, H, W, C) -> (N, dim) through ``run_chunk(chunk, rows)``, which returns at least ``chunk.size`` rows of
    embeddings for a run of ``chunk.run`` images; chunks from ``plan_chunks`` (the rule the C++ backend shares).
    An empty batch is (0, dim), as ONNX Runtime returns, without running anything."""
    out = np.empty((len(x), int(dim)), np.float32)
    for ch in plan_chunks(len(x), profile):
        out[ch.start : ch.stop] = run_chunk(ch, x[ch.start : ch.stop])[: ch.size]
    return out


class TensorRTBackend:
    """A bundle's TensorRT plan on this GPU. ``precision`` None takes the best matching plan (FP16 first, never
    INT8); ``"int8"`` takes an INT8 plan (built from the bundle's QDQ graph by
    ``python -m export.tensorrt_build --precision int8``). The plan's tensors are FP32 at its input and output
    whatever its precision, so embedding runs the same way for each."""

    name = "tensorrt"
    thread_safe = True  # one context and stream, runs serialized by a lock

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest | None = None,
        precision: str | None = None,
        device: int = 0,
        threads: int | None = None,
    ):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest or load_manifest(self.bundle_dir)
        self._closed = True
        info = probe(device)
        ok, why, selection = plan_verdict(self.bundle_dir, info, self.manifest.preprocessing.input_shape, precision)
        if not ok:
            raise TensorRTUnavailable(why)
        assert selection is not None and selection.plan is not None
        self.plan_path = selection.plan.plan
        self.sidecar = selection.plan.sidecar or {}
        self.precision = selection.plan.precision or "fp16"
        self.trt_version = str(info["tensorrt"])
        cc = info["compute_capability"] or (0, 0)
        self.gpu = f"{info['gpu']} (sm{cc[0]}{cc[1]})"
        self.device = int(device)

        from runtime.backends.onnxruntime_backend import CpuHead

        self._head = CpuHead(self.bundle_dir, self.manifest, threads)
        self._cuda: CudaMemory | None = None
        self.cuda_api: str | None = None
        self._d_in: int | None = None
        self._d_out: int | None = None
        self._h_in: PinnedFloats | None = None
        self._h_out: PinnedFloats | None = None
        self._stream: object = None
        self._context: trt.IExecutionContext | None = None
        self._engine: trt.ICudaEngine | None = None
        self._runtime: trt.Runtime | None = None
        self._lock = threading.Lock()  # one context, one stream: runs are serialized
        self._load(selection.plan.profile)

    # -- set-up ---------------------------------------------------------------------------------------------------

    def _load(self, sidecar_profile: BatchProfile | None) -> None:
        """Open the CUDA API and load the plan on this backend's device; everything made is freed on failure."""
        cuda = self._cuda = open_cuda(self.device)
        self.cuda_api = cuda.label
        try:
            with cuda.activate():
                self._load_on(cuda, sidecar_profile)
        except BaseException:
            self._closed = True
            self._release()
            raise

    def _load_on(self, cuda: CudaMemory, sidecar_profile: BatchProfile | None) -> None:
        """Deserialize, check, and allocate the run's buffers (the device active, ``_load`` frees on failure)."""
        import tensorrt as trt

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine: trt.ICudaEngine | None = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if engine is None:
            raise RuntimeError(f"{self.plan_path}: TensorRT could not deserialize the plan (its log above says why)")
        self._engine = engine
        self._check_engine(engine, sidecar_profile)
        context: trt.IExecutionContext | None = engine.create_execution_context()
        if context is None:
            raise RuntimeError(f"{self.plan_path}: TensorRT could not create an execution context (GPU memory?)")
        self._context = context
        in_bytes, out_bytes = staging_bytes(self.profile.max, self._per_image, self.dim)
        self._d_in = cuda.alloc(in_bytes)
        self._d_out = cuda.alloc(out_bytes)
        self._h_in = cuda.pinned_floats(in_bytes // 4)
        self._h_out = cuda.pinned_floats(out_bytes // 4)
        self._stream = cuda.create_stream()
        self._stream_handle = cuda.stream_handle(self._stream)
        if not context.set_tensor_address(INPUT_NAME, self._d_in):
            raise RuntimeError(f"set_tensor_address({INPUT_NAME!r}) failed")
        if not context.set_tensor_address(EMBEDDING_OUTPUT, self._d_out):
            raise RuntimeError(f"set_tensor_address({EMBEDDING_OUTPUT!r}) failed")
        self._closed = False

    def _check_engine(self, engine: trt.ICudaEngine, sidecar_profile: BatchProfile | None) -> None:
        """The plan's tensors are the bundle's: one FLOAT input and output of the manifest's shapes; sets the
        profile, the image shape and the embedding size from the engine."""
        import tensorrt as trt

        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [INPUT_NAME] or outputs != [EMBEDDING_OUTPUT]:
            raise RuntimeError(
                f"{self.plan_path}: inputs {inputs} and outputs {outputs}, expected [{INPUT_NAME!r}] -> [{EMBEDDING_OUTPUT!r}]"
            )
        for n in names:
            if engine.get_tensor_dtype(n) != trt.DataType.FLOAT:
                raise RuntimeError(f"{self.plan_path}: tensor {n!r} is {engine.get_tensor_dtype(n)}, expected FLOAT")
        lo, opt, hi = (dims_tuple(s) for s in engine.get_tensor_profile_shape(INPUT_NAME, 0))
        self.profile = BatchProfile(lo[0], opt[0], hi[0])
        self._hwc = hi[1:]
        if self._hwc != tuple(self.manifest.preprocessing.input_shape):
            raise RuntimeError(
                f"{self.plan_path}: input {list(hi)}, the bundle's input is {self.manifest.preprocessing.input_shape}"
            )
        out_shape = dims_tuple(engine.get_tensor_shape(EMBEDDING_OUTPUT))
        self.dim = out_shape[-1]
        if self.dim != self.manifest.embedding_dim:
            raise RuntimeError(
                f"{self.plan_path}: output {list(out_shape)}, the bundle's embedding is {self.manifest.embedding_dim}"
            )
        if sidecar_profile is not None and sidecar_profile != self.profile:
            raise RuntimeError(f"{self.plan_path}: profile {self.profile}, its sidecar says {sidecar_profile}")
        self._per_image = int(np.prod(self._hwc))

    # -- the backend interface ------------------------------------------------------------------------------------

    def embed(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Preprocessed float32 NHWC -> (N, dim) float32; batches beyond the plan's profile run in chunks, those
        below its minimum are padded. Safe from any thread: each run makes this backend's device current first."""
        x = check_batch(x, self._hwc)
        profile = run_profile(self.profile, batch_size)
        with self._lock:
            cuda = self._cuda
            if self._closed or cuda is None:
                raise RuntimeError("the TensorRT backend was closed")
            if len(x) == 0:
                return np.empty((0, self.dim), np.float32)
            # the current device (pycuda: context) is per host thread: activate it in this one
            with cuda.activate():
                return embed_in_chunks(x, self.dim, profile, self._run_chunk)

    def _run_chunk(self, ch: Chunk, rows: np.ndarray) -> np.ndarray:
        """One run of ``ch.run`` images on the GPU (called with the lock held and the device active)."""
        cuda, stream, h_in, h_out = self._cuda, self._stream, self._h_in, self._h_out
        context = self._context
        if cuda is None or h_in is None or h_out is None or context is None or not self._d_in or not self._d_out:
            raise RuntimeError("the TensorRT backend was closed")
        stage_chunk(h_in.array, rows, ch.run)
        cuda.copy_to_device(self._d_in, h_in.array[: ch.run * self._per_image], stream)
        if not context.set_input_shape(INPUT_NAME, (ch.run, *self._hwc)):
            raise RuntimeError(
                f"set_input_shape({INPUT_NAME!r}, {(ch.run, *self._hwc)}) rejected (profile {self.profile})"
            )
        if not context.execute_async_v3(self._stream_handle):
            raise RuntimeError(f"{self.plan_path.name}: execute_async_v3 failed (TensorRT's log says why)")
        cuda.copy_to_host(h_out.array[: ch.run * self.dim], self._d_out, stream)
        cuda.synchronize(stream)
        return h_out.array[: ch.size * self.dim].reshape(ch.size, self.dim)

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """(N, dim) x 2 -> (N,) scores in the manifest's units (head.onnx on the CPU, or the distance)."""
        return self._head(ea, eb)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "provider": f"TensorRT {self.trt_version}",
            "precision": self.precision,
            "device": self.gpu,
            "cuda_api": self.cuda_api,
            "bundle": self.manifest.name,
            "plan": self.plan_path.name,
            "batch_profile": str(self.profile),
        }

    def close(self) -> None:
        """Free the device and pinned buffers, the stream, then the context, engine and runtime (in that order),
        under the lock ``embed`` holds, so a close never frees memory under a running context. Idempotent; also
        on garbage collection."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # the constructor failed before the backend had anything to free
            self._closed = True
            return
        with lock:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Free what ``_load`` made, whatever it got to (also after a failed load); the caller holds the lock."""
        cuda: CudaMemory | None = getattr(self, "_cuda", None)
        if cuda is None:
            return
        try:
            # free on the device (pycuda: in the context) the memory lives in, whichever thread closes
            with cuda.activate():
                for ptr in (self._d_in, self._d_out):
                    if ptr:
                        cuda.free(ptr)
                for buf in (self._h_in, self._h_out):
                    if buf is not None:
                        cuda.free_pinned(buf)
                if self._stream is not None:
                    cuda.destroy_stream(self._stream)
                self._stream = None
                # TensorRT objects: the context before the engine before the runtime (what each was created from)
                self._context = None
                self._engine = None
                self._runtime = None
        finally:  # also when the device could not be made current (lost, or the driver is going away)
            self._d_in = self._d_out = None
            self._h_in = self._h_out = None
            self._stream = self._context = self._engine = self._runtime = None
            self._cuda = None
            cuda.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def dims_tuple(dims: Sequence[int] | trt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` (indexable, not declared iterable) or a list of ints as a tuple of ints."""
    return tuple(int(dims[i]) for i in range(len(dims)))


# ----------------------------------------------------------------------------------------------------------------
# registry entry
# ----------------------------------------------------------------------------------------------------------------


def _present(bundle_dir: Path | None, precision: str | None, providers: tuple[str, ...] | None) -> Presence:
    if bundle_dir is None:  # no bundle to match a plan against: is TensorRT on a GPU here at all?
        why = probe()["reason"]
        return Presence(why is None, why or "")
    ok, why = available(bundle_dir, precision)
    warning = None
    if not ok and any(Path(bundle_dir).glob(ENGINE_GLOB)):
        # the bundle ships a plan this machine cannot use (another GPU or TensorRT): say so, with the fix
        warning = f"the bundle's TensorRT plan is not used: {why}"
    return Presence(ok, "" if ok else why, warning)


def _build(
    bundle_dir: Path,
    manifest: Manifest,
    precision: str | None = None,
    threads: int | None = None,
    providers: tuple[str, ...] | None = None,
) -> TensorRTBackend:
    return TensorRTBackend(bundle_dir, manifest, precision=precision, threads=threads)


register(
    BackendEntry(
        variant="tensorrt",
        backend="tensorrt",
        device="cuda",
        precisions=("fp16", "fp32", "int8"),
        # the best plan in the bundle that matches this machine, FP16 before FP32; an INT8 plan only when asked
        preferred=lambda: (None,),
        present=_present,
        build=_build,
        parity_label=lambda info: "tensorrt",
        rank=lambda precision, preferred: 0,
        bench=(("tensorrt", None),),
        distributions=("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    )
)
