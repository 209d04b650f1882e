"""``python -m runtime.bench``: the options, one run (every backend row, Keras, the peaks, the runtime-only
process) into a report, and the files it writes."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench.api import measure_api, pair_files
from runtime.bench.baseline import run_keras
from runtime.bench.flops import count_flops
from runtime.bench.peaks import (
    PEAK_BUDGET_S,
    PEAK_SIZES,
    QUICK_PEAK_BUDGET_S,
    QUICK_PEAK_SIZES,
    measure_peaks,
    remeasure,
)
from runtime.bench.process import measure_runtime_process
from runtime.bench.report import BENCH_SCHEMA, add_compute, format_table, plot, summarize
from runtime.bench.rows import BATCHES, DEFAULT_BACKENDS, bench_backend, bench_images, make_backend
from runtime.bundle.manifest import load_manifest
from runtime.console import BOUNDARY_EXIT_CODES, run_cli
from runtime.extras import explain_missing_extras
from runtime.fileio import write_json_atomic, write_text_atomic
from runtime.machine import cpu_name, versions


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="runtime-bench-pair-") as tmp:  # the verify rows' two image files
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    bundle_dir = Path(args.bundle)
    manifest = load_manifest(bundle_dir)
    x, source = bench_images(bundle_dir, manifest, args.images, n=max(BATCHES))
    ref_index = len(x) - 1
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))

    say("measuring this CPU's peak per precision ...")
    peaks = measure_peaks(sizes=args.peak_sizes, repeats=args.peak_repeats, budget_s=args.peak_budget)
    try:
        flops = count_flops(bundle_dir / manifest.embedding_file)
    except Exception as e:  # noqa: BLE001 - onnx missing or a graph it cannot infer: no GFLOP/s, the rest stands
        flops = {"flops": None, "error": f"{type(e).__name__}: {e}"}

    results: list[dict[str, Any]] = []
    settings = {
        "repeats": args.repeats,
        "batch_repeats": args.batch_repeats,
        "warmup": args.warmup,
        "budget_s": args.budget,
    }
    for name in args.backends:
        row: dict[str, Any] = {"name": name, "backend": name.split("-")[0]}
        try:
            backend, why = make_backend(name, bundle_dir, manifest, args.threads)
        except Exception as e:  # noqa: BLE001
            backend, why = None, f"did not load: {type(e).__name__}: {e}"
        if backend is None:
            results.append({**row, "status": "skipped", "reason": why})
            say(f"{name}: skipped ({why})")
            continue
        info = backend.info()
        row.update(precision=str(info.get("precision", "fp32")), info=info)
        say(f"{name}: timing ...")
        try:
            row.update(bench_backend(backend, x, ref_index, args.repeats, args.batch_repeats, args.warmup, args.budget))
            row["status"] = "ok"
        except Exception as e:  # noqa: BLE001
            row.update(status="failed", reason=f"{type(e).__name__}: {e}")
        results.append(row)
        del backend

    files, pair_source = pair_files(manifest, x, ref_index, args.images, tmp)
    say("public API: runtime.load, verify and embed of two image files ...")
    api = measure_api(bundle_dir, files, args.repeats, args.warmup, args.budget, args.threads)

    keras: dict[str, Any] = {}
    if args.model and not args.no_keras:
        say("keras: timing in a child process ...")
        keras_spec = {
            **settings,
            "arch": manifest.arch,
            "input_shape": list(manifest.preprocessing.input_shape),
            "pair_files": files,
            "preprocessing": manifest.preprocessing.to_dict(),
        }
        keras = run_keras(args.model, x, ref_index, keras_spec, timeout=args.keras_timeout)
        for krow in keras.get("rows", []):
            results.append({**krow, "status": "ok"})
            keras.update(measured=True, throughput_note=krow.get("throughput_note"))
        rt_scores = next(
            (r.get("check_scores") for r in results if r.get("status") == "ok" and r["backend"] != "keras"), None
        )
        if keras.get("check_scores") and rt_scores:
            keras["check_max_abs_diff"] = float(np.max(np.abs(np.subtract(keras["check_scores"], rt_scores))))
    elif args.model:
        keras = {"rows": [], "error": "--no-keras"}

    # the peaks again at the end: on a shared machine one measurement can be unlucky; the best counts
    remeasure(peaks, args.peak_repeats, args.peak_budget)
    for r in results:
        if r.get("status") == "ok":
            add_compute(r, flops.get("flops"), peaks)

    runtime_proc: dict[str, Any] = {}
    if not args.no_process:
        say("runtime-only process ...")
        runtime_proc = measure_runtime_process(bundle_dir, args.threads)

    report = {
        "schema": BENCH_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, "-m", "runtime.bench", *sys.argv[1:]]),
        "bundle": {
            "name": manifest.name,
            "dir": str(bundle_dir),
            "arch": manifest.arch,
            "input_shape": list(manifest.preprocessing.input_shape),
            "embedding_dim": manifest.embedding_dim,
            "head": manifest.head_kind,
            "score": manifest.score.to_dict(),
        },
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "versions": versions(("numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "openvino", "tensorflow", "keras")),
        "images": {"source": source, "count": int(len(x)), "reference_index": ref_index, "pair_source": pair_source},
        "settings": {
            **settings,
            "threads": args.threads,
            "batches": list(BATCHES),
            "peak_sizes": list(args.peak_sizes),
            "peak_budget_s": args.peak_budget,
        },
        "peak": peaks,
        "flops": flops,
        "results": results,
        "keras": {k: v for k, v in keras.items() if k != "rows"},
        "runtime_process": runtime_proc,
        "api": api,
    }
    report["summary"] = summarize(results, runtime_proc, api, keras)
    return report


def parse_backends(values: Sequence[str] | None) -> list[str]:
    if not values:
        return list(DEFAULT_BACKENDS)
    out: list[str] = []
    for v in values:
        for name in v.replace(",", " ").split():
            name = {"openvino": "openvino-fp32", "ort": "onnxruntime"}.get(name, name)
            if name not in DEFAULT_BACKENDS:
                raise SystemExit(f"--backends {name!r}: expected some of {', '.join(DEFAULT_BACKENDS)}")
            if name not in out:
                out.append(name)
    return out


def _sizes(value: str) -> tuple[int, ...]:
    """--peak-sizes: "512,1024" -> (512, 1024)."""
    try:
        sizes = tuple(int(n) for n in value.replace(",", " ").split())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 16:
        raise argparse.ArgumentTypeError(f"{value!r}: expected matrix sizes >= 16, e.g. 512,1024")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runtime.bench",
        description="Latency, throughput, GFLOP/s and memory of a bundle on every backend present, next to Keras.",
        epilog=f"""exit codes:
  0  measured; the table, JSON and chart are written (a missed target is reported, not an error)
  1  --check and a target was missed
  2  bad input (a bundle, --model or --out that cannot be used: one line naming it)
{BOUNDARY_EXIT_CODES}""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", help="the bundle folder (written by python -m export.build)")
    p.add_argument(
        "--model",
        help="the source model, anything export.build loads (.keras, whole-model or weights-only .h5, SavedModel): "
        "adds Keras rows when TensorFlow is installed",
    )
    p.add_argument(
        "--backends",
        nargs="*",
        help=f"some of {', '.join(DEFAULT_BACKENDS)} (default: all; absent ones are listed as not run)",
    )
    p.add_argument("--out", default="runs/bench", help="where runtime_bench_<bundle>.{txt,json,png} go")
    p.add_argument("--images", help="a folder of images to time on (default: the bundle's reference inputs)")
    p.add_argument("--repeats", type=int, default=100, help="timed pairs at batch 1 per backend (default 100)")
    p.add_argument("--batch-repeats", type=int, default=10, help="timed batches per batch size (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--budget", type=float, default=30.0, help="at most this many seconds per measurement (default 30)")
    p.add_argument("--threads", type=int, help="intra-op threads for the CPU backends (default: theirs)")
    p.add_argument(
        "--peak-sizes",
        type=_sizes,
        default=PEAK_SIZES,
        help=f"matrix sizes of the peak matmuls (default {','.join(map(str, PEAK_SIZES))})",
    )
    p.add_argument("--peak-repeats", type=int, default=50, help="at most this many calls per peak size and kernel")
    p.add_argument(
        "--peak-budget",
        type=float,
        default=PEAK_BUDGET_S,
        help=f"seconds per peak size and kernel (default {PEAK_BUDGET_S:g}; at least 3 calls); the best call counts",
    )
    p.add_argument("--quick", action="store_true", help="tiny repeat counts (a smoke run, not a measurement)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras baseline")
    p.add_argument("--no-process", action="store_true", help="skip the runtime-only process measurement")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--keras-timeout", type=float, default=1800.0, help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true", help="exit 1 when a measured target is missed")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


