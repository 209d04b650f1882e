"""The CUDA adapter (runtime/backends/cuda_memory.py, issue 19 item 3): which API is chosen, the reason strings and
the buffer arithmetic, pure; then each real implementation installed here up to its first call that needs a
driver. This machine has no NVIDIA driver: cuda-python answers cudaErrorInsufficientDriver and pycuda's extension
cannot load libcuda.so.1; both must come back as one "no CUDA GPU" line, never a traceback.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from importlib.util import find_spec

import numpy as np
import pytest

from runtime.backends import cuda_memory as cm
from runtime.backends import tensorrt_backend as trtb


def _installed(api: str) -> bool:
    return cm.installed_apis()[api] is not None


def _no_driver_here() -> None:
    dev, _label, why = cm.cuda_device()
    if dev is not None:
        pytest.skip(f"a CUDA GPU is here ({dev.name}): the no-driver answers cannot be observed")


# ---------------------------------------------------------------------------------------------------------------
# pure: the choice, the words, the sizes
# ---------------------------------------------------------------------------------------------------------------


def test_cuda_python_first_pycuda_when_only_it_is_there():
    both = {cm.CUDA_PYTHON: "13.5.0", cm.PYCUDA: "2026.1"}
    assert cm.choose_api(both) == cm.CudaChoice(cm.CUDA_PYTHON, "13.5.0")
    assert cm.choose_api(both).label == "cuda-python 13.5.0"
    only_pycuda = {cm.CUDA_PYTHON: None, cm.PYCUDA: "2025.1.2"}
    assert cm.choose_api(only_pycuda).label == "pycuda 2025.1.2"
    assert cm.choose_api(both, prefer=cm.PYCUDA).api == cm.PYCUDA
    assert cm.choose_api({cm.CUDA_PYTHON: "12.9.0", cm.PYCUDA: None}, prefer=cm.PYCUDA).api == cm.CUDA_PYTHON
    none = cm.choose_api({cm.CUDA_PYTHON: None, cm.PYCUDA: None})
    assert none.api is None and none.label is None
    assert none.reason == (
        "neither cuda-python nor pycuda is installed, so no CUDA GPU can be queried (pip install 'siamese-edge[gpu]')"
    )
    with pytest.raises(ValueError, match="CUDA API 'cupy': expected one of cuda-python, pycuda"):
        cm.choose_api(both, prefer="cupy")


def test_no_gpu_reasons_are_one_line():
    class Err:  # what a cudaError_t looks like to the adapter: an enum member with a name
        name = "cudaErrorNoDevice"

    assert cm.no_gpu_reason("cuda-python", "cudaGetDeviceCount", Err()) == (
        "no CUDA GPU found (cuda-python cudaGetDeviceCount: cudaErrorNoDevice)"
    )
    e = ImportError("libcuda.so.1: cannot open shared object file\nmore", name="_driver")
    assert cm.no_gpu_reason("pycuda", "import pycuda.driver", e) == (
        "no CUDA GPU found (pycuda import pycuda.driver: libcuda.so.1: cannot open shared object file)"
    )
    assert cm.no_gpu_reason("pycuda", "cuInit", RuntimeError("")) == "no CUDA GPU found (pycuda cuInit: RuntimeError)"


def test_staging_buffer_sizes():
    assert cm.staging_bytes(8, 2 * 2 * 3, 4) == (8 * 12 * 4, 8 * 4 * 4)
    assert cm.staging_bytes(32, 105 * 105 * 3, 4608) == (32 * 33075 * 4, 32 * 4608 * 4)
    with pytest.raises(ValueError, match="buffer sizes from batch 0"):
        cm.staging_bytes(0, 12, 4)


def test_installed_apis_are_found_without_importing_them():
    found = cm.installed_apis()
    assert set(found) == {cm.CUDA_PYTHON, cm.PYCUDA}
    assert (found[cm.PYCUDA] is not None) == (
        find_spec("pycuda") is not None and find_spec("pycuda.driver") is not None
    )


def test_neither_api_is_a_clean_reason_in_the_probe(monkeypatch):
    monkeypatch.setattr(cm, "installed_apis", lambda: {cm.CUDA_PYTHON: None, cm.PYCUDA: None})
    with pytest.raises(cm.CudaUnavailable, match="neither cuda-python nor pycuda is installed"):
        cm.open_cuda()
    info = trtb.probe()
    assert info["cuda_api"] is None and info["gpu"] is None
    assert "neither cuda-python nor pycuda is installed" in info["reason"] and "\n" not in info["reason"]


# ---------------------------------------------------------------------------------------------------------------
# each implementation, up to the first call that needs a driver
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not _installed(cm.CUDA_PYTHON), reason="cuda-python is not installed (a GPU extra installs it)")
def test_cuda_python_without_a_driver_says_no_cuda_gpu():
    _no_driver_here()
    cuda = cm.CudaPython(0, "x")
    assert cuda.label == "cuda-python x"
    with pytest.raises(cm.CudaUnavailable) as e:
        cuda.device_info()
    assert str(e.value) == "no CUDA GPU found (cuda-python cudaGetDeviceCount: cudaErrorInsufficientDriver)"
    with pytest.raises(RuntimeError, match=r"^CUDA cudaSetDevice failed: cudaErrorInsufficientDriver$"):
        with cuda.activate():
            pass
    with pytest.raises(RuntimeError, match=r"^CUDA cudaMalloc failed: cudaErrorInsufficientDriver$"):
        cuda.alloc(1024)
    dev, label, why = cm.cuda_device(prefer=cm.CUDA_PYTHON)
    assert dev is None and label == cm.current_choice(cm.CUDA_PYTHON).label and why == str(e.value)


@pytest.mark.skipif(
    not _installed(cm.PYCUDA), reason="pycuda is not installed (pip install 'siamese-edge[gpu-pycuda]')"
)
def test_pycuda_without_a_driver_says_no_cuda_gpu():
    """pycuda's extension links libcuda.so.1: without a driver its import fails; with a driver but no GPU, cuInit
    does. Either is the same one line."""
    _no_driver_here()
    with pytest.raises(cm.CudaUnavailable) as e:
        cuda = cm.Pycuda(0, "y")
        try:
            cuda.device_info()
        finally:
            cuda.close()
    why = str(e.value)
    assert "\n" not in why and "Traceback" not in why
    assert why.startswith("no CUDA GPU found (pycuda import pycuda.driver: libcuda.so.1") or why.startswith(
        "no CUDA GPU found (pycuda cuInit:"
    )
    dev, label, again = cm.cuda_device(prefer=cm.PYCUDA)
    assert dev is None and label.startswith("pycuda ") and again == why


@pytest.mark.skipif(
    not _installed(cm.PYCUDA), reason="pycuda is not installed (pip install 'siamese-edge[gpu-pycuda]')"
)
def test_with_only_pycuda_the_backend_takes_pycuda(monkeypatch):
    _no_driver_here()
    monkeypatch.setattr(cm, "installed_apis", lambda: {cm.CUDA_PYTHON: None, cm.PYCUDA: "2026.1"})
    info = trtb.probe()
    assert info["cuda_api"] == "pycuda 2026.1"
    assert "no CUDA GPU found (pycuda " in info["reason"] and "\n" not in info["reason"]


def test_the_probe_command_reports_the_cuda_api(capsys):
    from export.tensorrt_build import EXIT_UNAVAILABLE, main

    if not trtb.probe()["reason"]:
        pytest.skip("TensorRT and a GPU are here: --probe exits 0")
    assert main(["--probe"]) == EXIT_UNAVAILABLE
    printed = json.loads(capsys.readouterr().out)
    assert printed["cuda_api"] == cm.current_choice().label
    assert set(printed) == {"tensorrt", "cuda_api", "gpu", "compute_capability", "reason"}


def test_the_smoke_report_names_the_cuda_apis(tmp_path):
    from tools.gpu_smoke import step_cuda, step_installed

    out = step_installed({"work": tmp_path})
    assert out["cuda_api"] == cm.current_choice().label and out["cuda_apis"] == cm.installed_apis()
    if cm.cuda_device()[2]:  # no GPU: the CUDA step says why, in one line
        from tools.gpu_smoke import Skip

        with pytest.raises(Skip) as e:
            step_cuda({"work": tmp_path})
        assert str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# the backend's bookkeeping over the adapter: what close() hands back, also when the device cannot be made current
# (a recording adapter: no GPU result is produced or checked, only which calls the backend makes)
# ---------------------------------------------------------------------------------------------------------------


class Recorder(cm.CudaMemory):
    api = "recorder"

    def __init__(self, fail_activate: bool = False) -> None:
        super().__init__(0, "0")
        self.calls: list[str] = []
        self.fail_activate = fail_activate

    def device_info(self) -> cm.DeviceInfo:
        raise cm.CudaUnavailable("no CUDA GPU found (recorder)")

    def activate(self):
        @contextmanager
        def active():
            if self.fail_activate:
                raise RuntimeError("CUDA cudaSetDevice failed: cudaErrorDevicesUnavailable")
            self.calls.append("activate")
            yield

        return active()

    def alloc(self, nbytes: int) -> int:
        raise AssertionError("not used")

    def free(self, ptr: int) -> None:
        self.calls.append(f"free {ptr}")

    def pinned_floats(self, count: int) -> cm.PinnedFloats:
        raise AssertionError("not used")

    def free_pinned(self, buf: cm.PinnedFloats) -> None:
        self.calls.append(f"free_pinned {buf.ptr}")

    def create_stream(self) -> object:
        raise AssertionError("not used")

    def stream_handle(self, stream: object) -> int:
        raise AssertionError("not used")

    def destroy_stream(self, stream: object) -> None:
        self.calls.append(f"destroy_stream {stream}")

    def copy_to_device(self, dst, src, stream) -> None:
        raise AssertionError("not used")

    def copy_to_host(self, dst, src, stream) -> None:
        raise AssertionError("not used")

    def synchronize(self, stream: object) -> None:
        raise AssertionError("not used")

    def mem_info(self) -> tuple[int, int]:
        raise AssertionError("not used")

    def close(self) -> None:
        self.calls.append("close")


def _loaded(cuda: Recorder) -> trtb.TensorRTBackend:
    """A backend in the state ``_load`` leaves it in, without a GPU (its buffers are the recorder's numbers)."""
    b = trtb.TensorRTBackend.__new__(trtb.TensorRTBackend)
    b._lock, b._closed, b._cuda = threading.Lock(), False, cuda
    b._d_in, b._d_out = 11, 12
    b._h_in = cm.PinnedFloats(21, 4, np.zeros(1, np.float32))
    b._h_out = cm.PinnedFloats(22, 4, np.zeros(1, np.float32))
    b._stream, b._context, b._engine, b._runtime = "s", object(), object(), object()
    b._hwc, b.profile, b.dim = (2, 2, 3), trtb.BatchProfile(1, 1, 1), 4
    return b


@pytest.mark.parametrize("fail_activate", [False, True], ids=["device-current", "device-lost"])
def test_close_hands_everything_back_once(fail_activate):
    cuda = Recorder(fail_activate)
    b = _loaded(cuda)
    if fail_activate:
        with pytest.raises(RuntimeError, match="cudaSetDevice failed"):
            b.close()
        assert cuda.calls == ["close"]  # nothing can be freed on a device that cannot be made current
    else:
        b.close()
        assert cuda.calls == [
            "activate",
            "free 11",
            "free 12",
            "free_pinned 21",
            "free_pinned 22",
            "destroy_stream s",
            "close",
        ]
    assert b._cuda is None and b._context is None and b._engine is None and b._runtime is None
    assert (b._d_in, b._d_out, b._h_in, b._h_out, b._stream) == (None, None, None, None, None)
    b.close()  # idempotent: nothing more is freed
    assert cuda.calls.count("close") == 1
    with pytest.raises(RuntimeError, match="the TensorRT backend was closed"):
        b.embed(np.zeros((1, 2, 2, 3), np.float32))


@pytest.mark.gpu
@pytest.mark.parametrize("api", cm.API_ORDER)
def test_round_trips_on_the_gpu_through_each_api(api):
    """On a GPU: pinned and device buffers, a copy there and back on a stream, 20 times, memory back to its
    baseline, through each API installed (the smoke check's CUDA step)."""
    from tools.gpu_smoke import _round_trips

    if not _installed(api):
        pytest.skip(f"{api} is not installed")
    dev, _label, why = cm.cuda_device(prefer=api)
    if dev is None:
        pytest.skip(f"needs a CUDA GPU: {why}")
    cuda = cm.open_cuda(prefer=api)
    try:
        assert cuda.api == api
        out = _round_trips(cuda, n=1 << 16, cycles=20)
        assert out["cycles"] == 20
    finally:
        cuda.close()
