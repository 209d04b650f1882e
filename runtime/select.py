"""Which backend runs a bundle: candidates in order, what parity says about each, and the choice.

``backend="auto"`` walks ``AUTO_ORDER`` (fastest first: a TensorRT plan for this GPU, ONNX Runtime on a GPU
provider, OpenVINO, ONNX Runtime on the CPU) and takes the first candidate that

1. is present here (its module imports and its ``available()`` says yes; for TensorRT that includes a plan
   built for this GPU and TensorRT version: a stale plan is the TensorRT backend's refusal, surfaced as a
   warning, and the walk goes on),
2. loads, and
3. passes parity for the bundle: the bundle's ``parity.json`` says PASSED for that backend and precision,
   or, for a backend/precision the export did not measure, a check against ``reference.npz`` run once at
   load (and cached, see ``runtime.verifier``) passes. A FAILED row in ``parity.json`` is never overridden.

An explicit backend (``backend="onnxruntime"`` ...) is used if it loads, parity or not: the user asked for
it; the verifier reports what is known about its parity and ``--parity`` measures it.

Everything here is pure logic over injected callables (``select``), so it is tested without GPUs; the
verifier wires it to the real modules. Backend modules are imported lazily, by path, in ``import_backend``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")

# variants, fastest first (issue 5: plan for this GPU > ONNX Runtime GPU > OpenVINO > ONNX Runtime CPU)
TENSORRT, ORT_GPU, OPENVINO, ORT_CPU = "tensorrt", "onnxruntime-gpu", "openvino", "onnxruntime-cpu"
AUTO_ORDER = (TENSORRT, ORT_GPU, OPENVINO, ORT_CPU)

MODULES = {
    "tensorrt": "runtime.backends.tensorrt_backend",
    "onnxruntime": "runtime.backends.onnxruntime_backend",
    "openvino": "runtime.backends.openvino_backend",
}
VARIANT_BACKEND = {TENSORRT: "tensorrt", ORT_GPU: "onnxruntime", OPENVINO: "openvino", ORT_CPU: "onnxruntime"}

# precisions each variant can run, best (fastest) first, when the caller does not name one; None: the backend
# picks (TensorRT: the best plan in the bundle that matches this machine, FP16 before FP32)
DEFAULT_PRECISIONS: dict[str, tuple[str | None, ...]] = {
    TENSORRT: (None,),
    ORT_GPU: ("fp16", "fp32"),
    OPENVINO: ("bf16", "fp32"),
    ORT_CPU: ("fp32",),  # the CPU provider computes FP16 graphs in FP32: nothing to gain
}
SUPPORTED_PRECISIONS = {
    TENSORRT: ("fp16", "fp32"),
    ORT_GPU: ("fp16", "fp32"),
    OPENVINO: ("bf16", "fp16", "fp32"),
    ORT_CPU: ("fp32", "fp16"),
}

# ONNX Runtime's execution providers: the GPU ones best first, then the CPU one every build has
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"


class BackendUnavailable(RuntimeError):
    """No backend (or not the one asked for) can run this bundle here; the message says why, per candidate."""


@dataclass(frozen=True)
class Candidate:
    variant: str  # one of AUTO_ORDER
    precisions: tuple[str | None, ...]  # to try, best first; None lets the backend pick
    providers: tuple[str, ...] | None = None  # ONNX Runtime only

    @property
    def backend(self) -> str:
        return VARIANT_BACKEND[self.variant]

    @property
    def module(self) -> str:
        return MODULES[self.backend]


@dataclass(frozen=True)
class Verdict:
    """What is known about a loaded backend's parity: passed True/False/None (unknown), where from, a summary."""

    passed: bool | None
    source: str  # "parity.json" | "checked at load" | "checked at load (cached)" | "not checked"
    detail: str = ""
    result: dict[str, Any] | None = None  # ParityResult.to_dict() when measured here

    def describe(self) -> str:
        status = {True: "PASSED", False: "FAILED", None: "unknown"}[self.passed]
        return f"{self.source}: {status}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Attempt:
    variant: str
    precision: str | None
    outcome: str  # "chosen" | "not present" | "failed to load" | "parity failed"
    detail: str = ""

    def describe(self) -> str:
        what = self.variant + (f" {self.precision}" if self.precision else "")
        return f"{what}: {self.outcome}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Selection:
    backend: Any
    candidate: Candidate
    precision: str
    verdict: Verdict
    requested: str
    attempts: list[Attempt] = field(default_factory=list)
    order: tuple[str, ...] = AUTO_ORDER  # the order the candidates were tried in

    @property
    def reason(self) -> str:
        """Why this backend: one sentence a human reads (also in ``Verifier.info()``)."""
        chosen = f"{self.candidate.variant} {self.precision}"
        if self.requested == "auto":
            head = (
                f"auto: {chosen} is the fastest backend present here that passes parity for this bundle "
                f"(order {' > '.join(self.order)}; {self.verdict.describe()})"
            )
        else:
            head = f"asked for backend={self.requested!r}: {chosen} ({self.verdict.describe()})"
        skipped = [a.describe() for a in self.attempts if a.outcome != "chosen"]
        return head + (f"; not taken: {'; '.join(skipped)}" if skipped else "")


