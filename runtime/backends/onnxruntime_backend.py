"""ONNX Runtime backend: embedding.onnx for images, head.onnx (or the distance) for pairs of embeddings.

Providers, best first: TensorRT EP > CUDA EP > CPU (``runtime.select`` lists them). The CPU provider runs the
bundle's graphs as they are. With onnxruntime-gpu installed, the GPU providers get their options from
``provider_config``: on TensorRT 10 the TensorRT EP builds FP16 (``trt_fp16_enable``) from the FP32 graph, on
TensorRT 11 (no weak typing) it runs the FP16 graph; it has an optimization profile over the batch range and keeps
its engine and timing caches in a folder per ONNX Runtime and TensorRT release (under
``~/.cache/siamese-edge/ort-trt`` by default) so the build happens once per model, GPU and release; the CUDA EP runs
FP16 as the bundle's FP16 graph. The graph is chosen for the providers the session really got (``choose_graph``). On a GPU, inputs and outputs go through IO binding (the batch is
copied to the device once, the output is allocated there).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import BackendEntry, Presence, register
from runtime.bundle.graph_io import check_embedding_io, check_head_io, static
from runtime.bundle.layout import EMBEDDING_FP16_ONNX, EMBEDDING_OUTPUT, HEAD_INPUTS, INPUT_NAME, SCORE_OUTPUT
from runtime.bundle.manifest import Manifest, load_manifest
from runtime.engines import (
    MIN_TRT_MAJOR,
    normalize_trt_version,
    parse_trt_version,
    same_release,
    trt_version_from_int,
)
from runtime.heads import euclidean_distance

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
# preferred order when several are present: TensorRT EP (it compiles the graph into a TensorRT engine), CUDA EP, CPU
PROVIDER_ORDER = (*GPU_PROVIDERS, CPU_PROVIDER)
TRT_EP, CUDA_EP, CPU_EP = PROVIDER_ORDER
DEFAULT_BATCH_PROFILE = (1, 8, 32)  # the TensorRT EP's optimization profile when none is given (as export's)


def best_providers(available: list[str] | None = None) -> list[str]:
    """The providers to ask for, best first, among those this onnxruntime build has."""
    import onnxruntime as ort

    have = set(ort.get_available_providers() if available is None else available)
    return [p for p in PROVIDER_ORDER if p in have] or [CPU_EP]


def gpu_providers(available: list[str] | tuple[str, ...]) -> tuple[str, ...] | None:
    """Providers for the GPU variant (best first, CPU as the fallback for unsupported nodes), or None when this
    onnxruntime build has no GPU provider."""
    have = set(available)
    gpu = tuple(p for p in GPU_PROVIDERS if p in have)
    return (*gpu, CPU_PROVIDER) if gpu else None


def default_cache_dir() -> Path:
    """Where the TensorRT EP keeps engines and timing caches: ``$XDG_CACHE_HOME/siamese-edge/ort-trt``
    (``~/.cache/siamese-edge/ort-trt``); ``SIAMESE_EDGE_ORT_TRT_CACHE`` overrides it."""
    override = os.environ.get("SIAMESE_EDGE_ORT_TRT_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "siamese-edge" / "ort-trt"


def _default_split_cache() -> Path:
    import onnxruntime as ort

    return ort_trt_cache_dir(default_cache_dir(), ort.__version__, installed_trt_version())


def _provider_name(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else str(entry)


def order_providers(providers: list) -> list:
    """Providers (names or ``(name, options)``) ordered TensorRT EP > CUDA EP > CPU; others keep their place after."""
    rank = {p: i for i, p in enumerate(PROVIDER_ORDER)}
    return sorted(providers, key=lambda e: rank.get(_provider_name(e), len(PROVIDER_ORDER)))


def uses_gpu(providers) -> bool:
    """Whether the preferred provider of a providers list runs on a GPU."""
    ordered = order_providers(list(providers or []))
    return bool(ordered) and _provider_name(ordered[0]) in GPU_PROVIDERS


def _shape_spec(shape: tuple[int, ...]) -> str:
    return f"{INPUT_NAME}:" + "x".join(str(int(d)) for d in shape)


def provider_config(
    providers: list | None,
    precision: str = "fp32",
    input_shape: tuple[int, int, int] | None = None,
    batch_profile: tuple[int, int, int] = DEFAULT_BATCH_PROFILE,
    cache_dir: str | Path | None = None,
    device_id: int = 0,
    trt_major: int = MIN_TRT_MAJOR,
) -> list:
    """The ``providers`` argument for ``InferenceSession``: names ordered TensorRT EP > CUDA EP > CPU (unknown
    names keep their place after those), each GPU provider with its options; the CPU provider stays a plain name.

    TensorRT EP: ``trt_fp16_enable`` for fp16 on TensorRT 10 (``trt_major``; TensorRT 11 takes FP16 from the FP16
    graph, see ``choose_graph``), engine and timing caches in ``cache_dir`` (default: ``default_cache_dir()``
    split by ONNX Runtime and TensorRT release, ``ort_trt_cache_dir``), and, when ``input_shape`` (H, W, C) is given, an explicit profile over
    ``batch_profile`` (min, opt, max) so one engine serves every batch size up to max. CUDA EP: the device, and
    TF32 off for fp32 (``use_tf32=0``: Ampere+ would otherwise round FP32 convolutions to 10-bit mantissas).
    Entries already given as ``(name, options)`` keep their options (ours fill in what is missing).
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision {precision!r}: ONNX Runtime GPU providers run fp32 or fp16")
    out: list = []
    for entry in order_providers(list(providers) if providers else [CPU_EP]):
        name = _provider_name(entry)
        given = dict(entry[1]) if isinstance(entry, tuple) else {}
        if name == TRT_EP:
            cache = str(Path(cache_dir) if cache_dir is not None else _default_split_cache())
            opts: dict[str, Any] = {
                "device_id": int(device_id),
                "trt_fp16_enable": precision == "fp16" and trt_major <= MIN_TRT_MAJOR,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": cache,
            }
            if input_shape is not None:
                lo, opt, hi = (int(v) for v in batch_profile)
                if not 1 <= lo <= opt <= hi:
                    raise ValueError(f"batch profile {batch_profile}: expected 1 <= min <= opt <= max")
                hwc = tuple(int(d) for d in input_shape)
                opts["trt_profile_min_shapes"] = _shape_spec((lo, *hwc))
                opts["trt_profile_opt_shapes"] = _shape_spec((opt, *hwc))
                opts["trt_profile_max_shapes"] = _shape_spec((hi, *hwc))
            out.append((name, {**opts, **given}))
        elif name == CUDA_EP:
            opts = {"device_id": int(device_id)}
            if precision == "fp32":
                opts["use_tf32"] = 0  # FP32 parity (1e-4) needs real FP32 convolutions, not TF32 on Ampere+
            out.append((name, {**opts, **given}))
        else:
            out.append(entry)
    return out