@explain_missing_extras()
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _main(args), debug=args.debug, what="nothing was written")


def _main(args: argparse.Namespace) -> int:
    if not args.bundle:
        build_parser().error("--bundle is required")
    if args.quick:
        args.repeats, args.batch_repeats, args.warmup = 5, 2, 1
        args.peak_sizes, args.peak_budget = QUICK_PEAK_SIZES, QUICK_PEAK_BUDGET_S
    for name in ("repeats", "batch_repeats"):
        if getattr(args, name) < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be >= 1")
    args.backends = parse_backends(args.backends)
    from runtime.bundle.layout import BundleError
    from runtime.fileio import check_writable_dir

    try:  # what can be checked before minutes of timing is checked first
        if args.model and not Path(args.model).exists():
            raise FileNotFoundError(f"--model {args.model}: no such file or folder")
        check_writable_dir(args.out, "--out")
        report = run(args)
    except (BundleError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    stem = f"runtime_bench_{report['bundle']['name']}"
    table = format_table(report)
    png = None if args.no_plot else plot(report, out / f"{stem}.png")
    report["files"] = {
        "txt": str(out / f"{stem}.txt"),
        "json": str(out / f"{stem}.json"),
        "png": str(png) if png else None,
    }
    write_text_atomic(out / f"{stem}.txt", table + "\n")
    write_json_atomic(out / f"{stem}.json", report)
    print(json.dumps(report, indent=2, default=str) if args.json else table)
    if not args.json:
        print(f"\nwritten: {', '.join(v for v in report['files'].values() if v)}")
    if args.check and any(t["met"] is False for t in report["summary"]["targets"].values()):
        return 1
    return 0
