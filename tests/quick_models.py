"""Small real models the export and runtime tests share (trained on the bundled digits in seconds)."""

from __future__ import annotations

from pathlib import Path


def train_quick_digits(out: Path) -> Path:
    """A keras-contrastive model trained briefly on sklearn's digits; returns its model.keras path."""
    from train.trainer import TrainOptions, train

    opts = TrainOptions(
        arch="keras-contrastive",
        data="digits",
        out=str(out),
        epochs=2,
        steps_per_epoch=20,
        batch_size=64,
        lr=1e-2,
        val_pairs=300,
        progress=False,
        seed=0,
    )
    return train(opts).model_path