# ----------------------------------------------------------------------------------------------------------------
# which graph a GPU session runs, and with which TensorRT (pure over versions and provider lists; tested on the CPU)
# ----------------------------------------------------------------------------------------------------------------

ORT_TRT11_FROM = (1, 27)  # the first ONNX Runtime whose TensorRT provider links TensorRT 11 (earlier ones: 10)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(version))[:3])


def expected_trt_major(ort_version: str, trt_version: str | None = None) -> int:
    """The TensorRT major version ONNX Runtime's TensorRT provider runs with: the one found (``trt_version``, e.g.
    the ``tensorrt`` module's, or the library the session loaded), else 10 before ONNX Runtime 1.27 and 11 from it."""
    if trt_version:
        return parse_trt_version(trt_version)[0]
    return 11 if _version_tuple(ort_version) >= ORT_TRT11_FROM else MIN_TRT_MAJOR


def ort_trt_cache_dir(root: str | Path, ort_version: str, trt_version: str | None) -> Path:
    """The TensorRT provider's engine and timing cache folder under ``root``, one per ONNX Runtime and TensorRT
    release (``ort1.31.1-trt11.4.0``): an engine cached by one release is never offered to another."""
    trt = normalize_trt_version(trt_version) if trt_version else "unknown"
    return Path(root) / f"ort{ort_version}-trt{trt}"


@dataclass(frozen=True)
class GraphChoice:
    """The embedding graph a session runs, whether the TensorRT provider is asked for FP16 (``trt_fp16_enable``,
    TensorRT 10 only) and the precision that really runs (what ``info()`` reports)."""

    file: str
    trt_fp16: bool
    precision: str


