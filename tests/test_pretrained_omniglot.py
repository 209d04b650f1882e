"""The committed Omniglot model keeps the one-shot accuracy its model card records (minus two points)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from train.evaluate import main as evaluate_main

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "omniglot"


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((MODEL_DIR / "model_card.json").read_text())


def test_model_card_says_how_it_was_made(card):
    assert card["make_target"] == "make train-omniglot"
    assert card["data"]["name"].lower().startswith("omniglot") and "background" in card["data"]["name"]
    assert card["data"]["source"] == card["evaluation"]["data"]["source"] == "omniglot"  # as given, no machine path
    text = (MODEL_DIR / "model_card.json").read_text() + (MODEL_DIR / "model_card.md").read_text()
    assert not re.search(r"[\s\"(](/(work|home|root|tmp|Users)/|[A-Za-z]:\\)", text), "an absolute path in the card"
    assert len(card["data"]["sha256"]) == 64
    assert card["config"]["score"]["threshold_source"].startswith("calibrated")
    ev = card["evaluation"]
    assert ev["data"]["classes"] == 659 and ev["data"]["groups"] == 20  # images_evaluation, never trained on
    for key in ("within_alphabet_20_way_1_shot", "lake_runs", "verification"):
        assert ev[key]["command"].startswith("python -m train.evaluate")
    assert len(ev["accuracy_vs_minutes"]) >= 3
    assert (MODEL_DIR / "model.keras").stat().st_size < 10 * 1024 * 1024


def test_model_card_markdown_shows_each_figure_with_its_command(card):
    from train.model_card import render_markdown

    md = render_markdown(card)
    assert (MODEL_DIR / "model_card.md").read_text() == md  # the committed card is what the code renders
    ev = card["evaluation"]
    for key in ("within_alphabet_20_way_1_shot", "lake_runs", "verification"):
        assert f"**{key}**" in md and f"`{ev[key]['command']}`" in md
    acc = ev["within_alphabet_20_way_1_shot"]
    assert f"accuracy {acc['accuracy']:.2%} over {acc['trials']} trials" in md
    assert md.count("\n| ") >= len(ev["accuracy_vs_minutes"]) + 1  # the accuracy-vs-minutes table


def test_one_shot_accuracy_holds(card, shared_omniglot, monkeypatch, tmp_path):
    monkeypatch.setenv("SIAMESE_EDGE_OMNIGLOT", str(shared_omniglot))
    recorded = card["evaluation"]["within_alphabet_20_way_1_shot"]
    out = tmp_path / "r.json"
    code = evaluate_main([
        "--model", str(MODEL_DIR / "model.keras"), "--data", "omniglot", "--split", "evaluation",
        "--n-way", "20", "--trials", str(recorded["trials"]), "--seed", "0", "--pairs", "200",
        "--no-progress", "--json", str(out),
    ])
    assert code == 0
    got = json.loads(out.read_text())["20_way_1_shot"]
    assert got["trials"] == recorded["trials"] >= 400
    assert got["accuracy"] >= recorded["accuracy"] - 0.02, (got["accuracy"], recorded["accuracy"])


def test_round_trips_through_export_within_tolerances(tmp_path, shared_omniglot, monkeypatch):
    from export.build import EXIT_OK
    from export.build import main as export_main

    monkeypatch.setenv("SIAMESE_EDGE_OMNIGLOT", str(shared_omniglot))
    code = export_main(["--model", str(MODEL_DIR / "model.keras"), "--name", "omniglot", "--out", str(tmp_path)])
    assert code == EXIT_OK
    parity = json.loads((tmp_path / "omniglot" / "parity.json").read_text())
    assert parity["reference"].startswith("model card data: Omniglot images_background")
    by = {r["backend"]: r for r in parity["results"]}
    assert by["onnxruntime-cpu"]["status"] == "PASSED" and by["fp16 emulated"]["status"] == "PASSED"
    assert by["fp16 emulated"]["metrics"]["decision_flips"] == 0