def check_request(backend: str, precision: str | None) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")


def gpu_providers(available: Iterable[str]) -> tuple[str, ...] | None:
    """ONNX Runtime providers for the GPU variant (best first, CPU as the fallback for unsupported nodes), or
    None when this onnxruntime build has no GPU provider."""
    have = set(available)
    gpu = tuple(p for p in GPU_PROVIDERS if p in have)
    return (*gpu, CPU_PROVIDER) if gpu else None


def ort_variant(providers: Iterable[str]) -> str:
    return ORT_GPU if any(p in GPU_PROVIDERS for p in providers) else ORT_CPU


def candidates(
    backend: str = "auto",
    precision: str | None = None,
    providers: Iterable[str] | None = None,
    module_precisions: dict[str, tuple[str | None, ...]] | None = None,
) -> list[Candidate]:
    """The candidates to try, in order, each with the precisions to try in order.

    ``providers`` (ONNX Runtime provider names) pins ONNX Runtime to those providers; with ``backend="auto"``
    it means "ONNX Runtime, with these providers". ``module_precisions`` overrides a variant's default
    precision order (a backend module that knows better, e.g. OpenVINO without bf16 hardware).
    """
    check_request(backend, precision)
    if providers is not None:
        providers = tuple(providers)
        if not providers:
            raise ValueError("providers: an empty list; leave it out to use the best ONNX Runtime providers present")
        if backend not in ("auto", "onnxruntime"):
            raise ValueError(f"providers are ONNX Runtime execution providers; backend={backend!r} does not take them")
        variants: tuple[str, ...] = (ort_variant(providers),)
    elif backend == "auto":
        variants = AUTO_ORDER
        # OpenVINO beats ONNX Runtime on a CPU through native bf16 (AMX / AVX512-bf16); in fp32, or where bf16
        # is only emulated, ONNX Runtime CPU measured faster (omniglot 13 ms vs 33 ms at batch 32): try it first
        ov_precs = (module_precisions or {}).get(OPENVINO) or ()
        if precision not in (None, "bf16") or not ov_precs or ov_precs[0] != "bf16":
            variants = (TENSORRT, ORT_GPU, ORT_CPU, OPENVINO)
    elif backend == "onnxruntime":
        variants = (ORT_GPU, ORT_CPU)
    else:
        variants = (backend,)
    out = []
    for v in variants:
        if precision is not None:
            precs: tuple[str | None, ...] = (precision,) if precision in SUPPORTED_PRECISIONS[v] else ()
        else:
            precs = tuple((module_precisions or {}).get(v) or DEFAULT_PRECISIONS[v])
        out.append(Candidate(v, precs, providers if v in (ORT_GPU, ORT_CPU) else None))
    return out


def parity_row(report: dict[str, Any] | None, label: str, precision: str) -> dict[str, Any] | None:
    """The ``parity.json`` row measured on ``label`` (e.g. "onnxruntime-cpu") at ``precision``, or None.

    Rows that are estimates (the FP16 CPU emulation: note "estimated on CPU", label "fp16 emulated") are not
    a measurement of any real backend and never match.
    """
    for row in (report or {}).get("results", []):
        if row.get("backend") == label and row.get("precision") == precision and "estimat" not in row.get("note", ""):
            return row
    return None


def verdict_from_row(row: dict[str, Any]) -> Verdict:
    m = row.get("metrics", {})
    detail = ", ".join(f"{k} {m[k]:.3g}" for k in ("score_max_abs", "min_cosine") if k in m)
    return Verdict(row.get("status") == "PASSED", "parity.json", detail)


