"""Device memory, pinned host buffers, async copies and streams for the TensorRT backend, through cuda-python or
pycuda: one small adapter, two implementations.

Why two: cuda-python (``cuda.bindings.runtime``) is what the GPU extras install, but many Jetson set-ups already
have pycuda and no cuda-python. cuda-python is taken first; pycuda when only it is present. The choice, its
version and why nothing could be used are decided by pure functions here (``choose_api``, ``no_gpu_reason``,
``staging_bytes``), tested on the CPU; the two classes are thin over the libraries:

- cuda-python's runtime API, every call returning ``(cudaError_t, *values)``: ``cudaSetDevice``, ``cudaMalloc``,
  ``cudaMallocHost``, ``cudaStreamCreate``, ``cudaMemcpyAsync``, ``cudaStreamSynchronize``, ``cudaFree``,
  ``cudaFreeHost``, ``cudaStreamDestroy``, ``cudaGetDeviceCount``, ``cudaGetDeviceProperties``, ``cudaMemGetInfo``;
- pycuda's driver API with the device's primary context handled explicitly (what ``pycuda.autoprimaryctx`` does at
  import, but pushed and popped around each use, so any thread may call): ``cuda.init``, ``Device(i)
  .retain_primary_context()``, ``mem_alloc``, ``pagelocked_empty``, ``Stream``, ``memcpy_htod_async``,
  ``memcpy_dtoh_async``, ``mem_get_info``.

Both libraries are imported only when a backend opens, so importing this module costs nothing.
"""

from __future__ import annotations

import ctypes
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.extras import install_command

if TYPE_CHECKING:
    from cuda.bindings import runtime as cudart  # bound at run time by import_cudart()

CUDA_PYTHON = "cuda-python"
PYCUDA = "pycuda"
API_ORDER = (CUDA_PYTHON, PYCUDA)  # cuda-python first: the GPU extras install it
INSTALL_HINT = install_command("gpu")
FLOAT_BYTES = 4


class CudaUnavailable(RuntimeError):
    """No CUDA API, no driver or no device: the message is one line saying which."""


# ----------------------------------------------------------------------------------------------------------------
# which API, and the words for what is missing (pure)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CudaChoice:
    """The CUDA API the TensorRT backend uses here (``api`` None: neither is installed, ``reason`` says so)."""

    api: str | None
    version: str | None = None
    reason: str | None = None

    @property
    def label(self) -> str | None:
        """``cuda-python 13.5.0`` / ``pycuda 2026.1``, as ``info()`` and ``--probe`` report it."""
        return None if self.api is None else f"{self.api} {self.version or '(version unknown)'}"


def choose_api(installed: Mapping[str, str | None], prefer: str | None = None) -> CudaChoice:
    """cuda-python when installed, else pycuda; ``prefer`` (one of API_ORDER) first when it is installed.
    ``installed``: API name -> its version, None when it is not installed."""
    if prefer is not None and prefer not in API_ORDER:
        raise ValueError(f"CUDA API {prefer!r}: expected one of {', '.join(API_ORDER)}")
    order = ((prefer,) if prefer else ()) + tuple(a for a in API_ORDER if a != prefer)
    for api in order:
        if api in installed and installed[api] is not None:
            return CudaChoice(api, installed[api])
    return CudaChoice(
        None,
        reason=f"neither cuda-python nor pycuda is installed, so no CUDA GPU can be queried ({INSTALL_HINT})",
    )


def no_gpu_reason(api: str, what: str, detail: object) -> str:
    """One line: ``no CUDA GPU found (cuda-python cudaGetDeviceCount: cudaErrorInsufficientDriver)``."""
    named = None if isinstance(detail, BaseException) else getattr(detail, "name", None)  # a cudaError_t's name
    text = str(named or detail).strip().splitlines()
    return f"no CUDA GPU found ({api} {what}: {text[0] if text else type(detail).__name__})"


