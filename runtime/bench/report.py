"""The report: GFLOP/s and the fraction of peak per row, the targets (``TARGETS``) and the summary, the table
(printed and written as .txt) and the bar chart (.png, with matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench.rows import BATCHES
from runtime.fileio import atomic_path

BENCH_SCHEMA = 2  # 2: a peak per precision (OpenVINO kernels), the public API's verify row, issue 14's targets
# target -> (comparison, goal, what it is); the ratios are measured in one run, a missed one is reported (exit 0)
TARGETS: dict[str, tuple[str, float, str]] = {
    "pair_b1_vs_keras_predict": (">=", 20.0, "pair b1 vs Keras predict (embed once, score many)"),
    "best_b32_peak_fraction": (">=", 0.5, "best b32 of its precision's peak"),
    "runtime_rss_mb": ("<", 300.0, "runtime-only process RSS after a pair (MB)"),
    "verify_vs_keras_predict": (">=", 8.0, "verify(path_a, path_b) vs Keras predict on the same pair of files"),
    "verify_vs_embed_pair": ("<=", 1.15, "verify of two images vs one embed of both"),
    "int8_vs_fp32_b32": (">=", 1.8, "b32 throughput, best INT8 row vs best FP32 row"),
}
LEGEND = (
    "GFLOP/s: the FP32 embedding graph's counted FLOPs x images/s at batch 32, i.e. effective FLOP/s (Winograd-style "
    "kernels can exceed 1.0); of peak: against the peak measured for the row's precision (an int8 row against the "
    "int8 peak)"
)


def add_compute(row: dict[str, Any], flops_per_image: int | None, peaks: dict[str, dict[str, Any]]) -> None:
    """Into an ok row: its effective GFLOP/s at batch 32 and their fraction of the peak measured at the row's
    precision (none when that precision has no peak: never another precision's)."""
    tp = row.get("throughput", {}).get("32")
    if not tp or not flops_per_image:
        return
    g = flops_per_image * tp["images_per_s"] / 1e9
    row["gflops_b32"] = g
    precision = row.get("precision", "fp32")
    row["peak_precision"] = precision
    peak = peaks.get(precision) or {}
    if peak.get("gflops"):
        row["peak_fraction_b32"] = g / peak["gflops"]
    else:
        row["peak_note"] = peak.get("error") or f"no {precision} peak measured"


def _target(key: str, value: float | None, detail: str, why: str = "") -> dict[str, Any]:
    op, goal, label = TARGETS[key]
    met = None
    if value is not None:  # a plain bool, not a numpy one: `is False` checks it
        met = bool(value >= goal if op == ">=" else value <= goal if op == "<=" else value < goal)
    out = {"value": None if value is None else float(value), "goal": f"{op} {goal:g}", "met": met, "label": label}
    out["detail"] = detail if value is not None else (why or "not measured")
    return out


def _best_throughput(rows: list[dict[str, Any]], precision: str) -> dict[str, Any] | None:
    return max(
        (r for r in rows if r.get("precision") == precision),
        key=lambda r: r["throughput"]["32"]["images_per_s"],
        default=None,
    )


def summarize(
    results: list[dict[str, Any]],
    runtime_proc: dict[str, Any] | None,
    api: dict[str, Any] | None = None,
    keras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The target ratios from the rows of one run (None where not measured), each with the figures it comes from."""
    ok = [r for r in results if r.get("status") == "ok"]
    rt = [r for r in ok if r["backend"] != "keras"]
    keras_predict = next((r for r in ok if r["name"] == "keras-predict"), None)
    best_b1 = min(rt, key=lambda r: r["latency_b1"]["p50_ms"], default=None)
    out: dict[str, Any] = {
        "best_b1_backend": best_b1["name"] if best_b1 else None,
        "pair_b1_vs_keras_predict": None,
        "pair_b1_vs_keras_call": None,
        "best_b32_backend": None,
        "best_b32_peak_fraction": None,
        "runtime_rss_mb": None,
        "runtime_hwm_mb": None,
    }
    targets: dict[str, dict[str, Any]] = {}
    if best_b1 and keras_predict:
        out["pair_b1_vs_keras_predict"] = keras_predict["latency_b1"]["p50_ms"] / best_b1["latency_b1"]["p50_ms"]
    targets["pair_b1_vs_keras_predict"] = _target(
        "pair_b1_vs_keras_predict",
        out["pair_b1_vs_keras_predict"],
        f"Keras {keras_predict['latency_b1']['p50_ms']:.2f} ms / {best_b1['name']} {best_b1['latency_b1']['p50_ms']:.2f} ms"
        if best_b1 and keras_predict
        else "",
        "no Keras rows (--model)",
    )
    keras_call = next((r for r in ok if r["name"] == "keras-call"), None)
    if best_b1 and keras_call:
        out["pair_b1_vs_keras_call"] = keras_call["latency_b1"]["p50_ms"] / best_b1["latency_b1"]["p50_ms"]
    with_frac = [r for r in rt if r.get("peak_fraction_b32") is not None]
    best = max(with_frac, key=lambda r: r["peak_fraction_b32"], default=None)
    if best:
        out["best_b32_backend"] = best["name"]
        out["best_b32_peak_fraction"] = best["peak_fraction_b32"]
        out["best_b32_gflops"] = best["gflops_b32"]
    targets["best_b32_peak_fraction"] = _target(
        "best_b32_peak_fraction",
        out["best_b32_peak_fraction"],
        f"{best['name']} {best['gflops_b32']:.1f} GFLOP/s against the {best['peak_precision']} peak" if best else "",
        "no row with FLOPs and a peak",
    )
    if runtime_proc and "error" not in runtime_proc:
        out["runtime_rss_mb"] = runtime_proc.get("rss_mb_after_pair")
        out["runtime_hwm_mb"] = runtime_proc.get("hwm_mb")
    targets["runtime_rss_mb"] = _target(
        "runtime_rss_mb",
        out["runtime_rss_mb"],
        f"peak {out['runtime_hwm_mb']:.0f} MB" if out["runtime_hwm_mb"] is not None else "",
        (runtime_proc or {}).get("error", "not measured (--no-process)"),
    )
    api_ok = bool(api) and "error" not in api
    where = f"{api.get('backend')} {api.get('precision')}" if api_ok else ""
    files = ((keras or {}).get("pair_files") or {}) if api_ok else {}
    ratio = files["latency"]["p50_ms"] / api["verify"]["p50_ms"] if files else None
    targets["verify_vs_keras_predict"] = _target(
        "verify_vs_keras_predict",
        ratio,
        f"Keras predict from the files {files['latency']['p50_ms']:.2f} ms / verify {api['verify']['p50_ms']:.2f} ms "
        f"[{where}]"
        if files
        else "",
        (api or {}).get("error") or (keras or {}).get("error") or "no Keras rows (--model)",
    )
    targets["verify_vs_embed_pair"] = _target(
        "verify_vs_embed_pair",
        api["verify"]["p50_ms"] / api["embed_pair"]["p50_ms"] if api_ok else None,
        f"verify {api['verify']['p50_ms']:.2f} ms / embed of both {api['embed_pair']['p50_ms']:.2f} ms [{where}]"
        if api_ok
        else "",
        (api or {}).get("error", "not measured"),
    )
    int8, fp32 = _best_throughput(rt, "int8"), _best_throughput(rt, "fp32")
    no_int8 = "; ".join(f"{r['name']}: {r.get('reason', '')}" for r in results if r.get("name", "").endswith("int8"))
    targets["int8_vs_fp32_b32"] = _target(
        "int8_vs_fp32_b32",
        int8["throughput"]["32"]["images_per_s"] / fp32["throughput"]["32"]["images_per_s"] if int8 and fp32 else None,
        f"{int8['name']} {int8['throughput']['32']['images_per_s']:.1f} img/s / {fp32['name']} "
        f"{fp32['throughput']['32']['images_per_s']:.1f} img/s"
        if int8 and fp32
        else "",
        f"no INT8 row ran ({no_int8 or 'none asked for'})" if not int8 else "no FP32 row ran",
    )
    out["targets"] = targets
    return out


def format_table(report: dict[str, Any]) -> str:
    b = report["bundle"]
    fl = report["flops"]
    lines = [
        f"runtime bench: bundle {b['name']!r} ({b.get('arch') or '?'}, input {'x'.join(map(str, b['input_shape']))}, "
        f"embedding {b['embedding_dim']}, head {b['head']}) on {report['machine']['cpu']} "
        f"({report['machine']['cpus']} CPUs)",
        f"images: {report['images']['source']}",
    ]
    for precision, v in report["peak"].items():
        if "gflops" in v:
            lines.append(f"peak {precision}: {v['gflops']:.1f} GFLOP/s ({v['method']})")
        else:
            lines.append(f"peak {precision}: not measured ({v.get('error', 'unknown')})")
    if fl.get("flops"):
        ops = ", ".join(f"{k} {v / 1e9:.3g}" for k, v in fl["by_op"].items())
        lines.append(
            f"embedding: {fl['flops'] / 1e9:.4g} GFLOP per image ({ops})"
            + (f"; {len(fl['unknown'])} nodes with unknown shapes not counted" if fl.get("unknown") else "")
        )
    else:
        lines.append(f"embedding FLOPs: not counted ({fl.get('error', 'unknown')})")
    lines.append("")
    head = (
        f"{'backend':<22}{'prec':<6}{'pair b1 p50':>12}{'p90':>9}{'p99':>9}{'b8 img/s':>11}{'b32 img/s':>11}"
        f"{'GFLOP/s':>10}{'of peak':>9}"
    )
    lines += [head, "-" * len(head)]
    for r in report["results"]:
        if r.get("status") != "ok":
            continue
        lat, tp = r["latency_b1"], r["throughput"]
        g = r.get("gflops_b32")
        f = r.get("peak_fraction_b32")
        lines.append(
            f"{r['name']:<22}{r.get('precision', ''):<6}{lat['p50_ms']:>10.2f}ms{lat['p90_ms']:>7.2f}ms"
            f"{lat['p99_ms']:>7.2f}ms{tp['8']['images_per_s']:>11.1f}{tp['32']['images_per_s']:>11.1f}"
            f"{(f'{g:.1f}' if g is not None else '-'):>10}{(f'{f:.2f}' if f is not None else '-'):>9}"
        )
    lines.append(LEGEND)
    skipped = [r for r in report["results"] if r.get("status") != "ok"]
    if skipped:
        lines.append("")
        lines += [f"not run: {r['name']}: {r.get('reason', '')}" for r in skipped]
    k = report.get("keras") or {}
    if k.get("error"):
        lines.append(f"keras: {k['error']}")
    elif k.get("measured"):
        lines.append(
            f"keras: pair b1 = the two-input model on (image, reference); b8/b32 = "
            f"{k.get('throughput_note', '')}; scores vs runtime max abs diff "
            f"{k.get('check_max_abs_diff', float('nan')):.3g}"
            + (
                f"; predict on the two image files (decoded and preprocessed) p50 "
                f"{k['pair_files']['latency']['p50_ms']:.2f} ms"
                if k.get("pair_files")
                else ""
            )
        )
    p = report.get("runtime_process") or {}
    lines.append("")
    if "error" in p:
        lines.append(f"runtime-only process: {p['error']}")
    elif p:
        lines.append(
            f"runtime-only process ({p['backend']}): import runtime {p['import_runtime_s']:.2f} s, "
            f"+ onnxruntime and the backend {p['import_backend_s']:.2f} s, load bundle {p['load_bundle_s']:.2f} s, first pair "
            f"{p['first_pair_s']:.2f} s; RSS {p['rss_mb_loaded']:.0f} MB loaded, {p['rss_mb_after_pair']:.0f} MB "
            f"after a pair, peak {p['hwm_mb']:.0f} MB; TensorFlow/Keras imported: "
            f"{', '.join(p['heavy_modules']) or 'no'}"
        )
    api = report.get("api") or {}
    if "error" in api:
        lines.append(f"public API: {api['error']}")
    elif api:
        lines.append(
            f"public API: runtime.load picked {api['backend']} {api['precision']} (the reason is in the JSON); "
            f"verify(a, b) p50 {api['verify']['p50_ms']:.2f} ms, embed([a, b]) p50 {api['embed_pair']['p50_ms']:.2f} ms, "
            f"score_embeddings p50 {api['score_embeddings']['p50_ms']:.3f} ms "
            f"on {report['images'].get('pair_source', 'two image files')}"
        )
    lines.append("")
    lines.append("targets (ratios measured in this run; a missed target is reported, the run still succeeds):")
    for t in report["summary"]["targets"].values():
        met = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
        v = t["value"]
        value = "-" if v is None else f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
        lines.append(f"  {t['label']}: {value} (target {t['goal']}: {met}) - {t['detail']}")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Bar chart: batch-1 pair latency (log scale) and batch-8/32 throughput per backend. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in report["results"] if r.get("status") == "ok"]
    if not rows:
        return None
    names = [f"{r['name']} ({r.get('precision', '')})" for r in rows]
    colors = ["#888888" if r["backend"] == "keras" else "#1f77b4" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.55 * len(rows) + 2.2))
    y = np.arange(len(rows))
    lat = [r["latency_b1"]["p50_ms"] for r in rows]
    ax1.barh(y, lat, color=colors)
    ax1.set_yticks(y, names)
    ax1.invert_yaxis()
    ax1.set_xscale("log")
    ax1.set_xlabel("pair latency at batch 1, p50 (ms, log scale; lower is better)")
    for yi, v in zip(y, lat):
        ax1.text(v, yi, f" {v:.1f}", va="center", fontsize=8)
    h = 0.38
    for k, (b, c) in enumerate(zip(BATCHES, ("#ff7f0e", "#2ca02c"))):
        vals = [r["throughput"][str(b)]["images_per_s"] for r in rows]
        ax2.barh(y + (k - 0.5) * h, vals, height=h, color=c, label=f"batch {b}")
    ax2.set_yticks(y, [""] * len(rows))
    ax2.invert_yaxis()
    ax2.set_xlabel("throughput (images/s; higher is better)")
    ax2.legend(loc="best", fontsize=8, framealpha=0.9)
    b = report["bundle"]
    fig.suptitle(
        f"runtime bench: {b['name']} ({'x'.join(map(str, b['input_shape']))} -> {b['embedding_dim']}) "
        f"on {report['machine']['cpu']}, {report['machine']['cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
