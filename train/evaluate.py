"""``python -m train.evaluate``: verification (ROC AUC, EER, thresholds) and N-way K-shot accuracy.

Embeddings are computed once per image and pairs or trials are scored on them (embed once, score many),
so 400 twenty-way trials cost one pass over the images they use.

What an evaluation writes appears all or nothing: ``--out DIR`` (the plots, ``evaluation.json`` with the results,
and ``--json`` or ``--build-lake-runs`` when they lie inside it) is staged in a hidden folder beside DIR and
published with one rename, replacing an earlier evaluation's folder whole (never a folder without its
``evaluation.json``: that is someone else's); ``--json`` elsewhere is written atomically after it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from runtime.console import one_line, run_cli
from runtime.extras import explain_missing_extras
from runtime.select import BackendUnavailable
from train.arguments import add_debug, bounded, exit_codes

EXAMPLES = """
examples:
  python -m train.evaluate --model runs/demo/model.keras --data digits --heldout-from runs/demo/model_card.json --n-way 5
  python -m train.evaluate --model models/omniglot/model.keras --data omniglot --split evaluation --n-way 20 --trials 400
  python -m train.evaluate --model models/omniglot/model.keras --lake-runs runs/lake --json results.json
  python -m train.evaluate --model models/omniglot/model.keras --data omniglot --split evaluation --build-lake-runs runs/lake
  python -m train.evaluate --bundle bundles/omniglot --backend openvino --precision int8 --data omniglot --trials 2000

{exit_codes}
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Evaluate a Siamese model: verification ROC AUC, EER and its threshold, the threshold at a "
        "target false-accept rate, the best-accuracy threshold; within-alphabet N-way K-shot accuracy "
        "(Lake et al.); and accuracy on Lake's published one-shot run format.",
        epilog=EXAMPLES.format(exit_codes=exit_codes()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help=".keras, Keras 2 .h5 (whole model or weights-only), SavedModel dir")
    which.add_argument(
        "--bundle",
        help="an exported bundle, scored as the runtime runs it (--backend, --precision): e.g. its INT8 graph on the task",
    )
    p.add_argument("--backend", default="auto", help="with --bundle: the runtime backend (default: %(default)s)")
    p.add_argument("--precision", help="with --bundle: fp32, fp16, bf16 or int8 (default: what the backend picks)")
    p.add_argument("--arch", help="architecture, when the file does not say (weights-only files are recognised)")
    p.add_argument(
        "--allow-unsafe-lambda",
        action="store_true",
        help="deserialize Lambda layers that are not recognised distances (runs stored bytecode)",
    )
    p.add_argument("--data", help="dataset to evaluate on (same forms as python -m train --data)")
    p.add_argument(
        "--split",
        default="evaluation",
        choices=["background", "evaluation"],
        help="Omniglot split (default: %(default)s)",
    )
    p.add_argument(
        "--heldout-from",
        metavar="MODEL_CARD",
        help="evaluate only on the images the training run held out (from its model_card.json)",
    )
    p.add_argument("--pairs", type=bounded(int, 2), default=4000, help="verification pairs to sample (half same)")
    p.add_argument(
        "--far",
        type=bounded(float, 0, 1, low_open=True, high_open=True),
        default=1e-3,
        help="target false-accept rate for the threshold",
    )
    p.add_argument("--n-way", type=bounded(int, 2), default=20)
    p.add_argument("--k-shot", type=bounded(int, 1), default=1)
    p.add_argument("--trials", type=bounded(int, 0), default=400, help="N-way trials (0 to skip)")
    p.add_argument("--across-groups", action="store_true", help="draw N-way classes across alphabets, not within one")
    p.add_argument("--lake-runs", metavar="DIR", help="score Lake et al.'s run format in DIR (runNN/class_labels.txt)")
    p.add_argument("--build-lake-runs", metavar="DIR", help="write runs in Lake's format from --data into DIR")
    p.add_argument("--runs", type=bounded(int, 1), default=20, help="runs to build with --build-lake-runs")
    p.add_argument("--seed", type=bounded(int, 0), default=0)
    p.add_argument(
        "--out",
        help="folder for plots (ROC, pair montage) and evaluation.json; written whole, replacing an earlier "
        "evaluation's folder (a new or empty folder, or one holding evaluation.json)",
    )
    p.add_argument("--json", metavar="OUT", help="write all results as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_debug(p)
    return p


EVALUATION_JSON = "evaluation.json"  # in --out: the results, and the mark of a folder an evaluation wrote


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from runtime.fileio import atomic_dir, check_writable_dir, write_json_atomic

    out = Path(args.out) if args.out else None
    if out is not None:  # checked before the model is scored, not when the results are written
        check_evaluation_out(out, args)
        check_writable_dir(out.parent, "--out")
    if args.json and not _inside(args.json, out):
        check_writable_dir(Path(args.json).parent, "--json")
    if out is None:
        results = _evaluate(args, None)
    else:
        with atomic_dir(out) as stage:
            results = _evaluate(args, stage)
            write_json_atomic(stage / EVALUATION_JSON, results)
            if args.json and _inside(args.json, out):
                write_json_atomic(_staged(args.json, out, stage), results)
    if args.json and not _inside(args.json, out):
        write_json_atomic(args.json, results)
    return results


def _inside(path: str | Path, folder: Path | None) -> bool:
    return folder is not None and Path(path).resolve().is_relative_to(folder.resolve())


def _staged(path: str | Path, out: Path | None, stage: Path | None) -> Path:
    """Where ``path`` is written: its place in the staging folder when it lies inside --out, else itself."""
    if stage is None or not _inside(path, out):
        return Path(path)
    return stage / Path(path).resolve().relative_to(out.resolve())


def check_evaluation_out(out: Path, args: argparse.Namespace) -> None:
    """--out is replaced whole: it must be new, empty or an earlier evaluation's folder, and hold no input."""
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_dir():
            raise ValueError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / EVALUATION_JSON).is_file():
            raise ValueError(
                f"--out {out}: exists and is not an evaluation's folder (no {EVALUATION_JSON}); an evaluation replaces "
                "its --out whole: choose a new or empty folder"
            )
    for option in ("model", "bundle", "data", "heldout_from", "lake_runs"):
        given = getattr(args, option)
        if given and Path(given).exists() and _inside(given, out):
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"{flag} {given} lies inside --out {out}, which the evaluation replaces whole")
    for option in ("json", "build_lake_runs"):
        given = getattr(args, option)
        if given and Path(given).resolve() == out.resolve():
            raise ValueError(
                f"--{option.replace('_', '-')} {given} is --out itself: give a path inside it or elsewhere"
            )


