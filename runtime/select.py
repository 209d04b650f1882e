"""Which backend runs a bundle: candidates in order, what parity says about each, and the choice.

``backend="auto"`` walks the backend registry (``runtime.backends.registry()``) in its order, fastest first (a
TensorRT plan for this GPU, ONNX Runtime on a GPU provider, OpenVINO where the CPU has native bf16, ONNX Runtime
on the CPU), and takes the first candidate that

1. is present here (its registry entry's ``present`` says yes; for TensorRT that includes a plan built for this
   GPU and TensorRT version: a stale plan is the TensorRT backend's refusal, surfaced as a warning, and the walk
   goes on),
2. loads, and
3. passes parity for the bundle: the bundle's ``parity.json`` says PASSED for that backend and precision,
   or, for a backend/precision the export did not measure, a check against ``reference.npz`` run once at
   load (and cached, see ``runtime.verifier``) passes. A FAILED row in ``parity.json`` is never overridden.

An explicit backend (``backend="onnxruntime"`` ...) is used if it loads, parity or not: the user asked for
it; the verifier reports what is known about its parity and ``--parity`` measures it.

Everything here is pure logic over injected callables (``select``), so it is tested without GPUs; the
verifier wires it to the registry's entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runtime.backends.base import PRECISIONS, BackendEntry, backend_names, entry, registered
from runtime.bundle.layout import BundleError
from runtime.parity import ParityResult
from runtime.speed import TIE_RATIO, Speed, fastest_first, option_key


class BackendUnavailable(RuntimeError):
    """No backend (or not the one asked for) can run this bundle here; the message says why, per candidate."""


@dataclass(frozen=True)
class Candidate:
    entry: BackendEntry  # the registry's variant
    precisions: tuple[str | None, ...]  # to try, best first; None lets the backend pick
    providers: tuple[str, ...] | None = None  # for entries that take execution providers (ONNX Runtime)

    @property
    def variant(self) -> str:
        return self.entry.variant

    @property
    def backend(self) -> str:
        return self.entry.backend


@dataclass(frozen=True)
class Verdict:
    """What is known about a loaded backend's parity: passed True/False/None (unknown), where from, a summary."""

    passed: bool | None
    source: str  # "parity.json" | "checked at load" | "checked at load (cached)" | "not checked"
    detail: str = ""
    result: dict[str, Any] | None = None  # ParityResult.to_dict() when measured here
    threshold: float | None = None  # parity refitted the threshold for this precision (ParityResult.threshold)

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
    order: tuple[str, ...] = ()  # the registry's order of the candidates (auto's tie-breaker)
    timings: dict[str, float | None] = field(default_factory=dict)  # ms per pair by option key, when ranked by speed
    timing_source: str | None = None  # "measured at load", "cached", "parity.json"

    @property
    def reason(self) -> str:
        """Why this backend: one sentence a human reads (also in ``Verifier.info()``)."""
        chosen = f"{self.candidate.variant} {self.precision}"
        if self.requested == "auto" and self.timings:
            measured = ", ".join(
                f"{k} {v:.3g} ms"
                for k, v in sorted(self.timings.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))
                if v is not None
            )
            head = (
                f"auto: {chosen} is the fastest backend here that passes parity for this bundle (a pair: {measured}; "
                f"{self.timing_source}; ties within {TIE_RATIO:.2f}x keep the order {' > '.join(self.order)}; "
                f"{self.verdict.describe()})"
            )
        elif self.requested == "auto":
            head = (
                f"auto: {chosen} is the first backend in the registry's order present here that passes parity for "
                f"this bundle (order {' > '.join(self.order)}; timing off; {self.verdict.describe()})"
            )
        else:
            head = f"asked for backend={self.requested!r}: {chosen} ({self.verdict.describe()})"
        skipped = [a.describe() for a in self.attempts if a.outcome != "chosen"]
        return head + (f"; not taken: {'; '.join(skipped)}" if skipped else "")


def check_request(backend: str, precision: str | None) -> None:
    names = backend_names()
    if backend not in names:
        raise ValueError(f"backend {backend!r}: expected one of {', '.join(names)}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")


