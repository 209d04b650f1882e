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
