"""``python -m train.publish``: evaluate a finished run the way its model card will say, and publish it.

For a one-shot model (the committed Omniglot one): every snapshot and the final model are evaluated with
``python -m train.evaluate`` on the evaluation data (within-alphabet N-way one-shot trials, Lake-format runs
built from the same data, verification pairs); the accuracy-versus-minutes curve is plotted; the model, its
card (with each figure and the command that measured it) and its plots are copied to ``--to``.
Snapshots are evaluated for the curve only: the published model is the run's final model.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from runtime.console import one_line, run_cli
from runtime.extras import explain_missing_extras
from runtime.fileio import atomic_dir, check_replaceable, check_writable_dir, write_json_atomic, write_text_atomic
from train.arguments import add_debug, bounded, exit_codes
from train.model_card import CARD_NAME


def _evaluate(argv: list[str]) -> dict[str, Any]:
    from train.evaluate import main as evaluate_main

    out = Path(argv[argv.index("--json") + 1])
    code = evaluate_main(argv)
    if code != 0:
        raise RuntimeError(f"python -m train.evaluate {' '.join(argv)} exited with {code}")
    return json.loads(out.read_text())


# published 20-way within-alphabet one-shot accuracy on Lake's runs, drawn on the Omniglot curve
REFERENCES = {"Koch et al. 2015": 0.92, "people (Lake et al. 2015)": 0.955}


def _curve_of(run: str) -> list[tuple[float, float]]:
    """Another published run's accuracy-versus-minutes points (its model_card.json), for comparison."""
    from train.model_card import read_card

    card = read_card(Path(run) / "model.keras")
    points = (card or {}).get("evaluation", {}).get("accuracy_vs_minutes")
    if not points:
        raise ValueError(f"--compare {run}: no published accuracy_vs_minutes in its model card (run train.publish)")
    return [(p["wall_minutes"], p["accuracy"]) for p in points]


def _label_and_run(text: str) -> tuple[str, str]:
    label, sep, run = text.partition("=")
    if not sep or not label or not run:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=RUN, e.g. 'single model=runs/omniglot-single'")
    return label, run