def choose_graph(
    manifest: Manifest,
    providers: list | tuple,
    precision: str,
    trt_major: int = MIN_TRT_MAJOR,
    bundle_dir: str | Path | None = None,
) -> GraphChoice:
    """The graph for the leading provider of ``providers`` (the session's own, after it was created).

    fp16 on the CUDA EP: the FP16 graph (it reduces no precision itself). fp16 on the TensorRT EP: TensorRT 10
    builds FP16 from the FP32 graph with ``trt_fp16_enable``; TensorRT 11 has no weak typing and would build that
    as FP32, so it runs the FP16 graph (RuntimeError when the bundle has none). Anything else runs the FP32 graph
    at fp32, the CPU provider included (a GPU session that fell back to it computes in FP32).
    """
    lead = _provider_name(providers[0]) if providers else CPU_EP
    fp16_file = manifest.fp16_file or EMBEDDING_FP16_ONNX  # the file name it has when it exists
    wants_fp16_graph = precision == "fp16" and (lead == CUDA_EP or (lead == TRT_EP and trt_major > MIN_TRT_MAJOR))
    if wants_fp16_graph:
        if bundle_dir is not None and not (Path(bundle_dir) / fp16_file).is_file():
            why = (
                f"TensorRT {trt_major} builds FP16 only from it" if lead == TRT_EP else "the CUDA EP runs FP16 from it"
            )
            raise RuntimeError(f"{Path(bundle_dir) / fp16_file}: missing ({why}); re-export the bundle with --fp16")
        return GraphChoice(fp16_file, False, "fp16")
    if precision == "fp16" and lead == TRT_EP:
        return GraphChoice(manifest.embedding_file, True, "fp16")
    return GraphChoice(manifest.embedding_file, False, "fp32")


def embedding_file_for(
    manifest: Manifest,
    providers,
    precision: str,
    bundle_dir: str | Path | None = None,
    trt_major: int = MIN_TRT_MAJOR,
) -> str:
    """Which embedding graph a session whose providers are ``providers`` runs (``choose_graph``'s file)."""
    try:
        return choose_graph(manifest, providers, precision, trt_major, bundle_dir).file
    except RuntimeError as e:
        raise FileNotFoundError(str(e)) from None


def loaded_trt_library(maps: str) -> str | None:
    """The libnvinfer this process has loaded, from the text of ``/proc/self/maps``; None when there is none."""
    found = re.findall(r"(\S*/libnvinfer\.so\.\d+[\d.]*)\s*$", maps, flags=re.MULTILINE)
    return found[0] if found else None


def session_trt_version() -> str | None:
    """The TensorRT version of the libnvinfer the TensorRT provider loaded into this process (its
    ``getInferLibVersion()``), None when none is loaded or this is not Linux."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    lib = loaded_trt_library(maps)
    if lib is None:
        return None
    import ctypes

    try:
        return trt_version_from_int(int(ctypes.CDLL(lib).getInferLibVersion()))
    except (OSError, AttributeError):
        return None


def installed_trt_version() -> str | None:
    """The ``tensorrt`` module's version when it imports (a guess at what the provider will load), else None."""
    try:
        import tensorrt
    except Exception:
        return None
    return str(getattr(tensorrt, "__version__", "")) or None


def make_session(
    model: str | Path | bytes, providers: list | None = None, threads: int | None = None, spin: bool = True
):
    """An ONNX Runtime session; ``spin=False``: its intra-op threads sleep between runs instead of spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=providers or best_providers())


def session_io(session) -> tuple[list, list]:
    """An ONNX Runtime session's inputs and outputs as (name, shape) with None for dynamic dimensions."""

    def io(args):
        return [(a.name, [static(d) for d in a.shape]) for a in args]

    return io(session.get_inputs()), io(session.get_outputs())


def _where(src) -> str:
    return "the embedding graph given as bytes" if isinstance(src, bytes) else str(src)


