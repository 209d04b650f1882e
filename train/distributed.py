"""Training on several workers with TensorFlow's own engine: ``tf.distribute.MultiWorkerMirroredStrategy``
(the cluster from ``TF_CONFIG``), a training step under ``strategy.run`` instead of ``keras.Model.fit``.

Why not ``fit``: Keras 3.15's ``fit`` under MultiWorkerMirroredStrategy fails before the first step on
TensorFlow 2.21 (its symbolic build reduces the first distributed batch with ``strategy.reduce``: "unsupported
type ... PerReplica"; past that, ``reduce_per_replica`` takes a MEAN over axis 0 of the scalar loss: "Invalid
reduction dimension 0 for input with 0 dimensions"). Everything else is Keras' and TensorFlow's own:

- the step: ``tf.GradientTape`` over the compiled model and its compiled loss (``train.losses``), whose
  ``sum_over_batch_size`` reduction divides by the replica's batch and by ``num_replicas_in_sync``; the Keras
  optimizer's ``apply_gradients`` all-reduces the gradients with a SUM across replicas (Keras'
  ``TFOptimizer._all_reduce_sum_gradients``), so the update is the mean gradient of the global batch, as on
  one device (checked in tests/test_multiworker.py);
- the data: ``strategy.distribute_datasets_from_function``; each worker's input pipeline
  (``InputContext.input_pipeline_id`` of ``num_input_pipelines``) builds its batches from its own shard of
  the training index, ``global batch / workers`` pairs each;
- the state: BatchNormalization's moving statistics (updated by each replica on its own) are averaged over
  the workers at the end of each epoch (``state_averager``), so every worker holds the same model;
- validation: every worker scores the whole validation set itself, locally (the same numbers, as they hold
  the same model): simple, at the cost of each worker spending the validation time, not a share of it;
- checkpoints and ``--resume``: Keras' BackupAndRestore, as under ``fit``, rather than a tf.train.Checkpoint of
  our own: one backup format and one ``--resume`` for both loops (``train.run_folder`` knows an interrupted run
  by it), and Keras writes it from this worker's copy of the variables, with no collective, so one worker can
  write it alone. Every worker saves into its own folder (the chief's is ``--out``; the others' are thrown
  away); on ``--resume`` every worker starts from the chief's backup (``worker_folder`` copies it, so ``--out``
  must be on a file system all workers see, as TensorFlow's own BackupAndRestore asks), and a collective
  checks that all of them start at the same epoch;
- the epochs: the same Keras callbacks as ``fit`` (``keras.callbacks.CallbackList``: epoch seeding,
  validation metrics, BackupAndRestore, ModelCheckpoint, EarlyStopping, CSVLogger, progress), with the
  decisions that end training (early stopping, the time budget) and where a resumed run starts agreed by
  all workers through a collective, so no worker waits for a step the others will not take.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from train import run_folder


@dataclass(frozen=True)
class WorkerRole:
    """This process in the cluster: worker ``index`` of ``workers``; the chief alone writes the run."""

    index: int = 0
    workers: int = 1
    chief: bool = True
    address: str = ""

    def describe(self) -> str:
        where = f" ({self.address})" if self.address else ""
        return f"worker {self.index} of {self.workers}{where}{', the chief' if self.chief else ''}"


def role(strategy) -> WorkerRole:
    """Who this process is, from the strategy's TF_CONFIG cluster resolver: the chief is the task of type
    ``chief`` when the cluster has one, else worker 0 (TensorFlow's own rule)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return WorkerRole()
    jobs = resolver.cluster_spec().as_dict()
    kind, index = resolver.task_type, int(resolver.task_id or 0)
    if kind not in ("chief", "worker"):
        raise ValueError(f"TF_CONFIG task type {kind!r}: expected 'chief' or 'worker' (no evaluator or ps here)")
    order = [("chief", i) for i in range(len(jobs.get("chief", [])))]
    order += [("worker", i) for i in range(len(jobs.get("worker", [])))]
    chief = kind == "chief" or ("chief" not in jobs and index == 0)
    return WorkerRole(order.index((kind, index)), len(order), chief, jobs[kind][index])


def shard_items(labels: np.ndarray, shard: int, shards: int) -> np.ndarray:
    """Positions of the items of shard ``shard`` of ``shards``: every ``shards``-th item of each class, in
    index order. The shards are disjoint, together hold every item, and each holds every class that has
    ``shards`` items or more (so each worker still samples positives and negatives of every class)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}")
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    ranked = labels[order]
    rank = np.arange(len(labels)) - np.searchsorted(ranked, ranked, side="left")
    return np.sort(order[rank % shards == shard])


def digest(ids: np.ndarray) -> str:
    """A short sha256 of item ids: how a worker's log line shows which shard it read."""
    return hashlib.sha256(np.asarray(ids, np.int64).tobytes()).hexdigest()[:12]


def per_replica_batch(batch_size: int, replicas: int) -> int:
    """The pairs (or episode images) one replica takes of each global batch."""
    if batch_size % replicas:
        raise ValueError(
            f"--batch-size {batch_size} does not split over {replicas} replicas; use a multiple of {replicas}"
        )
    return batch_size // replicas


def worker_folder(out: str | Path, work: Path, resume: bool) -> run_folder.RunFolder:
    """A non-chief worker's run folder: a private temporary ``work`` (removed by the caller) and never ``--out``.
    With ``--resume`` it starts from the chief's backup (copied from ``--out`` or its hidden sibling, so
    ``--out`` must be a file system every worker sees, as for TensorFlow's own BackupAndRestore)."""
    pending = run_folder.pending(Path(out)) if resume else None
    folder = run_folder.RunFolder(work, work, resuming=pending is not None)
    if pending is not None:
        shutil.copytree(pending / "checkpoints" / "backup", folder.backup)
    return folder


def gather(strategy, value: float) -> np.ndarray:
    """``value`` of every replica (one per worker here), gathered with one collective; each worker gets all."""
    import tensorflow as tf

    gathered = _gatherer(strategy)(tf.constant([value], tf.float32))
    return np.asarray(strategy.experimental_local_results(gathered)[0])


@functools.lru_cache(maxsize=4)
def _gatherer(strategy) -> Callable:
    import tensorflow as tf

    @tf.function  # strategy.run outside a tf.function is slow, and TensorFlow warns at every call
    def run(x):
        def local():  # the value made inside the replica, on its device (an argument has none: "destinations
            return tf.distribute.get_replica_context().all_gather(tf.identity(x), axis=0)  # can not be empty")

        return strategy.run(local)

    return run


def barrier(strategy) -> None:
    """Wait until every worker reaches this point (a collective); an error when a worker died before it."""
    gather(strategy, 0.0)


def train_step(strategy, model, loss_fn, optimizer) -> Callable:
    """A ``tf.function(iterator) -> global mean loss``: one step of every replica under ``strategy.run``."""
    import tensorflow as tf

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))  # the replica's mean, / num_replicas_in_sync (Keras)
            if model.losses:
                loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync  # as Keras scales the loss
            scaled = optimizer.scale_loss(loss)  # a LossScaleOptimizer's scale under mixed_float16, else itself
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))  # SUM all-reduce of the gradients
        return loss

    @tf.function
    def step(iterator):
        per_replica = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def state_averager(strategy, model) -> Callable[[], None]:
    """A function that sets the model's float non-trainable variables (BatchNormalization's moving statistics)
    to their mean over all replicas. Keras 3 creates them with aggregation "none", so under tf.distribute each
    replica updates its own copy from its own shard's batches; averaged once an epoch, every worker validates,
    checkpoints and decides on the same model, whose statistics come from all the shards."""
    import tensorflow as tf

    state = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]

    @tf.function
    def average():
        def local():
            means = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in state]
            )
            for v, m in zip(state, means):
                v.value.assign(m)  # aggregation "none" in a replica: this replica's copy

        strategy.run(local)

    return average if state else lambda: None


