"""Which optional extra of the package provides which import, and the one line a command prints without it.

The core install (``pip install siamese-edge``) is the runtime and the camera: numpy, OpenCV, ONNX Runtime,
jsonschema, imagesize and tqdm. Everything else comes with an extra named for what it adds (pyproject.toml's
``[project.optional-dependencies]``; a test checks that this table and that file agree). A command run without
its extra exits 2 with ``error: ... pip install 'siamese-edge[train]'`` instead of an ImportError traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

PACKAGE = "siamese-edge"

# top-level import name -> (the distribution that provides it, the extra that installs it)
PROVIDERS: dict[str, tuple[str, str]] = {
    "tensorflow": ("tensorflow", "train"),
    "keras": ("keras", "train"),
    "h5py": ("h5py", "train"),
    "sklearn": ("scikit-learn", "train"),
    "matplotlib": ("matplotlib", "train"),
    "tf2onnx": ("tf2onnx", "export"),
    "onnx": ("onnx", "export"),
    "onnxslim": ("onnxslim", "export"),
    "openvino": ("openvino", "openvino"),
    "tensorrt": ("tensorrt-cu13", "gpu-cuda13"),  # [gpu] is [gpu-cuda13]; CUDA 12 / JetPack 6: [gpu-cuda12]
    "cuda": ("cuda-python", "gpu-cuda13"),
    "pycuda": ("pycuda", "gpu-pycuda"),  # instead of cuda-python (runtime.backends.cuda_memory takes either)
    "tritonclient": ("tritonclient", "triton"),  # runtime.remote (a client of a Triton server)
}

F = TypeVar("F", bound=Callable[..., int])


def install_command(extra: str) -> str:
    """``pip install 'siamese-edge[extra]'`` (quoted, so it pastes into any shell)."""
    return f"pip install '{PACKAGE}[{extra}]'"


def missing_extra(error: ImportError, extra: str | None = None) -> str | None:
    """The one-line explanation for an import that an extra provides (``extra``: the one the command needs, else
    the one that provides the missing module); None for any other ImportError, which is a bug, not a setup."""
    name = getattr(error, "name", None) or ""
    top = name.split(".")[0]
    if top not in PROVIDERS:
        return None
    dist, provider = PROVIDERS[top]
    extra = extra or provider
    return f"this needs the [{extra}] extra ({dist} is not installed here): {install_command(extra)}"


def explain_missing_extras(extra: str | None = None) -> Callable[[F], F]:
    """Decorate a command line's ``main``: a missing optional dependency is one ``error:`` line and exit 2.

    ``extra`` names what the whole command needs (``python -m export.build``: "export"), so the user installs
    it once instead of meeting its dependencies one at a time.
    """

    def decorate(main: F) -> F:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except ImportError as e:
                message = missing_extra(e, extra)
                if message is None:
                    raise
                print(f"error: {message}", file=sys.stderr)
                return 2

        return wrapper  # type: ignore[return-value]

    return decorate
