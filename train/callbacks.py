"""Keras callbacks for training: progress bars, per-epoch pair seeding, verification metrics."""

from __future__ import annotations

import keras
import numpy as np
from tqdm.auto import tqdm


class TqdmProgress(keras.callbacks.Callback):
    """One bar over epochs, one over the steps of the current epoch, with the latest losses."""

    def __init__(self, epochs: int, steps: int, initial_epoch: int = 0, disable: bool = False):
        super().__init__()
        self.epochs, self.steps, self.initial_epoch, self.disable = epochs, steps, initial_epoch, disable
        self._epoch_bar: tqdm | None = None
        self._step_bar: tqdm | None = None

    def on_train_begin(self, logs=None):
        self._epoch_bar = tqdm(
            total=self.epochs,
            initial=self.initial_epoch,
            desc="epochs",
            unit="epoch",
            position=0,
            disable=self.disable,
            dynamic_ncols=True,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._step_bar = tqdm(
            total=self.steps,
            desc=f"epoch {epoch + 1}",
            unit="step",
            position=1,
            leave=False,
            disable=self.disable,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch, logs=None):
        if self._step_bar is not None:
            self._step_bar.update(1)
            if logs and "loss" in logs:
                self._step_bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        if self._step_bar is not None:
            self._step_bar.close()
        if self._epoch_bar is not None:
            self._epoch_bar.update(1)
            shown = {
                k: f"{float(v):.4f}" for k, v in (logs or {}).items() if k in ("loss", "val_loss", "val_auc", "val_eer")
            }
            self._epoch_bar.set_postfix(shown)
            if self.disable:
                print(
                    f"epoch {epoch + 1}/{self.epochs}: " + ", ".join(f"{k}={v}" for k, v in shown.items()), flush=True
                )

    def on_train_end(self, logs=None):
        if self._epoch_bar is not None:
            self._epoch_bar.close()


class EpochSeed(keras.callbacks.Callback):
    """Tell the pair dataset which epoch is starting, so each epoch's pairs are reproducible (also on resume)."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.epoch = epoch


class VerificationMetrics(keras.callbacks.Callback):
    """Adds val_auc and val_eer (on fixed validation pairs) to the epoch logs, before checkpoints read them."""

    def __init__(self, score_fn, same: np.ndarray, spec):
        super().__init__()
        self.score_fn, self.same, self.spec = score_fn, np.asarray(same, bool), spec

    def on_epoch_end(self, epoch, logs=None):
        from train.metrics import eer, roc_auc

        scores = self.score_fn()
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(f"epoch {epoch + 1}: validation scores are not finite (training diverged?)")
        if logs is not None:
            logs["val_auc"] = roc_auc(scores, self.same, self.spec)
            logs["val_eer"] = eer(scores, self.same, self.spec)[0]


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch during which ``minutes`` of training have passed (a CPU-budget guard)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0
        self.stopped_at: int | None = None

    def on_train_begin(self, logs=None):
        import time

        self._t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        import time

        if time.time() - self._t0 >= self.seconds:
            self.stopped_at = epoch
            self.model.stop_training = True


class Snapshots(keras.callbacks.Callback):
    """Save the whole project model every ``every`` epochs with the training minutes so far, for
    accuracy-versus-time curves (evaluated afterwards; never used to pick the model)."""

    def __init__(self, model_to_save: keras.Model, folder, every: int, history_file):
        super().__init__()
        self.target, self.folder, self.every, self.history_file = model_to_save, folder, every, history_file
        self.entries: list[dict] = []

    def on_train_begin(self, logs=None):
        import time

        self._t0, self._c0 = time.time(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        import time

        from runtime.fileio import atomic_path, write_json_atomic

        if (epoch + 1) % self.every:
            return
        path = self.folder / f"epoch{epoch + 1:03d}.keras"
        with atomic_path(path) as tmp:
            self.target.save(tmp)
        self.entries.append(
            {
                "epoch": epoch + 1,
                "file": path.name,
                "wall_minutes": round((time.time() - self._t0) / 60, 3),
                "cpu_minutes": round((time.process_time() - self._c0) / 60, 3),
                "val_auc": float((logs or {}).get("val_auc", float("nan"))),
            }
        )
        write_json_atomic(self.history_file, self.entries)


class StepTimes(keras.callbacks.Callback):
    """When the first training step ended (seconds after ``t0``, the job's start) and the steady rate after it
    (steps per second over every later step, data waits included, validation excluded): what a user waits for
    and what the data pipeline must keep up with."""

    def __init__(self, t0: float):
        super().__init__()
        self.t0 = t0
        self.first_step_seconds: float | None = None
        self._busy = 0.0
        self._steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        import time

        self._begin = time.time()

    def on_train_batch_end(self, batch, logs=None):
        import time

        now = time.time()
        if self.first_step_seconds is None:
            self.first_step_seconds = now - self.t0
            return
        self._busy += now - self._begin
        self._steps += 1

    @property
    def steps_per_second(self) -> float | None:
        return self._steps / self._busy if self._steps and self._busy > 0 else None
