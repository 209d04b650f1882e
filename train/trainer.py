"""The training job behind ``python -m train``: data -> pairs -> fit -> calibrated model + model card."""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from runtime.fileio import atomic_path
from train import distributed, run_folder
from train.augment import AffineAugment, VariantImages, class_variants
from train.callbacks import EpochSeed, Snapshots, StepTimes, TimeBudget, TqdmProgress, VerificationMetrics
from train.data.loading import default_workers
from train.data.store import DecodedImages, StreamedImages, SubsetImages, choose_loading
from train.losses import loss_for
from train.model_card import CARD_NAME, command_line, versions, write_card
from train.models import Siamese, create_model
from train.pair_dataset import Batches, EpisodeBatches, FixedPairs, SampledPairs, as_tf_dataset, batch_errors
from train.sampling import EpisodeSampler, PairSampler, split_items
from train.validation import ValidationPairs

log = logging.getLogger("train")

STRATEGIES = ("none", "mirrored", "multiworker")
SCHEDULES = ("cosine", "constant", "exponential")


@dataclass
class TrainOptions:
    arch: str
    data: str
    out: str = "runs/train"
    split: str = "background"
    epochs: int = 20
    steps_per_epoch: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    loss: str | None = None
    margin: float | None = None
    input_shape: tuple[int, int, int] | None = None
    augment: bool = False
    rotation_classes: bool = False
    mirror_classes: bool = False
    temperature: float = 0.1
    per_class: int = 2
    time_budget_minutes: float | None = None
    snapshot_every: int = 0
    same_group_negatives: float = 1.0
    val_fraction: float = 0.2
    val_split: str = "auto"
    val_pairs: int = 2000
    patience: int = 5
    seed: int = 0
    resume: bool = False
    force: bool = False
    strategy: str = "none"
    data_loading: str = "auto"
    precision: str = "float32"
    threshold_method: str = "eer"
    target_far: float = 1e-3
    progress: bool = True
    build_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model_path: Path
    card_path: Path
    siamese: Siamese
    card: dict[str, Any]
    worker: distributed.WorkerRole = distributed.WorkerRole()  # not the chief: it trained, the chief wrote the run


def make_strategy(name: str):
    """The tf.distribute strategy asked for. Mirrored spans all GPUs, or all logical CPUs when there is no GPU."""
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        import signal
        import threading

        handler = signal.getsignal(signal.SIGTERM)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # cluster from TF_CONFIG
        # TensorFlow's preemption notifier takes SIGTERM over (a C++ std::signal handler that only sets a flag, so
        # a worker went on training): Python's handler again, so SIGTERM ends a worker as Ctrl-C does (exit 130,
        # the run kept for --resume; the other workers then exit 3)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)
        return strategy
    raise ValueError(f"strategy {name!r}: expected one of {STRATEGIES}")


def _schedule(opts: TrainOptions, total_steps: int):
    if opts.schedule == "constant":
        return opts.lr
    if opts.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(opts.lr, max(1, opts.steps_per_epoch), 0.95)
    if opts.schedule == "cosine":
        warmup = int(opts.warmup_epochs * opts.steps_per_epoch)
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0, max(1, total_steps - warmup), warmup_target=opts.lr, warmup_steps=warmup
            )
        return keras.optimizers.schedules.CosineDecay(opts.lr, max(1, total_steps))
    raise ValueError(f"schedule {opts.schedule!r}: expected one of {SCHEDULES}")


def _build(opts: TrainOptions) -> Siamese:
    kwargs = dict(opts.build_kwargs)
    if opts.input_shape:
        kwargs["input_shape"] = tuple(opts.input_shape)
    if opts.loss:
        kwargs["loss"] = opts.loss
    if opts.margin is not None:
        kwargs["margin"] = opts.margin
    return create_model(opts.arch, **kwargs)


def train(opts: TrainOptions, argv: list[str] | None = None) -> TrainResult:
    """Run a whole training job; see ``python -m train --help`` for what each option does. One run at a time
    per ``--out`` (run_folder.locked). Under ``--strategy multiworker`` only the chief writes ``--out``; every
    other worker trains in a temporary folder that is removed when it ends."""
    t_start = time.time()
    strategy = make_strategy(opts.strategy)  # first: MultiWorkerMirroredStrategy sets up TensorFlow's collectives
    who = distributed.role(strategy)
    if who.chief:
        with run_folder.locked(opts.out):
            folder = run_folder.prepare(opts.out, resume=opts.resume, force=opts.force)
            return _train(opts, argv, strategy, who, folder, t_start)
    with tempfile.TemporaryDirectory(prefix=f"siamese-edge-worker{who.index}-") as tmp:
        folder = distributed.worker_folder(opts.out, Path(tmp), opts.resume)
        return _train(opts, argv, strategy, who, folder, t_start)


