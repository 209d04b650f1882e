"""``python -m train``: train a Siamese network and write model.keras, model_card.json and plots."""

from __future__ import annotations

import argparse
import json
import sys

from runtime.console import one_line, run_cli
from runtime.extras import explain_missing_extras
from train.arguments import add_debug, bounded, exit_codes

EXAMPLES = """
examples:
  python -m train --arch pyimagesearch --data digits --out runs/digits --epochs 8
  python -m train --arch koch --data omniglot --augment --out runs/koch        # official zips (downloaded once)
  python -m train --arch vgg16-siamese --data my_photos/ --out runs/faces      # one folder per class
  python -m train --arch resnet-pairs --data pairs/annos.csv ...               # labelled pairs
  python -m train ... --resume                                                 # continue an interrupted run
  TF_CONFIG='{{"cluster": {{"worker": ["host1:23451", "host2:23451"]}}, "task": {{"type": "worker", "index": 0}}}}' \\
    python -m train --arch pyimagesearch --data digits --strategy multiworker  # on each worker: index 0, 1, ...

{exit_codes}
"""


EXIT_PEER_LOST = 3
PEER_LOST_LINE = (
    f"  {EXIT_PEER_LOST}  --strategy multiworker: another worker stopped or cannot be reached (its log says why)"
)


def parse_shape(text: str) -> tuple[int, int, int]:
    """'105x105x1' or '105x105' (channels from the architecture's default: 3) -> (H, W, C)."""
    parts = text.lower().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-shape {text!r}: expected HxWxC, e.g. 105x105x1") from None
    if len(nums) == 2:
        nums.append(3)
    if len(nums) != 3 or min(nums) <= 0 or nums[2] not in (1, 3):
        raise argparse.ArgumentTypeError(f"--input-shape {text!r}: expected HxWxC with C 1 or 3, e.g. 105x105x1")
    return tuple(nums)  # type: ignore[return-value]


def parse_model_arg(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value), the value read as JSON (numbers, lists, booleans) or else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. widths=[96,128,192,256]")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def check_model_args(parser: argparse.ArgumentParser, arch: str, kwargs: dict) -> None:
    """--model-arg keys must be named parameters of the factory (factories ignore unknown keywords)."""
    import inspect

    from train.models import get_entry

    if not kwargs:
        return
    try:
        params = inspect.signature(get_entry(arch).factory).parameters
    except ValueError as e:
        parser.error(str(e))
    named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    for key in kwargs:
        if key not in named:
            parser.error(f"--model-arg {key}: {arch} takes {', '.join(named)}")


def build_parser() -> argparse.ArgumentParser:
    from train.data.store import LOADINGS, MEMORY_BUDGET_BYTES
    from train.trainer import SCHEDULES, STRATEGIES

    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a Siamese image-similarity network (Keras 3) on class folders, Omniglot, pair lists "
        "or the bundled digits; writes model.keras, model_card.json (data sha256, command, metrics, calibrated "
        "threshold) and plots into --out.",
        epilog=EXAMPLES.format(exit_codes=exit_codes(PEER_LOST_LINE)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("model and data")
    g.add_argument("--arch", required=True, help="architecture from the registry (python -m train.models lists them)")
    g.add_argument(
        "--data",
        required=True,
        help="'digits' (bundled), 'omniglot' (env SIAMESE_EDGE_OMNIGLOT or a download), an Omniglot zip or folder, "
        "a folder with one sub-folder per class, a pair folder with annos.csv, or a CSV of path_a,path_b,label",
    )
    g.add_argument(
        "--split",
        default="background",
        choices=["background"],
        help="Omniglot split to train on (evaluation is never trained on)",
    )
    g.add_argument("--out", default="runs/train", help="output folder (default: %(default)s)")
    g.add_argument("--input-shape", type=parse_shape, help="override the architecture's input, HxWxC")
    g.add_argument(
        "--loss",
        choices=["bce", "contrastive", "supcon"],
        help="default: the architecture's own; supcon trains the embedding on episodes of classes",
    )
    g.add_argument("--margin", type=bounded(float, 0, low_open=True), help="contrastive margin (default 1.0)")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        type=parse_model_arg,
        metavar="KEY=VALUE",
        help="an argument of the architecture's factory, VALUE as JSON (e.g. widths=[96,128,192,256]); repeatable",
    )
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=bounded(int, 1), default=20)
    t.add_argument(
        "--steps-per-epoch",
        type=bounded(int, 1),
        default=100,
        help="batches of sampled pairs per epoch",
    )
    t.add_argument(
        "--batch-size",
        type=bounded(int, 1),
        default=64,
        help="pairs per batch (global, across replicas)",
    )
    t.add_argument("--lr", type=bounded(float, 0, low_open=True), default=1e-3, help="peak learning rate")
    t.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="learning-rate schedule")
    t.add_argument("--warmup-epochs", type=bounded(float, 0), default=0.0)
    t.add_argument(
        "--weight-decay",
        type=bounded(float, 0),
        default=0.0,
        help="AdamW decoupled weight decay (0: Adam)",
    )
    t.add_argument("--augment", action="store_true", help="Koch et al. affine augmentation")
    t.add_argument(
        "--rotation-classes",
        action="store_true",
        help="add each training class rotated by 90/180/270 degrees as new classes (Omniglot practice)",
    )
    t.add_argument(
        "--mirror-classes",
        action="store_true",
        help="add each training class mirrored left-right as a new class (x2, after --rotation-classes)",
    )
    t.add_argument(
        "--temperature",
        type=bounded(float, 0, low_open=True),
        default=0.1,
        help="supcon temperature (default: %(default)s)",
    )
    t.add_argument(
        "--per-class",
        type=bounded(int, 2),
        default=2,
        help="supcon: images per class in an episode (default: %(default)s)",
    )
    t.add_argument(
        "--same-group-negatives",
        type=bounded(float, 0, 1),
        default=1.0,
        help="share of negative pairs drawn from the same alphabet/group (default: %(default)s)",
    )
    t.add_argument("--val-fraction", type=bounded(float, 0, 1, low_open=True, high_open=True), default=0.2)
    t.add_argument(
        "--val-split",
        choices=["auto", "classes", "items"],
        default="auto",
        help="hold out whole classes (one-shot) or images within classes; auto: classes if >= 20",
    )
    t.add_argument("--val-pairs", type=bounded(int, 2), default=2000)
    t.add_argument("--patience", type=bounded(int, 0), default=5, help="early stopping on validation AUC")
    t.add_argument(
        "--threshold-method",
        choices=["eer", "best-accuracy", "far"],
        default="eer",
        help="how the decision threshold is calibrated on validation pairs",
    )
    t.add_argument("--target-far", type=bounded(float, 0, 1, low_open=True, high_open=True), default=1e-3)
    t.add_argument("--seed", type=bounded(int, 0), default=0)
    t.add_argument(
        "--time-budget",
        type=bounded(float, 0, low_open=True),
        metavar="MIN",
        help="stop after the epoch that passes MIN minutes",
    )
    t.add_argument(
        "--snapshot-every",
        type=bounded(int, 0),
        default=0,
        metavar="N",
        help="save checkpoints/epochNNN.keras every N epochs (for accuracy-vs-time curves)",
    )
    t.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16", "mixed_float16"],
        default="float32",
        help="mixed_bfloat16 uses AMX/AVX-512 bf16 on CPUs that have it; the saved model is float32",
    )
    r = p.add_argument_group("runs")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    r.add_argument("--force", action="store_true", help="overwrite an existing run in --out")
    r.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="none",
        help="tf.distribute: mirrored (all GPUs or CPUs here), multiworker (the cluster from TF_CONFIG, one replica "
        "per worker; each reads its own shard of the data; the chief, worker 0, alone writes --out)",
    )
    r.add_argument(
        "--data-loading",
        choices=LOADINGS,
        default="auto",
        help="memory: decode the dataset once into RAM; stream: read and preprocess each batch's images on the fly "
        f"in parallel (memory does not grow with the dataset); auto: memory up to {MEMORY_BUDGET_BYTES >> 20} MB "
        "of float32 inputs, else stream",
    )
    r.add_argument("--no-progress", action="store_true", help="plain lines instead of progress bars")
    add_debug(p)
    return p


