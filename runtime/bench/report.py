"""The report: GFLOP/s and the fraction of peak per row, the targets (``TARGETS``) and the summary, the table
(printed and written as .txt) and the bar chart (.png, with matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench.rows import BATCHES
from runtime.fileio import atomic_path

BENCH_SCHEMA = 1
TARGETS = {"pair_b1_vs_keras_predict": 20.0, "best_b32_peak_fraction": 0.5, "runtime_rss_mb": 300.0}


def add_compute(row: dict[str, Any], flops_per_image: int | None, peaks: dict[str, dict[str, Any]]) -> None:
    """Into an ok row: its GFLOP/s at batch 32 and their fraction of the peak at the row's precision (fp32's
    where that precision has none)."""
    tp = row.get("throughput", {}).get("32")
    if not tp or not flops_per_image:
        return
    g = flops_per_image * tp["images_per_s"] / 1e9
    row["gflops_b32"] = g
    peak = peaks.get(row.get("precision", "fp32")) or peaks.get("fp32")
    if peak:
        row["peak_fraction_b32"] = g / peak["gflops"]
        row["peak_precision"] = peak.get("precision", "fp32")


def summarize(results: list[dict[str, Any]], runtime_proc: dict[str, Any] | None) -> dict[str, Any]:
    """The target ratios from the rows of one run (None where not measured)."""
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
    if best_b1 and keras_predict:
        out["pair_b1_vs_keras_predict"] = keras_predict["latency_b1"]["p50_ms"] / best_b1["latency_b1"]["p50_ms"]
    keras_call = next((r for r in ok if r["name"] == "keras-call"), None)
    if best_b1 and keras_call:
        out["pair_b1_vs_keras_call"] = keras_call["latency_b1"]["p50_ms"] / best_b1["latency_b1"]["p50_ms"]
    with_frac = [r for r in rt if r.get("peak_fraction_b32") is not None]
    if with_frac:
        best = max(with_frac, key=lambda r: r["peak_fraction_b32"])
        out["best_b32_backend"] = best["name"]
        out["best_b32_peak_fraction"] = best["peak_fraction_b32"]
        out["best_b32_gflops"] = best["gflops_b32"]
    if runtime_proc and "error" not in runtime_proc:
        out["runtime_rss_mb"] = runtime_proc.get("rss_mb_after_pair")
        out["runtime_hwm_mb"] = runtime_proc.get("hwm_mb")
    targets = {}
    for key, goal in TARGETS.items():
        v = out.get(key)
        met = (
            None if v is None else bool(v < goal if key == "runtime_rss_mb" else v >= goal)
        )  # not a numpy bool: `is False` checks it
        targets[key] = {"value": v, "goal": (f"< {goal:g}" if key == "runtime_rss_mb" else f">= {goal:g}"), "met": met}
    out["targets"] = targets
    return out


def format_table(report: dict[str, Any]) -> str:
    b = report["bundle"]
    peak = report["peak"]["fp32"]
    fl = report["flops"]
    lines = [
        f"runtime bench: bundle {b['name']!r} ({b.get('arch') or '?'}, input {'x'.join(map(str, b['input_shape']))}, "
        f"embedding {b['embedding_dim']}, head {b['head']}) on {report['machine']['cpu']} "
        f"({report['machine']['cpus']} CPUs)",
        f"images: {report['images']['source']}",
        f"peak fp32: {peak['gflops']:.1f} GFLOP/s ({peak['method']})"
        + "".join(
            f"; peak {p}: {v['gflops']:.1f} GFLOP/s ({v['method']})" for p, v in report["peak"].items() if p != "fp32"
        ),
    ]
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
    s = report["summary"]
    t = s["targets"]

    def fmt(key: str, unit: str, spec: str) -> str:
        v = t[key]["value"]
        met = {True: "met", False: "MISSED", None: "not measured"}[t[key]["met"]]
        return f"{spec.format(v) if v is not None else '-'}{unit} ({t[key]['goal']}: {met})"

    lines.append(
        "targets: pair b1 vs keras predict "
        + fmt("pair_b1_vs_keras_predict", "x", "{:.1f}")
        + f" [{s.get('best_b1_backend')}]"
        + "; best b32 of peak "
        + fmt("best_b32_peak_fraction", "", "{:.2f}")
        + f" [{s.get('best_b32_backend')}]"
        + "; runtime RSS "
        + fmt("runtime_rss_mb", " MB", "{:.0f}")
    )
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