def _train(
    opts: TrainOptions,
    argv: list[str] | None,
    strategy,
    who: distributed.WorkerRole,
    folder: run_folder.RunFolder,
    t_start: float,
) -> TrainResult:
    from train import data as datasets
    from train.metrics import calibrate_threshold, verification_report
    from train.plots import plot_pair_montage, plot_roc, plot_training_curves

    out = folder.work
    keras.utils.set_random_seed(opts.seed)
    if opts.precision != "float32":
        keras.mixed_precision.set_global_policy(opts.precision)
    # multiworker: TensorFlow's engine with a step under strategy.run (Keras 3's fit fails there, see
    # train.distributed); each worker's input pipeline reads its own shard of the training index
    loop = "strategy.run" if opts.strategy == "multiworker" else "fit"
    shards = who.workers if loop == "strategy.run" else 1
    replica_batch = distributed.per_replica_batch(opts.batch_size, shards)
    if loop == "strategy.run" and strategy.num_replicas_in_sync != who.workers:
        raise ValueError(
            f"--strategy multiworker trains one replica per worker (the CPU or one GPU each); these {who.workers} "
            f"workers hold {strategy.num_replicas_in_sync}: give each worker one GPU (CUDA_VISIBLE_DEVICES)"
        )

    with strategy.scope():
        siamese = _build(opts)
    config = siamese.config
    pre = config.preprocessing
    ds = datasets.open_dataset(opts.data, split=opts.split)
    augment = AffineAugment() if opts.augment else None
    split_info: dict[str, Any]

    workers = default_workers()
    if isinstance(ds, datasets.ImageSet):
        loading = choose_loading(len(ds), pre, opts.data_loading)
        if loading == "memory":
            x, ds = datasets.load_images(ds, pre, progress=opts.progress)
            store = DecodedImages(x)
        else:
            store = StreamedImages(ds.items, ds.read_item, pre, ds.name)
        by = opts.val_split
        if by == "auto":
            by = "classes" if len(ds.classes) >= 20 else "items"
        tr, va = split_items(ds.labels, ds.class_groups, opts.val_fraction, by, opts.seed)
        val_pairs = PairSampler(ds.labels[va], ds.class_groups, opts.same_group_negatives).sample(
            opts.val_pairs, np.random.default_rng([opts.seed, 10_000])
        )
        validation = ValidationPairs(SubsetImages(store, va), val_pairs.a, val_pairs.b, val_pairs.same, workers)
        unit = "images"

        def train_rows(shard: int, of: int) -> np.ndarray:
            return tr[distributed.shard_items(ds.labels[tr], shard, of)]

        def build_train(rows: np.ndarray, batch_size: int) -> Batches:
            images, labels, groups = SubsetImages(store, rows), ds.labels[rows], ds.class_groups
            if opts.rotation_classes or opts.mirror_classes:
                variants = class_variants(labels, groups, rotations=opts.rotation_classes, mirror=opts.mirror_classes)
                images, labels, groups = VariantImages(images, variants), variants.labels, variants.class_groups
            if config.loss == "supcon":
                episodes = EpisodeSampler(
                    labels, groups, batch_size // opts.per_class, opts.per_class, opts.same_group_negatives
                )
                return EpisodeBatches(images, episodes, opts.steps_per_epoch, opts.seed, augment)
            sampler = PairSampler(labels, groups, opts.same_group_negatives)
            return SampledPairs(images, sampler, config.targets, batch_size, opts.steps_per_epoch, opts.seed, augment)

        split_info = {"by": by, "train_items": len(tr), "val_items": len(va), "val_pairs": len(val_pairs)}
    else:
        if config.loss == "supcon":
            raise ValueError(f"--loss supcon needs class-labelled images; {opts.data} is a list of pairs")
        unique, ia, ib = datasets.pair_index(ds)
        loading = choose_loading(len(unique), pre, opts.data_loading)
        if loading == "memory":
            x, ia, ib, same = datasets.decode_pairs(ds, pre, progress=opts.progress)
            store = DecodedImages(x)
        else:
            store, same = StreamedImages(unique, ds.read, pre, ds.name), ds.same
        rng = np.random.default_rng(opts.seed)
        perm = rng.permutation(len(same))
        n_val = max(2, int(round(len(same) * opts.val_fraction)))
        va, tr = perm[:n_val], perm[n_val:]
        validation = ValidationPairs(store, ia[va], ib[va], same[va], workers)
        unit = "pairs"

        def train_rows(shard: int, of: int) -> np.ndarray:
            return tr[shard::of]

        def build_train(rows: np.ndarray, batch_size: int) -> Batches:
            return FixedPairs(store, ia[rows], ib[rows], same[rows], config.targets, batch_size, opts.seed, augment)

        split_info = {"by": "pairs", "train_pairs": len(tr), "val_pairs": len(va)}
    if loading == "stream":
        validation.drop_unreadable(ds.name, progress=opts.progress)
        split_info["val_pairs"] = len(validation)
    va_same = validation.same
    if len(np.unique(va_same)) < 2:
        raise ValueError(
            "validation pairs hold only one kind (all same or all different); add data or change --val-fraction"
        )

    # the same recipe on one process or several: steps of the global batch, each worker's from its own shard
    steps = min(len(build_train(train_rows(w, shards), replica_batch)) for w in range(shards))
    opts.steps_per_epoch = steps
    total_steps = opts.epochs * steps
    with strategy.scope():
        optimizer = (
            keras.optimizers.AdamW(_schedule(opts, total_steps), weight_decay=opts.weight_decay or None)
            if opts.weight_decay
            else keras.optimizers.Adam(_schedule(opts, total_steps))
        )
        # supcon trains the embedding alone on episodes; the pair losses train the whole two-input model
        fit_model = siamese.embedding if config.loss == "supcon" else siamese.model
        fit_model.compile(optimizer=optimizer, loss=loss_for(config, opts.temperature))

    def val_scores() -> np.ndarray:
        return validation.scores(siamese)

    # fit's val_loss (supcon trains the embedding alone: no pair loss to report)
    val_data = None if config.loss == "supcon" else lambda: validation.fit_data(config.targets, opts.seed)

    shard_rows = train_rows(who.index, shards)
    if loop == "strategy.run":

        def build_shard(shard: int, of: int, batch_size: int) -> Batches:
            rows = train_rows(shard, of)
            distributed.announce(
                who,
                f"input pipeline {shard} of {of} reads its shard: {len(rows)} of {len(tr)} training {unit} "
                f"(ids sha256 {distributed.digest(rows)}), {batch_size} per step of {opts.batch_size}",
            )
            return build_train(rows, batch_size)

        dataset, train_data = distributed.distributed_dataset(strategy, build_shard, opts.batch_size, workers)
    else:
        train_data = build_train(shard_rows, opts.batch_size)
        dataset = as_tf_dataset(train_data, workers)
    callbacks, step_times = _callbacks(opts, folder, train_data, siamese, val_scores, va_same, t_start)
    t_fit = time.time()
    with batch_errors(train_data):
        if loop == "strategy.run":
            history = distributed.fit(fit_model, strategy, dataset, opts.epochs, steps, callbacks, val_data)
        else:
            history = fit_model.fit(
                dataset,
                epochs=opts.epochs,
                validation_data=None if val_data is None else val_data(),
                callbacks=callbacks,
                shuffle=False,  # the batches are drawn at random already
                verbose=0,
            )
    fit_seconds = time.time() - t_fit
    training = {
        "seconds": None,
        "fit_seconds": round(fit_seconds, 1),
        "first_step_seconds": _rounded(step_times.first_step_seconds, 2),
        "steps_per_second": _rounded(step_times.steps_per_second, 3),
        "data_loading": loading,
        "data_workers": workers,
        "unreadable_images_skipped": len(getattr(store, "unreadable", ())),
        "epochs_run": None,
        "strategy": opts.strategy,
        "replicas": int(getattr(strategy, "num_replicas_in_sync", 1)),
        "workers": who.workers,
        "loop": loop,
        "shard": {"index": who.index, "of": shards, f"train_{unit}": len(shard_rows)},
        "precision": opts.precision,
        "seed": opts.seed,
    }
    if not who.chief:  # its run folder is temporary: wait until the chief has published the run, then go
        distributed.barrier(strategy)
        card = {"training": {**training, "seconds": round(time.time() - t_start, 1)}}
        return TrainResult(Path(opts.out) / "model.keras", Path(opts.out) / CARD_NAME, siamese, card, who)

    # what users get: a fresh float32 model with the trained weights, without optimizer state or compile config
    # (resuming uses the checkpoints/ backup, not model.keras)
    keras.mixed_precision.set_global_policy("float32")
    clean = _build(opts)
    clean.model.set_weights(siamese.model.get_weights())
    siamese = clean
    config = siamese.config

    # calibrate the decision threshold on the validation pairs
    scores = val_scores()
    spec = calibrate_threshold(scores, va_same, config.score, method=opts.threshold_method, far=opts.target_far)
    config.score = spec
    report = verification_report(scores, va_same, spec, far=opts.target_far)

    model_path = out / "model.keras"
    with atomic_path(model_path) as tmp:
        siamese.model.save(tmp)

    plots_dir = out / "plots"
    hist = _full_history(out, history.history)
    plots = {
        "training_curves": str(plot_training_curves(hist, plots_dir / "training_curves.png").relative_to(out)),
    }
    from train.metrics import eer, roc

    fpr, tpr, _ = roc(scores, va_same, spec)
    eer_value, _ = eer(scores, va_same, spec)
    plots["roc"] = str(
        plot_roc(fpr, tpr, report["auc"], (eer_value, 1 - eer_value), plots_dir / "roc.png").relative_to(out)
    )
    shown = np.random.default_rng(opts.seed).choice(len(va_same), size=min(16, len(va_same)), replace=False)
    plots["pairs"] = str(
        plot_pair_montage(
            *validation.pair_images(shown), scores[shown], va_same[shown], spec, plots_dir / "pairs.png"
        ).relative_to(out)
    )

    card = {
        "model": model_path.name,
        "config": config.to_dict(),
        "command": command_line(argv),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()},
        "data": {**datasets.describe_as_given(ds, opts.data), "split": split_info},
        "training": {**training, "seconds": round(time.time() - t_start, 1), "epochs_run": len(hist.get("loss", []))},
        "metrics": {"validation": report},
        "history": hist,
        "plots": plots,
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores",
        "versions": versions(),
    }
    write_card(out, card)  # last: a folder with a model card is a finished run
    folder.publish()
    if loop == "strategy.run":
        distributed.barrier(strategy)  # the other workers end when the run is published, not before
    model_path, card_path = folder.out / model_path.name, folder.out / CARD_NAME
    return TrainResult(model_path, card_path, siamese, card)