def staging_bytes(max_batch: int, per_image: int, dim: int) -> tuple[int, int]:
    """Bytes of the float32 input and output buffers for runs of up to ``max_batch`` images."""
    if max_batch < 1 or per_image < 1 or dim < 1:
        raise ValueError(f"buffer sizes from batch {max_batch}, {per_image} floats per image, dim {dim}")
    return max_batch * per_image * FLOAT_BYTES, max_batch * dim * FLOAT_BYTES


def _dist_version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _has_module(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def installed_apis() -> dict[str, str | None]:
    """API name -> version for those whose Python module is here (found, not imported: no driver is touched)."""
    have_cuda_python = _has_module("cuda.bindings.runtime") or _has_module("cuda.cudart")
    return {
        CUDA_PYTHON: (_dist_version("cuda-bindings", "cuda-python") or "unknown") if have_cuda_python else None,
        PYCUDA: (_dist_version("pycuda") or "unknown") if _has_module("pycuda.driver") else None,
    }


def current_choice(prefer: str | None = None) -> CudaChoice:
    """``choose_api`` over what is installed here."""
    return choose_api(installed_apis(), prefer)


# ----------------------------------------------------------------------------------------------------------------
# the adapter
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class PinnedFloats:
    """A page-locked host buffer of float32 seen as a flat numpy array; ``owner`` keeps pycuda's allocation."""

    ptr: int
    nbytes: int
    array: np.ndarray
    owner: object = None


@dataclass(frozen=True)
class DeviceInfo:
    """The CUDA device a backend runs on."""

    name: str
    compute_capability: tuple[int, int]


class CudaMemory(ABC):
    """What the TensorRT backend needs from CUDA. ``activate()`` wraps every use: it makes this device (and, for
    pycuda, its primary context) current in the calling thread, since the current device is per thread."""

    api: str
    version: str

    def __init__(self, device: int, version: str | None) -> None:
        self.device = int(device)
        self.version = version or "unknown"

    @property
    def label(self) -> str:
        return f"{self.api} {self.version}"

    @abstractmethod
    def device_info(self) -> DeviceInfo: ...

    @abstractmethod
    def activate(self) -> Any:
        """A context manager: this device current in this thread for the ``with`` body."""

    @abstractmethod
    def alloc(self, nbytes: int) -> int: ...

    @abstractmethod
    def free(self, ptr: int) -> None: ...

    @abstractmethod
    def pinned_floats(self, count: int) -> PinnedFloats: ...

    @abstractmethod
    def free_pinned(self, buf: PinnedFloats) -> None: ...

    @abstractmethod
    def create_stream(self) -> object: ...

    @abstractmethod
    def stream_handle(self, stream: object) -> int:
        """The ``cudaStream_t`` address, as TensorRT's ``execute_async_v3`` takes it."""

    @abstractmethod
    def destroy_stream(self, stream: object) -> None: ...

    @abstractmethod
    def copy_to_device(self, dst: int, src: np.ndarray, stream: object) -> None:
        """Async copy of the pinned ``src`` (all of it) to ``dst``, on ``stream``."""

    @abstractmethod
    def copy_to_host(self, dst: np.ndarray, src: int, stream: object) -> None:
        """Async copy into the pinned ``dst`` (all of it) from ``src``, on ``stream``."""

    @abstractmethod
    def synchronize(self, stream: object) -> None: ...

    @abstractmethod
    def mem_info(self) -> tuple[int, int]:
        """(free, total) bytes of device memory."""

    @abstractmethod
    def close(self) -> None:
        """Release what the adapter itself holds (pycuda: the primary context); idempotent."""


# -- cuda-python ---------------------------------------------------------------------------------------------------


def import_cudart() -> ModuleType:
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+), else the older ``cuda.cudart``; bound to
    this module's ``cudart``, which the adapter's calls go through (so mypy checks them against the bindings)."""
    global cudart
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        cudart = importlib.import_module("cuda.cudart")  # cuda-python < 12.6
    return cudart


def native_handle(obj: object) -> int:
    """The address behind a cuda-python object (a ``cudaStream_t``) as TensorRT's ``execute_async_v3`` takes it.
    cuda-bindings 12.9.1+ and 13 deprecate ``int(obj)`` for ``cuda.bindings.utils.get_cuda_native_handle``; older
    releases have only ``int``; plain ints (device pointers) pass through."""
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:  # cuda-python < 12.9.1: int() is the handle there, and not deprecated
        return int(obj)  # type: ignore[call-overload]
    return int(get_cuda_native_handle(obj))


class CudaPython(CudaMemory):
    """The adapter over cuda-python's runtime API."""

    api = CUDA_PYTHON

    def __init__(self, device: int = 0, version: str | None = None) -> None:
        super().__init__(device, version)
        import_cudart()

    def check(self, ret: tuple[Any, ...], what: str) -> Any:
        """The value(s) of a ``(cudaError_t, *values)`` result; RuntimeError naming the call and the error."""
        err, *rest = ret
        if err != cudart.cudaError_t.cudaSuccess:
            raise RuntimeError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else tuple(rest)

    def device_info(self) -> DeviceInfo:
        rt = cudart
        try:
            err, count = rt.cudaGetDeviceCount()
            if err != rt.cudaError_t.cudaSuccess:
                raise CudaUnavailable(no_gpu_reason(self.api, "cudaGetDeviceCount", err))
            if count <= self.device:
                raise CudaUnavailable(f"no CUDA GPU found ({count} CUDA devices)")
            err, prop = rt.cudaGetDeviceProperties(self.device)
            if err != rt.cudaError_t.cudaSuccess:
                raise CudaUnavailable(no_gpu_reason(self.api, "cudaGetDeviceProperties", err))
        except CudaUnavailable:
            raise
        except Exception as e:  # a driver that cannot be loaded raises instead of returning an error code
            raise CudaUnavailable(no_gpu_reason(self.api, type(e).__name__, e)) from None
        raw = prop.name
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return DeviceInfo(name.split("\x00", 1)[0].strip(), (int(prop.major), int(prop.minor)))

    @contextmanager
    def activate(self) -> Iterator[None]:
        self.check(cudart.cudaSetDevice(self.device), "cudaSetDevice")
        yield

    def alloc(self, nbytes: int) -> int:
        return int(self.check(cudart.cudaMalloc(int(nbytes)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        cudart.cudaFree(ptr)

    def pinned_floats(self, count: int) -> PinnedFloats:
        nbytes = int(count) * FLOAT_BYTES
        ptr = int(self.check(cudart.cudaMallocHost(nbytes), "cudaMallocHost"))
        array = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), (int(count),))
        return PinnedFloats(ptr, nbytes, array)

    def free_pinned(self, buf: PinnedFloats) -> None:
        cudart.cudaFreeHost(buf.ptr)

    def create_stream(self) -> object:
        stream: object = self.check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        return stream

    def stream_handle(self, stream: object) -> int:
        return native_handle(stream)

    def destroy_stream(self, stream: object) -> None:
        cudart.cudaStreamDestroy(stream)

    def copy_to_device(self, dst: int, src: np.ndarray, stream: object) -> None:
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(cudart.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, h2d, stream), "H2D copy")

    def copy_to_host(self, dst: np.ndarray, src: int, stream: object) -> None:
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(cudart.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, d2h, stream), "D2H copy")

    def synchronize(self, stream: object) -> None:
        self.check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def mem_info(self) -> tuple[int, int]:
        free, total = self.check(cudart.cudaMemGetInfo(), "cudaMemGetInfo")
        return int(free), int(total)

    def close(self) -> None:
        """Nothing to release: the runtime API's primary context lives as long as the process."""