def mean_loss(batch_loss: Callable, data) -> float:
    """``batch_loss(x, y)`` over a (local, undistributed) tf.data pipeline of (x, y), weighted by batch size, as
    Keras' ``evaluate`` reports it; run outside the strategy's scope, so Keras does not divide it by the replicas."""
    import tensorflow as tf

    total = count = 0.0
    for x, y in data:
        n = float(tf.shape(y)[0])
        total += float(batch_loss(x, y)) * n
        count += n
    return total / max(count, 1.0)


def distributed_dataset(strategy, build: Callable[[int, int, int], Any], batch_size: int, workers: int):
    """(distributed dataset, this worker's Batches): ``build(shard, shards, per_replica_batch)`` makes the
    Batches of one input pipeline, read through ``train.pair_dataset.as_tf_dataset``."""
    from train.pair_dataset import as_tf_dataset

    made: list[Any] = []

    def dataset_fn(ctx):
        batches = build(ctx.input_pipeline_id, ctx.num_input_pipelines, ctx.get_per_replica_batch_size(batch_size))
        made.append(batches)
        return as_tf_dataset(batches, workers)

    dist = strategy.distribute_datasets_from_function(dataset_fn)
    if len(made) != 1:
        raise RuntimeError(f"expected one input pipeline on this worker, got {len(made)} (one replica per worker)")
    return dist, made[0]


