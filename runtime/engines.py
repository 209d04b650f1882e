"""TensorRT plan identity and matching, pure logic: batch profiles, the cache key, file names, sidecars, and
whether a plan in a bundle may run on this GPU and TensorRT version.

A TensorRT plan only runs on the TensorRT version and GPU architecture that built it, for the graph, precision
and batch range it was built for. Everything that decides whether a plan may be (re)used lives here, without
TensorRT, so it is tested on any machine and shared by both sides: ``export.tensorrt_build`` names and keys
the plans it builds, ``runtime.backends.tensorrt_backend`` picks the one that matches this machine and refuses
the others with the command that rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_OUTPUT, INPUT_NAME
from runtime.fileio import sha256_file

PRECISIONS = ("fp16", "fp32", "int8")
# what a plan is taken for when no precision is asked (the backend picking, ``auto``): INT8 changes decisions near
# the threshold and its parity gate is provisional (runtime.parity), so an int8 plan runs only when int8 is asked for
UNASKED_PRECISIONS = ("fp16", "fp32")

MIN_TRT_MAJOR = 10
KEY_SCHEMA = 1  # bump to invalidate every cached engine when the key's meaning changes
KEY_LENGTH = 12  # hex characters of sha256 kept in the key and the file name

ENGINE_PREFIX = "embedding"
ENGINE_SUFFIX = ".plan"
ENGINE_GLOB = f"{ENGINE_PREFIX}.trt*{ENGINE_SUFFIX}"  # what a runtime looks for in a bundle
SIDECAR_SUFFIX = ".json"  # <plan>.json beside each plan
SIDECAR_FORMAT = "siamese-edge.engine/1"
_ENGINE_NAME = re.compile(
    r"^embedding\.trt(?P<trt>\d+(?:\.\d+)?)\.sm(?P<sm>\d+)\.(?P<precision>[a-z0-9]+)\.(?P<key>[0-9a-f]+)\.plan$"
)

BUILD_MODULE = "export.tensorrt_build"  # the command that (re)builds a plan where it will run


# ----------------------------------------------------------------------------------------------------------------
# batch profiles, versions, compute capabilities
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes a plan accepts (``min``..``max``) and the one it is tuned for (``opt``)."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or not (
            1 <= self.min <= self.opt <= self.max
        ):
            raise ValueError(
                f"batch profile {self.min}:{self.opt}:{self.max}: expected MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX"
            )

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """``"1:8:32"`` -> (1, 8, 32); ``"8"`` -> (1, 8, 8): any batch from 1 up to 8, tuned for 8."""
        expected = "expected MIN:OPT:MAX (e.g. 1:8:32) or N (= 1:N:N), with integers 1 <= MIN <= OPT <= MAX"
        parts = str(text).strip().split(":")
        try:
            values = [int(p.strip()) for p in parts]
        except ValueError:
            raise ValueError(f"batch profile {text!r}: {expected}") from None
        if len(values) == 1:
            values = [1, values[0], values[0]]
        if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
            raise ValueError(f"batch profile {text!r}: {expected}")
        return cls(*values)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchProfile:
        """The ``profile`` entry of a sidecar (``{"min": 1, "opt": 8, "max": 32, ...}``)."""
        try:
            return cls(int(d["min"]), int(d["opt"]), int(d["max"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"batch profile {d!r}: expected min, opt and max") from None

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"

    def shapes(self, input_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
        """The NHWC input shapes at min, opt and max batch (what the optimization profile is given)."""
        hwc = tuple(int(d) for d in input_shape)
        return {"min": (self.min, *hwc), "opt": (self.opt, *hwc), "max": (self.max, *hwc)}

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def check_input_shape(input_shape) -> tuple[int, int, int]:
    """An NHWC input shape without the batch: three positive integers, else ValueError."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input shape {input_shape!r}: expected (height, width, channels)") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input shape {input_shape!r}: expected (height, width, channels), positive integers")
    return shape  # type: ignore[return-value]


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    return precision


# a TensorRT version: dotted integers, then an optional pre-release or local tag as early-access wheels have
# ("10.0.0b6", "10.14.1.48.post1", "11.0.0ea"); "10.x" or "v10.3" are not versions
_TRT_VERSION = re.compile(r"(?P<num>\d+(?:\.\d+)*)(?P<tag>(?:[.-]?(?:a|b|rc|ea|dev|post)\d*)*(?:\+[0-9a-z.]+)?)")