def _callbacks(
    opts: TrainOptions,
    folder: run_folder.RunFolder,
    train_data: Batches,
    siamese: Siamese,
    val_scores,
    va_same: np.ndarray,
    t_start: float,
) -> tuple[list[keras.callbacks.Callback], StepTimes]:
    """The callbacks of a training run, for ``fit`` and for the multiworker loop alike, writing into the
    worker's own folder (the run folder on the chief, a temporary one elsewhere)."""
    out = folder.work
    monitor = "val_auc"
    ckpt_dir = out / "checkpoints"
    step_times = StepTimes(t_start)
    callbacks = [
        EpochSeed(train_data),
        step_times,
        VerificationMetrics(val_scores, va_same, siamese.config.score),
        keras.callbacks.BackupAndRestore(str(folder.backup)),
        keras.callbacks.ModelCheckpoint(str(ckpt_dir / "best.keras"), monitor=monitor, mode="max", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=opts.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=folder.resuming),
        TqdmProgress(opts.epochs, opts.steps_per_epoch, disable=not opts.progress),
    ]
    if opts.time_budget_minutes:
        callbacks.append(TimeBudget(opts.time_budget_minutes))
    if opts.snapshot_every:
        callbacks.append(Snapshots(siamese.model, ckpt_dir, opts.snapshot_every, out / "snapshots.json"))
    return callbacks, step_times


def _full_history(out: Path, last: dict[str, list]) -> dict[str, list[float]]:
    """The whole run's history, also across a resume (from history.csv, which CSVLogger appends)."""
    csv_path = out / "history.csv"
    if csv_path.exists():
        import csv

        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            keys = [k for k in rows[0] if k != "epoch"]
            return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in keys}
    return {k: [float(v) for v in vals] for k, vals in last.items()}


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