def candidates(
    backend: str = "auto",
    precision: str | None = None,
    providers: Iterable[str] | None = None,
    module_precisions: dict[str, tuple[str | None, ...]] | None = None,
) -> list[Candidate]:
    """The candidates to try, in order (the registry's, for this precision), each with the precisions to try.

    ``providers`` (execution provider names) pins the backend to those providers: the candidates are the
    entries that say they serve them (``BackendEntry.serves_providers``; ONNX Runtime's CPU or GPU variant). ``module_precisions`` overrides a variant's preferred
    precision order (what its entry would say on this machine, e.g. OpenVINO without bf16 hardware).
    """
    check_request(backend, precision)
    override = module_precisions or {}
    entries = list(registered())  # its order breaks ties in auto's order below
    if providers is not None:
        providers = tuple(providers)
        if not providers:
            raise ValueError("providers: an empty list; leave it out to use the best ONNX Runtime providers present")
        takers = [e for e in entries if e.serves_providers is not None and backend in ("auto", e.backend)]
        entries = [e for e in takers if e.serves_providers(providers)]
        if not entries:
            who = ", ".join(sorted({e.backend for e in registered() if e.serves_providers is not None}))
            raise ValueError(
                f"providers {list(providers)}: execution providers are taken by {who}; backend={backend!r} does not take them"
            )
    elif backend != "auto":
        entries = [e for e in entries if e.backend == backend]

    # asked once per entry: OpenVINO's answer opens its runtime to read the CPU's capabilities
    preferred = {e.variant: tuple(override.get(e.variant) or e.preferred()) for e in entries}
    entries.sort(key=lambda e: e.rank(precision, preferred[e.variant]))
    out = []
    for e in entries:
        if precision is not None:
            precs: tuple[str | None, ...] = (precision,) if precision in e.precisions else ()
        else:
            precs = preferred[e.variant]
        out.append(Candidate(e, precs, providers if e.serves_providers is not None else None))
    return out


def verdict_from_row(row: ParityResult) -> Verdict:
    """The verdict of a ``parity.json`` row (``runtime.bundle.parity_report.ParityReport.row``)."""
    return Verdict(row.passed, "parity.json", row.brief(), threshold=row.threshold)


