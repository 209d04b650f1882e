"""python -m train.evaluate end to end: a real digits model, held-out verification, N-way trials, Lake runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.evaluate import main as evaluate_main
from train.trainer import TrainOptions, train


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    opts = TrainOptions(
        arch="keras-contrastive", data="digits", out=str(out), epochs=6, steps_per_epoch=40, batch_size=64,
        lr=1e-2, val_pairs=600, progress=False, seed=0,
    )
    return train(opts).model_path


def test_heldout_verification_and_n_way(digits_model, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    code = evaluate_main([
        "--model", str(digits_model), "--data", "digits", "--heldout-from", str(digits_model.parent / "model_card.json"),
        "--n-way", "5", "--trials", "200", "--pairs", "1000", "--out", str(tmp_path / "plots"), "--json", str(out_json),
        "--no-progress",
    ])
    assert code == 0
    r = json.loads(out_json.read_text())
    assert r["verification"]["auc"] >= 0.9
    assert 0 < r["verification"]["eer"] < 0.2
    five = r["5_way_1_shot"]
    assert five["trials"] == 200 and five["accuracy"] >= 0.6  # chance is 0.2
    assert r["data"]["images"] < 1797  # only the held-out digits
    for p in r["plots"].values():
        assert Path(p).stat().st_size > 5_000
    printed = capsys.readouterr().out
    assert "AUC" in printed and "5 way 1 shot" in printed


def test_lake_runs_built_from_evaluation_split_and_scored(digits_model, tmp_path, shared_omniglot, monkeypatch):
    monkeypatch.setenv("SIAMESE_EDGE_OMNIGLOT", str(shared_omniglot))
    runs = tmp_path / "lake"
    assert evaluate_main([
        "--model", str(digits_model), "--data", "omniglot", "--split", "evaluation", "--trials", "0",
        "--pairs", "200", "--build-lake-runs", str(runs), "--runs", "4", "--no-progress",
    ]) == 0
    assert sorted(p.name for p in runs.glob("run[0-9]*")) == ["run01", "run02", "run03", "run04"]
    out_json = tmp_path / "lake.json"
    assert evaluate_main(["--model", str(digits_model), "--lake-runs", str(runs), "--json", str(out_json)]) == 0
    lake = json.loads(out_json.read_text())["lake_runs"]
    assert lake["trials"] == 80
    assert 0.0 <= lake["accuracy"] <= 1.0


def test_nothing_to_evaluate_is_a_clear_error(digits_model, capsys):
    assert evaluate_main(["--model", str(digits_model)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert evaluate_main(["--model", str(tmp_path / "nope.keras"), "--data", "digits"]) == 2
    assert "nope.keras" in capsys.readouterr().err


def test_a_bundle_scores_as_its_keras_model_on_the_task(tmp_path_factory, tmp_path, capsys):
    """--bundle runs the deployed graph through the runtime: on FP32 its task numbers are the Keras model's."""
    from tests.test_runtime_verifier import trained_bundle

    bundle = trained_bundle(tmp_path_factory)
    model = bundle.parent.parent / "run" / "digits" / "model.keras"
    common = ["--data", "digits", "--n-way", "5", "--trials", "200", "--pairs", "600", "--no-progress"]
    keras_json, bundle_json = tmp_path / "k.json", tmp_path / "b.json"
    assert evaluate_main(["--model", str(model), *common, "--json", str(keras_json)]) == 0
    argv = ["--bundle", str(bundle), "--backend", "onnxruntime", "--precision", "fp32", *common]
    assert evaluate_main([*argv, "--json", str(bundle_json)]) == 0
    k, b = json.loads(keras_json.read_text()), json.loads(bundle_json.read_text())
    assert b["bundle"]["variant"] == "onnxruntime-cpu" and b["bundle"]["precision"] == "fp32"
    assert b["verification"]["auc"] == pytest.approx(k["verification"]["auc"], abs=1e-6)
    assert b["5_way_1_shot"]["accuracy"] == pytest.approx(k["5_way_1_shot"]["accuracy"], abs=1e-9)
    capsys.readouterr()
    assert evaluate_main(["--model", str(model), "--precision", "int8", *common]) == 2
    assert "--backend and --precision choose how a --bundle runs" in capsys.readouterr().err