def _evaluate(args: argparse.Namespace, stage: Path | None) -> dict[str, Any]:
    """The evaluation itself; what goes into --out is written into ``stage``."""
    from train import data as datasets
    from train.load import load_model
    from train.metrics import verification_report
    from train.oneshot import (
        build_trials,
        drawer_of,
        lake_runs_accuracy,
        oneshot_accuracy,
        read_lake_runs,
        write_lake_runs,
    )
    from train.sampling import PairSampler, split_items

    if args.bundle:
        from train.deployed import DeployedModel

        siamese = DeployedModel(args.bundle, args.backend, args.precision)
        results: dict[str, Any] = {"bundle": siamese.describe()}
    else:
        if args.precision or args.backend != "auto":
            raise ValueError("--backend and --precision choose how a --bundle runs; a --model runs on Keras")
        siamese = load_model(args.model, arch=args.arch, allow_unsafe=args.allow_unsafe_lambda)
        results = {"model": str(args.model)}
    cfg = siamese.config
    spec = cfg.score
    results.update({"arch": cfg.arch, "score": spec.to_dict()})
    out = Path(args.out) if args.out else None
    plots = (out, stage) if stage is not None else None

    if args.data:
        ds = datasets.open_dataset(args.data, split=args.split)
        results["data"] = datasets.describe_as_given(ds, args.data)
        if isinstance(ds, datasets.PairSet):
            xa, xb, same = datasets.load_pairs(ds, cfg.preprocessing, progress=not args.no_progress)
            scores = siamese.score(xa, xb)
            results["verification"] = verification_report(scores, same, spec, far=args.far)
            _plots(plots, scores, same, spec, xa, xb, args.seed, results)
        else:
            x, ds = datasets.load_images(ds, cfg.preprocessing, progress=not args.no_progress)
            if args.heldout_from:
                card = json.loads(Path(args.heldout_from).read_text())
                o = card["options"]
                by = card["data"]["split"]["by"]
                _, keep = split_items(ds.labels, ds.class_groups, o["val_fraction"], by, o["seed"])
                x, ds = x[keep], ds.subset(keep)
                results["heldout_from"] = str(args.heldout_from)
                results["data"] = datasets.describe_as_given(ds, args.data)
            emb = siamese.embed(x)
            sampler = PairSampler(ds.labels, ds.class_groups, same_group_negatives=1.0)
            pairs = sampler.sample(args.pairs, np.random.default_rng([args.seed, 1]))
            scores = siamese.score_embeddings(emb[pairs.a], emb[pairs.b])
            results["verification"] = verification_report(scores, pairs.same, spec, far=args.far)
            _plots(plots, scores, pairs.same, spec, x[pairs.a], x[pairs.b], args.seed, results)
            if args.trials > 0:
                drawers = np.array([-1 if (d := drawer_of(i)) is None else d for i in ds.items])
                trials = build_trials(
                    ds.labels,
                    ds.class_groups,
                    drawers if np.all(drawers >= 0) else None,
                    n_way=args.n_way,
                    k_shot=args.k_shot,
                    n_trials=args.trials,
                    within_group=not args.across_groups,
                    seed=args.seed,
                )
                res = oneshot_accuracy(trials, emb, siamese.score_embeddings, spec)
                res["within_group"] = not args.across_groups
                results[f"{args.n_way}_way_{args.k_shot}_shot"] = res
            if args.build_lake_runs:
                lake_out = _staged(args.build_lake_runs, out, stage)
                write_lake_runs(ds, lake_out, n_runs=args.runs, n_way=args.n_way, seed=args.seed)
                results["built_lake_runs"] = str(args.build_lake_runs)
    if args.lake_runs:
        runs = read_lake_runs(args.lake_runs)
        results["lake_runs"] = lake_runs_accuracy(
            runs, siamese.embed, siamese.score_embeddings, spec, cfg.preprocessing
        )
    if not args.data and not args.lake_runs:
        raise ValueError("nothing to evaluate: give --data and/or --lake-runs")
    return results