class CpuHead:
    """Scores embedding pairs: head.onnx through ONNX Runtime, or the distance in numpy. On the CPU by default, for
    backends whose network runs elsewhere (TensorRT, OpenVINO): the head is a few dense layers, the CPU is exact
    and fast; ONNX Runtime's own backend passes its providers.

    On the CPU the head runs on the calling thread alone (one intra-op thread, no spinning pool): a pool of its own
    spun on every core for a while after each call, and slowed the embedding's next call by a third (VGG16 on
    OpenVINO: 52 -> 75 ms a pair on 2 cores, measured)."""

    def __init__(
        self, bundle_dir: str | Path, manifest: Manifest, threads: int | None = None, providers: list | None = None
    ):
        self._session = None
        if manifest.head_kind == "learned":
            path = Path(bundle_dir) / manifest.head_file
            chosen = providers or [CPU_EP]
            on_cpu = all((p[0] if isinstance(p, tuple) else p) == CPU_EP for p in chosen)
            self._session = make_session(path, chosen, 1 if on_cpu else threads, spin=not on_cpu)
            check_head_io(path, manifest, *session_io(self._session))
        self._epsilon = manifest.head_epsilon

    def __call__(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        ea = np.ascontiguousarray(ea, dtype=np.float32)
        eb = np.ascontiguousarray(eb, dtype=np.float32)
        if self._session is None:
            return euclidean_distance(ea, eb, self._epsilon)
        out = self._session.run([SCORE_OUTPUT], {HEAD_INPUTS[0]: ea, HEAD_INPUTS[1]: eb})[0]
        return np.asarray(out, np.float32).reshape(-1)


class OnnxRuntimeBackend:
    """A bundle on ONNX Runtime. ``embedding_model`` overrides embedding.onnx (e.g. the FP16 CPU estimate).

    On the CPU provider the bundle's graphs run as they are (``precision`` is a label). With GPU providers
    (onnxruntime-gpu): see ``provider_config``; ``cache_dir`` holds the TensorRT EP's engines and timing caches,
    ``batch_profile`` its (min, opt, max) batch range.
    """

    name = "onnxruntime"
    thread_safe = True  # ONNX Runtime sessions may run concurrently

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest | None = None,
        providers: list | None = None,
        threads: int | None = None,
        embedding_model: str | Path | bytes | None = None,
        precision: str = "fp32",
        device_id: int = 0,
        cache_dir: str | Path | None = None,
        batch_profile: tuple[int, int, int] = DEFAULT_BATCH_PROFILE,
    ):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest or load_manifest(self.bundle_dir)
        self.precision = precision
        self.device_id = int(device_id)
        wanted = list(providers) if providers else best_providers()
        self._gpu = uses_gpu(wanted)
        self._max_batch: int | None = None  # the TensorRT EP's profile maximum: larger batches run in chunks
        if not self._gpu:  # the CPU path, as it always was
            src = embedding_model if embedding_model is not None else self.bundle_dir / self.manifest.embedding_file
            self._embed = make_session(src, providers, threads)
            check_embedding_io(_where(src), self.manifest, *session_io(self._embed))
            self._head = CpuHead(self.bundle_dir, self.manifest, threads, providers or best_providers())
        else:
            self._open_gpu_session(wanted, threads, embedding_model, cache_dir, batch_profile)
            # the head's batch is the number of pairs, not images: no TensorRT profile for it, CUDA EP is enough
            head = [e for e in wanted if _provider_name(e) != TRT_EP and _provider_name(e) in self._got]
            self._head = CpuHead(self.bundle_dir, self.manifest, threads, head or [CPU_EP])

    def _open_gpu_session(self, wanted: list, threads, embedding_model, cache_dir, batch_profile) -> None:
        """The embedding session on GPU providers, its graph chosen for the providers (and TensorRT) the session
        really got: when ONNX Runtime dropped the TensorRT EP (its libraries did not load) or loaded another
        TensorRT than assumed, the session is opened once more for what it has."""
        import onnxruntime as ort

        hwc = self.manifest.preprocessing.input_shape
        asked = self.precision
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        trt_version = installed_trt_version()
        check_dir = self.bundle_dir if embedding_model is None else None
        self._asked_providers = [_provider_name(e) for e in order_providers(wanted)]
        for _ in range(2):
            major = expected_trt_major(ort.__version__, trt_version)
            cache = ort_trt_cache_dir(root, ort.__version__, trt_version)
            config = provider_config(wanted, asked, hwc, batch_profile, cache, self.device_id, major)
            choice = choose_graph(self.manifest, config, asked, major, check_dir)
            for entry in config:
                if _provider_name(entry) == TRT_EP:
                    Path(entry[1]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
                    Path(entry[1]["trt_timing_cache_path"]).mkdir(parents=True, exist_ok=True)
            src = embedding_model if embedding_model is not None else self.bundle_dir / choice.file
            session = make_session(src, config, threads)
            check_embedding_io(_where(src), self.manifest, *session_io(session))
            got = list(session.get_providers())
            loaded = session_trt_version() if got and got[0] == TRT_EP else None
            real = choose_graph(self.manifest, got, asked, expected_trt_major(ort.__version__, loaded or trt_version))
            same_trt = loaded is None or (trt_version is not None and same_release(loaded, trt_version))
            if real == choice and same_trt:
                break
            wanted = [e for e in wanted if _provider_name(e) in got] or [CPU_EP]
            trt_version = loaded or trt_version
        else:  # twice a session that does not match what it was opened for: say so rather than mislabel it
            raise RuntimeError(
                f"onnxruntime opened {choice.file} for {self._asked_providers[0]} at {asked}, but the session runs "
                f"{got[0] if got else 'no provider'}{f' with TensorRT {loaded}' if loaded else ''}, which needs "
                f"{real.file}{' with trt_fp16_enable' if real.trt_fp16 else ''}"
            )
        self._embed = session
        self._got = got
        self._graph = Path(src).name if not isinstance(src, bytes) else "(in-memory graph)"
        self._trt_version = loaded
        self.precision = real.precision  # what runs, not what was asked (info() reports both)
        self._asked_precision = asked
        self._max_batch = int(batch_profile[2]) if got and got[0] == TRT_EP else None

    def _run_embed(self, x: np.ndarray) -> np.ndarray:
        if not self._gpu or self._embed.get_providers()[0] not in GPU_PROVIDERS:
            return self._embed.run([EMBEDDING_OUTPUT], {INPUT_NAME: x})[0]
        import onnxruntime as ort

        # IO binding: the batch goes to the GPU once, the output is allocated there and copied back once
        binding = self._embed.io_binding()
        binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.device_id))
        binding.bind_output(EMBEDDING_OUTPUT, "cuda", self.device_id)
        self._embed.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def embed(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Preprocessed float32 NHWC -> (N, dim) float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._max_batch:
            batch_size = min(batch_size, self._max_batch)
        outs = [self._run_embed(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        if not outs:
            return np.zeros((0, self.manifest.embedding_dim), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        """(N, dim) x 2 -> (N,) scores in the manifest's score units."""
        return self._head(ea, eb)

    def close(self) -> None:
        """Sessions are freed with the backend; nothing to release early."""

    def info(self) -> dict[str, Any]:
        """What runs: the session's leading provider and the precision it computes; on a GPU session also the
        graph, the TensorRT version the provider loaded, and what was asked for when it differs."""
        provider = self._embed.get_providers()[0]
        out: dict[str, Any] = {
            "backend": self.name,
            "provider": provider,
            "precision": self.precision,
            "bundle": self.manifest.name,
            "device": f"cuda:{self.device_id}" if provider in GPU_PROVIDERS else "cpu",
        }
        if self._gpu:
            out["graph"] = self._graph
            if self._trt_version:
                out["tensorrt"] = self._trt_version
            if self._asked_providers[0] != provider or self._asked_precision != self.precision:
                out["asked"] = {"provider": self._asked_providers[0], "precision": self._asked_precision}
        return out


# ----------------------------------------------------------------------------------------------------------------
# registry entries: ONNX Runtime on a GPU provider (onnxruntime-gpu), and on the CPU
# ----------------------------------------------------------------------------------------------------------------


def available_providers() -> list[str] | None:
    """This onnxruntime build's execution providers; None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return list(ort.get_available_providers())


def ort_distributions() -> dict[str, str]:
    """The ONNX Runtime distributions installed here (name -> version): onnxruntime, onnxruntime-gpu."""
    from importlib import metadata

    out = {}
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def ort_conflict(distributions: dict[str, str]) -> str | None:
    """One line when onnxruntime and onnxruntime-gpu are both installed: both write the ``onnxruntime`` package,
    the last one unpacked wins and the GPU providers can vanish. The fix replaces the CPU build (measured with pip:
    uninstalling only onnxruntime leaves a broken package, so both go and the GPU build comes back alone)."""
    if not {"onnxruntime", "onnxruntime-gpu"} <= set(distributions):
        return None
    gpu = distributions["onnxruntime-gpu"]
    return (
        f"onnxruntime {distributions['onnxruntime']} and onnxruntime-gpu {gpu} are both installed and shadow each "
        f"other; keep the GPU build: pip uninstall -y onnxruntime onnxruntime-gpu && pip install --no-deps "
        f"'onnxruntime-gpu=={gpu}'"
    )


def _present(gpu: bool):
    def present(bundle_dir, precision, providers) -> Presence:
        have = available_providers()
        if have is None:
            return Presence(False, "needs the onnxruntime package (not installed)")
        conflict = ort_conflict(ort_distributions()) if gpu else None
        if gpu and providers is None and gpu_providers(have) is None:
            return Presence(
                False,
                conflict
                or "this onnxruntime build has no CUDA or TensorRT provider (onnxruntime-gpu is not installed)",
            )
        return Presence(True, "", conflict)

    return present


def _build(gpu: bool):
    def build(bundle_dir, manifest, precision="fp32", threads=None, providers=None) -> OnnxRuntimeBackend:
        have = available_providers() or []
        if providers is not None:
            missing = [p for p in providers if p not in have]
            if missing:
                raise RuntimeError(f"onnxruntime has no {', '.join(missing)} here (it has {', '.join(have)})")
            chosen = list(providers)
        elif gpu:
            chosen = list(gpu_providers(have) or ())
        else:
            chosen = [CPU_PROVIDER]
        precision = precision or "fp32"
        if precision not in ("fp32", "fp16", "int8") or (precision == "int8" and uses_gpu(chosen)):
            where = "GPU providers run fp32 and fp16" if uses_gpu(chosen) else "the CPU runs fp32, fp16 and int8"
            raise RuntimeError(f"onnxruntime: {where}, not {precision}")
        model = None
        if precision != "fp32" and not uses_gpu(chosen):
            # the CPU provider runs graphs as they are: fp16/int8 mean the bundle's FP16/INT8 graph (on a GPU provider
            # the backend itself picks for the providers its session got: choose_graph)
            model = manifest.graph_path(bundle_dir, precision)
        return OnnxRuntimeBackend(
            bundle_dir, manifest, providers=chosen, threads=threads, embedding_model=model, precision=precision
        )

    return build


def parity_label(info: dict[str, Any]) -> str:
    """ "onnxruntime-cpu" (export's row), "onnxruntime-cuda", "onnxruntime-tensorrt": named by the leading provider."""
    provider = str(info.get("provider", CPU_PROVIDER))
    return f"onnxruntime-{provider.replace('ExecutionProvider', '').lower() or 'cpu'}"


register(
    BackendEntry(
        variant="onnxruntime-cpu",
        backend="onnxruntime",
        device="cpu",
        precisions=("fp32", "fp16", "int8"),
        preferred=lambda: ("fp32",),  # the CPU provider computes FP16 graphs in FP32: nothing to gain
        present=_present(gpu=False),
        build=_build(gpu=False),
        parity_label=parity_label,
        rank=lambda precision, preferred: 3,
        bench=(("onnxruntime", "fp32"), ("onnxruntime-int8", "int8")),
        distributions=("onnxruntime", "onnxruntime-gpu"),
        serves_providers=lambda providers: not any(p in GPU_PROVIDERS for p in providers),
    )
)
register(
    BackendEntry(
        variant="onnxruntime-gpu",
        backend="onnxruntime",
        device="cuda",
        precisions=("fp16", "fp32"),
        preferred=lambda: ("fp16", "fp32"),
        present=_present(gpu=True),
        build=_build(gpu=True),
        parity_label=parity_label,
        rank=lambda precision, preferred: 1,
        bench=(("onnxruntime-gpu", None),),
        distributions=("onnxruntime-gpu", "onnxruntime"),
        serves_providers=lambda providers: any(p in GPU_PROVIDERS for p in providers),
    )
)
