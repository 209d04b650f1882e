"""The backend contract and the registry: what a backend is, and the one table every part reads.

A backend is one file in ``runtime/backends/`` (``<name>_backend.py``) that defines a class with the ``Backend``
methods and calls ``register`` with a ``BackendEntry`` per variant it offers (ONNX Runtime offers two: on a GPU
provider and on the CPU). ``registry()`` imports every such file (they import their heavy library only when a
backend is built or probed) and returns the entries in the order ``backend="auto"`` tries them.
``runtime.load`` / auto, the benchmark, the exporter's parity run and every command line's ``--backend``
choices read it, so adding a backend is one new file and nothing else:

    python -c "import runtime.backends as b; print(b.registry())"

lists every variant with its precisions and whether it is present here, and why not.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@runtime_checkable
class Backend(Protocol):
    """A bundle loaded on one backend. ``embed``: preprocessed float32 NHWC -> (N, dim) float32;
    ``score_embeddings``: (N, dim) x 2 -> (N,) scores in the manifest's units (the bundle's head or distance);
    ``info``: backend, provider, precision, device; ``close``: release what it holds; ``thread_safe``: whether
    ``embed`` may run from several threads at once (the verifier takes a lock when it is False)."""

    thread_safe: bool

    def embed(self, x: np.ndarray) -> np.ndarray: ...

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Presence:
    """Whether a variant can run here (for a bundle and a precision), one line why not, and a ``warning`` to say
    even when the caller moves on (a TensorRT plan in the bundle that was built for another GPU)."""

    ok: bool
    why: str = ""
    warning: str | None = None


@dataclass(frozen=True)
class BackendEntry:
    """One variant of a backend: everything the runtime, the benchmark, the exporter and the CLIs need to know.

    variant: what auto orders and reports ("onnxruntime-cpu"); backend: what ``backend=`` names ("onnxruntime");
    device: "cpu" or "cuda"; precisions: what it runs when asked; preferred: the precisions worth trying here when
    the caller names none, fastest first (None: the backend picks, e.g. the best TensorRT plan);
    present(bundle_dir, precision, providers) -> Presence; build(bundle_dir, manifest, precision=, threads=,
    providers=) -> Backend; parity_label(info) -> the name its parity rows carry; rank(precision, preferred) ->
    its place in auto's order (lower is tried first: faster); bench: the benchmark's rows, (name, precision);
    distributions: the packages whose version a cached parity result depends on; serves_providers: for a backend
    that takes execution providers (ONNX Runtime), whether this variant is the one that runs a given list.
    """

    variant: str
    backend: str
    device: str
    precisions: tuple[str, ...]
    preferred: Callable[[], tuple[str | None, ...]]
    present: Callable[[Path | None, str | None, tuple[str, ...] | None], Presence]
    build: Callable[..., Backend]
    parity_label: Callable[[dict[str, Any]], str]
    rank: Callable[[str | None, tuple[str | None, ...]], int]
    bench: tuple[tuple[str, str | None], ...] = field(default=())
    distributions: tuple[str, ...] = field(default=())  # the pip packages that may provide its library
    serves_providers: Callable[[tuple[str, ...]], bool] | None = None  # takes execution providers: these?

    def describe(self, bundle_dir: Path | None = None) -> str:
        """One line: variant, device, precisions, present here or why not."""
        try:
            p = self.present(bundle_dir, None, None)
            here = "present" if p.ok else f"not present: {p.why}"
        except Exception as e:  # noqa: BLE001 - a probe that crashes means "not usable here"
            here = f"not present: the probe raised {type(e).__name__}: {e}"
        return f"{self.variant:16s} backend={self.backend:12s} {self.device:4s} {','.join(self.precisions):15s} {here}"


ENTRIES: dict[str, BackendEntry] = {}  # variant -> entry, in registration order; filled by the backend modules
_discovered = False


def register(entry: BackendEntry) -> BackendEntry:
    """Add a variant to the registry (each backend module calls this for its variants at import)."""
    if entry.variant in ENTRIES and ENTRIES[entry.variant] is not entry:
        raise ValueError(f"backend variant {entry.variant!r} is already registered")
    ENTRIES[entry.variant] = entry
    return entry


def discover() -> None:
    """Import every ``runtime/backends/*_backend.py`` once, so each registers its variants."""
    global _discovered
    if _discovered:
        return
    import runtime.backends as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.endswith("_backend"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    _discovered = True


class Registry(tuple):
    """The registered variants in auto's order (a tuple of ``BackendEntry``); prints as a table."""

    def __str__(self) -> str:
        return "\n".join(e.describe() for e in self)

    __repr__ = __str__


def registry(precision: str | None = None) -> Registry:
    """Every registered variant, in the order auto tries them for ``precision`` (ties: the order of ``registered()``)."""
    discover()
    entries = list(registered())
    return Registry(sorted(entries, key=lambda e: (e.rank(precision, e.preferred()), entries.index(e))))


def entry(variant: str) -> BackendEntry:
    """The registered variant named ``variant``; ValueError naming the known ones."""
    discover()
    if variant not in ENTRIES:
        raise ValueError(f"backend variant {variant!r}: expected one of {', '.join(ENTRIES)}")
    return ENTRIES[variant]


def backend_names() -> tuple[str, ...]:
    """The names ``backend=`` and every ``--backend`` option take: "auto", then each backend (in ``registered()`` order:
    no backend is probed, so a command line's ``--help`` stays instant)."""
    return ("auto", *dict.fromkeys(e.backend for e in registered()))


def cpu_backends() -> tuple[str, ...]:
    """The backends with a CPU variant ("onnxruntime", "openvino"): what a CPU-only benchmark runs."""
    return tuple(dict.fromkeys(e.backend for e in registered() if e.device == "cpu"))


def registered() -> tuple[BackendEntry, ...]:
    """Every registered variant, by backend module name, then in the order its module registers them: stable
    whatever was imported first, for reports whose rows should not move with what this machine has."""
    discover()
    order = list(ENTRIES)  # within a module, the order it registers its variants in
    return tuple(sorted(ENTRIES.values(), key=lambda e: (e.build.__module__, order.index(e.variant))))


def bench_rows() -> tuple[tuple[str, BackendEntry, str | None], ...]:
    """The benchmark's rows, (name, entry, precision), in ``registered()`` order."""
    return tuple((name, e, prec) for e in registered() for name, prec in e.bench)