def _plots(plots: tuple[Path, Path] | None, scores, same, spec, xa, xb, seed, results) -> None:
    """The ROC and a montage of pairs, written into the staging folder; ``results`` names where they will be."""
    if plots is None:
        return
    out, stage = plots
    from train.metrics import eer, roc, roc_auc
    from train.plots import plot_pair_montage, plot_roc

    fpr, tpr, _ = roc(scores, same, spec)
    e, _ = eer(scores, same, spec)
    shown = np.random.default_rng(seed).choice(len(same), size=min(16, len(same)), replace=False)
    plot_roc(fpr, tpr, roc_auc(scores, same, spec), (e, 1 - e), stage / "roc.png")
    plot_pair_montage(xa[shown], xb[shown], scores[shown], same[shown], spec, stage / "pairs.png")
    results["plots"] = {"roc": str(out / "roc.png"), "pairs": str(out / "pairs.png")}


def print_summary(results: dict[str, Any]) -> None:
    v = results.get("verification")
    if v:
        print(
            f"verification: AUC {v['auc']:.4f}  EER {v['eer']:.4f} at {v['eer_threshold']:.4g}  "
            f"best accuracy {v['best_accuracy']:.4f} at {v['best_accuracy_threshold']:.4g}  "
            f"threshold at FAR {v['far_target']:g}: {v['far_threshold']:.4g} (TPR {v['far_tpr']:.4f})"
        )
    for k, r in results.items():
        if k.endswith("_shot"):
            lo, hi = r.get("ci95", (float("nan"), float("nan")))
            print(
                f"{k.replace('_', ' ')}: accuracy {r['accuracy']:.4f} over {r['trials']} trials (95% CI {lo:.3f}-{hi:.3f})"
            )
    if "lake_runs" in results:
        r = results["lake_runs"]
        print(f"lake runs: accuracy {r['accuracy']:.4f} over {r['trials']} test items")


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    try:
        results = evaluate(args)
    except (ValueError, OSError, KeyError, BackendUnavailable) as e:  # bad model, data, arguments or --backend
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print_summary(results)
    if args.json:
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