def _split_trt_version(trt_version: str) -> tuple[tuple[int, ...], str]:
    text = str(trt_version).strip().lower()
    m = _TRT_VERSION.fullmatch(text)
    if not m:
        raise ValueError(
            f"TensorRT version {trt_version!r}: expected dotted integers such as 10.3.0 (optionally with a "
            "pre-release tag such as 10.0.0b6)"
        )
    return tuple(int(p) for p in m["num"].split(".")), m["tag"]


def parse_trt_version(trt_version: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> (10, 3, 0, 30); an early-access ``"10.0.0b6"`` -> (10, 0, 0): the numbers decide the API.
    ValueError for anything that does not start with dotted integers followed by at most a release tag."""
    return _split_trt_version(trt_version)[0]


def normalize_trt_version(trt_version: str) -> str:
    """``" 10.3.0.30 "`` -> ``"10.3.0.30"``, ``"10.0.0B6"`` -> ``"10.0.0b6"`` (how versions are compared and
    hashed: an early-access build is another release, its plans do not move to the final one)."""
    numbers, tag = _split_trt_version(trt_version)
    return ".".join(str(p) for p in numbers) + tag


def trt_version_from_int(value: int) -> str:
    """``getInferLibVersion()``'s number (major * 10000 + minor * 100 + patch, TensorRT 10 and 11) -> ``"10.3.0"``:
    the version of the library loaded, which may differ from the headers or Python module next to it."""
    v = int(value)
    if v < 10000:
        raise ValueError(f"TensorRT library version {value!r}: expected major * 10000 + minor * 100 + patch")
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def same_release(a: str, b: str) -> bool:
    """Whether two TensorRT versions name one release: equal on every number both state, at least major.minor.patch
    (``getInferLibVersion`` has no build number: ``"10.3.0"`` is ``"10.3.0.30"``), with the same release tag."""
    (na, ta), (nb, tb) = _split_trt_version(a), _split_trt_version(b)
    n = min(len(na), len(nb))
    return n >= 3 and na[:n] == nb[:n] and ta == tb


def check_compute_capability(compute_capability) -> tuple[int, int]:
    """(major, minor) of a CUDA GPU, e.g. (8, 7) for Orin; ValueError for anything else."""
    try:
        major, minor = (int(v) for v in compute_capability)
    except (TypeError, ValueError):
        raise ValueError(f"compute capability {compute_capability!r}: expected (major, minor)") from None
    if major < 1 or minor < 0:
        raise ValueError(f"compute capability {compute_capability!r}: expected (major, minor)")
    return major, minor


# ----------------------------------------------------------------------------------------------------------------
# the cache key and file names
# ----------------------------------------------------------------------------------------------------------------


def engine_cache_key(
    model_sha256: str,
    trt_version: str,
    compute_capability: tuple[int, int],
    precision: str,
    profile: BatchProfile,
    input_shape: tuple[int, int, int],
    fp32_pins: Sequence[str] = (),
    fp16_graph_sha256: str | None = None,
) -> str:
    """A short hex digest of everything that makes a plan valid: change any of it and the key changes.

    ``model_sha256`` is the hash of the ONNX file the plan is built from (for INT8, the QDQ graph
    embedding.int8.onnx: a recalibrated graph is another plan); ``trt_version`` the full version
    (plans do not move between TensorRT releases); the input name is included so a renamed input invalidates.
    A TensorRT 10 FP16 build from the FP32 graph also depends on the FP16 graph it reads its FP32 islands from:
    ``fp32_pins`` (the node names pinned, in order) and ``fp16_graph_sha256``. They enter the key only when given,
    so the keys of plans that never had them stay what they were.
    """
    sha = _hex_digest(model_sha256, "model sha256")
    parts: dict[str, Any] = {
        "schema": KEY_SCHEMA,
        "model_sha256": sha,
        "tensorrt": normalize_trt_version(trt_version),
        "compute_capability": list(check_compute_capability(compute_capability)),
        "precision": check_precision(precision),
        "profile": [profile.min, profile.opt, profile.max],
        "input": {"name": INPUT_NAME, "shape": list(check_input_shape(input_shape))},
    }
    pins = [str(n) for n in fp32_pins]
    if pins:
        parts["fp32_pins"] = pins
    if fp16_graph_sha256 is not None:
        parts["fp16_graph_sha256"] = _hex_digest(fp16_graph_sha256, "FP16 graph sha256")
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


def _hex_digest(value: str, what: str) -> str:
    sha = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,128}", sha):
        raise ValueError(f"{what} {value!r}: expected a hex digest")
    return sha


def trt_tag(trt_version: str) -> str:
    """``"10.8.0.43"`` -> ``"trt10.8"`` (major.minor; the full version is in the key and the sidecar)."""
    v = parse_trt_version(trt_version)
    return f"trt{v[0]}.{v[1] if len(v) > 1 else 0}"


def gpu_tag(compute_capability: tuple[int, int]) -> str:
    """(8, 7) -> ``"sm87"``, the GPU architecture a plan is built for (Orin is sm87)."""
    major, minor = check_compute_capability(compute_capability)
    return f"sm{major}{minor}"


def engine_file_name(trt_version: str, compute_capability: tuple[int, int], precision: str, key: str) -> str:
    """``embedding.trt10.8.sm87.fp16.<key>.plan``: the TensorRT version, GPU architecture and precision the plan
    is for, plus the cache key, so plans built for other profiles or models never take each other's place and a
    stale one is never picked by name alone."""
    if not re.fullmatch(r"[0-9a-f]+", key or ""):
        raise ValueError(f"engine key {key!r}: expected lowercase hex (from engine_cache_key)")
    return f"{ENGINE_PREFIX}.{trt_tag(trt_version)}.{gpu_tag(compute_capability)}.{check_precision(precision)}.{key}{ENGINE_SUFFIX}"


def sidecar_name(plan_name: str) -> str:
    """The JSON sidecar beside a plan: ``<plan>.json``."""
    return plan_name + SIDECAR_SUFFIX


def parse_engine_file_name(name: str) -> dict[str, str] | None:
    """The parts of a name written by ``engine_file_name`` (trt major.minor, sm, precision, key), else None."""
    m = _ENGINE_NAME.match(name)
    return m.groupdict() if m else None


def read_sidecar(plan_path: Path) -> dict[str, Any] | None:
    """The JSON sidecar of ``plan_path``, or None when it is missing or not a JSON object."""
    p = Path(plan_path)
    p = p.with_name(sidecar_name(p.name))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def engine_sidecar(
    plan_path: str | Path,
    key: str,
    trt_version: str,
    compute_capability: tuple[int, int],
    precision: str,
    source_onnx: str,
    source_sha256: str,
    input_shape: tuple[int, int, int],
    profile: BatchProfile,
    gpu: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON sidecar that describes a plan file already written at ``plan_path``: what ``check_plan`` reads.
    ``extra`` (strategy, workspace, timing cache, build time...) is recorded after the fields that decide reuse."""
    plan = Path(plan_path)
    hwc = check_input_shape(input_shape)
    return {
        "format": SIDECAR_FORMAT,
        "file": plan.name,
        "key": key,
        "plan_sha256": sha256_file(plan),
        "plan_bytes": plan.stat().st_size,
        "tensorrt": str(trt_version),
        "gpu": gpu,
        "compute_capability": list(check_compute_capability(compute_capability)),
        "precision": check_precision(precision),
        **({"strategy": extra.pop("strategy")} if "strategy" in extra else {}),
        "source_onnx": source_onnx,
        "source_sha256": source_sha256,
        "input": {"name": INPUT_NAME, "shape": [-1, *hwc], "layout": "NHWC", "dtype": "float32"},
        "output": {"name": EMBEDDING_OUTPUT, "dtype": "float32"},
        "profile": {**profile.to_dict(), "shapes": {k: list(v) for k, v in profile.shapes(hwc).items()}},
        **extra,
    }


def rebuild_command(bundle_dir: str | Path, precision: str = "fp16", profile: BatchProfile | None = None) -> str:
    """The command that builds a plan for this machine from the bundle (run it on the target itself)."""
    batch = str(profile) if profile is not None else "1:8:32"
    return f"python -m {BUILD_MODULE} --bundle {bundle_dir} --batch {batch} --precision {precision}"


# ----------------------------------------------------------------------------------------------------------------
# matching: may this plan run here?
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanTarget:
    """What a plan must match: the TensorRT version installed and the GPU's compute capability."""

    trt_version: str
    compute_capability: tuple[int, int]
    gpu_name: str | None = None

    def describe(self) -> str:
        gpu = (
            f"{self.gpu_name} ({gpu_tag(self.compute_capability)})"
            if self.gpu_name
            else gpu_tag(self.compute_capability)
        )
        return f"TensorRT {normalize_trt_version(self.trt_version)} on {gpu}"


@dataclass
class PlanCheck:
    """One plan file's verdict. ``reasons`` is empty when it may run here."""

    plan: Path
    sidecar: dict[str, Any] | None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def precision(self) -> str | None:
        if self.sidecar and isinstance(self.sidecar.get("precision"), str):
            return self.sidecar["precision"]
        parts = parse_engine_file_name(self.plan.name)
        return parts["precision"] if parts else None

    @property
    def profile(self) -> BatchProfile | None:
        try:
            return BatchProfile.from_dict((self.sidecar or {}).get("profile") or {})
        except ValueError:
            return None

    def summary(self) -> str:
        return f"{self.plan.name}: " + ("matches" if self.ok else "; ".join(self.reasons))


def find_plans(bundle_dir: str | Path) -> list[Path]:
    """The plan files in a bundle named by ``engine_file_name`` (a trtexec plan without a sidecar is not one)."""
    root = Path(bundle_dir)
    return sorted(p for p in root.glob(ENGINE_GLOB) if p.is_file() and parse_engine_file_name(p.name))


def check_plan(
    plan_path: str | Path,
    machine: PlanTarget,
    input_shape: tuple[int, int, int],
    precision: str | None = None,
    verify_bytes: bool = True,
) -> PlanCheck:
    """Whether ``plan_path`` may run on ``machine`` for a bundle whose input is ``input_shape`` (H, W, C).

    Every reason it may not is listed, in words a user can act on: another TensorRT version, another GPU
    architecture, another precision than asked, a source graph that changed since the build (its sha256), a
    cache key that does not recompute, plan bytes that are not the ones recorded. The cache key is recomputed
    from this machine's TensorRT version and compute capability, so a hand-edited sidecar cannot pass either.
    """
    plan = Path(plan_path)
    check = PlanCheck(plan, None)
    reasons = check.reasons
    parts = parse_engine_file_name(plan.name)
    if parts is None:
        reasons.append("not a plan name written by export.tensorrt_build (embedding.trt<ver>.sm<cc>.<prec>.<key>.plan)")
        return check
    side = read_sidecar(plan)
    check.sidecar = side
    if side is None:
        reasons.append(f"its sidecar {sidecar_name(plan.name)} is missing or not JSON")
        return check
    if side.get("format") != SIDECAR_FORMAT:
        reasons.append(f"sidecar format {side.get('format')!r}, this runtime reads {SIDECAR_FORMAT!r}")
        return check
    if side.get("file") != plan.name or side.get("key") != parts["key"]:
        reasons.append("its sidecar describes another plan (file name or key differ)")
        return check

    here_trt = normalize_trt_version(machine.trt_version)
    here_cc = check_compute_capability(machine.compute_capability)
    try:
        built_trt = normalize_trt_version(side.get("tensorrt", ""))
    except ValueError:
        built_trt = None
    if built_trt != here_trt:
        reasons.append(f"built with TensorRT {side.get('tensorrt')}, this machine has TensorRT {here_trt}")
    try:
        built_cc = check_compute_capability(side.get("compute_capability"))
    except ValueError:
        built_cc = None
    if built_cc != here_cc:
        built = gpu_tag(built_cc) if built_cc else repr(side.get("compute_capability"))
        on = f" ({side['gpu']})" if side.get("gpu") else ""
        here = f" ({machine.gpu_name})" if machine.gpu_name else ""
        reasons.append(f"built for {built}{on}, this GPU is {gpu_tag(here_cc)}{here}")
    plan_precision = side.get("precision")
    if plan_precision not in PRECISIONS:
        reasons.append(f"precision {plan_precision!r} in the sidecar, expected one of {PRECISIONS}")
    elif precision is not None and plan_precision != precision:
        reasons.append(f"a {plan_precision} plan, {precision} was asked for")
    elif precision is None and plan_precision not in UNASKED_PRECISIONS:
        reasons.append(
            f"an {plan_precision.upper()} plan, run only when asked for (precision={plan_precision!r}); unasked, "
            "FP16 or FP32 plans run"
        )

    hwc = check_input_shape(input_shape)
    shape = list(side.get("input", {}).get("shape", []))
    if shape[1:] != list(hwc):
        reasons.append(f"input shape {shape}, the bundle's input is [-1, {', '.join(map(str, hwc))}]")
    profile = check.profile
    if profile is None:
        reasons.append(f"batch profile {side.get('profile')!r} in the sidecar is not MIN:OPT:MAX")

    source = side.get("source_onnx")
    source_path = plan.parent / str(source) if source else None
    if source_path is None or Path(str(source)).name != str(source) or not source_path.is_file():
        reasons.append(f"its source graph {source!r} is not in the bundle")
        source_sha = None
    else:
        source_sha = sha256_file(source_path)
        if source_sha != side.get("source_sha256"):
            reasons.append(
                f"built from another {source} (sha256 {str(side.get('source_sha256'))[:12]}...), "
                f"the bundle's is {source_sha[:12]}..."
            )

    pins = side.get("fp32_pins") or []
    fp16_sha = None
    if side.get("fp16_graph_sha256") is not None:  # a TensorRT 10 FP16 plan that pinned the FP16 graph's islands
        fp16_path = plan.parent / EMBEDDING_FP16_ONNX
        fp16_sha = sha256_file(fp16_path) if fp16_path.is_file() else None
        if fp16_sha != side.get("fp16_graph_sha256"):
            reasons.append(
                f"its FP32 islands came from another {EMBEDDING_FP16_ONNX} (sha256 "
                f"{str(side.get('fp16_graph_sha256'))[:12]}...), the bundle's is "
                f"{fp16_sha[:12] + '...' if fp16_sha else 'missing'}"
            )
    if not isinstance(pins, list) or not all(isinstance(n, str) for n in pins):
        reasons.append(f"fp32_pins {pins!r} in the sidecar: expected a list of node names")

    if not reasons and source_sha is not None and profile is not None:
        key = engine_cache_key(source_sha, here_trt, here_cc, plan_precision, profile, hwc, pins, fp16_sha)
        if key != side.get("key"):
            reasons.append(f"its cache key {side.get('key')} does not recompute here ({key})")
    if not reasons and verify_bytes and sha256_file(plan) != side.get("plan_sha256"):
        reasons.append("the plan file's sha256 is not the one its sidecar records (changed or truncated)")
    return check


@dataclass
class PlanSelection:
    """The plan to run (or None) and the verdict on every plan in the bundle."""

    plan: PlanCheck | None
    checked: list[PlanCheck]

    def why_not(self) -> str:
        if not self.checked:
            return "no TensorRT plan in the bundle"
        return "no plan matches: " + " | ".join(c.summary() for c in self.checked)


def select_plan(
    bundle_dir: str | Path,
    machine: PlanTarget,
    input_shape: tuple[int, int, int],
    precision: str | None = None,
    verify_bytes: bool = True,
) -> PlanSelection:
    """The best matching plan in ``bundle_dir``: the asked precision (else FP16 before FP32; an INT8 plan only
    when int8 is asked), then the largest batch range. Plans for other GPUs or TensorRT versions are checked and
    reported, never chosen."""
    if precision is not None:
        check_precision(precision)
    checked = [check_plan(p, machine, input_shape, precision, verify_bytes) for p in find_plans(bundle_dir)]
    good = [c for c in checked if c.ok]
    order = {"fp16": 0, "fp32": 1}
    good.sort(key=lambda c: (order.get(c.precision or "", 9), -(c.profile.max if c.profile else 0), c.plan.name))
    return PlanSelection(good[0] if good else None, checked)


# ----------------------------------------------------------------------------------------------------------------
# running a plan: batches larger than its profile go in chunks
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """Rows ``start:stop`` of the batch, run as a batch of ``run`` (>= stop - start: padded up to the profile's
    minimum with zeros whose outputs are dropped)."""

    start: int
    stop: int
    run: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_chunks(n: int, profile: BatchProfile) -> list[Chunk]:
    """Split a batch of ``n`` images into runs the plan accepts: at most ``profile.max`` each, the last one padded
    up to ``profile.min`` when it is smaller. ``n == 0`` -> no runs."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"batch size {n!r}: expected an integer >= 0")
    chunks = []
    for start in range(0, n, profile.max):
        stop = min(start + profile.max, n)
        chunks.append(Chunk(start, stop, max(stop - start, profile.min)))
    return chunks
