"""End-to-end training on real data (scikit-learn's digits): it learns, it resumes, it distributes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from train.cli import main as train_main
from train.trainer import TrainOptions, train

ROOT = Path(__file__).resolve().parents[1]


def _opts(tmp_path: Path, **kw) -> TrainOptions:
    base = dict(
        arch="keras-contrastive", data="digits", out=str(tmp_path / "run"), epochs=8, steps_per_epoch=40,
        batch_size=64, lr=1e-2, val_pairs=600, progress=False, seed=0,
    )
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    return train(_opts(tmp), argv=["python -m train", "--arch", "keras-contrastive"])


def test_training_on_digits_clearly_beats_chance(trained):
    v = trained.card["metrics"]["validation"]
    assert v["auc"] >= 0.9, v
    assert v["eer"] <= 0.2, v


def test_model_reloads_in_safe_mode_with_same_outputs(trained):
    model = keras.models.load_model(trained.model_path, safe_mode=True)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    ref = trained.siamese.model.predict([x, x[::-1]], verbose=0)
    np.testing.assert_allclose(model.predict([x, x[::-1]], verbose=0), ref, rtol=1e-5, atol=1e-6)


def test_model_card_records_what_users_need(trained):
    card = json.loads(trained.card_path.read_text())
    assert card["model"] == "model.keras"
    assert card["data"]["sha256"] and len(card["data"]["sha256"]) == 64
    assert card["data"]["source"] == "digits"  # named as given, never a path of this machine
    assert card["command"].startswith("python -m train")
    cfg = card["config"]
    # keras.io's contrastive convention: label 0 = same, a sigmoid output where low means same
    assert cfg["score"]["kind"] == "distance" and cfg["score"]["same_when"] == "low"
    assert "calibrated" in cfg["score"]["threshold_source"]
    assert 0.0 < cfg["score"]["threshold"] < 1.0
    assert cfg["label_same"] == 0 and cfg["loss"] == "contrastive"
    assert card["versions"]["tensorflow"] != "not installed"
    run = trained.card_path.parent
    for rel in card["plots"].values():
        assert (run / rel).stat().st_size > 5_000
    assert (run / "model_card.md").read_text().startswith("# model.keras")
    assert not list(run.glob(".*.tmp*")) and not list(run.glob(".model.keras*"))


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch: int):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    import train.trainer as trainer

    opts = _opts(tmp_path, epochs=3, steps_per_epoch=5, val_pairs=200)
    real_fit = keras.Model.fit

    def fit_with_interrupt(self, *a, callbacks=None, **kw):
        return real_fit(self, *a, callbacks=[*callbacks, _Interrupt(1)], **kw)

    monkeypatch.setattr(keras.Model, "fit", fit_with_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(opts)
    monkeypatch.setattr(keras.Model, "fit", real_fit)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "backup").exists()
    assert not (run / "model.keras").exists()
    # a plain re-run refuses to clobber the interrupted run
    with pytest.raises(FileExistsError, match="--resume"):
        trainer.train(opts)
    opts.resume = True
    result = trainer.train(opts)
    epochs = [int(r.split(",")[0]) for r in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2], epochs  # epochs 0-1 before the interrupt, only epoch 2 after it
    assert result.card["training"]["epochs_run"] == 3


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    code = train_main(["--arch", "pyimagesearch", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
    code = train_main(["--arch", "no-such-arch", "--data", "digits", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "unknown architecture" in capsys.readouterr().err


def test_model_args_reach_the_factory_and_unknown_ones_are_refused(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["--arch", "omniglot-conv", "--data", "digits", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2",
            "--batch-size", "16", "--val-pairs", "50", "--no-progress"]
    assert train_main([*argv, "--model-arg", "widths=[8,8,16,16]", "--model-arg", "dim=24"]) == 0
    model = keras.models.load_model(out / "model.keras")
    emb = model.get_layer("embedding")
    assert [emb.get_layer(f"conv{i}").filters for i in range(1, 5)] == [8, 8, 16, 16]
    assert emb.output.shape[-1] == 24
    with pytest.raises(SystemExit) as e:
        train_main([*argv, "--force", "--model-arg", "width=[8]"])
    assert e.value.code == 2
    assert "--model-arg width: omniglot-conv takes input_shape, loss, widths, dim, members, margin" in capsys.readouterr().err


def test_help_explains():
    out = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for word in ("--arch", "--data", "--resume", "--strategy", "examples:"):
        assert word in out.stdout


def test_mirrored_strategy_trains_over_two_logical_cpus(tmp_path):
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from train.trainer import TrainOptions, train
        r = train(TrainOptions(arch="pyimagesearch", data="digits", out={str(tmp_path / "m")!r}, epochs=1,
                               steps_per_epoch=3, batch_size=32, val_pairs=100, progress=False, strategy="mirrored"))
        print("REPLICAS", r.card["training"]["replicas"], r.card["metrics"]["validation"]["auc"])
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("REPLICAS")][0]
    assert line.split()[1] == "2"
    assert np.isfinite(float(line.split()[2]))