# -- pycuda --------------------------------------------------------------------------------------------------------


class Pycuda(CudaMemory):
    """The adapter over pycuda's driver API: ``cuInit``, then the device's primary context, retained here and
    pushed/popped by ``activate`` (pycuda.autoinit would create a new context current in one thread only)."""

    api = PYCUDA

    def __init__(self, device: int = 0, version: str | None = None) -> None:
        super().__init__(device, version)
        try:
            self.drv: ModuleType = importlib.import_module("pycuda.driver")
        except ImportError as e:  # its extension links libcuda.so.1: no driver, no import
            raise CudaUnavailable(no_gpu_reason(self.api, "import pycuda.driver", e)) from None
        self._ctx: Any = None
        self._lock = threading.Lock()
        self._allocs: dict[int, Any] = {}  # pointer -> pycuda's DeviceAllocation, freed by free(pointer)

    def _context(self) -> Any:
        with self._lock:
            if self._ctx is None:
                drv = self.drv
                try:
                    drv.init()
                    count = drv.Device.count()
                    if count <= self.device:
                        raise CudaUnavailable(f"no CUDA GPU found ({count} CUDA devices)")
                    self._ctx = drv.Device(self.device).retain_primary_context()
                except CudaUnavailable:
                    raise
                except Exception as e:  # pycuda._driver.Error: cuInit failed (no driver / no device)
                    raise CudaUnavailable(no_gpu_reason(self.api, "cuInit", e)) from None
            return self._ctx

    def device_info(self) -> DeviceInfo:
        self._context()
        dev = self.drv.Device(self.device)
        major, minor = dev.compute_capability()
        return DeviceInfo(str(dev.name()), (int(major), int(minor)))

    @contextmanager
    def activate(self) -> Iterator[None]:
        ctx = self._context()
        ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

    def alloc(self, nbytes: int) -> int:
        mem = self.drv.mem_alloc(int(nbytes))
        ptr = int(mem)
        self._allocs[ptr] = mem
        return ptr

    def free(self, ptr: int) -> None:
        mem = self._allocs.pop(int(ptr), None)
        if mem is not None:
            mem.free()

    def pinned_floats(self, count: int) -> PinnedFloats:
        array = self.drv.pagelocked_empty(int(count), np.float32)
        return PinnedFloats(int(array.ctypes.data), int(array.nbytes), array, array.base)

    def free_pinned(self, buf: PinnedFloats) -> None:
        owner = buf.owner
        if owner is not None and hasattr(owner, "free"):
            owner.free()

    def create_stream(self) -> object:
        stream: object = self.drv.Stream()
        return stream

    def stream_handle(self, stream: object) -> int:
        return int(getattr(stream, "handle"))  # noqa: B009  (pycuda's Stream.handle: the CUstream address)

    def destroy_stream(self, stream: object) -> None:
        """pycuda destroys a stream when its object goes; nothing to call (the caller drops its reference)."""

    def copy_to_device(self, dst: int, src: np.ndarray, stream: object) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def copy_to_host(self, dst: np.ndarray, src: int, stream: object) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def synchronize(self, stream: object) -> None:
        getattr(stream, "synchronize")()  # noqa: B009

    def mem_info(self) -> tuple[int, int]:
        free, total = self.drv.mem_get_info()
        return int(free), int(total)

    def close(self) -> None:
        with self._lock:
            ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.detach()  # releases the primary context retained in _context


# ----------------------------------------------------------------------------------------------------------------
# opening one
# ----------------------------------------------------------------------------------------------------------------

IMPLEMENTATIONS: dict[str, type[CudaMemory]] = {CUDA_PYTHON: CudaPython, PYCUDA: Pycuda}


def open_cuda(device: int = 0, prefer: str | None = None) -> CudaMemory:
    """The adapter for the API ``current_choice`` picks; CudaUnavailable (one line) when none is installed."""
    choice = current_choice(prefer)
    if choice.api is None:
        raise CudaUnavailable(choice.reason or "no CUDA API")
    return IMPLEMENTATIONS[choice.api](device, choice.version)


def cuda_device(device: int = 0, prefer: str | None = None) -> tuple[DeviceInfo | None, str | None, str | None]:
    """(the device, the API label, None), or (None, the API label or None, why not): never raises for a missing
    driver or GPU, so the probe can say it in one line."""
    cuda: CudaMemory | None = None
    try:
        cuda = open_cuda(device, prefer)
        return cuda.device_info(), cuda.label, None
    except CudaUnavailable as e:
        return None, cuda.label if cuda is not None else current_choice(prefer).label, str(e)
    finally:
        if cuda is not None:
            cuda.close()