def fit(
    model,
    strategy,
    dataset,
    epochs: int,
    steps: int,
    callbacks: list,
    validation_data: Callable[[], Any] | None = None,
):
    """``model.fit`` for a distributed dataset, with the compiled loss and optimizer: epochs of ``steps``
    steps under ``strategy.run``, the Keras ``callbacks`` called as ``fit`` calls them, ``val_loss`` from
    ``validation_data()`` (local on each worker). Returns the ``keras.callbacks.History``."""
    import keras
    import tensorflow as tf

    loss_fn, optimizer = model.loss, model.optimizer
    val_loss = tf.function(lambda x, y: loss_fn(y, model(x, training=False)), reduce_retracing=True)
    with strategy.scope():
        optimizer.build(model.trainable_variables)  # mirrored slots before BackupAndRestore loads into them
    step = train_step(strategy, model, loss_fn, optimizer)
    average_state = state_averager(strategy, model)
    cbs = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs, steps=steps, verbose=0)
    model.stop_training = False
    model._initial_epoch = None  # BackupAndRestore's on_train_begin sets it, as in Keras' own fit
    cbs.on_train_begin()
    initial = int(model._initial_epoch or 0)
    starts = gather(strategy, initial)
    if starts.min() != starts.max():
        raise ValueError(
            f"the workers would resume at different epochs ({starts.astype(int).tolist()}): every worker must "
            "see the chief's --out (a shared file system) to --resume"
        )
    logs: dict[str, float] = {}
    for epoch in range(initial, epochs):
        cbs.on_epoch_begin(epoch)
        iterator = iter(dataset)  # after on_epoch_begin: the batches read the epoch EpochSeed set
        total = 0.0
        for i in range(steps):
            cbs.on_train_batch_begin(i)
            loss = float(step(iterator))
            total += loss
            cbs.on_train_batch_end(i, {"loss": loss})
        average_state()
        logs = {"loss": total / steps}
        if validation_data is not None:
            logs["val_loss"] = mean_loss(val_loss, validation_data())
        cbs.on_epoch_end(epoch, logs)
        model.stop_training = bool(gather(strategy, float(model.stop_training)).max())  # one stops: all stop
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return model.history


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is TensorFlow's word that another worker died or cannot be reached (a collective
    aborted: UnavailableError, or a deadline passed), not a fault of this worker."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError))


def announce(who: WorkerRole, text: str) -> None:
    """One line per worker on stderr (its own shard, where it writes), so a cluster's logs say who did what."""
    print(f"{who.describe()}: {text}", file=sys.stderr, flush=True)