def next_command(result) -> str:
    """The evaluation command that fits this run: the evaluation split for Omniglot, else the held-out images."""
    card = result.card
    data = card["options"]["data"]
    cmd = f"python -m train.evaluate --model {result.model_path} --data {data}"
    if data == "omniglot" or "images_background" in str(data):
        return (
            cmd.replace(str(data), str(data).replace("images_background", "images_evaluation")) + " --split evaluation"
        )
    if card["data"]["split"]["by"] in ("items", "classes"):
        return cmd + f" --heldout-from {result.card_path}"
    return cmd


@explain_missing_extras("train")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(parser, args, argv), debug=args.debug)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> int:
    """The training job inside the CLI boundary; an interrupt here keeps the run for --resume and says how."""
    check_model_args(parser, args.arch, dict(args.model_arg))
    from train.trainer import TrainOptions, train

    opts = TrainOptions(
        arch=args.arch,
        data=args.data,
        out=args.out,
        split=args.split,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
        loss=args.loss,
        margin=args.margin,
        input_shape=args.input_shape,
        build_kwargs=dict(args.model_arg),
        augment=args.augment,
        rotation_classes=args.rotation_classes,
        mirror_classes=args.mirror_classes,
        temperature=args.temperature,
        per_class=args.per_class,
        time_budget_minutes=args.time_budget,
        snapshot_every=args.snapshot_every,
        same_group_negatives=args.same_group_negatives,
        val_fraction=args.val_fraction,
        val_split=args.val_split,
        val_pairs=args.val_pairs,
        patience=args.patience,
        seed=args.seed,
        resume=args.resume,
        force=args.force,
        strategy=args.strategy,
        data_loading=args.data_loading,
        precision=args.precision,
        threshold_method=args.threshold_method,
        target_far=args.target_far,
        progress=not args.no_progress,
    )

    try:
        result = train(opts, argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    except (ValueError, OSError) as e:  # bad data or options, a folder that cannot be written (names it)
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        from train.distributed import peer_lost

        if not peer_lost(e):
            raise
        print(
            f"error: another worker of the cluster stopped or cannot be reached (its own log says why): "
            f"{one_line(e)[:240]}",
            file=sys.stderr,
        )
        return EXIT_PEER_LOST
    except KeyboardInterrupt:  # also SIGTERM (run_cli turns it into one)
        print(
            f"\ninterrupted; continue with: {' '.join(['python -m train', *sys.argv[1:], '--resume'])}", file=sys.stderr
        )
        return 130
    if not result.worker.chief:
        t = result.card["training"]
        print(f"{result.worker.describe()}: trained on shard {t['shard']['index']} of {t['shard']['of']}, done")
        print(f"model:      {result.model_path} (written by the chief)")
        return 0
    v = result.card["metrics"]["validation"]
    spec = result.siamese.config.score
    print(f"model:      {result.model_path}")
    print(f"model card: {result.card_path}")
    print(f"validation: AUC {v['auc']:.4f}, EER {v['eer']:.4f}; score: {spec.describe()}")
    print(f"next:       {next_command(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