def select(
    cands: list[Candidate],
    requested: str,
    probe: Callable[[Candidate], tuple[bool, str]],
    build: Callable[[Candidate, str], Any],
    judge: Callable[[Candidate, str, Any], Verdict],
    gate: bool = True,
    warn: Callable[[str], None] | None = None,
    speed: Speed | None = None,
) -> Selection:
    """Take a candidate that is present, loads and (when ``gate``) passes parity: the first in ``cands``' order, or
    with ``speed`` the fastest of those measured here (``runtime.speed``; ties keep the order).

    probe(candidate) -> (present, why not); build(candidate, precision) -> backend (raises when it cannot;
    precision None lets the backend pick, and its ``info()["precision"]`` says what it took);
    judge(candidate, precision, backend) -> Verdict. A candidate that is present but fails to load, or fails
    parity, is reported through ``warn`` (a stale TensorRT plan lands here with its rebuild command).
    Raises BackendUnavailable listing every candidate's outcome when none qualifies, and BundleError when a build finds
    the bundle itself wrong (no backend could run it).
    """
    order = tuple(c.variant for c in cands)
    options = [(c, p) for c in cands for p in c.precisions]
    keys = [option_key(c.variant, p) for c, p in options]
    attempts: list[Attempt] = [
        Attempt(c.variant, None, "not present", "does not run the precision asked for")
        for c in cands
        if not c.precisions
    ]
    presence: dict[str, tuple[bool, str]] = {}

    def present(cand: Candidate) -> bool:
        if cand.variant not in presence:
            presence[cand.variant] = probe(cand)
            if not presence[cand.variant][0]:
                attempts.append(Attempt(cand.variant, None, "not present", presence[cand.variant][1]))
        return presence[cand.variant][0]

    def try_option(cand: Candidate, asked: str | None) -> tuple[Any, str, Verdict] | None:
        """Build and judge one option: (backend, precision, verdict) when it qualifies, else None (reported)."""
        try:
            backend = build(cand, asked)
        except BundleError:
            raise  # the bundle itself is wrong (a graph that does not fit its manifest): no backend can run it
        except Exception as e:  # noqa: BLE001 - any failure to load means "next backend"; it is reported
            msg = str(e) or type(e).__name__
            attempts.append(Attempt(cand.variant, asked, "failed to load", msg))
            if warn:
                what = cand.variant + (f" {asked}" if asked else "")
                warn(f"{what} is present but did not load: {msg}; trying the next backend")
            return None
        prec = asked or backend_precision(backend)
        verdict = judge(cand, prec, backend)
        if verdict.passed or not gate:
            return backend, prec, verdict
        outcome = "parity failed" if verdict.passed is False else "parity unknown"
        attempts.append(Attempt(cand.variant, prec, outcome, verdict.describe()))
        if warn and verdict.passed is False:
            warn(f"{cand.variant} {prec} fails parity for this bundle ({verdict.describe()}); not used")
        _close(backend)
        return None

    def chosen(i: int, got: tuple[Any, str, Verdict], timings: dict[str, float | None] | None = None) -> Selection:
        backend, prec, verdict = got
        cand = options[i][0]
        attempts.append(Attempt(cand.variant, prec, "chosen", verdict.describe()))
        return Selection(
            backend, cand, prec, verdict, requested, attempts, order, timings or {}, speed and speed.source
        )

    present_keys = [k for (c, _), k in zip(options, keys) if present(c)] if speed is not None else []
    if speed is not None and present_keys and all(k in speed.known for k in present_keys):
        # every option here was timed before (parity.json from this machine, or the cache): try them fastest first
        for key in fastest_first(present_keys, speed.known):
            i = keys.index(key)
            got = try_option(*options[i])
            if got is not None:
                return chosen(i, got, dict(speed.known))
    elif speed is not None:
        # time every option that qualifies, then take the fastest (ties: the order); the others are closed
        qualified: dict[str, tuple[int, tuple[Any, str, Verdict]]] = {}
        timings: dict[str, float | None] = {k: None for k in present_keys}
        for i, ((cand, asked), key) in enumerate(zip(options, keys)):
            if key not in timings:
                continue
            got = try_option(cand, asked)
            if got is not None:
                qualified[key] = (i, got)
                known = speed.known.get(key)
                timings[key] = known if known is not None else speed.time(got[0])
        speed.save(timings)
        ranked = [k for k in fastest_first(present_keys, timings) if k in qualified]
        if ranked:
            for key in ranked[1:]:
                _close(qualified[key][1][0])
            return chosen(qualified[ranked[0]][0], qualified[ranked[0]][1], timings)
    else:
        for i, (cand, asked) in enumerate(options):  # probed as the walk reaches them: the reason reads in order
            if present(cand):
                got = try_option(cand, asked)
                if got is not None:
                    return chosen(i, got)
    what = "no backend can" if requested == "auto" else f"backend={requested!r} cannot"
    lines = "; ".join(a.describe() for a in attempts) or "no candidates"
    raise BackendUnavailable(f"{what} run this bundle here: {lines}")


def _close(backend: Any) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


def backend_precision(backend: Any) -> str:
    """The precision a backend took when it was left to pick (its ``info()["precision"]``)."""
    info = backend.info() if hasattr(backend, "info") else {}
    return str(info.get("precision") or getattr(backend, "precision", None) or "fp32")


# --- labels ---------------------------------------------------------------------------------------------------


def parity_label(variant: str, info: dict[str, Any]) -> str:
    """The name a variant's parity rows carry ("onnxruntime-cpu", "onnxruntime-cuda", "openvino-cpu", "tensorrt"),
    from its backend's ``info()`` (``parity_label`` wins when a backend states it); the registry entry decides."""
    if info.get("parity_label"):
        return str(info["parity_label"])
    return entry(variant).parity_label(info)