def select(
    cands: list[Candidate],
    requested: str,
    probe: Callable[[Candidate], tuple[bool, str]],
    build: Callable[[Candidate, str], Any],
    judge: Callable[[Candidate, str, Any], Verdict],
    gate: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Selection:
    """Walk ``cands`` in order and take the first that is present, loads and (when ``gate``) passes parity.

    probe(candidate) -> (present, why not); build(candidate, precision) -> backend (raises when it cannot;
    precision None lets the backend pick, and its ``info()["precision"]`` says what it took);
    judge(candidate, precision, backend) -> Verdict. A candidate that is present but fails to load, or fails
    parity, is reported through ``warn`` (a stale TensorRT plan lands here with its rebuild command).
    Raises BackendUnavailable listing every candidate's outcome when none qualifies.
    """
    attempts: list[Attempt] = []
    for cand in cands:
        if not cand.precisions:
            attempts.append(Attempt(cand.variant, None, "not present", "does not run the precision asked for"))
            continue
        present, why = probe(cand)
        if not present:
            attempts.append(Attempt(cand.variant, None, "not present", why))
            continue
        for asked in cand.precisions:
            try:
                backend = build(cand, asked)
            except Exception as e:  # noqa: BLE001 - any failure to load means "next backend"; it is reported
                msg = str(e) or type(e).__name__
                attempts.append(Attempt(cand.variant, asked, "failed to load", msg))
                if warn:
                    what = cand.variant + (f" {asked}" if asked else "")
                    warn(f"{what} is present but did not load: {msg}; trying the next backend")
                continue
            prec = asked or backend_precision(backend)
            verdict = judge(cand, prec, backend)
            if verdict.passed or not gate:
                attempts.append(Attempt(cand.variant, prec, "chosen", verdict.describe()))
                return Selection(backend, cand, prec, verdict, requested, attempts, tuple(c.variant for c in cands))
            outcome = "parity failed" if verdict.passed is False else "parity unknown"
            attempts.append(Attempt(cand.variant, prec, outcome, verdict.describe()))
            if warn and verdict.passed is False:
                warn(f"{cand.variant} {prec} fails parity for this bundle ({verdict.describe()}); not used")
            close = getattr(backend, "close", None)
            if callable(close):
                close()
    what = "no backend can" if requested == "auto" else f"backend={requested!r} cannot"
    lines = "; ".join(a.describe() for a in attempts) or "no candidates"
    raise BackendUnavailable(f"{what} run this bundle here: {lines}")


# --- the real modules ------------------------------------------------------------------------------------------


def import_backend(module_path: str) -> tuple[Any | None, str]:
    """Import a backend module by path; (module, "") or (None, why not) - never raises ImportError."""
    try:
        return importlib.import_module(module_path), ""
    except ModuleNotFoundError as e:
        if e.name and (e.name == module_path or module_path.startswith(e.name + ".")):
            return None, f"{module_path} is not part of this installation"
        return None, f"needs the {e.name or 'missing'} package (not installed)"
    except ImportError as e:
        return None, f"{module_path} does not import: {e}"


def backend_precision(backend: Any) -> str:
    info = backend.info() if hasattr(backend, "info") else {}
    return str(info.get("precision") or getattr(backend, "precision", None) or "fp32")


def module_available(module: Any, **context: Any) -> tuple[bool, str]:
    """A backend module's own ``available() -> (bool, why)``; a module without one is taken as present.

    ``context`` (``bundle_dir``, ``precision``) is passed to the parameters of those names that ``available``
    declares, so a backend can say whether it can run *this bundle* (TensorRT: a plan matching this machine).
    """
    fn = getattr(module, "available", None)
    if fn is None:
        return True, ""
    try:
        params = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in context.items() if k in params}
        got = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - a probe that crashes means "not usable here"
        return False, f"available() raised {type(e).__name__}: {e}"
    if isinstance(got, tuple):
        ok, why = (bool(got[0]), str(got[1]) if len(got) > 1 else "")
    else:
        ok, why = bool(got), ""
    return ok, why


def module_precisions(module: Any) -> tuple[str | None, ...] | None:
    """A module's preferred precision order here, if it exposes ``precisions()`` (e.g. bf16 only with AMX)."""
    fn = getattr(module, "precisions", None)
    if not callable(fn):
        return None
    try:
        got = tuple(p for p in fn() if p in PRECISIONS)
    except Exception:  # noqa: BLE001
        return None
    return got or None


def backend_class(module: Any) -> type:
    """The backend class in a module: ``module.Backend`` if defined, else the one class named ``*Backend``."""
    cls = getattr(module, "Backend", None)
    if isinstance(cls, type):
        return cls
    found = [
        obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and name.endswith("Backend") and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise BackendUnavailable(
            f"{module.__name__}: expected one backend class (named *Backend), found {[c.__name__ for c in found]}"
        )
    return found[0]


def parity_label(variant: str, info: dict[str, Any]) -> str:
    """The name a backend's parity row carries: "onnxruntime-cpu" (export's), "onnxruntime-cuda", "openvino-cpu",
    "tensorrt"; from the backend's ``info()`` (``parity_label`` wins when a backend states it)."""
    if info.get("parity_label"):
        return str(info["parity_label"])
    if variant in (ORT_CPU, ORT_GPU):
        provider = str(info.get("provider", CPU_PROVIDER))
        short = provider.replace("ExecutionProvider", "").lower() or "cpu"
        return f"onnxruntime-{short}"
    if variant == OPENVINO:
        return f"openvino-{str(info.get('device', 'cpu')).split('.')[0].split(' ')[0].lower()}"
    return variant
