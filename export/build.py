"""``python -m export.build``: any supported model -> a verified deployment bundle.

Writes embedding.onnx, head.onnx (learned heads), siamese.onnx, embedding.fp16.onnx, reference.npz,
parity.json and manifest.json into ``<out>/<name>/`` (atomically), optionally a TensorRT plan and a Triton
model repository, and prints a Polygraphy-style parity table. Exit codes: 0 done; 1 an FP32 backend failed
parity; 2 bad input; 3 ``--require-engine`` and no engine could be built.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime.console import BOUNDARY_EXIT_CODES, run_cli
from runtime.extras import explain_missing_extras

EXIT_OK, EXIT_PARITY, EXIT_INPUT, EXIT_ENGINE = 0, 1, 2, 3


@dataclass(frozen=True)
class ExportOptions:
    """What ``build_bundle`` does besides the model; ``python -m export.build``'s options, with the same defaults.

    out/name: the bundle goes to ``<out>/<name>/`` (name: from the model file); arch: when the file does not say;
    opset; batch: MIN:OPT:MAX for engines and Triton; calib_images: a folder of real images for the reference
    (else the model card's data, else random inputs), reference_images of them; int8 (int8_images): also write the QDQ
    INT8 graph calibrated on that many real images; fp16 / opencv: also write the FP16
    and the OpenCV DNN graphs; engine (require_engine, workspace GiB, timing_cache): a TensorRT plan where TensorRT
    and a GPU exist; triton: also write a Triton model repository there; simplify: onnxslim the graphs; force:
    replace an existing bundle; allow_unsafe_lambda: load unrecognised Lambda layers; seed; quiet: print nothing.
    """

    out: str | Path = "bundles"
    name: str | None = None
    arch: str | None = None
    opset: int = 17
    batch: str = "1:8:32"
    calib_images: str | Path | None = None
    reference_images: int = 64
    fp16: bool = True
    int8: bool = False
    int8_images: int = 256
    opencv: bool = True
    engine: bool = False
    require_engine: bool = False
    workspace: float = 2.0
    timing_cache: str | Path | None = None
    triton: str | Path | None = None
    simplify: bool = False
    force: bool = False
    allow_unsafe_lambda: bool = False
    seed: int = 0
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExportOptions:
        """The command line's parsed options (every field but ``quiet`` is an option of the same name)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


@dataclass(frozen=True)
class ExportResult:
    """What ``build_bundle`` wrote: the bundle folder, its files, each backend's parity, the engine's outcome."""

    bundle: Path
    files: tuple[str, ...]
    parity: tuple[Any, ...]  # runtime.parity.ParityResult, one per backend and precision measured
    engine: str  # "built: <plan>", "not built: <why>" or "" (not asked for)
    reference: str  # where the reference images came from
    triton: Path | None = None

    @property
    def passed(self) -> bool:
        """FP32 parity passed on every FP32 backend (runtime.parity.fp32_passed)."""
        from runtime.parity import fp32_passed

        return fp32_passed(self.parity)

    def open(self):
        """The bundle as the runtime reads it (``runtime.bundle.Bundle``: manifest, reference, parity report)."""
        from runtime.bundle import Bundle

        return Bundle.open(self.bundle)


EXAMPLES = """
exit codes:
  0  the bundle was written and FP32 parity passed
  1  the bundle was written but FP32 parity failed (see parity.json)
  2  bad input: a missing or unreadable model, bad options, an existing bundle without --force (nothing written)
  3  --require-engine and no TensorRT plan could be built (nothing written)
{boundary}

examples:
  python -m export.build --model runs/demo/model.keras
  python -m export.build --model Omniglot_vgg.h5                      # bubbliiiing's weights file, recognised
  python -m export.build --model siamese_model.h5 --arch pyimagesearch --calib-images samples/
  python -m export.build --model model.keras --engine --batch 1:8:32  # + a TensorRT plan where TensorRT and a GPU exist
  python -m export.build --model model.keras --triton triton_repo/    # + a Triton model repository
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export.build",
        description="Export a Siamese model (.keras, Keras 2 .h5, weights-only .h5, SavedModel) to a deployment "
        "bundle: ONNX graphs, an FP16 graph, the Keras reference, a parity report and a manifest with file hashes.",
        epilog=EXAMPLES.format(boundary=BOUNDARY_EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model file or SavedModel folder")
    p.add_argument("--arch", help="architecture, when the file does not say")
    p.add_argument("--out", default="bundles", help="parent folder of the bundle (default: %(default)s)")
    p.add_argument("--name", help="bundle name (default: from the model file)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")
    p.add_argument(
        "--batch", default="1:8:32", help="batch sizes MIN:OPT:MAX for engines and Triton (default: %(default)s)"
    )
    p.add_argument("--calib-images", metavar="DIR", help="real images for the reference (sub-folders = identities)")
    p.add_argument("--reference-images", type=int, default=64, help="images in reference.npz (default: %(default)s)")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="write embedding.fp16.onnx")
    p.add_argument(
        "--int8",
        action="store_true",
        help="write embedding.int8.onnx: QDQ INT8 (ONNX Runtime static quantization) calibrated on real images "
        "(--calib-images, else the model card's data); run it with --precision int8",
    )
    p.add_argument(
        "--int8-images", type=int, default=256, metavar="N", help="calibration images for --int8 (default: %(default)s)"
    )
    p.add_argument(
        "--opencv",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write embedding.opencv.onnx (+ head.opencv.onnx): the graphs the C++ runtime's OpenCV DNN backend reads",
    )
    p.add_argument("--engine", action="store_true", help="build a TensorRT plan (needs TensorRT and a GPU)")
    p.add_argument("--require-engine", action="store_true", help="fail (exit 3) when the engine cannot be built")
    p.add_argument("--workspace", type=float, default=2.0, metavar="GiB", help="TensorRT workspace limit")
    p.add_argument("--timing-cache", metavar="FILE", help="persistent TensorRT timing cache (default: in --out)")
    p.add_argument("--triton", metavar="DIR", help="also write a Triton Inference Server model repository")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX graphs with onnxslim (parity re-checked)")
    p.add_argument(
        "--force", action="store_true", help="replace an existing bundle (only a folder holding a manifest.json)"
    )
    p.add_argument(
        "--allow-unsafe-lambda", action="store_true", help="load Lambda layers that are not recognised distances"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    return p


def default_name(model_path: Path) -> str:
    """'runs/demo/model.keras' -> 'demo'; 'Omniglot_vgg.h5' -> 'omniglot_vgg'."""
    stem = model_path.name if model_path.is_dir() else model_path.stem
    if stem in ("model", "saved_model", "best") and model_path.parent.name:
        stem = model_path.parent.name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).lower() or "model"


def _source_sha256(path: Path) -> str:
    from runtime.fileio import sha256_file
    from train.data.hashing import sha256_tree

    if path.is_dir():
        rel = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        return sha256_tree(path, rel)
    return sha256_file(path)


def _euclidean_epsilon(siamese) -> float | None:
    from train.models.layers import EuclideanDistance

    for layer in siamese.head.layers:
        if isinstance(layer, EuclideanDistance):
            return layer.epsilon
    return None


def _tool_versions() -> dict[str, str]:
    from runtime.machine import versions
    from train.model_card import versions as card_versions

    return {**card_versions(), **versions(("onnx", "onnxruntime", "onnxslim"))}  # the export tools when installed


def new_bundle_manifest(siamese, model_path: Path, name: str, opts: ExportOptions, ref, files_present: set[str]):
    """The Keras model's facts as the bundle's typed manifest (runtime.bundle.manifest owns the sections; the
    ``files`` list, the reference's raw copy, the OpenCV graphs and the engines are added as they are written)."""
    from runtime.bundle import layout
    from runtime.bundle import manifest as mf

    cfg = siamese.config
    return mf.new_manifest(
        name=name,
        preprocessing=cfg.preprocessing,
        score=cfg.score,
        embedding=mf.Embedding(
            cfg.embedding_dim,
            l2_normalized=cfg.l2_normalized,
            fp16_file=layout.EMBEDDING_FP16_ONNX if layout.EMBEDDING_FP16_ONNX in files_present else None,
            int8_file=layout.EMBEDDING_INT8_ONNX if layout.EMBEDDING_INT8_ONNX in files_present else None,
        ),
        head=mf.Head.of(cfg.head, _euclidean_epsilon(siamese)),
        siamese=mf.Siamese(),
        source=mf.Source(model_path.name, _source_sha256(model_path), cfg.arch),
        tools=_tool_versions(),
        training=mf.Training(cfg.loss, cfg.margin, cfg.label_same),
        onnx=mf.OnnxExport(opts.opset, opts.batch, bool(opts.simplify)),
        reference=mf.ReferenceInfo(source=ref.source, images=len(ref.inputs), pairs=len(ref.scores)),
        parity_file=layout.PARITY_JSON,
    )


def run_parity(bundle_dir: Path, manifest, ref, with_fp16: bool, with_tensorrt: bool = False):
    """Every CPU backend of the registry present here, at each precision worth running on this machine (ONNX Runtime
    FP32; OpenVINO FP32, and bf16 where the CPU has it natively; INT8 where the bundle has the graph), then the FP16
    CPU estimate, then the TensorRT plan when one was built, each against the Keras reference (with the AUC/EER
    task checks on labelled pairs). Returns (rows, SpeedRecord): each real backend is also timed on a pair, so
    ``auto`` on this machine ranks by speed without timing again."""
    from export.fp16 import fp16_cpu_estimate
    from runtime.backends.base import entry, registered
    from runtime.backends.onnxruntime_backend import CPU_PROVIDER, OnnxRuntimeBackend
    from runtime.bundle.layout import EMBEDDING_ONNX
    from runtime.speed import SpeedRecord, library_versions, machine_id, option_key, time_pair
    from runtime.verifier import measure_parity

    spec = manifest.score
    results = []
    pair_ms: dict[str, float | None] = {}
    pair = ref.inputs[:2].astype(np.float32)

    def check(backend, label: str, precision: str, note: str = "", estimate: bool = False):
        results.append(
            measure_parity(backend, label, precision, ref, spec, note, task=_task_metrics, estimate=estimate)
        )

    for e in registered():
        if e.device != "cpu":
            continue
        precisions = [p for p in e.preferred() if p is not None]
        if manifest.embedding.int8_file and "int8" in e.precisions:
            precisions.append("int8")  # auto takes it where it passes its gates and is fastest here
        for prec in precisions:
            if e.present(None, prec, None).ok:
                backend = e.build(bundle_dir, manifest, precision=prec)
                check(backend, e.parity_label(backend.info()), prec)
                pair_ms[option_key(e.variant, prec)] = time_pair(backend, pair) if len(pair) == 2 else None
                backend.close()
    if with_fp16:
        estimate = fp16_cpu_estimate(bundle_dir / EMBEDDING_ONNX).SerializeToString()
        check(
            OnnxRuntimeBackend(
                bundle_dir, manifest, providers=[CPU_PROVIDER], embedding_model=estimate, precision="fp16"
            ),
            "fp16 emulated",
            "fp16",
            note="estimated on CPU",
            estimate=True,
        )
    if with_tensorrt:
        trt = entry("tensorrt")
        backend = trt.build(bundle_dir, manifest, precision="fp16")
        check(backend, trt.parity_label(backend.info()), "fp16", note=str(backend.info().get("device", "")))
    libraries = library_versions(d for e in registered() for d in e.distributions)
    return results, SpeedRecord(machine_id(), libraries, pair_ms)


def _task_metrics(scores: np.ndarray, same: np.ndarray, spec) -> tuple[float, float]:
    """(AUC, EER) of labelled pairs: the task checks of runtime.parity, measured with train.metrics."""
    from train.metrics import eer, roc_auc

    return roc_auc(scores, same, spec), eer(scores, same, spec)[0]


def build_bundle(model: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export ``model`` (.keras, Keras 2 .h5, weights-only .h5, SavedModel) to a verified bundle.

        from export.build import ExportOptions, build_bundle
        result = build_bundle("runs/demo/model.keras", ExportOptions(out="bundles", fp16=True))
        assert result.passed, result.parity

    The bundle is staged and published with one rename: nothing half-written is left. Raises FileNotFoundError
    or ValueError for bad input (naming it), FileExistsError when the bundle exists without ``force``,
    EngineRequired when ``require_engine`` and no plan could be built. FP32 parity failing is not an exception:
    the bundle is written and ``result.passed`` is False.
    """
    opts = options or ExportOptions()
    from export.bundle import check_bundle_target, staged_bundle
    from export.onnx_export import export_embedding, export_head, export_siamese
    from export.reference import build_reference
    from runtime.bundle import layout as mf
    from runtime.bundle.manifest import write_manifest
    from runtime.bundle.parity_report import write_report
    from runtime.bundle.reference import write_raw
    from runtime.engines import BatchProfile
    from runtime.fileio import plain_name, write_text_atomic
    from runtime.parity import format_table
    from train.load import load_model
    from train.model_card import read_card

    say = (lambda *a, **k: None) if opts.quiet else print
    model_path = Path(model)
    if not model_path.exists():
        raise FileNotFoundError(f"--model {model_path}: no such file or folder")
    profile = BatchProfile.parse(opts.batch)
    name = plain_name(opts.name, "--name") if opts.name else default_name(model_path)
    target = Path(opts.out) / name
    check_bundle_target(target, opts.force)  # before the model is loaded; staged_bundle checks again at publish
    siamese = load_model(model_path, arch=opts.arch, allow_unsafe=opts.allow_unsafe_lambda)
    card = read_card(model_path)
    cfg = siamese.config
    meta = {
        "siamese_edge.schema_version": str(mf.SCHEMA_VERSION),
        "siamese_edge.arch": cfg.arch,
        "siamese_edge.bundle": name,
        "siamese_edge.preprocessing": _json(cfg.preprocessing.to_dict()),
        "siamese_edge.score": _json(cfg.score.to_dict()),
        "siamese_edge.input": f"{mf.INPUT_NAME} NHWC float32 [N,{cfg.preprocessing.height},"
        f"{cfg.preprocessing.width},{cfg.preprocessing.channels}]",
    }
    engine_line = ""
    triton = None
    with staged_bundle(target, force=opts.force) as tmp:
        say(f"exporting {model_path} ({cfg.arch}) -> {target}/", flush=True)
        export_embedding(siamese, tmp / mf.EMBEDDING_ONNX, opts.opset, meta, source=model_path)
        export_head(siamese, tmp / mf.HEAD_ONNX, opts.opset, meta, source=model_path)
        export_siamese(siamese, tmp / mf.SIAMESE_ONNX, opts.opset, meta, source=model_path)
        if opts.simplify:
            _simplify(tmp)
        if opts.fp16:
            from export.fp16 import convert_to_fp16

            convert_to_fp16(tmp / mf.EMBEDDING_ONNX, tmp / mf.EMBEDDING_FP16_ONNX)
        int8 = _int8_graph(siamese, tmp, card, opts, say) if opts.int8 else None
        ref = build_reference(siamese, opts.calib_images, card, n_images=opts.reference_images, seed=opts.seed)
        ref.save(tmp / mf.REFERENCE_NPZ)
        raw_reference = write_raw(ref, tmp)
        opencv = _opencv_variants(siamese, tmp, ref, meta, say) if opts.opencv else None
        manifest = new_bundle_manifest(siamese, model_path, name, opts, ref, {p.name for p in tmp.iterdir()})
        manifest = replace(manifest, reference=replace(manifest.reference, raw=raw_reference), opencv=opencv, int8=int8)
        engines = []
        if opts.engine:
            engine_line, sidecar = _try_engine(tmp, cfg.preprocessing.input_shape, profile, opts)
            if sidecar:
                engines.append(sidecar)
            elif opts.require_engine:
                raise EngineRequired(engine_line)
        results, speed = run_parity(tmp, manifest, ref, with_fp16=opts.fp16, with_tensorrt=bool(engines))
        if not engines:
            from export.build_instructions import build_engine_markdown, int8_engine_markdown

            reason = engine_line or "no engine was asked for (--engine)"
            text = build_engine_markdown(name, cfg.preprocessing.input_shape, profile, "fp16", opts.workspace, reason)
            if int8 is not None:
                text += int8_engine_markdown(name, cfg.preprocessing.input_shape, profile, opts.workspace)
            write_text_atomic(tmp / mf.BUILD_ENGINE_MD, text)
        write_report(tmp / mf.PARITY_JSON, results, ref.source, speed)
        summary = {r.backend: ("PASSED" if r.passed else "FAILED") for r in results}
        manifest = write_manifest(tmp, replace(manifest, engines=engines, parity=summary))
    say(format_table(results))
    if ref.is_random:
        say("note: no real images were available: the reference uses random inputs (pass --calib-images DIR)")
    if opts.triton:
        from export.triton import write_triton_repository

        repo = write_triton_repository(
            target,
            Path(opts.triton),
            name,
            cfg.preprocessing.input_shape,
            cfg.embedding_dim,
            max_batch_size=profile.max,
            preferred_batch_sizes=sorted({profile.opt, profile.max}),
            plan_file=(target / engines[0]["file"]) if engines else None,
            overwrite=opts.force,
        )
        triton = Path(repo)
        say(f"triton:   {repo}/")
    say(f"bundle:   {target}/  ({', '.join(sorted(manifest.files))})")
    say(
        f"engine:   {engine_line or ('built: ' + engines[0]['file'] if engines else 'not asked for; see BUILD_ENGINE.md')}"
    )
    for line in next_commands(target):
        say(line)
    files = tuple(sorted(manifest.files))
    return ExportResult(target, files, tuple(results), engine_line, ref.source, triton)


class EngineRequired(RuntimeError):
    """``require_engine`` was asked for and no TensorRT plan could be built (the message says why)."""


def _try_engine(bundle_dir: Path, input_shape, profile, opts: ExportOptions) -> tuple[str, dict | None]:
    from export.tensorrt_build import EngineBuildError, EngineUnavailable, build_engine, default_timing_cache_here

    # the default: one cache per TensorRT release and GPU in --out (a cache from another GPU never has its name)
    cache = Path(opts.timing_cache) if opts.timing_cache else default_timing_cache_here(bundle_dir)
    cache = cache or Path(opts.out) / "trt_timing.cache"  # no TensorRT or GPU here: build_engine says which
    try:
        sidecar = build_engine(bundle_dir, input_shape, profile, "fp16", opts.workspace, cache, force=opts.force)
    except EngineUnavailable as e:
        return f"not built: {e}", None
    except (EngineBuildError, FileNotFoundError) as e:
        return f"not built: the TensorRT build failed: {e}", None
    return f"built: {sidecar.get('file')}", sidecar


def _int8_graph(siamese, bundle_dir: Path, card, opts: ExportOptions, say=print):
    """embedding.int8.onnx from embedding.onnx (export.int8), calibrated on real images other than the
    reference's (another seed), and the manifest's record of how."""
    from export.int8 import quantize_int8
    from export.reference import calibration_inputs
    from runtime.bundle.layout import EMBEDDING_INT8_ONNX, EMBEDDING_ONNX
    from runtime.bundle.manifest import Int8Calibration

    if opts.int8_images < 1:
        raise ValueError(f"--int8-images {opts.int8_images}: expected a positive number of images")
    x, source = calibration_inputs(siamese, opts.calib_images, card, opts.int8_images, seed=opts.seed + 1)
    say(f"int8:     calibrating on {len(x)} images ({source})", flush=True)
    result = quantize_int8(bundle_dir / EMBEDDING_ONNX, bundle_dir / EMBEDDING_INT8_ONNX, x, progress=not opts.quiet)
    return Int8Calibration(source, result.images)


def _opencv_variants(siamese, bundle_dir: Path, ref, meta: dict, say=print):
    """The OpenCV DNN graphs (export.opencv_variant). A model they cannot be made for still exports: the manifest
    records why, and the C++ runtime's OpenCV backend refuses the bundle with that reason."""
    import onnx

    from export.onnx_errors import ExportError
    from export.opencv_variant import OpenCVVariantError, write_opencv_variants
    from runtime.bundle.manifest import OpenCVGraphs

    try:
        return write_opencv_variants(siamese, bundle_dir, ref, meta)
    except (ExportError, OpenCVVariantError, ValueError, onnx.checker.ValidationError) as e:
        say(f"note: no OpenCV DNN variant: {e}", flush=True)
        return OpenCVGraphs(error=str(e))


def _simplify(bundle_dir: Path) -> None:
    import onnx
    import onnxslim

    for p in sorted(bundle_dir.glob("*.onnx")):
        model = onnxslim.slim(onnx.load(str(p)))
        onnx.save(model, str(p))


def next_commands(bundle: Path) -> list[str]:
    """What to run next with this bundle: only commands that exist in this installation."""
    lines = []
    if importlib.util.find_spec("runtime.verify") is not None:
        lines.append(f"next:     python -m runtime.verify --bundle {bundle} IMAGE_A IMAGE_B")
    if importlib.util.find_spec("runtime.bench") is not None:
        lines.append(f"          python -m runtime.bench --bundle {bundle}")
    if importlib.util.find_spec("camera.__main__") is not None:
        lines.append(f"          python -m camera --bundle {bundle} --source 0 --reference IMAGE")
    return lines


def _json(d: dict) -> str:
    import json

    return json.dumps(d, sort_keys=True)


@explain_missing_extras("export")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        try:
            result = build_bundle(args.model, ExportOptions.from_args(args))
        except EngineRequired as e:
            print(f"error: --require-engine: {e}; nothing was written", file=sys.stderr)
            return EXIT_ENGINE
        except (ValueError, FileNotFoundError, FileExistsError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_INPUT
        return EXIT_OK if result.passed else EXIT_PARITY

    return run_cli(run, debug=args.debug, what=f"{args.model} was not exported")


if __name__ == "__main__":
    sys.exit(main())