def publish(args: argparse.Namespace) -> dict[str, Any]:
    from train.model_card import read_card, render_markdown
    from train.plots import plot_accuracy_vs_minutes

    run = Path(args.run)
    model = run / "model.keras"
    card = read_card(model)
    if card is None:
        raise FileNotFoundError(f"{run}: no model.keras with its model_card.json")
    compared = {label: _curve_of(other) for label, other in args.compare}  # refused before any work is done
    to = Path(args.to)
    _check_target(to, run)  # also before any work is done
    evals = run / "eval"
    evals.mkdir(exist_ok=True)
    common = ["--data", args.data, "--split", "evaluation", "--n-way", str(args.n_way), "--trials", str(args.trials)]
    common += ["--seed", str(args.seed), "--no-progress"]

    # the final model: N-way trials + verification + Lake runs built from the evaluation data
    lake_dir = evals / "lake_runs"
    if lake_dir.exists():
        shutil.rmtree(lake_dir)
    final_cmd = ["--model", str(model), *common, "--pairs", str(args.pairs), "--out", str(evals)]
    final_cmd += [
        "--build-lake-runs",
        str(lake_dir),
        "--runs",
        str(args.lake_runs),
        "--json",
        str(evals / "final.json"),
    ]
    final = _evaluate(final_cmd)
    lake_cmd = ["--model", str(model), "--lake-runs", str(lake_dir), "--json", str(evals / "lake.json")]
    lake = _evaluate(lake_cmd)["lake_runs"]

    # the curve: each snapshot on the same trials
    points = []
    snaps_file = run / "snapshots.json"
    snaps = json.loads(snaps_file.read_text()) if snaps_file.exists() else []
    key = f"{args.n_way}_way_1_shot"
    for snap in snaps:
        path = run / "checkpoints" / snap["file"]
        res = _evaluate(["--model", str(path), *common, "--pairs", "500", "--json", str(evals / f"{path.stem}.json")])
        points.append({**snap, "accuracy": res[key]["accuracy"]})
    final_minutes = card["training"]["fit_seconds"] / 60
    points.append(
        {
            "epoch": card["training"]["epochs_run"],
            "file": "model.keras",
            "wall_minutes": final_minutes,
            "accuracy": final[key]["accuracy"],
        }
    )
    series = {f"this model ({args.trials} trials)": [(p["wall_minutes"], p["accuracy"]) for p in points]}
    series.update(compared)
    references = REFERENCES if args.data == "omniglot" and args.n_way == 20 else None
    plot = plot_accuracy_vs_minutes(series, run / "plots" / "accuracy_vs_minutes.png", references)

    def cmd(argv: list[str]) -> str:
        return "python -m train.evaluate " + " ".join(shlex.quote(a) for a in argv)

    rel_final = [a if a != str(model) else str(to / "model.keras") for a in final_cmd]
    rel_lake = [a if a != str(model) else str(to / "model.keras") for a in lake_cmd]
    card["evaluation"] = {
        "data": final["data"],
        f"within_alphabet_{key}": {**final[key], "command": cmd(rel_final)},
        "lake_runs": {**lake, "built_from": "images_evaluation", "runs": args.lake_runs, "command": cmd(rel_lake)},
        "verification": {**final["verification"], "command": cmd(rel_final)},
        "accuracy_vs_minutes": points,
        "note": "minutes are wall-clock training minutes on this 2-core CPU (shared machine); snapshots are "
        "evaluated for the curve only, the published model is the final one",
    }
    card["plots"]["accuracy_vs_minutes"] = str(plot.relative_to(run))
    card.setdefault("metrics", {})["evaluation"] = {
        f"{key} accuracy": final[key]["accuracy"],
        "lake runs accuracy": lake["accuracy"],
        "verification AUC": final["verification"]["auc"],
        "verification EER": final["verification"]["eer"],
    }
    card["make_target"] = args.make_target
    # publish: model, card, plots (no checkpoints, no runs of images), staged and renamed into place whole
    with atomic_dir(to) as stage:
        shutil.copy2(model, stage / "model.keras")
        for rel in card["plots"].values():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / rel, stage / rel)
        write_json_atomic(stage / CARD_NAME, card)
        write_text_atomic(stage / "model_card.md", render_markdown(card))
    write_json_atomic(run / CARD_NAME, card)
    return card


def _check_target(to: Path, run: Path) -> None:
    """--to is replaced whole at the end: it must be a published model (or new), not the run, and writable."""
    if to.resolve() == run.resolve():
        raise ValueError(f"--to {to}: is the --run folder itself; publish into another folder")
    check_replaceable(to, (CARD_NAME,), "published model")
    check_writable_dir(to.resolve().parent, "--to")


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.publish",
        description=__doc__.splitlines()[0],
        epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, help="a finished training run (python -m train --out RUN)")
    p.add_argument("--to", required=True, help="where to publish (e.g. models/omniglot)")
    p.add_argument("--data", default="omniglot", help="evaluation data (default: %(default)s)")
    p.add_argument("--n-way", type=bounded(int, 2), default=20)
    p.add_argument("--trials", type=bounded(int, 1), default=400)
    p.add_argument("--pairs", type=bounded(int, 2), default=4000)
    p.add_argument("--lake-runs", type=bounded(int, 1), default=20, help="Lake-format runs to build (20 items each)")
    p.add_argument("--seed", type=bounded(int, 0), default=0)
    p.add_argument("--make-target", default="make train-omniglot")
    p.add_argument(
        "--compare",
        type=_label_and_run,
        action="append",
        default=[],
        metavar="LABEL=RUN",
        help="also draw another published run's accuracy-versus-minutes curve (repeatable)",
    )
    add_debug(p)
    args = p.parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    try:
        card = publish(args)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    for k, v in card["metrics"]["evaluation"].items():
        print(f"{k}: {v:.4f}")
    print(f"published: {args.to}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
