"""Small real models the export and runtime tests share (trained on the bundled digits in seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OMNIGLOT_MODEL = ROOT / "models" / "omniglot" / "model.keras"


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


def _export_once(tmp_path_factory: pytest.TempPathFactory, model: Path, name: str) -> Path:
    """``model`` exported by export.build into the session's temp folder, once per session."""
    bundle = tmp_path_factory.getbasetemp() / f"{name}-bundle" / name
    if (bundle / "manifest.json").is_file():
        return bundle
    from export.build import EXIT_OK, main

    assert main(["--model", str(model), "--out", str(bundle.parent), "--name", name]) == EXIT_OK
    return bundle


def omniglot_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed one-shot model (models/omniglot) as a bundle, exported once per session."""
    if not OMNIGLOT_MODEL.is_file():
        pytest.skip(f"{OMNIGLOT_MODEL} is missing (make train-omniglot publishes it)")
    return _export_once(tmp_path_factory, OMNIGLOT_MODEL, "omniglot")


def quick_digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train_quick_digits`` trained and exported once per session."""
    done = tmp_path_factory.getbasetemp() / "digits-bundle" / "digits" / "manifest.json"
    if done.is_file():
        return done.parent
    return _export_once(tmp_path_factory, quick_digits_model(tmp_path_factory), "digits")


def quick_digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train_quick_digits``'s model.keras, trained once per session (the one ``quick_digits_bundle`` exports)."""
    model = tmp_path_factory.getbasetemp() / "digits-model" / "model.keras"
    return model if (model.parent / "model_card.json").is_file() else train_quick_digits(model.parent)
