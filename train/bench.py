"""``python -m train.bench``: training and embedding throughput per architecture, FP32 vs mixed bf16; with
``--data-jobs``, whole training jobs with their peak memory, time to first step and steps/s (``train.bench_data``);
with ``--multiworker N``, one recipe on one process and on N loopback workers (``train.loopback``).

Everything is measured in one run on the same machine, so the ratios (bf16 / fp32, arch / arch) are what
to read; absolute numbers move with whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.console import run_cli
from runtime.extras import explain_missing_extras
from train.arguments import add_debug, bounded, exit_codes
from train.text_table import text_table

DEFAULT_ARCHS = ("pyimagesearch", "keras-contrastive", "koch", "vgg16-siamese")


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_arch(name: str, precision: str, batch: int, repeats: int) -> dict[str, Any]:
    import keras

    from train.losses import loss_for
    from train.models import create_model

    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        s = create_model(name)
        shape = s.config.preprocessing.input_shape
        rng = np.random.default_rng(0)
        xa = rng.random((batch, *shape), dtype=np.float32)
        xb = rng.random((batch, *shape), dtype=np.float32)
        y = s.config.targets(rng.random(batch) < 0.5)
        s.model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss_for(s.config))
        train_s = _median_seconds(lambda: s.model.train_on_batch((xa, xb), y), repeats)
        embed_s = _median_seconds(lambda: s.embedding(xa, training=False).numpy(), repeats)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {
        "arch": name,
        "precision": precision,
        "batch": batch,
        "params": int(s.model.count_params()),
        "train_pairs_per_s": batch / train_s,
        "embed_images_per_s": batch / embed_s,
    }


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.bench",
        description=__doc__.splitlines()[0],
        epilog=exit_codes("  1  --data-jobs: a target was missed (the table says which)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    p.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    p.add_argument("--batch", type=bounded(int, 1), default=32)
    p.add_argument("--repeats", type=bounded(int, 1), default=5)
    p.add_argument("--out", default="runs/bench")
    p.add_argument(
        "--data-jobs",
        action="store_true",
        help="instead: run issue 16's training jobs (VGG16 on Omniglot, the Omniglot recipe in memory and streamed, "
        "a generated folder) and report peak RSS, time to first step and steps/s",
    )
    p.add_argument(
        "--folder-images", type=bounded(int, 0), default=50_000, help="--data-jobs: generated folder size (0: skip)"
    )
    p.add_argument(
        "--multiworker",
        type=bounded(int, 2),
        metavar="N",
        help="instead: train one recipe (pyimagesearch on digits, 300 steps of 64 pairs) on 1 process and on N "
        "loopback workers (--strategy multiworker) and report steps/s, time to first step and peak RSS",
    )
    add_debug(p)
    args = p.parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    from runtime.fileio import check_writable_dir

    try:
        check_writable_dir(args.out, "--out")  # before the benchmark, not after it
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.data_jobs:
        return _data_jobs(Path(args.out), args.folder_images)
    if args.multiworker:
        return _multiworker_jobs(Path(args.out), args.multiworker)
    from tqdm.auto import tqdm

    from runtime.fileio import write_json_atomic, write_text_atomic

    rows = []
    jobs = [(a, pr) for a in args.archs for pr in args.precisions]
    for arch, prec in tqdm(jobs, desc="train bench", unit="config"):
        rows.append(bench_arch(arch, prec, args.batch, args.repeats))
    base = {r["arch"]: r for r in rows if r["precision"] == "float32"}
    for r in rows:
        b = base.get(r["arch"])
        r["train_speedup_vs_fp32"] = r["train_pairs_per_s"] / b["train_pairs_per_s"] if b else None
        r["embed_speedup_vs_fp32"] = r["embed_images_per_s"] / b["embed_images_per_s"] if b else None
    table = "\n".join(
        text_table(
            [
                ("arch", -18, lambda r: r["arch"]),
                ("precision", -15, lambda r: r["precision"]),
                ("params", 11, lambda r: f"{r['params']:,d}"),
                ("train pairs/s", 14, lambda r: f"{r['train_pairs_per_s']:.1f}"),
                ("x fp32", 7, lambda r: f"{r['train_speedup_vs_fp32'] or 0:.2f}"),
                ("embed img/s", 12, lambda r: f"{r['embed_images_per_s']:.1f}"),
                ("x fp32", 7, lambda r: f"{r['embed_speedup_vs_fp32'] or 0:.2f}"),
            ],
            rows,
        )
    )
    print(table)
    out = Path(args.out)
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    write_json_atomic(out / "train_bench.json", {"meta": meta, "batch": args.batch, "results": rows})
    write_text_atomic(out / "train_bench.txt", table + "\n")
    print(f"written: {out / 'train_bench.json'}, {out / 'train_bench.txt'}")
    return 0


def _data_jobs(out: Path, folder_images: int) -> int:
    from runtime.fileio import write_json_atomic, write_text_atomic
    from train.bench_data import data_jobs, summarize

    rows = data_jobs(out / "data_jobs", folder_images)
    table, verdicts = summarize(rows)
    print(table)
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    write_json_atomic(out / "train_data_bench.json", {"meta": meta, "results": rows, "targets": verdicts})
    write_text_atomic(out / "train_data_bench.txt", table + "\n")
    print(f"written: {out / 'train_data_bench.json'}, {out / 'train_data_bench.txt'}")
    return 0 if all(verdicts.values()) else 1


def _multiworker_jobs(out: Path, workers: int) -> int:
    from runtime.fileio import write_json_atomic, write_text_atomic
    from train.bench_data import multiworker_jobs, table

    rows = multiworker_jobs(out / "multiworker_jobs", workers)
    text = "\n".join(table(rows))
    print(text)
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    write_json_atomic(out / "train_multiworker_bench.json", {"meta": meta, "results": rows})
    write_text_atomic(out / "train_multiworker_bench.txt", text + "\n")
    print(f"written: {out / 'train_multiworker_bench.json'}, {out / 'train_multiworker_bench.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
